"""Two writers at once on an order in two packages: one parcel's tracker events against
the other parcel's label commit, played deterministically (``tests.support.interleave``)
on the real PostgreSQL. Both writers hold the order's row lock; the parcels they write
(``orders.parcels``) are read under it, so neither loses the other's."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Shipment, WebhookEvent
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.intake.provider_events import process_webhook
from pipelines.outcome import SUCCESS
from pipelines.shipping.ship import ship_order
from tests.integration.pipelines.shipping.test_shipment_races import (
    deliver,
    tracker_event,
    until_done_or_waiting,
)
from tests.support.fakes import transient
from tests.support.interleave import hold, in_thread
from tests.support.locations import new_location, product_at, stock_violations
from tests.support.steps import DEADLINE, new_customer, order, place_orders, status


def half_shipped(deps, engine, carrier) -> tuple[str, dict[str, str], uuid.UUID]:
    """An order in two packages whose first parcel left and whose second label the
    carrier refused for now: (order id, {location: tracking code}, the waiting location)."""
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug, cup = product_at(engine, {first: 2}), product_at(engine, {second: 1})
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 2), (cup, 1))
    carrier.fail_next("ship", transient("easypost", "buy_shipment"), after=1)
    try:
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    except Exception as exc:  # the second purchase timed out
        assert "service unavailable" in str(exc)
    assert status(engine, order_id) == S.PARTIALLY_SHIPPED
    codes = codes_of(engine, order_id)
    (left,) = codes
    return order_id, codes, second if left == str(first) else first


def codes_of(engine, order_id: str) -> dict[str, str]:
    with Session(engine) as session:
        return {str(s.location_id): s.tracking_code for s in session.scalars(
            select(Shipment).where(Shipment.order_id == uuid.UUID(order_id)))}  # fmt: skip


def events(engine) -> list[WebhookEvent]:
    with Session(engine) as session:
        return session.scalars(select(WebhookEvent).where(WebhookEvent.provider == "easypost")
                               .order_by(WebhookEvent.id)).all()  # fmt: skip


async def test_a_parcels_delivery_during_the_other_parcels_commit_loses_neither(
    client, deps, engine, carrier, settings
):
    # Given the first parcel on its way and the second's label stored, not yet committed
    order_id, codes, waiting = half_shipped(deps, engine, carrier)
    (first_code,) = codes.values()
    with hold("ship_order.before_commit") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id, attempt=2))
        await asyncio.to_thread(point.wait_reached)

        # When the first parcel's "delivered" arrives now (it waits for the order's lock)
        intake = asyncio.create_task(deliver(client, settings, tracker_event(first_code,
                                                                             "delivered")))  # fmt: skip
        await until_done_or_waiting(engine, intake)
        point.release()
        assert await asyncio.to_thread(shipping.result, DEADLINE) == SUCCESS
    response = await asyncio.wait_for(intake, DEADLINE)
    assert response.status == 200, await response.text()

    # Then the statement left the split order's event to the worker, which applies it once
    (event,) = events(engine)
    assert event.processed_at is None
    assert process_webhook(deps, str(event.id)) == SUCCESS
    assert process_webhook(deps, str(event.id)) != SUCCESS
    # and both parcels are there: the first delivered, the second shipped
    parcels = order(engine, order_id).parcels
    assert {loc: p["status"] for loc, p in parcels.items()} == {
        next(iter(codes)): "delivered", str(waiting): "shipped"}  # fmt: skip
    assert status(engine, order_id) == S.PARTIALLY_DELIVERED
    assert stock_violations(engine) == []


async def test_the_second_parcels_event_that_overtakes_its_commit_is_applied_by_it(
    client, deps, engine, carrier, settings
):
    # Given the second parcel's label bought, its shipment not stored yet
    order_id, codes, waiting = half_shipped(deps, engine, carrier)
    with hold("ship_order.label_bought") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id, attempt=2))
        await asyncio.to_thread(point.wait_reached)
        code = carrier.labels[f"{order_id}:{waiting}"].tracking_code

        # When its "in_transit" arrives first
        response = await deliver(client, settings, tracker_event(code, "in_transit"))
        assert response.status == 200, await response.text()
        point.release()
        assert await asyncio.to_thread(shipping.result, DEADLINE) == SUCCESS

    # Then the shipment's commit applied it to that parcel, once
    (event,) = events(engine)
    assert event.processed_at is not None and str(event.order_id) == order_id
    parcels = order(engine, order_id).parcels
    assert parcels[str(waiting)]["status"] == "in_transit"
    assert parcels[next(iter(codes))]["status"] == "shipped"
    assert status(engine, order_id) == S.IN_TRANSIT
    assert stock_violations(engine) == []
