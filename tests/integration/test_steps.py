"""The pipeline steps on a real PostgreSQL, with in-memory providers (tests/support/fakes).

No broker and no worker: each test calls the step functions directly, or runs a whole
message's steps as an actor would (``pipelines.actors.run_steps``), including twice in a
row and from 8 threads at once (at-least-once delivery), and reads what a customer, an
operator or the providers would see: the order's status and timeline, stock counts,
money taken and given back, labels bought, e-mails sent, and the outbox messages that
carry the saga on where one message does not. The outbox relay runs on a real Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dramatiq
import psycopg
import pytest
import redis
import structlog
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.embedded import free_port
from fulfillment.models import (
    Fulfillment,
    Inventory,
    Notification,
    Order,
    OrderEvent,
    OrderLine,
    OutboxMessage,
    Product,
    Shipment,
    StockMovement,
    User,
    WebhookEvent,
)
from fulfillment.notifications import intent_insert
from fulfillment.outbox import outbox_insert
from fulfillment.settings import Settings
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.actors import run_steps
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    lock_order,
    new_message,
    read_order,
    reading,
)
from pipelines.deps import Deps
from pipelines.intake.provider_events import process_webhook
from pipelines.mail.notify import send_claimed, send_notification, send_welcome_email
from pipelines.operations.attention import mark_needs_attention, resume
from pipelines.payments.compensation import (
    CHARGE_SETTLES_WITHIN,
    ChargeOutcomeUnknown,
    refund_payment,
)
from pipelines.payments.payment import expire_reservation, request_payment, settle_payment
from pipelines.saga import steps_of
from pipelines.shipping.ship import apply_tracking, fulfil_order, refresh_tracking, ship_order
from pipelines.stock.reservation import reserve_inventory
from tests.support.fakes import (
    PROCESSING_METHOD,
    FakeCarrier,
    FakeMailer,
    FakePayments,
    permanent,
    transient,
)
from tests.support.storefront import ADDRESS, bearer, customer_token, order_body
from workers.broker import NAMESPACE, create_broker
from workers.relay import OutboxRelay
from workers.sweeper import sweep

#: Seconds any wait in this file may take before the test fails.
DEADLINE = 20


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def engine(db: Engine, settings: Settings) -> Iterator[Engine]:
    """An engine with room for 8 concurrent steps (``db`` empties the tables after)."""
    engine = create_sync_db_engine(settings, pool_size=10)
    yield engine
    engine.dispose()


@pytest.fixture
def payments() -> FakePayments:
    return FakePayments()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def carrier() -> FakeCarrier:
    return FakeCarrier()


def make_deps(engine: Engine, settings: Settings, payments, mailer, carrier) -> Deps:
    return Deps(
        sessions=sync_session_factory(engine),
        payments=payments,
        mailer=mailer,
        carrier=carrier,
        settings=settings,
        send_mail=send_claimed,
    )


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier) -> Deps:
    """These tests pin the saga's mechanics with the card captured at order
    (``PAYMENT_CAPTURE=order``); ``test_payments.py`` pins capture at shipment."""
    at_order = settings.model_copy(update={"payment_capture": "order"})
    return make_deps(engine, at_order, payments, mailer, carrier)


# --- the world the steps work on ----------------------------------------------------------


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


# --- what can be seen ---------------------------------------------------------------------


def order(engine: Engine, order_id: str) -> Order:
    with Session(engine) as session:
        return session.get(Order, uuid.UUID(order_id))


def transitions_counted(before: str, after: str) -> float:
    from monitoring import metrics

    return metrics.order_transitions_total.labels(before, after)._value.get()


def status(engine: Engine, order_id: str) -> S:
    return S(order(engine, order_id).status)


def stock(engine: Engine, product_id: uuid.UUID) -> tuple[int, int]:
    """(on hand, reserved)."""
    with Session(engine) as session:
        row = session.get(Inventory, product_id)
        return row.on_hand, row.reserved


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


# --- running a step as at-least-once delivery does -----------------------------------------


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


# --- every step has one effect, however often it runs ----------------------------------


@DELIVERIES
def test_reserve_inventory_reserves_once(deps, engine, payments, run):
    # Given a pending order for 2 units of a product with 5 on hand
    order_id, product = given_order(deps, engine, at=S.PENDING)

    # When its reservation step runs more than once
    outcomes = run(lambda: reserve_inventory(deps, order_id))

    # Then 2 units are reserved, once
    assert outcomes.count(SUCCESS) == 1
    assert status(engine, order_id) == S.RESERVED
    assert stock(engine, product) == (5, 2)
    assert transitions(engine, order_id, S.RESERVED) == 1
    # and no message is queued for the payment: the same message charges the card next,
    # and the step on its own charges nothing
    assert outbox(engine, m.REQUEST_PAYMENT, order_id=order_id) == 0
    assert payments.calls["charge"] == 0


@DELIVERIES
def test_one_message_takes_a_pending_order_to_shipped_once(
    deps, engine, payments, mailer, carrier, run
):
    # Given a pending order for 2 of 5 units, and the one message the API queued for it
    order_id, product = given_order(deps, engine, at=S.PENDING)
    assert steps_of(m.RESERVE_INVENTORY) == (
        "reserve_inventory", "request_payment", "ship_order", "capture_payment")  # fmt: skip

    # When that message is delivered more than once, each run going through all its steps
    outcomes = run(lambda: run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id))

    # Then the order is reserved, paid, packed and shipped, each once
    assert FAILED not in outcomes and SUCCESS in outcomes
    if run is twice:
        assert outcomes == [SUCCESS, SKIPPED]
    assert status(engine, order_id) == S.SHIPPED
    for reached in (S.RESERVED, S.PAYMENT_PENDING, S.PAID, S.FULFILLING, S.SHIPPED):
        assert transitions(engine, order_id, reached) == 1, reached
    # and the customer was charged once (captured at order: nothing left to capture)
    assert len(payments.money_taken) == 1 and payments.captures == {}
    assert order(engine, order_id).payment_status == "captured"
    # and one label bought, the stock taken once
    assert order(engine, order_id).payment_intent_id == payments.money_taken[0].id
    assert carrier.labels_bought == 1 and len(carrier.lookups) == 1
    if run is twice:  # the run that packed the order bought the label without a search
        assert carrier.lookups == [False]
    assert stock(engine, product) == (3, 0)
    with Session(engine) as session:
        assert [p.parcel_weight_oz for p in session.scalars(select(Fulfillment))] == [24]
        assert session.get(Shipment, uuid.UUID(order_id)).tracking_code == (
            carrier.labels[order_id].tracking_code
        )
    # and two e-mails were sent at once, each once, with no message of their own
    assert sorted(mails(engine, mailer, order_id)) == ["order_confirmed", "shipped"]
    assert sorted(mailer.kinds(order_id=order_id)) == ["order_confirmed", "shipped"]
    # and no message was queued for any later step
    for later in (m.REQUEST_PAYMENT, m.SETTLE_PAYMENT, m.FULFIL_ORDER, m.SHIP_ORDER,
                  m.SEND_NOTIFICATION, m.REFUND_PAYMENT):  # fmt: skip
        assert outbox(engine, later) == 0, later


@DELIVERIES
def test_request_payment_charges_once(deps, engine, payments, mailer, run):
    # Given a reserved order
    order_id, _ = given_order(deps, engine, at=S.RESERVED)

    # When its payment step runs more than once
    outcomes = run(lambda: request_payment(deps, order_id))

    # Then the card is charged once, and the order is paid and packed once, in one go
    assert outcomes.count(SUCCESS) == 1
    assert len(payments.payments_for(order_id)) == 1 and len(payments.money_taken) == 1
    assert status(engine, order_id) == S.FULFILLING
    assert order(engine, order_id).payment_intent_id == payments.money_taken[0].id
    for reached in (S.PAYMENT_PENDING, S.PAID, S.FULFILLING):
        assert transitions(engine, order_id, reached) == 1, reached
    with Session(engine) as session:
        assert [p.parcel_weight_oz for p in session.scalars(select(Fulfillment))] == [24]
    # reserved -> payment_pending -> paid -> fulfilling, and the parcel, in one commit
    assert commits_of(engine, order_id, S.PAYMENT_PENDING, S.PAID, S.FULFILLING) == 1
    # and nothing is queued: the same message buys the label next
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    # and the confirmation was sent once, at once
    assert mails(engine, mailer, order_id) == ["order_confirmed"]


@DELIVERIES
def test_fulfil_order_packs_once(deps, engine, run):
    # Given a paid order for 2 units that was not packed with its payment (see
    # left_paid_unpacked), and one that was
    order_id, _ = given_order(deps, engine, at=S.PAID)
    packed_id, _ = given_order(deps, engine, at=S.FULFILLING)

    # When its fulfilment step runs more than once
    outcomes = run(lambda: fulfil_order(deps, order_id))

    # Then one parcel is packed, and nothing is queued (ship_order follows in the message)
    assert outcomes.count(SUCCESS) == 1
    assert status(engine, order_id) == S.FULFILLING
    assert transitions(engine, order_id, S.FULFILLING) == 1
    with Session(engine) as session:
        packed = session.scalars(
            select(Fulfillment).where(Fulfillment.order_id == uuid.UUID(order_id))
        ).all()
    assert [p.parcel_weight_oz for p in packed] == [24]
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    # and an order packed in its payment's commit is not packed again
    assert fulfil_order(deps, packed_id) == SKIPPED
    assert transitions(engine, packed_id, S.FULFILLING) == 1


@DELIVERIES
def test_ship_order_buys_one_label_and_takes_the_stock_once(deps, engine, carrier, mailer, run):
    # Given an order for 2 of 5 units, packed by an earlier message
    order_id, product = given_order(deps, engine, at=S.FULFILLING)

    # When a shipping message (a retry, the sweeper) is delivered more than once
    outcomes = run(lambda: run_steps(deps, m.SHIP_ORDER, order_id=order_id))

    # Then one label is bought, the 2 units leave the warehouse once, the customer is told once
    assert outcomes.count(SUCCESS) == 1
    assert carrier.labels_bought == 1
    # and the duplicates waited on the order's lock: one call reached the carrier, and
    # as this message did not pack the order, it looked for an earlier try's shipment
    assert carrier.lookups == [True]
    assert status(engine, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.SHIPPED) == 1
    assert stock(engine, product) == (3, 0)
    with Session(engine) as session:
        shipment = session.get(Shipment, uuid.UUID(order_id))
        shipped = session.scalars(select(StockMovement).where(StockMovement.reason == "shipped"))
        assert [movement.delta for movement in shipped] == [-2]
    assert shipment.tracking_code == carrier.labels[order_id].tracking_code
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped"]


@pytest.mark.parametrize("attempt", [2, 1], ids=["retried", "redelivered"])
def test_a_retried_shipment_looks_for_the_label_an_earlier_try_bought(
    deps, engine, carrier, attempt
):
    # Given a reserved order whose message charged it and bought the label, but the
    # carrier's answer was lost
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    carrier.lose_next("ship")
    with pytest.raises(TransientProviderError):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert status(engine, order_id) == S.FULFILLING

    # When Dramatiq retries the message (or it is redelivered after the worker died)
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id, attempt=attempt) == SUCCESS

    # Then the first try bought without a search, the second searched for the earlier
    # shipment, and no second label was bought
    assert carrier.lookups == [False, True]
    assert carrier.labels_bought == 1
    assert status(engine, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.PAID) == 1


def test_a_tracker_the_carrier_no_longer_knows_is_noted_not_retried(deps, engine, carrier):
    # Given a shipped order whose tracker the carrier has forgotten
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    carrier.trackers.clear()

    # When the sweeper polls it, the step records the refusal instead of raising
    assert refresh_tracking(deps, order_id) == FAILED

    # Then the order stays shipped, and the timeline says why
    assert status(engine, order_id) == S.SHIPPED


def test_actors_dead_letter_permanent_refusals_at_once(deps):
    from dramatiq.brokers.stub import StubBroker

    from integrations.errors import PermanentProviderError
    from pipelines.actors import register_actors

    actors = register_actors(StubBroker(), deps)
    assert all(a.options["throws"] == (PermanentProviderError,) for a in actors.values())


@DELIVERIES
def test_apply_tracking_delivers_once(deps, engine, mailer, run):
    # Given a shipped order
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)

    # When the carrier's "delivered" reaches it more than once
    outcomes = run(lambda: apply_tracking(deps, order_id, status="delivered"))

    # Then it is delivered once and the customer hears about it once
    assert outcomes.count(SUCCESS) == 1
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.DELIVERED) == 1
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped", "delivered"]


@DELIVERIES
def test_refund_payment_refunds_once(deps, engine, payments, mailer, run):
    # Given an order in transit that the carrier sends back
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)
    assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED

    # When its refund message is delivered more than once
    outcomes = run(lambda: refund_payment(deps, order_id))

    # Then the money is given back once and the order is refunded once
    assert outcomes.count(SUCCESS) == 1
    assert list(payments.refunds) == [order_id]
    assert payments.refunds[order_id].amount == order(engine, order_id).total_amount
    assert status(engine, order_id) == S.REFUNDED
    assert transitions(engine, order_id, S.REFUNDED) == 1
    assert mails(engine, mailer, order_id).count("refunded") == 1


@DELIVERIES
def test_send_notification_sends_one_email(deps, engine, mailer, run):
    # Given a paid order whose confirmation SendGrid did not take when the step sent it
    mailer.fail_next(transient("sendgrid", "send_mail"))
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    mail = notification_of(engine, order_id, "order_confirmed")
    # so it went back to pending, with a message to send it again
    assert (mail.status, mailer.kinds(order_id=order_id)) == ("pending", [])
    assert outbox(engine, m.SEND_NOTIFICATION, notification_id=str(mail.id)) == 1

    # When its send message is delivered more than once
    outcomes = run(lambda: send_notification(deps, str(mail.id)))

    # Then SendGrid gets one e-mail, and the notification records it
    assert outcomes.count(SUCCESS) == 1
    assert mailer.kinds(order_id=order_id) == ["order_confirmed"]
    sent = notification_of(engine, order_id, "order_confirmed")
    assert sent.status == "sent" and sent.provider_message_id == mailer.sent[0].message_id


@DELIVERIES
def test_send_welcome_email_welcomes_once(deps, engine, mailer, run):
    # Given a new customer
    customer = new_customer(engine)

    # When their welcome message is delivered more than once
    outcomes = run(lambda: send_welcome_email(deps, str(customer)))

    # Then they get one welcome e-mail
    assert outcomes.count(SUCCESS) == 1
    assert mailer.kinds(user_id=str(customer)) == ["welcome"]
    with Session(engine) as session:
        rows = session.scalars(select(Notification).where(Notification.user_id == customer)).all()
    assert [(row.kind, row.status) for row in rows] == [("welcome", "sent")]


def test_a_mail_sendgrid_did_not_take_is_sent_on_the_retry_and_a_refused_one_is_not(
    deps, engine, mailer
):
    # Given SendGrid down, then refusing, as two orders are paid: the steps' own sends
    mailer.fail_next(transient("sendgrid", "send_mail"))
    first, _ = given_order(deps, engine, at=S.FULFILLING)
    mailer.fail_next(permanent("sendgrid", "send_mail", "to.email"))
    second, _ = given_order(deps, engine, at=S.FULFILLING)

    # Then the first went back to pending with the error and a message to send it again,
    # and the refused one is marked failed, with nothing to send it again
    waiting = notification_of(engine, first, "order_confirmed")
    assert (waiting.status, "service unavailable" in waiting.error) == ("pending", True)
    assert outbox(engine, m.SEND_NOTIFICATION, notification_id=str(waiting.id)) == 1
    refused = notification_of(engine, second, "order_confirmed")
    assert refused.status == "failed"
    assert outbox(engine, m.SEND_NOTIFICATION, notification_id=str(refused.id)) == 0

    # When the first's message runs while SendGrid is still down, then is retried
    mailer.fail_next(transient("sendgrid", "send_mail"))
    with pytest.raises(TransientProviderError):
        send_notification(deps, str(waiting.id))
    assert notification_of(engine, first, "order_confirmed").status == "pending"
    retried = send_notification(deps, str(waiting.id), attempt=2)

    # Then it was sent once on the retry
    assert retried == SUCCESS and mailer.kinds(order_id=first) == ["order_confirmed"]
    assert notification_of(engine, first, "order_confirmed").status == "sent"
    # and the refused one is not sent again, even when asked to
    assert send_notification(deps, str(refused.id)) == SKIPPED
    assert mailer.kinds(order_id=second) == []
    assert notification_of(engine, second, "order_confirmed").status == "failed"


# --- inventory is never oversold ---------------------------------------------------------


def redelivered(deps: Deps, order_id: str) -> str:
    """``reserve_inventory`` as the broker runs it: a transient database error (a lock
    wait past ``lock_timeout`` when 200 reservations queue for one inventory row on a
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


def test_200_concurrent_orders_for_50_units_reserve_exactly_50(
    settings, db, payments, mailer, carrier
):
    # Given 50 units of a product and 200 pending orders for one unit each
    engine = create_sync_db_engine(settings, pool_size=20)
    try:
        deps = make_deps(engine, settings, payments, mailer, carrier)
        product = new_product(engine, on_hand=50)
        orders = place_orders(engine, new_customer(engine), (product, 1), count=200)
        seen_available: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                on_hand, reserved = stock(engine, product)
                seen_available.append(on_hand - reserved)

        watcher = threading.Thread(target=watch)
        watcher.start()

        # When all 200 are reserved at once, on 200 threads
        try:
            outcomes = in_threads([lambda oid=oid: redelivered(deps, oid) for oid in orders])
        finally:
            done.set()
            watcher.join(timeout=DEADLINE)

        # Then exactly 50 are reserved and 150 rejected, and stock never went below zero
        # (a message whose order another pass took reports it skipped)
        counted = Counter(outcomes)
        assert set(counted) <= {SUCCESS, FAILED, SKIPPED} and counted.total() == 200
        assert counted[SUCCESS] <= 50 and counted[FAILED] <= 150
        assert Counter(status(engine, oid) for oid in orders) == {S.RESERVED: 50, S.REJECTED: 150}
        assert stock(engine, product) == (50, 50)
        assert seen_available and min(seen_available) >= 0
        # and the 150 customers turned away were each told once, at once
        with Session(engine) as session:
            kinds = session.execute(select(Notification.kind, Notification.status)).all()
        assert Counter(map(tuple, kinds)) == {("cancelled", "sent"): 150}
        assert Counter(mailer.kinds()) == {"cancelled": 150}
        assert len({mail.order_id for mail in mailer.sent}) == 150
        # and no message was queued: each reserving message goes on to charge by itself
        assert outbox(engine, m.REQUEST_PAYMENT) == 0 and outbox(engine, m.SEND_NOTIFICATION) == 0
    finally:
        engine.dispose()


def test_an_order_short_on_its_second_line_reserves_nothing(deps, engine):
    # Given plenty of one product and too little of another that is reserved after it
    plenty_id, short_id = sorted([uuid.uuid4(), uuid.uuid4()])
    plenty = new_product(engine, on_hand=10, product_id=plenty_id)
    short = new_product(engine, on_hand=1, product_id=short_id)
    (order_id,) = place_orders(engine, new_customer(engine), (plenty, 3), (short, 2))

    # When the order is reserved
    reserved_before = transitions_counted("pending", "reserved")
    outcome = reserve_inventory(deps, order_id)

    # Then it is rejected and the first line's stock is untouched
    assert outcome == FAILED
    assert status(engine, order_id) == S.REJECTED
    assert stock(engine, plenty) == (10, 0)
    assert stock(engine, short) == (1, 0)
    assert order(engine, order_id).stock_state == "none"
    assert order(engine, order_id).reserved_until is None
    # and the timeline and the metrics show no reservation that was rolled back
    with Session(engine) as session:
        steps = session.execute(
            select(OrderEvent.from_status, OrderEvent.to_status)
            .where(OrderEvent.order_id == uuid.UUID(order_id)).order_by(OrderEvent.id)
        ).all()  # fmt: skip
    assert [tuple(row) for row in steps] == [(None, "pending"), ("pending", "rejected")]
    assert transitions_counted("pending", "reserved") == reserved_before
    assert notification_of(engine, order_id, "cancelled").data == {"reason": "out_of_stock"}
    assert outbox(engine, m.REQUEST_PAYMENT, order_id=order_id) == 0


# --- payment ---------------------------------------------------------------------------


def test_a_declined_card_cancels_the_order_and_gives_the_stock_back(
    deps, engine, payments, mailer, carrier
):
    # Given a reserved order (2 of 5 units) paid with a card that will be declined
    order_id, product = given_order(
        deps, engine, at=S.RESERVED, payment_method="pm_card_chargeDeclined"
    )

    # When the payment is requested, and the message is delivered again
    outcomes = twice(lambda: run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id))

    # Then nothing was charged, the order is cancelled, the stock is back, and the
    # customer is told once why
    assert outcomes == [FAILED, SKIPPED]
    assert payments.money_taken == []
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert order(engine, order_id).stock_state == "released"
    assert mails(engine, mailer, order_id) == ["payment_failed"]
    assert notification_of(engine, order_id, "payment_failed").data == {"reason": "card_declined"}
    # and the failed charge ended the message: no label was asked for
    assert carrier.calls["ship"] == 0 and transitions(engine, order_id, S.PAID) == 0


