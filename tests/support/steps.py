"""The world the step tests work on, what they can see of it, and at-least-once delivery:
orders written as the API writes them and taken along the real steps, the order's
status, timeline, stock, outbox and e-mails read back, a step run twice or from 8
threads at once. Shared by the pipeline, API and worker tests on a real PostgreSQL
(fixtures in ``tests/integration/conftest.py``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.db import sync_session_factory
from fulfillment.models import (
    Fulfillment,
    Inventory,
    Notification,
    Order,
    OrderEvent,
    OrderLine,
    OutboxMessage,
    Product,
    User,
)
from fulfillment.settings import Settings
from fulfillment.states import OrderStatus as S
from monitoring import metrics
from pipelines.common import new_message
from pipelines.deps import Deps
from pipelines.mail.notify import send_claimed
from pipelines.payments.payment import request_payment
from pipelines.shipping.ship import ship_order
from pipelines.shipping.tracking import apply_tracking
from pipelines.stock.reservation import reserve_inventory
from tests.support.fakes import FakeMailer
from tests.support.storefront import ADDRESS, bearer, order_body

#: Seconds any wait in the step tests may take before the test fails.
DEADLINE = 20


def make_deps(engine: Engine, settings: Settings, payments, mailer, carrier) -> Deps:
    return Deps(
        sessions=sync_session_factory(engine),
        payments=payments,
        mailer=mailer,
        carrier=carrier,
        settings=settings,
        send_mail=send_claimed,
    )


def new_customer(engine: Engine) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:12]}@example.com", password_hash="-",
                    first_name="Ada", last_name="Lovelace")  # fmt: skip
        session.add(user)
        session.flush()
        return user.id


def new_product(
    engine: Engine, *, on_hand: int, price: str = "12.50", product_id: uuid.UUID | None = None
) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        product = Product(id=product_id or uuid.uuid4(), sku=f"SKU-{uuid.uuid4().hex[:10]}",
                          name="Mug", price=Decimal(price), currency="usd", category="kitchen")  # fmt: skip
        session.add(product)
        session.flush()
        session.add(Inventory(product_id=product.id, on_hand=on_hand))
        return product.id


def place_orders(
    engine: Engine,
    customer_id: uuid.UUID,
    *lines: tuple[uuid.UUID, int],
    count: int = 1,
    payment_method: str = "pm_card_visa",
    address: dict[str, str] | None = None,
    request_id: str | None = None,
) -> list[str]:
    """``count`` pending orders of ``lines``, written as the API writes them."""
    with Session(engine) as session, session.begin():
        products = {p.id: p for p in session.scalars(select(Product))}
        ids = []
        for _ in range(count):
            order_lines = [
                OrderLine(position=i, product_id=pid, sku=products[pid].sku, name=products[pid].name,
                          quantity=qty, unit_price=products[pid].price,
                          unit_amount=int(products[pid].price * 100))
                for i, (pid, qty) in enumerate(lines, start=1)
            ]  # fmt: skip
            order = Order(id=uuid.uuid4(), customer_id=customer_id, currency="usd",
                          total_amount=sum(line.unit_amount * line.quantity for line in order_lines),
                          shipping_address=address or dict(ADDRESS),
                          payment_method=payment_method, request_id=request_id,
                          lines=order_lines)  # fmt: skip
            session.add(order)
            session.add(OrderEvent(order_id=order.id, step="accept", to_status=S.PENDING.value))
            ids.append(str(order.id))
        return ids


#: The steps that take an order to each status, in order. A charge that succeeds pays
#: and packs the order in one commit (paid -> fulfilling); the label follows.
PATH: tuple[tuple[S, Callable[[Deps, str], str]], ...] = (
    (S.RESERVED, reserve_inventory),
    (S.PAYMENT_PENDING, request_payment),  # stops here only for a processing payment
    (S.FULFILLING, request_payment),  # paid and packed in the charge's commit
    (S.SHIPPED, ship_order),
    (S.IN_TRANSIT, lambda deps, oid: apply_tracking(deps, oid, status="in_transit")),
    (S.DELIVERED, lambda deps, oid: apply_tracking(deps, oid, status="delivered")),
)


def advance(deps: Deps, order_id: str, *, to: S) -> None:
    """Run the real steps until the order reaches ``to``. ``paid`` (not packed) is no
    longer a resting state: see ``left_paid_unpacked``."""
    if to == S.PAID:
        advance(deps, order_id, to=S.FULFILLING)
        left_paid_unpacked(deps, order_id)
        return

    def current() -> S:
        with deps.sessions() as session:
            return S(session.get(Order, uuid.UUID(order_id)).status)

    for _target, step in PATH:
        if current() == to:
            return
        step(deps, order_id)
    assert current() == to


def left_paid_unpacked(deps: Deps, order_id: str) -> None:
    """Rewrite a packed order as the saga left a paid one before packing joined the
    charge's commit: ``paid``, nothing packed, no move to fulfilling on its timeline.
    Only such an order (or one an operator redrives) still waits for ``fulfil_order``."""
    oid = uuid.UUID(order_id)
    with deps.sessions.begin() as session:
        session.execute(delete(Fulfillment).where(Fulfillment.order_id == oid))
        session.execute(delete(OrderEvent).where(OrderEvent.order_id == oid,
                                                 OrderEvent.to_status == S.FULFILLING.value))  # fmt: skip
        session.execute(update(Order).where(Order.id == oid).values(status=S.PAID.value))
    new_message()  # what comes next runs in another message


def given_order(
    deps: Deps,
    engine: Engine,
    *,
    at: S,
    quantity: int = 2,
    on_hand: int = 5,
    payment_method: str = "pm_card_visa",
    address: dict[str, str] | None = None,
) -> tuple[str, uuid.UUID]:
    """A new customer's order for ``quantity`` units of a new product, taken to ``at``."""
    product = new_product(engine, on_hand=on_hand)
    (order_id,) = place_orders(engine, new_customer(engine), (product, quantity),
                               payment_method=payment_method, address=address)  # fmt: skip
    advance(deps, order_id, to=at)
    return order_id, product


