"""Placing an order: the API's hot path, in two round trips to PostgreSQL.

It runs on the psycopg connection under SQLAlchemy's pool, in pipeline mode, with
prepared statements:

1. claim the Idempotency-Key (a transaction-scoped advisory lock: a concurrent request
   with the same key is answered 409 at once), read what the key stored, and read the
   products, in one round trip; the reads run after the lock, so they see whatever the
   key's previous holder committed;
2. write the order, its lines, its first timeline event, the outbox message that starts
   the pipeline and the key's stored response in one INSERT statement (data-modifying
   CTEs), and commit, in one more round trip.

Prices come from the catalogue, never from the client. Only a successful response is
stored under a key: a request that failed changed nothing, so its retry runs again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncEngine

from api.errors import ApiError
from api.idempotency import KEY_TTL, lock_id, stored_response
from api.schemas import OrderCreate, OrderOut
from fulfillment.messages import RESERVE_INVENTORY
from fulfillment.ordering import (
    CatalogueEntry,
    MixedCurrencies,
    PricedOrder,
    ProductsUnavailable,
    price_order,
)

CLAIM = "SELECT pg_try_advisory_xact_lock(%s)"
STORED = (
    "SELECT id, path, request_hash, response_status, response_body, created_at "
    "FROM idempotency_keys WHERE user_id = %s AND key = %s"
)
PRODUCTS = "SELECT id, sku, name, price, currency, is_active FROM products WHERE id = ANY(%s)"
FORGET = "DELETE FROM idempotency_keys WHERE id = %s"

_WRITE_ORDER = """
    WITH new_order AS (
        INSERT INTO orders (id, customer_id, status, currency, total_amount, shipping_address,
                            payment_method, created_at, updated_at, status_changed_at)
        VALUES (%(id)s, %(customer_id)s, 'pending', %(currency)s, %(total)s, %(address)s,
                %(payment_method)s, %(now)s, %(now)s, %(now)s)
    ), new_lines AS (
        INSERT INTO order_lines (order_id, position, product_id, sku, name, quantity,
                                 unit_price, unit_amount)
        SELECT %(id)s, l.position, l.product_id, l.sku, l.name, l.quantity, l.unit_price,
               l.unit_amount
        FROM jsonb_to_recordset(%(lines)s) AS l(position int, product_id uuid, sku text,
            name text, quantity int, unit_price numeric, unit_amount bigint)
    ), first_event AS (
        INSERT INTO order_events (order_id, step, to_status, created_at)
        VALUES (%(id)s, 'accept', 'pending', %(now)s)
    ), message AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        VALUES (%(queue)s, %(actor)s, %(kwargs)s, %(request_id)s)
    )
"""
WRITE = _WRITE_ORDER + "SELECT 1"
WRITE_WITH_KEY = (
    _WRITE_ORDER
    + """
    INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, response_status,
                                  response_body, created_at)
    VALUES (%(customer_id)s, %(key)s, 'POST', %(path)s, %(fingerprint)s, 201, %(response)s,
            %(now)s)
"""
)


async def place_order(
    engine: AsyncEngine,
    *,
    customer_id: uuid.UUID,
    body: OrderCreate,
    key: str | None,
    fingerprint: str,
    path: str,
    request_id: str | None,
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed) for ``POST /v1/orders``."""
    async with engine.connect() as sa_conn:
        conn: AsyncConnection = (await sa_conn.get_raw_connection()).driver_connection
        try:
            return await _place(conn, customer_id=customer_id, body=body, key=key,
                                fingerprint=fingerprint, path=path, request_id=request_id)  # fmt: skip
        finally:
            if conn.info.transaction_status != 0:  # anything left open is rolled back
                await conn.rollback()


async def _place(conn: AsyncConnection, *, customer_id, body: OrderCreate, key, fingerprint,
                 path, request_id) -> tuple[int, dict[str, Any], bool]:  # fmt: skip
    requested = [(item.product_id, item.quantity) for item in body.items]
    async with conn.pipeline() as pipeline:
        if key is not None:
            claim = await conn.execute(CLAIM, (lock_id(customer_id, key),), prepare=True)
            stored = await conn.execute(STORED, (customer_id, key), prepare=True)
        products = await conn.execute(PRODUCTS, ([pid for pid, _ in requested],), prepare=True)
        await pipeline.sync()
    if key is not None:
        if not (await claim.fetchone())[0]:
            raise ApiError(409, "idempotency_key_in_use",
                           "a request with this Idempotency-Key is still being processed; "
                           "retry shortly")  # fmt: skip
        previous = await stored.fetchone()
        if previous is not None and previous[5] >= datetime.now(UTC) - KEY_TTL:
            status, replay = stored_response(previous, path=path, fingerprint=fingerprint)
            return status, replay, True
        if previous is not None:  # expired: the key starts afresh
            await conn.execute(FORGET, (previous[0],), prepare=True)
    catalogue = {row[0]: CatalogueEntry(*row) for row in await products.fetchall()}
    priced = _price(requested, catalogue)
    order_id, now = uuid.uuid4(), datetime.now(UTC)
    address = body.shipping_address.model_dump(exclude_none=True)
    response = _representation(order_id, priced, address=address, now=now)
    params = {
        "id": order_id, "customer_id": customer_id, "currency": priced.currency,
        "total": priced.total_amount, "address": Jsonb(address),
        "payment_method": body.payment_method, "now": now,
        "lines": Jsonb([_line_json(line) for line in priced.lines]),
        "queue": RESERVE_INVENTORY[1], "actor": RESERVE_INVENTORY[0],
        "kwargs": Jsonb({"order_id": str(order_id)}), "request_id": request_id,
        "key": key, "path": path, "fingerprint": fingerprint, "response": Jsonb(response),
    }  # fmt: skip
    async with conn.pipeline():
        await conn.execute(WRITE if key is None else WRITE_WITH_KEY, params, prepare=True)
        await conn.commit()
    return 201, response, False


def _price(requested, catalogue) -> PricedOrder:
    try:
        return price_order(requested, catalogue)
    except ProductsUnavailable as exc:
        raise ApiError(
            422, "product_unavailable", "some products are unknown or not for sale",
            {"product_ids": [str(pid) for pid in exc.product_ids]},
        ) from None  # fmt: skip
    except MixedCurrencies as exc:
        raise ApiError(
            422, "currency_mismatch", str(exc), {"currencies": sorted(exc.currencies)}
        ) from None


def _line_json(line) -> dict[str, Any]:
    return {
        "position": line.position, "product_id": str(line.product_id), "sku": line.sku,
        "name": line.name, "quantity": line.quantity, "unit_price": str(line.unit_price),
        "unit_amount": line.unit_amount,
    }  # fmt: skip


def _representation(order_id, priced: PricedOrder, *, address, now: datetime) -> dict[str, Any]:
    """The same JSON ``GET /v1/orders/{id}`` answers for this order."""
    return OrderOut.of(
        id=order_id, status="pending", lines=priced.lines, currency=priced.currency,
        total_amount=priced.total_amount, shipping_address=address, created_at=now, updated_at=now,
    ).model_dump(mode="json")  # fmt: skip