def test_a_processing_payment_waits_and_is_settled_as_paid_later(
    deps, engine, payments, mailer, carrier
):
    # Given a reserved order paid by a method that takes time to clear
    order_id, product = given_order(deps, engine, at=S.RESERVED, payment_method=PROCESSING_METHOD)

    # When the payment is requested (the message goes on to the label)
    assert run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id) == SUCCESS

    # Then the order waits in payment_pending, its stock still held, nothing shipped
    assert status(engine, order_id) == S.PAYMENT_PENDING
    assert stock(engine, product) == (5, 2)
    assert carrier.calls["ship"] == 0
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    assert settle_payment(deps, order_id) == SUCCESS  # asked again: still processing
    assert status(engine, order_id) == S.PAYMENT_PENDING

    # When the payment clears and the order is settled (twice: webhook and sweeper)
    (intent,) = payments.payments_for(order_id)
    payments.complete(intent.id)
    outcomes = twice(lambda: run_steps(deps, m.SETTLE_PAYMENT, order_id=order_id))

    # Then it is paid, packed and shipped once, by the first of them
    assert outcomes == [SUCCESS, SKIPPED]
    assert status(engine, order_id) == S.SHIPPED
    for reached in (S.PAID, S.FULFILLING, S.SHIPPED):
        assert transitions(engine, order_id, reached) == 1, reached
    assert carrier.lookups == [False] and stock(engine, product) == (3, 0)
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped"]
    assert len(payments.money_taken) == 1