def order(engine: Engine, order_id: str) -> Order:
    with Session(engine) as session:
        return session.get(Order, uuid.UUID(order_id))


def transitions_counted(before: str, after: str) -> float:
    return metrics.order_transitions_total.labels(before, after)._value.get()


def status(engine: Engine, order_id: str) -> S:
    return S(order(engine, order_id).status)


def stock(engine: Engine, product_id: uuid.UUID) -> tuple[int, int]:
    """(on hand, reserved), summed over the product's locations."""
    with Session(engine) as session:
        on_hand, reserved = session.execute(
            select(func.coalesce(func.sum(Inventory.on_hand), 0),
                   func.coalesce(func.sum(Inventory.reserved), 0))
            .where(Inventory.product_id == product_id)
        ).one()  # fmt: skip
        return on_hand, reserved


def transitions(engine: Engine, order_id: str, to: S) -> int:
    """How often the order's timeline shows it moving into ``to``."""
    with Session(engine) as session:
        return session.scalar(
            select(func.count()).where(
                OrderEvent.order_id == uuid.UUID(order_id),
                OrderEvent.to_status == to.value,
                OrderEvent.from_status.is_distinct_from(to.value),
            )
        )


def outbox(engine: Engine, message: tuple[str, str], **kwargs: str) -> int:
    """Outbox rows queued for ``message`` whose kwargs include ``kwargs``."""
    with Session(engine) as session:
        return session.scalar(
            select(func.count()).where(
                OutboxMessage.actor_name == message[0], OutboxMessage.kwargs.contains(kwargs)
            )
        )


