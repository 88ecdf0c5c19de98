"""Advisory locks for writers that meet on something other than a row they both lock.

Each is transaction-scoped, in PostgreSQL's two-key form ``(class, hashtext(name))``: a
key space apart from the one-key locks that claim Idempotency-Keys. A lock taken to make
a later read see another writer's commit is taken in a statement of its own: under READ
COMMITTED a statement sees what was committed before it began, so a read in the same
statement as the wait would still miss the commit it waited for.
"""

from __future__ import annotations

from sqlalchemy import text

#: One tracking code: tracker intake (``api.intake.providers``) against the commit that stores
#: the code's shipment or return label (``pipelines.shipping.ship``, ``pipelines.returns.label``).
TRACKING_CODE = 7101
#: One order's label purchase: ``ship_order`` holds it across its call to EasyPost.
LABEL_PURCHASE = 7102

#: Lock every tracking code of ``codes`` until the transaction ends, in key order (two
#: batches of tracker events never wait on each other in a circle).
LOCK_TRACKING_CODES = text(
    f"SELECT count(pg_advisory_xact_lock({TRACKING_CODE}, key)) FROM ("
    " SELECT DISTINCT hashtext(code) AS key FROM unnest(CAST(:codes AS text[])) AS code"
    " ORDER BY key) AS keys"
)
#: Lock the purchase of order ``order_id``'s label until the transaction ends: a second
#: purchase of the same order waits for the first to commit, and then finds it.
LOCK_LABEL_PURCHASE = text(
    f"SELECT pg_advisory_xact_lock({LABEL_PURCHASE}, hashtext(CAST(:order_id AS text)))"
)
#: False while a label purchase of order ``order_id`` is in flight, never waiting; when
#: True, no purchase starts until the caller's transaction ends (a shared hold).
LABEL_PURCHASE_IDLE = text(
    f"SELECT pg_try_advisory_xact_lock_shared({LABEL_PURCHASE}, hashtext(CAST(:order_id AS text)))"
)
