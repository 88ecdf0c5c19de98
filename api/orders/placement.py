"""Placing an order: the API's hot path, shared by every order that arrives at the same
time (group commit, see ``OrderWriter``), on the psycopg connection under SQLAlchemy's
pool, in pipeline mode, with prepared statements (``api.orders.placement_sql``).

A batch whose products this writer has read before is priced from what it read, and
written and committed in **one round trip**: the statement claims each order's
Idempotency-Key itself and writes only the orders whose key is free and unused and whose
lines still match the catalogue, and says which. Every other order (a product not read
yet or changed since, a key in use or stored, an order on a quote) is decided from
fresh reads in **two round trips**:

1. claim the Idempotency-Keys (transaction-scoped advisory locks, every key of the batch
   in one statement: a concurrent request with the same key is answered 409 at once),
   read what the keys stored (one more statement), and read the products, in one round
   trip; the reads run after the locks, so they see whatever a key's previous holder
   committed;
2. write the orders, their lines, their first timeline events, the outbox messages that
   start the pipeline and the keys' stored responses in one statement (data-modifying
   CTEs over JSON arrays), and commit, in one more round trip.

Prices come from the catalogue, never from the client. Only a successful response is
stored under a key: a request that failed changed nothing, so its retry runs again.

A lone order is a batch of one. Under load, the requests waiting while a batch is in
the database are taken together as the next batch, whatever its size.
Each request is still answered on its own (201, a replay, 409, 422), and only after the
commit that holds its order. If the batch's write fails, its orders are written one by
one, so one bad order cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncEngine

from api.orders.placement_sql import CLAIMS, FORGET, GUARDED_WRITE, PRODUCTS, STORED, WRITE_BATCH
from api.orders.quoted import QUOTES, Quoted, quoted
from api.orders.read_catalogue import ReadCatalogue
from api.orders.schemas import OrderCreate
from api.shared.errors import ApiError, ErrorCode
from api.shared.group_commit import GroupCommit, Waiting
from api.shared.idempotency import KEY_TTL, lock_id, stored_response
from api.shared.pricing import price_or_refuse
from api.shared.rawdb import raw_connection
from fulfillment.checkpoints import armed, reach_async
from fulfillment.messages import RESERVE_INVENTORY
from fulfillment.order_view import placed_order_json
from fulfillment.ordering import CatalogueEntry, PricedOrder
from monitoring import metrics

log = logging.getLogger(__name__)

#: Where a test holds a batch with its keys claimed and its orders written, uncommitted.
BEFORE_COMMIT = "place_orders.before_commit"


@dataclass(slots=True, eq=False)
class Placement(Waiting):
    """One ``POST /v1/orders`` waiting for its batch; answered (status, body, replayed)."""

    customer_id: uuid.UUID
    body: OrderCreate
    key: str | None
    fingerprint: str
    path: str
    request_id: str | None


class OrderWriter(GroupCommit[Placement]):
    """Group commit for ``POST /v1/orders`` (see ``api.shared.group_commit``)."""

    def __init__(self, engine: AsyncEngine, *, writers: int = 2, max_batch: int = 64,
                 quote_required: bool = False) -> None:  # fmt: skip
        self._engine = engine
        self._quote_required = quote_required
        self._catalogue = ReadCatalogue()
        super().__init__(writers=writers, max_batch=max_batch)

    async def place(self, placement: Placement) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed), answered once the order's batch has committed."""
        return await self.submit(placement)

    async def write(self, batch: list[Placement]) -> None:
        metrics.order_batch_size.observe(len(batch))
        batch = _refuse_repeated_keys(batch)
        known, rest = self._catalogue.split(batch, quote_required=self._quote_required)
        if known:
            async with raw_connection(self._engine) as conn:
                rest += await self._write_known(conn, known)
        if rest:
            async with raw_connection(self._engine) as conn:
                await self._write_read(conn, rest)

    async def _write_known(self, conn: AsyncConnection, batch: list[Placement]) -> list[Placement]:
        """The batch priced from the products read before, written and committed in one
        round trip (``GUARDED_WRITE``); answers what it wrote and returns the rest."""
        written, left = _Written(), []
        for p in batch:
            lock = lock_id(p.customer_id, p.key) if p.key is not None else None
            try:
                _add(written, p, self._catalogue.entries, None, lock=lock, quote_required=False)
            except ApiError:  # refused on what was read before: decided on fresh reads
                left.append(p)
        backend = conn.info.backend_pid
        try:
            ids = await _commit_guarded(conn, written)
        except Exception as exc:
            if conn.broken or conn.closed:  # gone with the COMMIT in flight
                await self._settle_uncertain(written, backend, exc)
                return left
            log.info("guarded order write failed; deciding its orders on fresh reads",
                     exc_info=True)  # fmt: skip
            await conn.rollback()
            return left + [placement for placement, _ in written.answers]
        for placement, response in written.answers:
            if response["id"] in ids:
                placement.settle((201, response, False))
            else:
                left.append(placement)
        return left

    async def _write_read(self, conn: AsyncConnection, batch: list[Placement]) -> None:
        """The batch decided on fresh reads, then written: two round trips."""
        written = await _decide(conn, batch, self._quote_required, self._catalogue)
        await reach_async(BEFORE_COMMIT)  # the batch's keys are held
        backend = conn.info.backend_pid
        try:
            await _commit(conn, written)
        except Exception as exc:
            if conn.broken or conn.closed:  # gone with the COMMIT in flight
                await self._settle_uncertain(written, backend, exc)
                return
            if len(written.answers) <= 1:
                raise
            log.warning("order batch write failed; writing its orders one by one",
                        exc_info=True)  # fmt: skip
            await conn.rollback()
            for placement, _ in written.answers:
                await _write_alone(conn, placement, self._quote_required, self._catalogue)
            return
        for placement, response in written.answers:
            placement.settle((201, response, False))

    async def _settle_uncertain(self, written: _Written, backend: int, exc: Exception) -> None:
        """The connection died while the batch's COMMIT was on its way: the server may
        have committed it. Ask a fresh connection, once the old server process has
        ended (its transaction then committed or rolled back for good), which orders are
        stored: those are 201, the others failed (503, nothing stored). When the
        database cannot say within ``RESOLVE_WITHIN_SECONDS``, each order is a ``503
        order_outcome_unknown`` with its id: the storefront retries with the same
        Idempotency-Key (the stored order is replayed, or written now) or reads the order."""
        ids = [response["id"] for _, response in written.answers]
        try:
            async with asyncio.timeout(RESOLVE_WITHIN_SECONDS):
                stored = await _stored_after(self._engine, backend, ids)
        except Exception:
            log.warning("order batch commit outcome unknown", exc_info=True)
            for placement, response in written.answers:
                placement.settle(_outcome_unknown(response["id"]))
            return
        for placement, response in written.answers:
            placement.settle((201, response, False) if response["id"] in stored else exc)