# --- tracking and shipping failures --------------------------------------------------------


def test_tracking_never_moves_an_order_backwards(deps, engine, payments, mailer):
    # Given a delivered order
    order_id, _ = given_order(deps, engine, at=S.DELIVERED)

    # When late and out-of-order tracker statuses arrive
    late = [apply_tracking(deps, order_id, status=s)
            for s in ("in_transit", "out_for_delivery", "pre_transit", "return_to_sender")]  # fmt: skip

    # Then it stays delivered, with nothing refunded and no second e-mail
    assert late == [SKIPPED] * 4
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.IN_TRANSIT) == 1  # the one before delivery
    assert not order(engine, order_id).refund_due and payments.refunds == {}
    assert mails(engine, mailer, order_id).count("delivered") == 1


def test_a_late_tracker_status_does_not_rewind_the_shipment_record(deps, engine):
    # Given a delivered order
    order_id, _ = given_order(deps, engine, at=S.DELIVERED)

    # When a late "in_transit" arrives
    apply_tracking(deps, order_id, status="in_transit")

    # Then the shipment still shows what the customer saw last: delivered
    with Session(engine) as session:
        assert session.get(Shipment, uuid.UUID(order_id)).tracker_status == "delivered"


@pytest.mark.parametrize("tracker", ["return_to_sender", "failure"])
def test_a_parcel_that_will_not_arrive_is_refunded_once(deps, engine, payments, mailer, tracker):
    # Given an order in transit
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)

    # When the carrier reports it will not arrive, twice
    outcomes = twice(lambda: apply_tracking(deps, order_id, status=tracker))

    # Then a refund is due and queued once
    assert outcomes == [FAILED, SKIPPED]
    assert order(engine, order_id).refund_due
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1

    # When the refund step runs (and runs again)
    assert twice(lambda: refund_payment(deps, order_id)) == [SUCCESS, SKIPPED]

    # Then the customer got their money back once and the order is refunded
    assert payments.calls["refund"] == 1
    assert payments.refunds[order_id].amount == order(engine, order_id).total_amount
    assert status(engine, order_id) == S.REFUNDED
    assert not order(engine, order_id).refund_due
    assert mails(engine, mailer, order_id).count("refunded") == 1


