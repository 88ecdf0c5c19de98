"""The statements of ``POST /v1/orders``' group commit (``api.orders.placement``).

A batch goes one of two ways:

- **read first** (two round trips): claim the Idempotency-Keys (``CLAIMS``), read what
  they stored (``STORED``, after the claims, so it sees what a key's previous holder
  committed) and the products (``PRODUCTS``); decide each order in Python; then write
  the orders (``WRITE_BATCH``) and commit;
- **known prices** (one round trip): when the writer already read every product of the
  batch, it prices the orders from what it read and sends ``GUARDED_WRITE`` and the
  COMMIT together. The statement writes only the orders whose key it claims now and
  finds unused, and whose every line still matches the catalogue row (price, currency,
  SKU, name, on sale); it answers the ids it wrote. The others are decided again the
  first way, in a transaction of their own.

If a key's previous holder commits between the guarded statement's snapshot and its
claim, the statement does not see that key's row and tries to store it again: the
key's unique index refuses it, the statement fails, and the batch is decided the first
way. Nothing is written twice.
"""

from __future__ import annotations

#: Every key of the batch claimed in one statement: (position, claimed).
CLAIMS = (
    "SELECT n, pg_try_advisory_xact_lock(lock) "
    "FROM unnest(%s::bigint[]) WITH ORDINALITY AS c(lock, n)"
)
#: What each key stored, read by the statement after the claims (so after the locks):
#: (position, id, path, request_hash, response_status, response_body, created_at). One
#: index lookup per key (the LIMIT keeps the planner from turning the lateral lookups
#: into a hash join over the whole table).
STORED = """
    SELECT c.n, s.id, s.path, s.request_hash, s.response_status, s.response_body, s.created_at
    FROM unnest(%s::uuid[], %s::text[]) WITH ORDINALITY AS c(user_id, key, n)
    CROSS JOIN LATERAL (
        SELECT k.id, k.path, k.request_hash, k.response_status, k.response_body, k.created_at
        FROM idempotency_keys k WHERE k.user_id = c.user_id AND k.key = c.key LIMIT 1
    ) s
"""
PRODUCTS = "SELECT id, sku, name, price, currency, is_active FROM products WHERE id = ANY(%s)"
FORGET = "DELETE FROM idempotency_keys WHERE id = %s"

#: The batch's orders and lines, as the writer sends them (JSON arrays).
_ORDERS = """jsonb_to_recordset(%(orders)s) AS o(id uuid, customer_id uuid,
            currency text, total bigint, subtotal bigint, shipping bigint, tax bigint,
            shipping_tax bigint, carrier text, service text, quote_id uuid, calculation text,
            address jsonb, payment_method text, request_id text, key text, lock bigint,
            path text, fingerprint text, response jsonb)"""
_LINES = """jsonb_to_recordset(%(lines)s) AS l(order_id uuid, position int, product_id uuid,
            sku text, name text, quantity int, unit_price numeric, unit_amount bigint, tax bigint)"""

#: The rows of the orders in ``o`` and their lines in ``lines``: the order, its lines, its
#: first timeline entry, the outbox message that starts its pipeline, its key's response.
_WRITES = """
    new_orders AS (
        INSERT INTO orders (id, customer_id, status, currency, total_amount, subtotal_amount,
                            shipping_amount, tax_amount, shipping_tax_amount, shipping_carrier,
                            shipping_service, quote_id, tax_calculation_id, shipping_address,
                            payment_method, request_id, created_at, updated_at,
                            status_changed_at)
        SELECT o.id, o.customer_id, 'pending', o.currency, o.total, o.subtotal, o.shipping,
               o.tax, o.shipping_tax, o.carrier, o.service, o.quote_id, o.calculation,
               o.address, o.payment_method, o.request_id, %(now)s, %(now)s, %(now)s
        FROM o
    ), new_lines AS (
        INSERT INTO order_lines (order_id, position, product_id, sku, name, quantity,
                                 unit_price, unit_amount, tax_amount)
        SELECT l.order_id, l.position, l.product_id, l.sku, l.name, l.quantity, l.unit_price,
               l.unit_amount, l.tax
        FROM lines l
    ), first_events AS (
        INSERT INTO order_events (order_id, step, to_status, created_at)
        SELECT o.id, 'accept', 'pending', %(now)s FROM o
    ), messages AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        SELECT %(queue)s, %(actor)s, jsonb_build_object('order_id', o.id::text), o.request_id
        FROM o
    ), keys AS (
        INSERT INTO idempotency_keys (user_id, key, method, path, request_hash,
                                      response_status, response_body, created_at)
        SELECT o.customer_id, o.key, 'POST', o.path, o.fingerprint, 201, o.response, %(now)s
        FROM o WHERE o.key IS NOT NULL
    )"""

#: Many orders in one statement (data-modifying CTEs over the JSON arrays), every one
#: decided beforehand; answers how many it wrote.
WRITE_BATCH = f"""
    WITH o AS (SELECT * FROM {_ORDERS}),
    lines AS (SELECT * FROM {_LINES}),
    {_WRITES}
    SELECT count(*) FROM o
"""

#: The orders priced from what the writer read before, written only where the key is
#: claimed now and unused, and every line matches its catalogue row; answers their ids.
GUARDED_WRITE = f"""
    WITH given AS MATERIALIZED (SELECT * FROM {_ORDERS}),
    given_lines AS MATERIALIZED (SELECT * FROM {_LINES}),
    o AS MATERIALIZED (
        SELECT g.* FROM given g
        WHERE NOT EXISTS (
                SELECT 1 FROM given_lines gl LEFT JOIN products p ON p.id = gl.product_id
                WHERE gl.order_id = g.id
                  AND (p.id IS NULL OR NOT p.is_active OR p.price <> gl.unit_price
                       OR p.currency <> g.currency OR p.sku <> gl.sku OR p.name <> gl.name))
          AND (g.key IS NULL OR pg_try_advisory_xact_lock(g.lock))
          AND NOT EXISTS (
                SELECT 1 FROM idempotency_keys k WHERE k.user_id = g.customer_id AND k.key = g.key)
    ),
    lines AS (SELECT gl.* FROM given_lines gl JOIN o ON o.id = gl.order_id),
    {_WRITES}
    SELECT o.id::text FROM o
"""
