"""Two writers at once on a shipment: the label's purchase and commit (``ship_order``)
against the carrier's tracker webhooks (``api.intake.providers``), a customer's or an
operator's cancel, and an address change. Each race is played deterministically with
the interleaving harness (``tests.support.interleave``): one writer is held at a named
point inside its transaction while the other runs, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Return, Shipment, WebhookEvent
from fulfillment.returns import ReturnStatus
from fulfillment.settings import Settings
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.actors import run_steps
from pipelines.operations.invariants import Report, check_webhooks
from pipelines.outcome import FAILED, SKIPPED, SUCCESS
from pipelines.payments.compensation import refund_payment
from pipelines.returns.label import create_return_label
from pipelines.shipping.ship import ship_order
from pipelines.shipping.tracking import apply_tracking
from tests.support.interleave import hold, in_thread, waiting_on_lock
from tests.support.provider_webhooks import easypost_headers, stored_events
from tests.support.shipments import the_shipment
from tests.support.steps import (
    DEADLINE,
    advance,
    api_order,
    given_order,
    mails,
    order,
    outbox,
    status,
    stock,
    transitions,
)
from tests.support.storefront import admin_token, bearer, customer_token

# --- helpers ---------------------------------------------------------------------------


def tracker_event(code: str, tracker_status: str, *, shipment_id: str | None = None) -> bytes:
    """EasyPost's ``tracker.updated``: the tracker names its code and its shipment."""
    tracker = {"id": f"trk_{uuid.uuid4().hex[:12]}", "object": "Tracker",
               "status": tracker_status, "tracking_code": code, "shipment_id": shipment_id}  # fmt: skip
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "Event",
             "description": "tracker.updated", "result": tracker}  # fmt: skip
    return json.dumps(event).encode()


async def deliver(client, settings: Settings, payload: bytes):
    secret = settings.easypost_webhook_secret.get_secret_value()
    return await client.post(
        "/v1/webhooks/easypost", data=payload, headers=easypost_headers(payload, secret)
    )


async def until_done_or_waiting(engine: Engine, task: asyncio.Task) -> None:
    """Wait until the API's request has ended or stands behind a lock in the database."""
    deadline = time.monotonic() + DEADLINE
    while not task.done() and await asyncio.to_thread(waiting_on_lock, engine) == 0:
        assert time.monotonic() < deadline, "the request neither ended nor waited"
        await asyncio.sleep(0.01)


def shipment_of(engine: Engine, order_id: str) -> Shipment | None:
    with Session(engine) as session:
        return the_shipment(session, uuid.UUID(order_id))


def lost_label(deps, engine: Engine, carrier, order_id: str) -> str:
    """The label was bought but its answer lost: EasyPost has it, no shipment is stored."""
    carrier.lose_next("ship")
    with pytest.raises(TransientProviderError):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert shipment_of(engine, order_id) is None
    return carrier.labels[order_id].tracking_code


# --- finding 1: a tracker event and the shipment's commit --------------------------------


async def test_a_tracker_event_arriving_while_the_shipment_commits_is_applied_once(
    client, deps, engine, carrier, settings
):
    # Given a packed order whose label is bought and stored, its early trackers looked
    # for (none), and its transaction not yet committed
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    with hold("ship_order.before_commit") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        await asyncio.to_thread(point.wait_reached)
        code = carrier.labels[order_id].tracking_code

        # When EasyPost's "in_transit" for the parcel arrives now
        intake = asyncio.create_task(deliver(client, settings, tracker_event(code, "in_transit")))
        await until_done_or_waiting(engine, intake)

        # and the shipment commits
        point.release()
        assert await asyncio.to_thread(shipping.result, DEADLINE) == SUCCESS
    response = await asyncio.wait_for(intake, DEADLINE)

    # Then the event was accepted and applied exactly once, by whichever came second
    assert response.status == 200, await response.text()
    assert status(engine, order_id) == S.IN_TRANSIT
    assert transitions(engine, order_id, S.IN_TRANSIT) == 1
    (event,) = stored_events(engine, "easypost")
    assert event.processed_at is not None and str(event.order_id) == order_id
    assert shipment_of(engine, order_id).tracker_status == "in_transit"
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0


async def test_a_tracker_event_stored_before_the_shipment_is_applied_by_its_commit(
    client, deps, engine, carrier, settings
):
    # Given a label bought whose shipment is not stored yet (its step is held after the
    # carrier answered)
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    with hold("ship_order.label_bought") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        await asyncio.to_thread(point.wait_reached)
        code = carrier.labels[order_id].tracking_code

        # When "delivered" arrives first
        response = await deliver(client, settings, tracker_event(code, "delivered"))
        assert response.status == 200, await response.text()
        point.release()
        assert await asyncio.to_thread(shipping.result, DEADLINE) == SUCCESS

    # Then the shipment's commit applied it, once
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.DELIVERED) == 1
    (event,) = stored_events(engine, "easypost")
    assert event.processed_at is not None and str(event.order_id) == order_id