#: How long a batch whose connection died mid-COMMIT waits to learn what it stored.
RESOLVE_WITHIN_SECONDS = 3.0
_BACKEND_ALIVE = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
_STORED_ORDERS = "SELECT id::text FROM orders WHERE id = ANY(%s::uuid[])"


async def _stored_after(engine: AsyncEngine, backend: int, ids: list[str]) -> set[str]:
    """Which of ``ids`` are stored, read once server process ``backend`` has exited."""
    async with raw_connection(engine) as conn:
        while await (await conn.execute(_BACKEND_ALIVE, (backend,))).fetchone() is not None:
            await conn.rollback()
            await asyncio.sleep(0.05)
        rows = await (await conn.execute(_STORED_ORDERS, (ids,))).fetchall()
        await conn.rollback()
    return {row[0] for row in rows}


def _outcome_unknown(order_id: str) -> ApiError:
    return ApiError(503, ErrorCode.ORDER_OUTCOME_UNKNOWN,
                    "the database went away while this order was being committed, so it "
                    "may or may not be stored: retry with the same Idempotency-Key, or read "
                    "the order, to know", {"order_id": order_id},
                    headers={"Retry-After": "5"})  # fmt: skip


@dataclass(slots=True)
class _Written:
    """What one batch writes: the rows, and the keys to forget first."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    answers: list[tuple[Placement, dict[str, Any]]] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


async def _decide(conn: AsyncConnection, batch: list[Placement], quote_required: bool,
                  catalogue_read: ReadCatalogue) -> _Written:  # fmt: skip
    """Round trip 1: claim the keys, read what they stored, the products and the quotes.
    Answers replays, keys in use and bad orders at once; returns the orders to write.
    The products read are kept in ``catalogue_read`` for the next batches. The batch has
    one placement per customer and key (``_refuse_repeated_keys``): a key claimed twice in
    one transaction would be granted twice."""
    keyed = [p for p in batch if p.key is not None]
    product_ids = list({item.product_id for p in batch for item in p.body.items})
    quote_ids = list({p.body.quote_id for p in batch if p.body.quote_id is not None})
    async with conn.pipeline() as pipeline:
        if keyed:
            claims = await conn.execute(
                CLAIMS, ([lock_id(p.customer_id, p.key) for p in keyed],), prepare=True
            )
            stored = await conn.execute(
                STORED, ([p.customer_id for p in keyed], [p.key for p in keyed]), prepare=True
            )
        products = await conn.execute(PRODUCTS, (product_ids,), prepare=True)
        quoting = await conn.execute(QUOTES, (quote_ids,), prepare=True) if quote_ids else None
        await pipeline.sync()
    claimed, previous = {}, {}
    if keyed:
        claimed = {id(keyed[n - 1]): ok for n, ok in await claims.fetchall()}
        previous = {id(keyed[row[0] - 1]): row[1:] for row in await stored.fetchall()}
    catalogue = {row[0]: CatalogueEntry(*row) for row in await products.fetchall()}
    catalogue_read.keep(catalogue)
    quotes = {row[0]: row for row in await quoting.fetchall()} if quoting is not None else {}
    written = _Written()
    for p in batch:
        try:
            if p.key is not None:
                if not claimed[id(p)]:
                    raise _key_in_use()
                earlier = previous.get(id(p))
                if earlier is not None and earlier[5] >= written.now - KEY_TTL:
                    status, replay = stored_response(
                        earlier, path=p.path, fingerprint=p.fingerprint
                    )
                    p.settle((status, replay, True))
                    continue
                if earlier is not None:  # expired: the key starts afresh
                    written.expired.append(earlier[0])
            _add(written, p, catalogue, quotes.get(p.body.quote_id), lock=None,
                 quote_required=quote_required)  # fmt: skip
        except ApiError as exc:
            p.settle(exc)
    return written


def _add(written: _Written, p: Placement, catalogue: dict[uuid.UUID, CatalogueEntry], quote: Any,
         *, lock: int | None, quote_required: bool) -> None:  # fmt: skip
    """Price ``p`` from ``catalogue`` (and its quote) and add its rows and answer to
    ``written``, or raise the ApiError that refuses it. ``lock`` is its key's advisory
    lock, for the guarded write to claim."""
    priced = price_or_refuse([(item.product_id, item.quantity) for item in p.body.items], catalogue)
    address = p.body.shipping_address.model_dump(exclude_none=True)
    terms = quoted(p.body, p.customer_id, quote, priced, address, now=written.now,
                   required=quote_required)  # fmt: skip
    order_id = str(uuid.uuid4())
    total = priced.total_amount + terms.shipping + terms.tax
    response = _representation(order_id, priced, terms, address=address, now=written.now)
    written.orders.append({
        "id": order_id, "customer_id": str(p.customer_id), "currency": priced.currency,
        "total": total, "subtotal": priced.total_amount, "shipping": terms.shipping,
        "tax": terms.tax, "shipping_tax": terms.shipping_tax, "carrier": terms.carrier,
        "service": terms.service, "calculation": terms.calculation,
        "quote_id": str(terms.quote_id) if terms.quote_id else None, "address": address,
        "payment_method": p.body.payment_method, "request_id": p.request_id, "key": p.key,
        "lock": lock, "path": p.path, "fingerprint": p.fingerprint, "response": response,
    })  # fmt: skip
    written.lines.extend(
        {"order_id": order_id, **_line_json(line),
         "tax": terms.line_taxes.get(str(line.product_id), 0)}
        for line in priced.lines
    )  # fmt: skip
    written.answers.append((p, response))


def _refuse_repeated_keys(batch: list[Placement]) -> list[Placement]:
    """The batch less each placement whose customer and key an earlier one of the batch
    has: those are answered 409 at once (the key is in use, by that earlier request)."""
    seen: set[tuple[uuid.UUID, str]] = set()
    kept = []
    for p in batch:
        if p.key is not None:
            if (p.customer_id, p.key) in seen:
                p.settle(_key_in_use())
                continue
            seen.add((p.customer_id, p.key))
        kept.append(p)
    return kept


async def _commit(conn: AsyncConnection, written: _Written) -> None:
    """Round trip 2: forget expired keys, write every order in one statement, commit."""
    if not written.answers:
        await conn.rollback()
        return
    async with conn.pipeline():
        for key_id in written.expired:
            await conn.execute(FORGET, (key_id,), prepare=True)
        await conn.execute(WRITE_BATCH, _rows(written), prepare=True)
        await conn.commit()


async def _commit_guarded(conn: AsyncConnection, written: _Written) -> set[str]:
    """The one round trip of orders priced beforehand: ``GUARDED_WRITE`` and the COMMIT
    (split at ``BEFORE_COMMIT`` only while a test holds it); the ids it wrote."""
    if not written.answers:
        return set()
    async with conn.pipeline() as pipeline:
        cursor = await conn.execute(GUARDED_WRITE, _rows(written), prepare=True)
        if armed(BEFORE_COMMIT):
            await pipeline.sync()
            await reach_async(BEFORE_COMMIT)  # the batch's keys are held
        await conn.commit()
    return {row[0] for row in await cursor.fetchall()}


def _rows(written: _Written) -> dict[str, Any]:
    return {
        "orders": Jsonb(written.orders), "lines": Jsonb(written.lines), "now": written.now,
        "queue": RESERVE_INVENTORY[1], "actor": RESERVE_INVENTORY[0],
    }  # fmt: skip


async def _write_alone(conn: AsyncConnection, placement: Placement, quote_required: bool,
                       catalogue_read: ReadCatalogue) -> None:  # fmt: skip
    """One order of a batch that failed, in its own transaction: its own answer."""
    try:
        written = await _decide(conn, [placement], quote_required, catalogue_read)
        await _commit(conn, written)
    except Exception as exc:
        if conn.info.transaction_status != 0:
            await conn.rollback()
        placement.settle(exc)
        return
    for _, response in written.answers:
        placement.settle((201, response, False))


def _key_in_use() -> ApiError:
    return ApiError(409, ErrorCode.IDEMPOTENCY_KEY_IN_USE,
                    "a request with this Idempotency-Key is still being processed; "
                    "retry shortly")  # fmt: skip


def _line_json(line) -> dict[str, Any]:
    return {
        "position": line.position, "product_id": str(line.product_id), "sku": line.sku,
        "name": line.name, "quantity": line.quantity, "unit_price": str(line.unit_price),
        "unit_amount": line.unit_amount,
    }  # fmt: skip


def _representation(order_id, priced: PricedOrder, terms: Quoted, *, address,
                    now: datetime) -> dict[str, Any]:  # fmt: skip
    """The same JSON ``GET /v1/orders/{id}`` answers for this order."""
    return placed_order_json(
        id=order_id, lines=priced.lines, currency=priced.currency,
        total_amount=priced.total_amount + terms.shipping + terms.tax, shipping_address=address,
        at=now, shipping_amount=terms.shipping, tax_amount=terms.tax,
        shipping_carrier=terms.carrier, shipping_service=terms.service,
    )  # fmt: skip