def test_an_address_the_carrier_refuses_waits_for_the_customer_not_a_refund(
    deps, engine, payments, mailer
):
    # Given a packed order (2 of 5 units) to an address the carrier cannot deliver to
    bad_address = {**ADDRESS, "postal_code": "00000"}
    order_id, product = given_order(deps, engine, at=S.FULFILLING, address=bad_address)

    # When shipping is attempted
    assert ship_order(deps, order_id) == FAILED

    # Then no label, the order waits in address_invalid with its stock, nothing is
    # refunded, and the customer is asked to fix the address (tests/integration/
    # test_address_invalid.py follows it to the end)
    assert status(engine, order_id) == S.ADDRESS_INVALID
    assert stock(engine, product) == (5, 2)
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 0
    assert payments.refunds == {}
    assert "ADDRESS.VERIFY.FAILURE" in order(engine, order_id).last_error
    assert mails(engine, mailer, order_id)[-1] == "address_invalid"


# --- the customer cancels --------------------------------------------------------------


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


@pytest.mark.parametrize("at", [S.PENDING, S.RESERVED, S.PAID, S.FULFILLING])
async def test_a_customer_cancels_before_shipping(client, deps, engine, payments, mailer, at):
    # Given a customer's order at `at`
    token = await customer_token(client)
    order_id, product = await api_order(client, engine, token)
    advance(deps, order_id, to=at)

    # When they cancel it
    response = await cancel(client, order_id, token)

    # Then it is cancelled, its stock is free and they will be told
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "cancelled"
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert "cancelled" in mails(engine, mailer, order_id, waiting=frozenset({"cancelled"}))
    # and a refund is queued whenever money may have been taken
    money_possible = at != S.PENDING
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == int(money_possible)

    # When the refund step runs (for a reserved order, once a charge that may have been
    # in flight at the cancel has had time to show in Stripe's search: before, it waits)
    refund_payment(replace(deps, now=lambda: datetime.now(UTC) + CHARGE_SETTLES_WITHIN), order_id)

    # Then whatever was paid is given back, once, and the order stays cancelled
    paid = at in (S.PAID, S.FULFILLING)
    assert len(payments.refunds) == int(paid)
    waiting = frozenset({"cancelled"})
    assert mails(engine, mailer, order_id, waiting=waiting).count("refunded") == int(paid)
    assert status(engine, order_id) == S.CANCELLED
    assert not order(engine, order_id).refund_due


async def test_cancelling_twice_answers_the_same_cancelled_order(client, deps, engine, mailer):
    # Given a paid and packed order
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)

    # When the customer cancels it twice
    first, second = await cancel(client, order_id, token), await cancel(client, order_id, token)

    # Then both answers are the same cancelled order, with one refund and one e-mail queued
    assert first.status == second.status == 200
    assert await first.json() == await second.json()
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1
    assert mails(engine, mailer, order_id, waiting=frozenset({"cancelled"})).count("cancelled") == 1
    assert transitions(engine, order_id, S.CANCELLED) == 1


async def test_a_shipped_order_cannot_be_cancelled(client, deps, engine, payments):
    # Given a shipped order
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.SHIPPED)

    # When the customer tries to cancel it
    response = await cancel(client, order_id, token)

    # Then it is refused and nothing changes
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "order_not_cancellable"
    assert status(engine, order_id) == S.SHIPPED
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 0


async def test_another_customers_order_cannot_be_cancelled_or_seen(client, deps, engine):
    # Given someone else's order
    owner, stranger = await customer_token(client), await customer_token(client)
    order_id, _ = await api_order(client, engine, owner)

    # When a stranger tries to cancel it
    response = await cancel(client, order_id, stranger)

    # Then it does not exist for them, and is still pending
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    assert status(engine, order_id) == S.PENDING


@pytest.mark.parametrize("refund_first", [True, False], ids=["refund-runs-first", "charge-first"])
async def test_a_payment_that_succeeds_after_the_customer_cancelled_is_refunded(
    client, deps, engine, payments, mailer, carrier, refund_first
):
    # Given a reserved order whose charge is on its way to Stripe
    token = await customer_token(client)
    order_id, product = await api_order(client, engine, token)
    advance(deps, order_id, to=S.RESERVED)
    in_flight, land = threading.Event(), threading.Event()

    def hold(_order_id: str) -> None:
        in_flight.set()
        assert land.wait(DEADLINE)

    payments.before["charge"] = hold
    charging = asyncio.create_task(
        asyncio.to_thread(run_steps, deps, m.REQUEST_PAYMENT, order_id=order_id)
    )
    assert await asyncio.to_thread(in_flight.wait, DEADLINE)

    # When the customer cancels while the charge is in flight
    assert (await cancel(client, order_id, token)).status == 200
    if refund_first:  # the refund step finds nothing paid yet, and concludes nothing
        with pytest.raises(ChargeOutcomeUnknown):
            refund_payment(deps, order_id)
        assert payments.refunds == {}
    # and then the charge succeeds
    land.set()
    await asyncio.wait_for(charging, DEADLINE)

    # Then the charge's commit queued the refund step again (the cancel queued it once)
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 2
    # and the money taken is refunded in full, once, and the order stays cancelled
    assert len(payments.money_taken) == 1
    assert order(engine, order_id).refund_due
    refund_payment(deps, order_id)
    refund_payment(deps, order_id)
    assert payments.refunds[order_id].amount == payments.money_taken[0].amount
    assert payments.calls["refund"] == 1
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert carrier.calls["ship"] == 0
    assert mails(engine, mailer, order_id, waiting=frozenset({"cancelled"})).count("refunded") == 1


async def test_a_payment_that_clears_while_the_refund_step_cancels_it_is_refunded(
    client, deps, engine, payments
):
    # Given an order waiting for a processing payment, which the customer cancels
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token, payment_method=PROCESSING_METHOD)
    advance(deps, order_id, to=S.PAYMENT_PENDING)
    assert (await cancel(client, order_id, token)).status == 200

    # When the payment clears at Stripe just as the refund step goes to cancel it, and
    # Stripe's payment_intent.succeeded webhook is handled in that moment
    def clears(payment_id: str) -> None:
        payments.complete(payment_id)
        settle_payment(deps, order_id)  # what process_webhook runs for the event

    payments.before["cancel_payment"] = clears
    refund_payment(deps, order_id)
    payments.before.clear()
    refund_payment(deps, order_id)  # and again, as a retry or the sweeper would

    # Then the money taken is given back
    assert len(payments.money_taken) == 1
    assert order_id in payments.refunds, "the customer cancelled, was charged, and kept no refund"
    assert status(engine, order_id) == S.CANCELLED


def test_a_charge_redriven_a_day_later_does_not_charge_again(deps, engine, payments):
    # Given a reserved order whose charge went through at Stripe, but the answer was lost
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    payments.lose_next("charge")
    with pytest.raises(TransientProviderError):
        request_payment(deps, order_id)
    # and Stripe stayed unreachable until the retries ran out: the order was dead-lettered
    assert mark_needs_attention(deps, order_id, step="request_payment", attempt=13, error="timeout")

    # When an operator redrives it the next day (Stripe has pruned the idempotency key)
    payments.forget_idempotency_keys()
    payments.catch_up()  # and Stripe's search has long shown the first PaymentIntent
    next_day = replace(deps, now=lambda: datetime.now(UTC) + timedelta(days=1))
    assert resume(next_day, order_id) == "reserved"
    assert run_steps(next_day, m.REQUEST_PAYMENT, order_id=order_id) == SUCCESS

    # Then the customer was charged once, and the order is paid with that charge and shipped
    assert len(payments.money_taken) == 1, "the customer was charged twice for one order"
    assert order(engine, order_id).payment_intent_id == payments.money_taken[0].id
    assert transitions(engine, order_id, S.PAID) == 1
    assert status(engine, order_id) == S.SHIPPED


