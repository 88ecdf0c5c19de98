"""The label leaves from where the stock is: an order held at a second location is
shipped from that location's address, through the real EasyPost SDK against the
sandbox; an order held at the default location from the configured ship-from address,
as before locations existed."""

from __future__ import annotations

import uuid

import easypost
from sqlalchemy.orm import Session

from pipelines.outcome import SUCCESS
from pipelines.shipping.ship import ship_order
from tests.support.locations import WAREHOUSE, default_location, new_location, product_at
from tests.support.sandbox import RunningSandbox
from tests.support.shipments import the_shipment
from tests.support.shipping import GOOD, packed
from tests.support.steps import new_customer, place_orders


def shipped_from(engine, sandbox: RunningSandbox, order_id: str) -> dict:
    with Session(engine) as session:
        shipment_id = the_shipment(session, uuid.UUID(order_id)).shipment_id
    client = easypost.EasyPostClient("EZTK_test", api_base=f"{sandbox.url}/easypost/v2")
    return client.shipment.retrieve(shipment_id).from_address.to_dict()


def test_each_order_ships_from_the_location_that_holds_its_stock(engine, deps, sandbox):
    # Given one product held in Berlin and another at the default location
    berlin = new_location(engine, priority=1)
    from_berlin = product_at(engine, {berlin: 5})
    from_default = product_at(engine, {default_location(engine): 5})
    customer = new_customer(engine)
    (berlin_order,) = place_orders(engine, customer, (from_berlin, 2), address=GOOD)
    (default_order,) = place_orders(engine, customer, (from_default, 2), address=GOOD)

    # When both are reserved, charged, packed and shipped
    for order_id in (berlin_order, default_order):
        packed(deps, order_id)
        assert ship_order(deps, order_id) == SUCCESS

    # Then EasyPost bought the first label from Berlin, the second from the warehouse
    berlin_label = shipped_from(engine, sandbox, berlin_order)
    assert (berlin_label["street1"], berlin_label["city"], berlin_label["country"]) == (
        WAREHOUSE["line1"], WAREHOUSE["city"], WAREHOUSE["country"])  # fmt: skip
    default_label = shipped_from(engine, sandbox, default_order)
    assert (default_label["street1"], default_label["city"]) == (
        "417 Montgomery Street", "San Francisco")  # fmt: skip