@pytest.mark.parametrize("failure", ["return_to_sender", "failure"])
async def test_a_parcel_failure_that_overtook_its_shipment_is_refunded(
    client, deps, engine, carrier, payments, mailer, settings, failure
):
    # Given a label bought whose commit was lost
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    code = lost_label(deps, engine, carrier, order_id)

    # When the carrier reports the parcel will not arrive, before the shipment is stored
    response = await deliver(client, settings, tracker_event(code, failure))
    assert response.status == 200, await response.text()

    # and the shipping step's retry stores the shipment
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id, attempt=2) == SUCCESS

    # Then the failure took effect in that commit: a refund is due and queued, once
    assert order(engine, order_id).refund_due
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1
    assert all(event.processed_at is not None for event in stored_events(engine, "easypost"))

    # When the refund runs
    assert refund_payment(deps, order_id) == SUCCESS

    # Then the money is back and the order is refunded
    assert list(payments.refunds) == [order_id]
    assert status(engine, order_id) == S.REFUNDED


async def test_a_delivery_reported_while_a_lost_parcel_is_compensated_never_delivers_it(
    client, deps, engine, carrier, payments, settings
):
    # Given an order in transit whose parcel the carrier reported returned to sender,
    # its compensation (refund due) not yet committed
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)
    code = carrier.labels[order_id].tracking_code
    with hold("shipping_failed.before_commit") as point:
        failing = in_thread(lambda: apply_tracking(deps, order_id, status="return_to_sender"))
        await asyncio.to_thread(point.wait_reached)

        # When a "delivered" for the parcel arrives now (it waits on the order's row)
        intake = asyncio.create_task(deliver(client, settings, tracker_event(code, "delivered")))
        await until_done_or_waiting(engine, intake)
        point.release()
        assert await asyncio.to_thread(failing.result, DEADLINE) == FAILED
    response = await asyncio.wait_for(intake, DEADLINE)

    # Then the event is stored but the order is not delivered: it is refunded
    assert response.status == 200, await response.text()
    assert transitions(engine, order_id, S.DELIVERED) == 0
    assert order(engine, order_id).refund_due
    assert refund_payment(deps, order_id) == SUCCESS
    assert status(engine, order_id) == S.REFUNDED


# --- finding 9: tracking codes that match two shipments, or a return ----------------------


async def test_a_tracking_code_two_shipments_share_is_applied_to_its_own_shipment(
    client, deps, engine, carrier, settings
):
    # Given two shipped orders whose labels carry the same tracking code (carriers reuse
    # them)
    first, _ = given_order(deps, engine, at=S.SHIPPED)
    second, _ = given_order(deps, engine, at=S.SHIPPED)
    code = carrier.labels[first].tracking_code
    with Session(engine) as session, session.begin():
        session.execute(update(Shipment).where(Shipment.order_id == uuid.UUID(second))
                        .values(tracking_code=code))  # fmt: skip

    # When a tracker naming the first's shipment, then one naming no shipment, arrive
    own = await deliver(client, settings, tracker_event(
        code, "in_transit", shipment_id=carrier.labels[first].shipment_id))  # fmt: skip
    anonymous = await deliver(client, settings, tracker_event(code, "delivered"))

    # Then neither fails: the first moves the first order, the other the newest shipment
    assert own.status == 200, await own.text()
    assert anonymous.status == 200, await anonymous.text()
    assert status(engine, first) == S.IN_TRANSIT
    assert status(engine, second) == S.DELIVERED
    assert all(event.processed_at is not None for event in stored_events(engine, "easypost"))


async def test_a_return_labels_tracker_moves_its_return_and_not_the_order(
    client, deps, engine, carrier, settings
):
    # Given a delivered order with a return whose label was bought and mailed
    order_id, product = given_order(deps, engine, at=S.DELIVERED)
    return_id = uuid.uuid4()
    with Session(engine) as session, session.begin():
        session.add(Return(id=return_id, order_id=uuid.UUID(order_id),
                           lines=[{"product_id": str(product), "quantity": 1}]))  # fmt: skip
    assert create_return_label(deps, str(return_id)) == SUCCESS
    code = carrier.labels[f"return_{return_id}"].tracking_code

    # When the return's tracker reports it on its way, twice, and then at the warehouse
    for tracker_status in ("in_transit", "in_transit", "delivered"):
        response = await deliver(client, settings, tracker_event(code, tracker_status))
        assert response.status == 200, await response.text()

    # Then the return is in transit (the warehouse's receipt moves it on), every event
    # is applied where it was stored, none waits for the sweeper, the order is as it was
    with Session(engine) as session:
        assert session.get(Return, return_id).status == ReturnStatus.IN_TRANSIT
    events = stored_events(engine, "easypost")
    assert len(events) == 3
    assert all(e.processed_at is not None and str(e.order_id) == order_id for e in events)
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    assert status(engine, order_id) == S.DELIVERED