# --- reservation expiry ----------------------------------------------------------------


def after_the_deadline(deps: Deps) -> Deps:
    ttl = timedelta(seconds=deps.settings.reservation_ttl_seconds + 60)
    return replace(deps, now=lambda: datetime.now(UTC) + ttl)


def test_an_unpaid_reservation_past_its_deadline_is_cancelled_and_released(
    deps, engine, payments, mailer, carrier
):
    # Given an order waiting for a payment that is still processing
    order_id, product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )

    # When expiry runs before the deadline
    assert expire_reservation(deps, order_id) == SKIPPED
    # Then nothing happens
    assert status(engine, order_id) == S.PAYMENT_PENDING and stock(engine, product) == (5, 2)

    # When expiry runs after the deadline (and again)
    later = after_the_deadline(deps)
    assert twice(lambda: run_steps(later, m.EXPIRE_RESERVATION, order_id=order_id)) == [
        FAILED, SKIPPED]  # fmt: skip

    # Then the payment is cancelled at Stripe, the stock released, the order cancelled
    assert [p.status for p in payments.payments_for(order_id)] == ["canceled"]
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert notification_of(engine, order_id, "cancelled").data == {"reason": "reservation_expired"}
    assert mails(engine, mailer, order_id) == ["cancelled"]
    assert carrier.calls["ship"] == 0


def test_a_reservation_whose_payment_came_in_meanwhile_is_settled_as_paid(
    deps, engine, payments, carrier
):
    # Given an order waiting for a processing payment, which has now succeeded
    order_id, product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )
    (intent,) = payments.payments_for(order_id)
    payments.complete(intent.id)

    # When expiry runs after the deadline (its step alone, then its whole message)
    later = after_the_deadline(deps)
    assert expire_reservation(later, order_id) == SUCCESS

    # Then the order is paid and packed, keeps its stock, and nothing is queued
    assert status(engine, order_id) == S.FULFILLING
    assert transitions(engine, order_id, S.PAID) == 1
    assert stock(engine, product) == (5, 2)
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    assert payments.refunds == {}
    assert [p.status for p in payments.payments_for(order_id)] == ["succeeded"]

    # When the expiry message runs (its chain ends with the label)
    other_id, other_product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )
    payments.complete(payments.payments_for(other_id)[0].id)
    assert run_steps(later, m.EXPIRE_RESERVATION, order_id=other_id) == SUCCESS

    # Then that order is paid and shipped in one go, its stock gone with the parcel
    assert status(engine, other_id) == S.SHIPPED
    assert stock(engine, other_product) == (3, 0)
    assert carrier.labels_bought == 1 and carrier.lookups == [False]
    assert payments.refunds == {}


# --- dead letters -----------------------------------------------------------------------


def test_a_dead_lettered_order_waits_for_an_operator_and_resumes_where_it_stopped(
    deps, engine, carrier
):
    # Given a paid order whose fulfilment message ran out of retries (one paid before
    # packing joined the charge's commit)
    order_id, _ = given_order(deps, engine, at=S.PAID)

    # When it is marked (and the hook fires again)
    error = "TransientProviderError: warehouse unreachable"
    marked = [mark_needs_attention(deps, order_id, step="fulfil_order", attempt=13, error=error)
              for _ in range(2)]  # fmt: skip

    # Then it waits for an operator with the last error, and the steps leave it alone
    assert marked == [True, False]
    assert status(engine, order_id) == S.NEEDS_ATTENTION
    assert order(engine, order_id).last_error == error
    assert transitions(engine, order_id, S.NEEDS_ATTENTION) == 1
    assert fulfil_order(deps, order_id) == SKIPPED

    # When the dead letter is redriven
    assert resume(deps, order_id) == "paid"
    assert resume(deps, order_id) is None

    # Then the order is back where it stopped and its message carries it on: packed,
    # then shipped in the same message
    assert status(engine, order_id) == S.PAID
    assert steps_of(m.FULFIL_ORDER) == ("fulfil_order", "ship_order", "capture_payment")
    assert run_steps(deps, m.FULFIL_ORDER, order_id=order_id) == SUCCESS
    assert status(engine, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.FULFILLING) == 1
    assert carrier.labels_bought == 1


def test_a_dead_lettered_shipment_is_redriven_with_a_search_for_an_earlier_label(
    deps, engine, carrier
):
    # Given a packed order whose label purchase timed out on every try (the carrier
    # may have bought it), dead-lettered
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    carrier.lose_next("ship")
    with pytest.raises(TransientProviderError):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert mark_needs_attention(deps, order_id, step="ship_order", attempt=13, error="timeout")
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SKIPPED

    # When an operator redrives it, as the actor does: resume, then the message's steps
    assert resume(deps, order_id) == "fulfilling"
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS

    # Then the redrive looked for the label first, and no second label was bought
    assert carrier.lookups == [False, True]
    assert carrier.labels_bought == 1
    assert status(engine, order_id) == S.SHIPPED


def test_a_finished_order_is_never_marked_needs_attention(deps, engine):
    # Given a delivered order
    order_id, _ = given_order(deps, engine, at=S.DELIVERED)

    # When a late dead letter for it is reported
    marked = mark_needs_attention(deps, order_id, step="send_notification", attempt=13, error="x")

    # Then it stays delivered
    assert not marked and status(engine, order_id) == S.DELIVERED


# --- the sweeper -------------------------------------------------------------------------


def test_the_sweeper_redrives_what_was_dropped_once_per_stall_period(deps, engine):
    stall = timedelta(minutes=2)
    # Given a stalled pending order, an order with a refund due, an e-mail never sent, an
    # unprocessed webhook, and an order waiting for an operator, all untouched for 10 min
    customer = new_customer(engine)
    product = new_product(engine, on_hand=5)
    stalled, refund, waiting = place_orders(engine, customer, (product, 1), count=3)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE orders SET status = 'cancelled', refund_due = true WHERE id = :id"),
            {"id": refund},
        )
        mail_id = conn.execute(intent_insert("welcome", user_id=customer)).scalar_one()
        event_id = conn.execute(
            WebhookEvent.__table__.insert().returning(WebhookEvent.id),
            {"provider": "stripe", "event_id": "evt_lost", "event_type": "payment_intent.succeeded",
             "payload": {}},
        ).scalar_one()  # fmt: skip
    mark_needs_attention(deps, waiting, step="reserve_inventory", attempt=13, error="boom")
    time_passes(engine, minutes=10)
    # and a pending order placed just now
    (fresh,) = place_orders(engine, customer, (product, 1))

    def queued() -> tuple[int, ...]:
        return (
            outbox(engine, m.RESERVE_INVENTORY, order_id=stalled),
            outbox(engine, m.REFUND_PAYMENT, order_id=refund),
            outbox(engine, m.SEND_NOTIFICATION, notification_id=str(mail_id)),
            outbox(engine, m.PROCESS_WEBHOOK, event_id=str(event_id)),
        )

    # When the sweeper runs
    first = sweep(engine, stall=stall)

    # Then each dropped thing is sent again, once, and nothing else
    assert {k: v for k, v in first.items() if v} == {
        "stalled_orders": 1, "refunds": 1, "notifications": 1, "webhooks": 1}  # fmt: skip
    assert queued() == (1, 1, 1, 1)
    assert outbox(engine, m.RESERVE_INVENTORY, order_id=fresh) == 0
    assert outbox(engine, m.RESERVE_INVENTORY, order_id=waiting) == 0

    # When it runs again at once
    second = sweep(engine, stall=stall)

    # Then nothing is sent twice
    assert set(second.values()) == {0}
    assert queued() == (1, 1, 1, 1)

    # When the stall period has passed again
    time_passes(engine, minutes=3)
    sweep(engine, stall=stall)

    # Then they are sent once more
    assert queued() == (2, 2, 2, 2)
    assert outbox(engine, m.RESERVE_INVENTORY, order_id=waiting) == 0