def mails(
    engine: Engine, mailer: FakeMailer, order_id: str, *, waiting: frozenset[str] = frozenset()
) -> list[str]:
    """The kinds of e-mail the order has asked for, oldest first. Each one a step called
    for was sent at once: SendGrid got it exactly once, and the notification records
    that message. The kinds in ``waiting`` (written by the API or a webhook's intake)
    are pending, unsent, with one send message queued. None is left claimed or failed."""
    with Session(engine) as session:
        rows = session.scalars(
            select(Notification).where(Notification.order_id == uuid.UUID(order_id))
            .order_by(Notification.id)
        ).all()  # fmt: skip
    for row in rows:
        sent = [mail.message_id for mail in mailer.sent
                if mail.order_id == order_id and mail.kind == row.kind]  # fmt: skip
        queued = outbox(engine, m.SEND_NOTIFICATION, notification_id=str(row.id))
        if row.kind in waiting:
            assert (row.status, sent, queued) == ("pending", [], 1), row.kind
        else:
            assert (row.status, sent, queued) == ("sent", [row.provider_message_id], 0), row.kind
    return [row.kind for row in rows]


def commits_of(engine: Engine, order_id: str, *moves: S) -> int:
    """How many transactions wrote the order's moves into ``moves`` and its parcel."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(DISTINCT xid) FROM ("
                 " SELECT xmin::text AS xid FROM order_events"
                 " WHERE order_id = :id AND to_status = ANY(:moves)"
                 " UNION ALL SELECT xmin::text FROM fulfillments WHERE order_id = :id) AS w"),
            {"id": uuid.UUID(order_id), "moves": [move.value for move in moves]},
        ).scalar_one()  # fmt: skip


def notification_of(engine: Engine, order_id: str, kind: str) -> Notification:
    with Session(engine) as session:
        return session.scalar(
            select(Notification).where(
                Notification.order_id == uuid.UUID(order_id), Notification.kind == kind
            )
        )


def time_passes(engine: Engine, *, minutes: float) -> None:
    """Move every stored time back, as if ``minutes`` had gone by."""
    shift = {"shift": timedelta(minutes=minutes)}
    columns = {
        "orders": ("created_at", "updated_at", "status_changed_at", "swept_at", "reserved_until"),
        "notifications": ("created_at", "swept_at"),
        "webhook_events": ("received_at", "swept_at"),
    }
    with engine.begin() as conn:
        for table, names in columns.items():
            sets = ", ".join(f"{name} = {name} - :shift" for name in names)
            conn.execute(text(f"UPDATE {table} SET {sets}"), shift)


def twice(call: Callable[[], str]) -> list[str]:
    return [call(), call()]


def in_threads(calls: list[Callable[[], Any]], *, workers: int | None = None) -> list[Any]:
    """Run every call on its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=DEADLINE)
        return call()

    with ThreadPoolExecutor(max_workers=workers or len(calls)) as pool:
        futures = [pool.submit(go, call) for call in calls]
        return [future.result(timeout=DEADLINE * 3) for future in futures]


def from_8_threads(call: Callable[[], str]) -> list[str]:
    return in_threads([call] * 8)


DELIVERIES = pytest.mark.parametrize("run", [twice, from_8_threads], ids=["twice", "8-threads"])


async def api_order(
    client, engine: Engine, token: str, *, payment_method: str = "pm_card_visa"
) -> tuple[str, uuid.UUID]:
    """An order placed through the API for 2 of 5 units of a new product."""
    product = new_product(engine, on_hand=5)
    body = order_body((product, 2), payment_method=payment_method)
    response = await client.post("/v1/orders", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    return (await response.json())["id"], product


async def cancel(client, order_id: str, token: str):
    return await client.post(f"/v1/orders/{order_id}/cancel", headers=bearer(token))


def redelivered(deps: Deps, order_id: str) -> str:
    """``reserve_inventory`` as the broker runs it: a transient database error (a lock
    wait past ``lock_timeout`` when 200 reservations queue for a few inventory rows on a
    busy machine) is retried, as Dramatiq retries the message."""
    for _ in range(5):
        try:
            return reserve_inventory(deps, order_id)
        except psycopg.errors.LockNotAvailable:  # on the step's own connection
            continue
        except OperationalError as exc:  # through SQLAlchemy
            if not isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                raise
    return reserve_inventory(deps, order_id)