async def test_a_return_tracker_that_overtook_the_return_labels_commit_is_applied_by_it(
    client, deps, engine, carrier, settings
):
    # Given a delivered order's return whose label was bought but whose answer was lost
    order_id, product = given_order(deps, engine, at=S.DELIVERED)
    return_id = uuid.uuid4()
    with Session(engine) as session, session.begin():
        session.add(Return(id=return_id, order_id=uuid.UUID(order_id),
                           lines=[{"product_id": str(product), "quantity": 1}]))  # fmt: skip
    carrier.lose_next("ship_return")
    with pytest.raises(TransientProviderError):
        create_return_label(deps, str(return_id))
    code = carrier.labels[f"return_{return_id}"].tracking_code

    # When its tracker's "in_transit" arrives first, then the step's retry stores the label
    response = await deliver(client, settings, tracker_event(code, "in_transit"))
    assert response.status == 200
    assert create_return_label(deps, str(return_id)) == SUCCESS

    # Then the return's commit applied the event
    with Session(engine) as session:
        assert session.get(Return, return_id).status == ReturnStatus.IN_TRANSIT
    (event,) = stored_events(engine, "easypost")
    assert event.processed_at is not None and str(event.order_id) == order_id


async def test_a_return_tracker_arriving_while_the_return_label_commits_is_applied_once(
    client, deps, engine, carrier, settings
):
    # Given a delivered order's return whose label is bought, kept and mailed, its
    # transaction not yet committed
    order_id, product = given_order(deps, engine, at=S.DELIVERED)
    return_id = uuid.uuid4()
    with Session(engine) as session, session.begin():
        session.add(Return(id=return_id, order_id=uuid.UUID(order_id),
                           lines=[{"product_id": str(product), "quantity": 1}]))  # fmt: skip
    with hold("create_return_label.before_commit") as point:
        labelling = in_thread(lambda: create_return_label(deps, str(return_id)))
        await asyncio.to_thread(point.wait_reached)
        code = carrier.labels[f"return_{return_id}"].tracking_code

        # When the return's tracker reports it on its way now, and the label commits
        intake = asyncio.create_task(deliver(client, settings, tracker_event(code, "in_transit")))
        await until_done_or_waiting(engine, intake)
        point.release()
        assert await asyncio.to_thread(labelling.result, DEADLINE) == SUCCESS
    response = await asyncio.wait_for(intake, DEADLINE)

    # Then the event was applied once, by whichever came second
    assert response.status == 200, await response.text()
    with Session(engine) as session:
        assert session.get(Return, return_id).status == ReturnStatus.IN_TRANSIT
    (event,) = stored_events(engine, "easypost")
    assert event.processed_at is not None and str(event.order_id) == order_id


# --- finding 11: an API request during a label purchase ----------------------------------


@pytest.mark.parametrize("who", ["customer", "operator"])
async def test_a_cancel_during_the_label_purchase_is_answered_at_once_and_voids_the_label(
    client, deps, engine, carrier, mailer, who
):
    # Given a packed order whose label EasyPost is selling right now (the step holds the
    # label, its commit still to come)
    token = await customer_token(client)
    order_id, product = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    path = f"/v1/orders/{order_id}/cancel"
    if who == "operator":
        token, path = await admin_token(client, engine), f"/v1/admin/orders/{order_id}/cancel"
    with hold("ship_order.label_bought") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        await asyncio.to_thread(point.wait_reached)

        # When the cancel comes (a hang guard only: the purchase is held for 20 s)
        response = await asyncio.wait_for(client.post(path, headers=bearer(token)), 15)

        # Then it is answered while the purchase is still in flight: cancelled
        assert not shipping.done()
        assert response.status == 200, await response.text()
        assert (await response.json())["status"] == "cancelled"
        point.release()
        # and the purchase's end finds the order cancelled: nothing ships
        assert await asyncio.to_thread(shipping.result, DEADLINE) == SKIPPED

    assert status(engine, order_id) == S.CANCELLED
    assert shipment_of(engine, order_id) is None
    assert stock(engine, product) == (5, 0)
    assert transitions(engine, order_id, S.SHIPPED) == 0
    assert "shipped" not in mails(engine, mailer, order_id, waiting=frozenset({"cancelled"}))
    # and the label bought meanwhile is voided: the purchase's commit asks for it again,
    # as the cancel's own void may have run before EasyPost had sold it
    assert outbox(engine, m.VOID_LABEL, order_id=order_id) == 2
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1


# --- fulfillment verify ------------------------------------------------------------------


async def test_verify_reports_a_provider_event_left_unapplied(client, deps, engine, settings):
    # Given a tracker event for a parcel nobody stored, received long ago
    response = await deliver(client, settings, tracker_event("EZ-NOBODY", "in_transit"))
    assert response.status == 200
    with Session(engine) as session, session.begin():
        session.execute(update(WebhookEvent).values(
            received_at=WebhookEvent.received_at - timedelta(minutes=10)))  # fmt: skip

    # When verify checks the webhook events
    report = Report()
    with Session(engine) as session:
        check_webhooks(session, report, bound=timedelta(minutes=1))

    # Then it names the event
    assert len(report.violations) == 1
    assert "EZ-NOBODY" in report.violations[0] and "not applied" in report.violations[0]
    with Session(engine) as session:
        assert session.scalar(select(WebhookEvent.processed_at)) is None