def test_the_sweeper_expires_a_reservation_past_its_deadline(deps, engine):
    stall = timedelta(minutes=2)
    # Given an order whose processing payment never cleared, its reservation long expired
    order_id, product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )
    ttl_minutes = deps.settings.reservation_ttl_seconds / 60
    time_passes(engine, minutes=ttl_minutes + 5)

    # When the scheduler sweeps every 30 s for the next 10 minutes
    for _ in range(20):
        sweep(engine, stall=stall)
        time_passes(engine, minutes=0.5)

    # Then the order's expiry was queued, and running it frees the stock
    assert outbox(engine, m.EXPIRE_RESERVATION, order_id=order_id) >= 1
    assert expire_reservation(deps, order_id) == FAILED
    assert stock(engine, product) == (5, 0)


def test_the_sweepers_messages_carry_the_request_that_placed_the_order(deps, engine):
    stall = timedelta(minutes=2)
    # Given orders placed by two requests: one stalled pending, one cancelled with its
    # refund due, and one whose processing payment outlived its reservation; an e-mail
    # about the first never sent and a webhook about it never processed
    customer = new_customer(engine)
    product = new_product(engine, on_hand=5)
    # (the expiring one first: a reservation pass would take the pending ones with it)
    expiring, _ = given_order(deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD)
    stalled, refund = place_orders(engine, customer, (product, 1), count=2, request_id="req-a")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE orders SET status = 'cancelled', refund_due = true WHERE id = :id"),
            {"id": refund},
        )
        conn.execute(text("UPDATE orders SET request_id = 'req-b' WHERE id = :id"),
                     {"id": expiring})  # fmt: skip
        mail_id = conn.execute(
            intent_insert("order_confirmed", user_id=customer, order_id=uuid.UUID(stalled))
        ).scalar_one()
        event_id = conn.execute(
            WebhookEvent.__table__.insert().returning(WebhookEvent.id),
            {"provider": "stripe", "event_id": "evt_lost", "event_type": "payment_intent.succeeded",
             "payload": {}, "order_id": uuid.UUID(stalled)},
        ).scalar_one()  # fmt: skip
    time_passes(engine, minutes=deps.settings.reservation_ttl_seconds / 60 + 10)

    # When the sweeper runs, in a context bound to a request of its own
    with structlog.contextvars.bound_contextvars(request_id="req-sweeper"):
        counts = sweep(engine, stall=stall)

    # Then every message it queued carries the request that placed its order
    assert {k: v for k, v in counts.items() if v} == {
        "stalled_orders": 1, "expired_reservations": 1, "refunds": 1, "notifications": 1,
        "webhooks": 1}  # fmt: skip
    with Session(engine) as session:
        rows = session.execute(select(OutboxMessage.actor_name, OutboxMessage.kwargs,
                                      OutboxMessage.request_id)).all()  # fmt: skip
    assert sorted((actor, sorted(kwargs.items()), request) for actor, kwargs, request in rows) == sorted([
        ("reserve_inventory", [("order_id", stalled)], "req-a"),
        ("refund_payment", [("order_id", refund)], "req-a"),
        ("expire_reservation", [("order_id", expiring)], "req-b"),
        ("send_notification", [("notification_id", str(mail_id))], "req-a"),
        ("process_webhook", [("event_id", str(event_id))], "req-a"),
    ])  # fmt: skip


# --- the outbox relay on a real Redis ------------------------------------------------------


def flush_namespace(client: redis.Redis) -> None:
    for key in client.scan_iter(f"{NAMESPACE}:*"):
        client.delete(key)


@pytest.fixture
def broker(settings: Settings, redis_client: redis.Redis) -> Iterator[dramatiq.Broker]:
    flush_namespace(redis_client)
    broker = create_broker(settings)
    yield broker
    broker.close()
    flush_namespace(redis_client)


def in_redis(client: redis.Redis, queue: str) -> list[tuple[str, dict]]:
    """(actor, kwargs) of every message waiting on ``queue``, oldest first."""
    ids = client.lrange(f"{NAMESPACE}:{queue}", 0, -1)
    encoded = [client.hget(f"{NAMESPACE}:{queue}.msgs", message_id) for message_id in ids]
    return [(msg.actor_name, msg.kwargs) for msg in map(dramatiq.Message.decode, encoded)]


def write_outbox(engine: Engine, *rows: tuple[tuple[str, str], dict[str, str]]) -> None:
    with engine.begin() as conn:
        for message, kwargs in rows:
            conn.execute(outbox_insert(message, **kwargs))


