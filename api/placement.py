"""Placing an order: the API's hot path, in two round trips to PostgreSQL, shared by
every order that arrives at the same time (group commit, see ``OrderWriter``).

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

Under load, the requests waiting while a batch is in the database are taken together
as the next batch: the same two round trips and one commit, whatever the batch size.
Each request is still answered on its own (201, a replay, 409, 422), and only after the
commit that holds its order. If the batch's write fails, its orders are written one by
one, so one bad order cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncEngine

from api.errors import ApiError
from api.idempotency import KEY_TTL, lock_id, stored_response
from api.rawdb import raw_connection
from api.schemas import OrderCreate, OrderOut
from fulfillment.messages import RESERVE_INVENTORY
from fulfillment.ordering import (
    CatalogueEntry,
    MixedCurrencies,
    PricedOrder,
    ProductsUnavailable,
    price_order,
)
from monitoring import metrics

log = logging.getLogger(__name__)

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


#: Many orders in one statement: their rows come as JSON arrays.
WRITE_BATCH = """
    WITH o AS (
        SELECT * FROM jsonb_to_recordset(%(orders)s) AS o(id uuid, customer_id uuid,
            currency text, total bigint, address jsonb, payment_method text,
            request_id text, key text, path text, fingerprint text, response jsonb)
    ), new_orders AS (
        INSERT INTO orders (id, customer_id, status, currency, total_amount, shipping_address,
                            payment_method, created_at, updated_at, status_changed_at)
        SELECT o.id, o.customer_id, 'pending', o.currency, o.total, o.address,
               o.payment_method, %(now)s, %(now)s, %(now)s
        FROM o
    ), new_lines AS (
        INSERT INTO order_lines (order_id, position, product_id, sku, name, quantity,
                                 unit_price, unit_amount)
        SELECT l.order_id, l.position, l.product_id, l.sku, l.name, l.quantity, l.unit_price,
               l.unit_amount
        FROM jsonb_to_recordset(%(lines)s) AS l(order_id uuid, position int, product_id uuid,
            sku text, name text, quantity int, unit_price numeric, unit_amount bigint)
    ), first_events AS (
        INSERT INTO order_events (order_id, step, to_status, created_at)
        SELECT o.id, 'accept', 'pending', %(now)s FROM o
    ), messages AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        SELECT %(queue)s, %(actor)s, jsonb_build_object('order_id', o.id::text), o.request_id
        FROM o
    )
    INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, response_status,
                                  response_body, created_at)
    SELECT o.customer_id, o.key, 'POST', o.path, o.fingerprint, 201, o.response, %(now)s
    FROM o WHERE o.key IS NOT NULL
"""


@dataclass(slots=True, eq=False)
class Placement:
    """One ``POST /v1/orders`` waiting for its batch."""

    customer_id: uuid.UUID
    body: OrderCreate
    key: str | None
    fingerprint: str
    path: str
    request_id: str | None
    answer: asyncio.Future[tuple[int, dict[str, Any], bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, result: tuple[int, dict[str, Any], bool] | BaseException) -> None:
        if self.answer.done():  # the client went away; its order stands all the same
            return
        if isinstance(result, BaseException):
            self.answer.set_exception(result)
        else:
            self.answer.set_result(result)


class OrderWriter:
    """Group commit for ``POST /v1/orders``. ``writers`` tasks each take every placement
    waiting (up to ``max_batch``) and write them in one transaction; an idle API writes
    a lone order at once, with no added wait."""

    def __init__(self, engine: AsyncEngine, *, writers: int = 2, max_batch: int = 64) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._waiting: asyncio.Queue[Placement] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(writers)]

    async def place(self, placement: Placement) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed), answered once the order's batch has committed."""
        if not self._tasks:
            raise ApiError(503, "shutting_down", "the API is shutting down; retry")
        self._waiting.put_nowait(placement)
        return await placement.answer

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._waiting.empty():
            self._waiting.get_nowait().settle(
                ApiError(503, "shutting_down", "the API is shutting down; retry")
            )

    async def _run(self) -> None:
        while True:
            batch = [await self._waiting.get()]
            while len(batch) < self._max_batch and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for placement in batch:  # cancelled mid-write: nothing was committed
                    placement.settle(
                        ApiError(503, "shutting_down", "the API is shutting down; retry")
                    )
                raise
            except Exception as exc:
                log.exception("order batch failed")
                for placement in batch:
                    placement.settle(exc)

    async def _write(self, batch: list[Placement]) -> None:
        metrics.order_batch_size.observe(len(batch))
        async with raw_connection(self._engine) as conn:
            if len(batch) > 1:
                await _place_batch(conn, batch)
                return
            try:
                batch[0].settle(await _place(conn, **_arguments(batch[0])))
            except ApiError as exc:
                batch[0].settle(exc)


