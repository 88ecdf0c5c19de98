"""Provider webhooks processed (``process_webhook`` and the steps' commits): a payment
or tracker event moves the order once, where it is stored or by the commit it
overtook, and a parcel sent back is refunded through a message."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.intake.provider_events import process_webhook
from pipelines.mail.notify import send_notification
from pipelines.payments.compensation import refund_payment
from pipelines.payments.payment import request_payment
from tests.support.fakes import PROCESSING_METHOD
from tests.support.provider_webhooks import (
    post_stripe,
    post_tracker,
    queued_event_id,
    stored_events,
)
from tests.support.shipments import the_shipment
from tests.support.steps import (
    DEADLINE,
    given_order,
    mails,
    notification_of,
    order,
    outbox,
    status,
    stock,
    transitions,
    twice,
)


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
        assert the_shipment(session, uuid.UUID(order_id)).tracker_status == "delivered"
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
        assert the_shipment(session, uuid.UUID(order_id)) is None

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
        assert the_shipment(session, uuid.UUID(order_id)).tracker_status == "delivered"
    events = stored_events(engine, "easypost")
    assert all(e.processed_at is not None and str(e.order_id) == order_id for e in events)
    assert carrier.labels_bought == 1 and stock(engine, product) == (3, 0)
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped", "delivered"]