def undelivered(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(
            select(func.count()).where(OutboxMessage.delivered_at.is_(None))
        )  # fmt: skip


def test_the_relay_delivers_each_outbox_row_once(engine, broker, redis_client):
    # Given five committed outbox rows on three queues
    write_outbox(engine,
                 (m.RESERVE_INVENTORY, {"order_id": "o-1"}), (m.REQUEST_PAYMENT, {"order_id": "o-2"}),
                 (m.SEND_NOTIFICATION, {"notification_id": "7"}),
                 (m.RESERVE_INVENTORY, {"order_id": "o-3"}), (m.REFUND_PAYMENT, {"order_id": "o-4"}))  # fmt: skip
    relay = OutboxRelay(engine, broker, batch_size=2)

    # When the relay runs, and runs again
    delivered = [relay.deliver_pending(), relay.deliver_pending()]

    # Then every row reached its Redis queue once and is marked delivered
    assert delivered == [5, 0]
    assert in_redis(redis_client, "inventory") == [
        ("reserve_inventory", {"order_id": "o-1"}), ("reserve_inventory", {"order_id": "o-3"})]  # fmt: skip
    assert in_redis(redis_client, "payments") == [
        ("request_payment", {"order_id": "o-2"}), ("refund_payment", {"order_id": "o-4"})]  # fmt: skip
    assert in_redis(redis_client, "notifications") == [
        ("send_notification", {"notification_id": "7"})]  # fmt: skip
    assert undelivered(engine) == 0
    with Session(engine) as session:
        assert set(session.scalars(select(OutboxMessage.attempts))) == {1}


def test_rows_written_while_the_broker_is_down_are_delivered_later(
    engine, settings, broker, redis_client
):
    # Given two outbox rows, and a broker that cannot be reached
    write_outbox(engine, (m.RESERVE_INVENTORY, {"order_id": "o-1"}),
                 (m.PROCESS_WEBHOOK, {"event_id": "3"}))  # fmt: skip
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    down = create_broker(unreachable)

    # When the relay runs against it
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            OutboxRelay(engine, down).deliver_pending()
    finally:
        down.close()

    # Then both rows are kept, undelivered
    assert undelivered(engine) == 2

    # When the broker is back and the relay runs again
    assert OutboxRelay(engine, broker).deliver_pending() == 2

    # Then both are delivered, once
    assert in_redis(redis_client, "inventory") == [("reserve_inventory", {"order_id": "o-1"})]
    assert in_redis(redis_client, "webhooks") == [("process_webhook", {"event_id": "3"})]
    assert undelivered(engine) == 0


# --- provider webhooks -------------------------------------------------------------------


def stripe_headers(payload: bytes, secret: str, *, at: int | None = None) -> dict[str, str]:
    """``Stripe-Signature`` as Stripe documents it: t=…,v1=HMAC-SHA256(secret, "t.payload")."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return {"Stripe-Signature": f"t={stamp},v1={digest.hexdigest()}",
            "Content-Type": "application/json"}  # fmt: skip


def easypost_headers(payload: bytes, secret: str) -> dict[str, str]:
    """``X-Hmac-Signature`` as EasyPost signs: hex HMAC-SHA256 of the body, NFKD key."""
    key = unicodedata.normalize("NFKD", secret).encode()
    digest = hmac.new(key, payload, hashlib.sha256).hexdigest()
    return {"X-Hmac-Signature": f"hmac-sha256-hex={digest}", "Content-Type": "application/json"}


def stripe_event(kind: str, *, order_id: str, intent_id: str = "pi_1") -> bytes:
    intent = {"id": intent_id, "object": "payment_intent", "status": "succeeded",
              "metadata": {"order_id": order_id}}  # fmt: skip
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
             "created": int(time.time()), "data": {"object": intent}}  # fmt: skip
    return json.dumps(event).encode()


def tracker_event(*, tracking_code: str, tracker_status: str) -> bytes:
    tracker = {"id": "trk_1", "object": "Tracker", "status": tracker_status,
               "tracking_code": tracking_code}  # fmt: skip
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "Event",
             "description": "tracker.updated", "result": tracker}  # fmt: skip
    return json.dumps(event).encode()


async def webhook_counts(client, provider: str) -> Counter[str]:
    body = generate_latest(REGISTRY).decode()  # the API's metrics, in this process
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if (sample.name == "fulfillment_webhooks_total"
                    and sample.labels["provider"] == provider):  # fmt: skip
                counts[sample.labels["outcome"]] = int(sample.value)
    return counts


def stored_events(engine: Engine, provider: str) -> list[WebhookEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(WebhookEvent).where(WebhookEvent.provider == provider)))


async def test_a_stripe_event_is_stored_once_and_forgeries_are_refused(
    client, deps, engine, settings
):
    # Given an order waiting for its processing payment
    order_id, _ = given_order(deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD)
    secret = settings.stripe_webhook_secret.get_secret_value()
    payload = stripe_event("payment_intent.succeeded", order_id=order_id)
    forged = stripe_event("payment_intent.succeeded", order_id=order_id)
    before = await webhook_counts(client, "stripe")

    # When Stripe delivers a signed event twice, and someone posts a forged and a stale one
    post = client.post
    first = await post("/v1/webhooks/stripe", data=payload, headers=stripe_headers(payload, secret))
    again = await post("/v1/webhooks/stripe", data=payload, headers=stripe_headers(payload, secret))
    fake = await post("/v1/webhooks/stripe", data=forged,
                      headers=stripe_headers(forged, "whsec_guessed"))  # fmt: skip
    stale = await post("/v1/webhooks/stripe", data=forged,
                       headers=stripe_headers(forged, secret, at=int(time.time()) - 301))  # fmt: skip

    # Then the event is accepted once and answered as a duplicate the second time
    assert (first.status, await first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status, await again.json()) == (200, {"received": True, "duplicate": True})
    # and the forgeries are refused
    for refused in (fake, stale):
        assert refused.status == 400
        assert (await refused.json())["error"]["code"] == "invalid_signature"
    # and one event is stored, unprocessed, with one message to process it (the order
    # waits on it)
    (event,) = stored_events(engine, "stripe")
    assert event.event_id == json.loads(payload)["id"] and str(event.order_id) == order_id
    assert event.processed_at is None
    assert outbox(engine, m.PROCESS_WEBHOOK) == 1
    assert outbox(engine, m.PROCESS_WEBHOOK, event_id=str(event.id)) == 1
    # and the metrics count each outcome
    after = await webhook_counts(client, "stripe")
    assert after - before == Counter({"accepted": 1, "duplicate": 1, "invalid_signature": 2})


async def test_a_signed_event_the_database_could_not_hold_is_refused_and_stores_nothing(
    client, engine, settings
):
    # Given signed events with an id longer than any provider's, a JSON array, and a body
    # that is not UTF-8
    secret = settings.stripe_webhook_secret.get_secret_value()
    long_id = json.loads(stripe_event("payment_intent.succeeded", order_id=str(uuid.uuid4())))
    long_id["id"] = "evt_" + "x" * 300
    bodies = [json.dumps(long_id).encode(), b"[1, 2]",
              json.dumps({"id": "evt_1", "type": "x"}).encode("utf-16")]  # fmt: skip

    # When each is delivered
    answers = [
        await client.post("/v1/webhooks/stripe", data=body, headers=stripe_headers(body, secret))
        for body in bodies
    ]

    # Then each is a 400 with a code, and nothing is stored or queued
    for answer in answers:
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] in {"invalid_event", "invalid_signature"}
    assert stored_events(engine, "stripe") == []
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0


async def test_an_easypost_event_is_stored_once_and_forgeries_are_refused(
    client, deps, engine, carrier, settings
):
    # Given a shipped order
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    code = carrier.labels[order_id].tracking_code
    secret = settings.easypost_webhook_secret.get_secret_value()
    payload = tracker_event(tracking_code=code, tracker_status="in_transit")
    forged = tracker_event(tracking_code=code, tracker_status="delivered")
    before = await webhook_counts(client, "easypost")

    # When EasyPost delivers a signed event twice, and a forged and an unsigned one arrive
    post = client.post
    first = await post("/v1/webhooks/easypost", data=payload,
                       headers=easypost_headers(payload, secret))  # fmt: skip
    again = await post("/v1/webhooks/easypost", data=payload,
                       headers=easypost_headers(payload, secret))  # fmt: skip
    fake = await post("/v1/webhooks/easypost", data=forged,
                      headers=easypost_headers(forged, "guessed"))  # fmt: skip
    unsigned = await post("/v1/webhooks/easypost", data=forged,
                          headers={"Content-Type": "application/json"})  # fmt: skip

    # Then it is stored once and applied once, where it is stored, with no message, and
    # the forgeries are refused and change nothing
    assert (first.status, await first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status, await again.json()) == (200, {"received": True, "duplicate": True})
    for refused in (fake, unsigned):
        assert refused.status == 400
        assert (await refused.json())["error"]["code"] == "invalid_signature"
    (event,) = stored_events(engine, "easypost")
    assert (event.event_id, event.event_type) == (json.loads(payload)["id"], "tracker.updated")
    assert event.processed_at is not None and str(event.order_id) == order_id
    assert status(engine, order_id) == S.IN_TRANSIT
    assert transitions(engine, order_id, S.IN_TRANSIT) == 1
    assert transitions(engine, order_id, S.DELIVERED) == 0
    with Session(engine) as session:
        assert session.get(Shipment, uuid.UUID(order_id)).tracker_status == "in_transit"
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    after = await webhook_counts(client, "easypost")
    assert after - before == Counter({"accepted": 1, "duplicate": 1, "invalid_signature": 2})


def queued_event_id(engine: Engine) -> str:
    with Session(engine) as session:
        rows = session.scalars(
            select(OutboxMessage.kwargs).where(OutboxMessage.actor_name == "process_webhook")
            .order_by(OutboxMessage.id.desc())
        ).all()  # fmt: skip
    return rows[0]["event_id"]


async def post_stripe(client, settings: Settings, kind: str, **event: str) -> None:
    payload = stripe_event(kind, **event)
    secret = settings.stripe_webhook_secret.get_secret_value()
    response = await client.post(
        "/v1/webhooks/stripe", data=payload, headers=stripe_headers(payload, secret)
    )
    assert (response.status, await response.json()) == (
        200, {"received": True, "duplicate": False})  # fmt: skip


async def post_tracker(client, settings: Settings, code: str, tracker_status: str) -> None:
    payload = tracker_event(tracking_code=code, tracker_status=tracker_status)
    secret = settings.easypost_webhook_secret.get_secret_value()
    response = await client.post(
        "/v1/webhooks/easypost", data=payload, headers=easypost_headers(payload, secret)
    )
    assert (response.status, await response.json()) == (
        200, {"received": True, "duplicate": False})  # fmt: skip


async def test_a_payment_succeeded_webhook_makes_the_order_paid_once(
    client, deps, engine, payments, mailer, carrier, settings
):
    # Given an order waiting for a processing payment, which Stripe now reports succeeded
    order_id, _ = given_order(deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD)
    (intent,) = payments.payments_for(order_id)
    payments.complete(intent.id)
    await post_stripe(client, settings, "payment_intent.succeeded",
                      order_id=order_id, intent_id=intent.id)  # fmt: skip

    # When the worker processes the event, and the message comes again
    event_id = queued_event_id(engine)
    outcomes = twice(lambda: run_steps(deps, m.PROCESS_WEBHOOK, event_id=event_id))

    # Then the order is paid once, packed, and shipped by the same message
    assert outcomes == [SUCCESS, SKIPPED]
    assert status(engine, order_id) == S.SHIPPED
    for reached in (S.PAID, S.FULFILLING, S.SHIPPED):
        assert transitions(engine, order_id, reached) == 1, reached
    assert carrier.labels_bought == 1 and carrier.lookups == [False]
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped"]
    assert stored_events(engine, "stripe")[0].processed_at is not None


async def test_a_payment_webhook_for_an_order_already_paid_is_stored_processed(
    client, deps, engine, payments, settings
):
    # Given an order whose charge succeeded at once: paid, packed and shipped
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    (intent,) = payments.payments_for(order_id)

    # When Stripe's payment_intent.succeeded for it arrives
    await post_stripe(client, settings, "payment_intent.succeeded",
                      order_id=order_id, intent_id=intent.id)  # fmt: skip

    # Then it is stored, already processed, and costs no message; the order is as it was
    (event,) = stored_events(engine, "stripe")
    assert str(event.order_id) == order_id and event.processed_at is not None
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    assert status(engine, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.PAID) == 1
    assert payments.calls["retrieve_payment"] == payments.calls["find_payment"] == 0
    assert len(payments.money_taken) == 1


async def test_a_payment_webhook_that_overtakes_the_charge_is_picked_up_by_its_commit(
    client, deps, engine, payments, settings
):
    # Given a reserved order whose charge is on its way to Stripe
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    in_flight, land = threading.Event(), threading.Event()

    def hold(_order_id: str) -> None:
        in_flight.set()
        assert land.wait(DEADLINE)

    payments.before["charge"] = hold
    charging = asyncio.create_task(asyncio.to_thread(request_payment, deps, order_id))
    assert await asyncio.to_thread(in_flight.wait, DEADLINE)

    # When Stripe's payment_intent.succeeded arrives before the charge's answer
    await post_stripe(client, settings, "payment_intent.succeeded", order_id=order_id)

    # Then it is kept, unprocessed, with no message of its own
    (event,) = stored_events(engine, "stripe")
    assert event.processed_at is None and outbox(engine, m.PROCESS_WEBHOOK) == 0

    # When the charge's answer lands
    land.set()
    assert await asyncio.wait_for(charging, DEADLINE) == SUCCESS

    # Then the charge's commit settled the order and marked the event processed
    assert status(engine, order_id) == S.FULFILLING
    (event,) = stored_events(engine, "stripe")
    assert event.processed_at is not None
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    assert transitions(engine, order_id, S.PAID) == 1


async def test_a_delivered_tracker_webhook_delivers_the_order_once(
    client, deps, engine, carrier, mailer, settings
):
    # Given a shipped order
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    code = carrier.labels[order_id].tracking_code

    # When EasyPost reports it delivered, twice (two events), then a late "in_transit" comes
    await post_tracker(client, settings, code, "delivered")
    await post_tracker(client, settings, code, "delivered")
    await post_tracker(client, settings, code, "in_transit")

    # Then the order is delivered where the first event is stored, once, and stays so
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.DELIVERED) == 1
    assert transitions(engine, order_id, S.IN_TRANSIT) == 0
    assert order(engine, order_id).delivered_at is not None
    with Session(engine) as session:
        assert session.get(Shipment, uuid.UUID(order_id)).tracker_status == "delivered"
    # and every event is processed, with no process_webhook message
    events = stored_events(engine, "easypost")
    assert len(events) == 3 and all(event.processed_at is not None for event in events)
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    # and the delivered e-mail is written once, pending with its send message
    kinds = mails(engine, mailer, order_id, waiting=frozenset({"delivered"}))
    assert kinds == ["order_confirmed", "shipped", "delivered"]

    # When that message runs (twice)
    mail = notification_of(engine, order_id, "delivered")
    assert twice(lambda: send_notification(deps, str(mail.id))) == [SUCCESS, SKIPPED]

    # Then the customer got it once
    assert mailer.kinds(order_id=order_id) == ["order_confirmed", "shipped", "delivered"]


async def test_a_tracker_webhook_for_a_parcel_sent_back_refunds_through_a_message(
    client, deps, engine, carrier, payments, settings
):
    # Given an order in transit
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)
    code = carrier.labels[order_id].tracking_code

    # When EasyPost reports it returned to sender
    await post_tracker(client, settings, code, "return_to_sender")

    # Then the event waits for process_webhook, queued once
    (event,) = stored_events(engine, "easypost")
    assert event.processed_at is None
    assert outbox(engine, m.PROCESS_WEBHOOK, event_id=str(event.id)) == 1
    assert status(engine, order_id) == S.IN_TRANSIT

    # When it is processed (twice) and the refund runs
    assert twice(lambda: run_steps(deps, m.PROCESS_WEBHOOK, event_id=str(event.id))) == [
        FAILED, SKIPPED]  # fmt: skip
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1
    assert refund_payment(deps, order_id) == SUCCESS

    # Then the money is given back once
    assert list(payments.refunds) == [order_id]
    assert status(engine, order_id) == S.REFUNDED


async def test_a_tracker_webhook_that_overtakes_the_shipment_is_applied_by_its_commit(
    client, deps, engine, carrier, mailer, settings
):
    # Given a packed order whose label the carrier bought, but whose answer was lost, so
    # no shipment is stored yet
    order_id, product = given_order(deps, engine, at=S.RESERVED)
    carrier.lose_next("ship")
    with pytest.raises(TransientProviderError):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    code = carrier.labels[order_id].tracking_code
    with Session(engine) as session:
        assert session.get(Shipment, uuid.UUID(order_id)) is None

    # When EasyPost's tracker events for the parcel arrive before the shipment is stored
    await post_tracker(client, settings, code, "in_transit")
    await post_tracker(client, settings, code, "delivered")

    # Then they are kept, unprocessed, under their tracking code, with no message
    events = stored_events(engine, "easypost")
    assert [(e.tracking_code, e.order_id, e.processed_at) for e in events] == [
        (code, None, None)
    ] * 2
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    assert status(engine, order_id) == S.FULFILLING
    # and a sweeper's redrive of them does not drop them
    assert [process_webhook(deps, str(e.id)) for e in events] == [SKIPPED, SKIPPED]
    assert all(e.processed_at is None for e in stored_events(engine, "easypost"))

    # When the shipping step is retried and stores the shipment
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id, attempt=2) == SUCCESS

    # Then its commit applied them: the furthest status wins, the order is delivered
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.SHIPPED) == 1
    assert transitions(engine, order_id, S.DELIVERED) == 1
    with Session(engine) as session:
        assert session.get(Shipment, uuid.UUID(order_id)).tracker_status == "delivered"
    events = stored_events(engine, "easypost")
    assert all(e.processed_at is not None and str(e.order_id) == order_id for e in events)
    assert carrier.labels_bought == 1 and stock(engine, product) == (3, 0)
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped", "delivered"]


def test_one_reservation_pass_takes_every_pending_order_waiting_each_all_or_nothing(deps, engine):
    # Given 3 units, and three pending orders of 2, 1 and 2 units, the oldest first
    product = new_product(engine, on_hand=3)
    customer = new_customer(engine)
    first, second, third = (place_orders(engine, customer, (product, qty))[0] for qty in (2, 1, 2))

    # When the first order's message reserves
    assert reserve_inventory(deps, first) == SUCCESS

    # Then that one call (one transaction) settled all three, oldest first, each whole
    # or not at all
    assert [status(engine, o) for o in (first, second, third)] == [S.RESERVED, S.RESERVED,
                                                                   S.REJECTED]  # fmt: skip
    assert stock(engine, product) == (3, 3)
    # and the other orders' own messages find their work done and go on to charge
    assert reserve_inventory(deps, second) == SKIPPED
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=second) == SUCCESS
    assert status(engine, second) == S.SHIPPED


def test_a_steps_read_keeps_the_connections_prepared_statements(settings, db):
    # Given a worker connection whose statements are prepared (a step ran on it)
    engine = create_sync_db_engine(settings, pool_size=1)
    deps = make_deps(engine, settings, FakePayments(), FakeMailer(), FakeCarrier())
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    with begin(deps) as session:
        lock_order(session, order_id)
    prepared = "SELECT count(*) FROM pg_prepared_statements"
    with Session(engine) as session:
        assert session.scalar(text(prepared)) > 0

    # When a step reads before calling a provider, then ends its read-only transaction
    with reading(deps) as session:
        assert read_order(session, order_id).status == S.RESERVED

    # Then the connection still holds them (psycopg's own rollback would drop them all)
    with Session(engine) as session:
        assert session.scalar(text(prepared)) > 0
    engine.dispose()