def _arguments(placement: Placement) -> dict[str, Any]:
    return {
        "customer_id": placement.customer_id, "body": placement.body, "key": placement.key,
        "fingerprint": placement.fingerprint, "path": placement.path,
        "request_id": placement.request_id,
    }  # fmt: skip


async def _place_batch(conn: AsyncConnection, batch: list[Placement]) -> None:
    keyed = [p for p in batch if p.key is not None]
    product_ids = list({item.product_id for p in batch for item in p.body.items})
    async with conn.pipeline() as pipeline:
        claims = [
            await conn.execute(CLAIM, (lock_id(p.customer_id, p.key),), prepare=True) for p in keyed
        ]
        stored = [await conn.execute(STORED, (p.customer_id, p.key), prepare=True) for p in keyed]
        products = await conn.execute(PRODUCTS, (product_ids,), prepare=True)
        await pipeline.sync()
    claimed = {id(p): (await c.fetchone())[0] for p, c in zip(keyed, claims, strict=True)}
    previous = {id(p): await s.fetchone() for p, s in zip(keyed, stored, strict=True)}
    catalogue = {row[0]: CatalogueEntry(*row) for row in await products.fetchall()}
    now = datetime.now(UTC)
    orders, lines, expired, written = [], [], [], []
    keys_in_batch: set[tuple[uuid.UUID, str]] = set()
    for p in batch:
        try:
            if p.key is not None:
                if not claimed[id(p)] or (p.customer_id, p.key) in keys_in_batch:
                    raise _key_in_use()
                keys_in_batch.add((p.customer_id, p.key))
                earlier = previous[id(p)]
                if earlier is not None and earlier[5] >= now - KEY_TTL:
                    status, replay = stored_response(
                        earlier, path=p.path, fingerprint=p.fingerprint
                    )
                    p.settle((status, replay, True))
                    continue
                if earlier is not None:  # expired: the key starts afresh
                    expired.append(earlier[0])
            priced = _price([(item.product_id, item.quantity) for item in p.body.items], catalogue)
        except ApiError as exc:
            p.settle(exc)
            continue
        order_id = uuid.uuid4()
        address = p.body.shipping_address.model_dump(exclude_none=True)
        response = _representation(order_id, priced, address=address, now=now)
        orders.append({
            "id": str(order_id), "customer_id": str(p.customer_id), "currency": priced.currency,
            "total": priced.total_amount, "address": address,
            "payment_method": p.body.payment_method, "request_id": p.request_id, "key": p.key,
            "path": p.path, "fingerprint": p.fingerprint, "response": response,
        })  # fmt: skip
        lines.extend({"order_id": str(order_id), **_line_json(line)} for line in priced.lines)
        written.append((p, response))
    if not written:
        await conn.rollback()
        return
    try:
        async with conn.pipeline():
            for key_id in expired:
                await conn.execute(FORGET, (key_id,), prepare=True)
            await conn.execute(WRITE_BATCH, {
                "orders": Jsonb(orders), "lines": Jsonb(lines), "now": now,
                "queue": RESERVE_INVENTORY[1], "actor": RESERVE_INVENTORY[0],
            }, prepare=True)  # fmt: skip
            await conn.commit()
    except Exception:
        log.warning("order batch write failed; writing its orders one by one", exc_info=True)
        await conn.rollback()
        for p, _ in written:
            try:
                p.settle(await _place(conn, **_arguments(p)))
            except Exception as exc:
                if conn.info.transaction_status != 0:
                    await conn.rollback()
                p.settle(exc)
        return
    for p, response in written:
        p.settle((201, response, False))


def _key_in_use() -> ApiError:
    return ApiError(409, "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still being processed; "
                    "retry shortly")  # fmt: skip


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
            raise _key_in_use()
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
