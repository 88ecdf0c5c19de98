"""Where a received return's restocked units go back on hand: without a location, each
product goes back where its order's stock was taken from (``orders.allocation``); a
receipt naming a location restocks there, making the row of a location that never held
the product; an unknown location refuses the receipt with nothing changed. The order is
reserved, shipped and delivered by the real steps from stock counted at each location
with its ledger entry, so ``verify``'s stock check holds throughout."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Inventory, Return, StockMovement
from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.payments.capture import capture_payment
from tests.support.locations import at, default_location, new_location, product_at
from tests.support.locations import stock_violations as violations
from tests.support.rawhttp import fingerprint
from tests.support.returns import ask_return
from tests.support.steps import advance, make_deps, order, outbox
from tests.support.storefront import admin_token, bearer, customer_token, order_body


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return make_deps(engine, settings, payments, mailer, carrier)


async def delivered_and_asked_back(client, deps, engine, *lines) -> tuple[str, str]:
    """A customer's order of ``lines`` ((product, quantity)) reserved, shipped, captured and
    delivered by the real steps, and a return asking all of it back: (order id, return id)."""
    token = await customer_token(client)
    response = await client.post("/v1/orders", json=order_body(*lines), headers=bearer(token))
    assert response.status == 201, await response.text()
    order_id = (await response.json())["id"]
    advance(deps, order_id, to=S.SHIPPED)
    assert capture_payment(deps, order_id) == SUCCESS
    advance(deps, order_id, to=S.DELIVERED)
    asked = await ask_return(client, token, order_id, *lines)
    assert asked.status == 201, await asked.text()
    return order_id, (await asked.json())["id"]


async def delivered_from_two_locations(client, deps, engine):
    """A delivered order of 2 mugs, taken from Berlin (the only location that holds mugs:
    5), and 1 plate, taken from the default location (5), and a return asking all of it
    back. (order id, return id, mug, plate, Berlin, the default location)"""
    berlin, default = new_location(engine, priority=10), default_location(engine)
    mug = product_at(engine, {berlin: 5})
    plate = product_at(engine, {default: 5}, price="8.00")
    order_id, return_id = await delivered_and_asked_back(client, deps, engine, (mug, 2),
                                                         (plate, 1))  # fmt: skip
    return order_id, return_id, mug, plate, berlin, default


def allocated(engine, order_id: str) -> set[tuple[uuid.UUID, uuid.UUID, int]]:
    """(product, location, quantity) the order's stock was taken as."""
    return {(uuid.UUID(a["product_id"]), uuid.UUID(a["location_id"]), a["quantity"])
            for a in order(engine, order_id).allocation}  # fmt: skip


async def receive(client, admin: str, return_id: str, *lines, **body):
    body["lines"] = [{"product_id": str(p), "quantity": q, "condition": c} for p, q, c in lines]
    return await client.post(f"/v1/admin/returns/{return_id}/receive", json=body,
                             headers=bearer(admin))  # fmt: skip


def return_ledger(engine, return_id: str) -> dict[tuple[uuid.UUID, uuid.UUID, str], int]:
    """Delta per (product, location, reason) of the return's movements."""
    with Session(engine) as session:
        rows = session.scalars(select(StockMovement)
                               .where(StockMovement.return_id == uuid.UUID(return_id))).all()  # fmt: skip
        return {(row.product_id, row.location_id, row.reason): row.delta for row in rows}


def has_row(engine, product_id: uuid.UUID, location_id: uuid.UUID) -> bool:
    with Session(engine) as session:
        return session.get(Inventory, (product_id, location_id)) is not None


def the_return(engine, return_id: str) -> Return:
    with Session(engine) as session:
        return session.get(Return, uuid.UUID(return_id))


async def test_a_receipt_restocks_each_product_where_its_order_took_it_from(client, deps, engine):
    # Given a delivered order whose mugs came from Berlin and whose plate came from the
    # default location, and a return of all of it
    order_id, return_id, mug, plate, berlin, default = await delivered_from_two_locations(
        client, deps, engine)  # fmt: skip
    assert allocated(engine, order_id) == {(mug, berlin, 2), (plate, default, 1)}
    assert (at(engine, mug, berlin), at(engine, plate, default)) == ((3, 0), (4, 0))
    assert violations(engine) == []

    # When the warehouse receives it all as new, naming no location
    admin = await admin_token(client, engine)
    received = await receive(client, admin, return_id, (mug, 2, "restock"), (plate, 1, "restock"))

    # Then each product is back on hand where it was taken from, and nowhere else
    assert received.status == 200, await received.text()
    assert (await received.json())["status"] == "received"
    assert at(engine, mug, berlin) == (5, 0) and at(engine, mug, default) == (0, 0)
    assert at(engine, plate, default) == (5, 0) and not has_row(engine, plate, berlin)
    # and the ledger names those locations, so every location still adds up
    assert return_ledger(engine, return_id) == {(mug, berlin, "returned"): 2,
                                                (plate, default, "returned"): 1}  # fmt: skip
    assert violations(engine) == []


async def test_a_product_taken_from_two_locations_goes_back_to_the_one_that_gave_most(
    client, deps, engine
):
    # Given a delivered order of 3 cups, 1 taken from the default location (its only one)
    # and 2 from Berlin, and a return of them
    berlin, default = new_location(engine, priority=10), default_location(engine)
    cup = product_at(engine, {default: 1, berlin: 2})
    order_id, return_id = await delivered_and_asked_back(client, deps, engine, (cup, 3))
    assert allocated(engine, order_id) == {(cup, default, 1), (cup, berlin, 2)}

    # When the warehouse receives them as new, naming no location
    admin = await admin_token(client, engine)
    received = await receive(client, admin, return_id, (cup, 3, "restock"))

    # Then all 3 are back on hand at Berlin, which gave the most, with one movement there
    assert received.status == 200, await received.text()
    assert at(engine, cup, berlin) == (3, 0) and at(engine, cup, default) == (0, 0)
    assert return_ledger(engine, return_id) == {(cup, berlin, "returned"): 3}
    assert violations(engine) == []


async def test_a_receipt_naming_a_location_restocks_there_making_its_row(client, deps, engine):
    # Given a delivered order (mugs from Berlin, the plate from the default location), a
    # return of all of it, and Lyon, a location that never held either product
    order_id, return_id, mug, plate, berlin, default = await delivered_from_two_locations(
        client, deps, engine)  # fmt: skip
    lyon = new_location(engine, priority=30)
    assert not has_row(engine, mug, lyon) and not has_row(engine, plate, lyon)

    # When the warehouse receives the mugs as new and the plate broken, at Lyon
    admin = await admin_token(client, engine)
    received = await receive(client, admin, return_id, (mug, 2, "restock"),
                             (plate, 1, "damaged"), location_id=str(lyon))  # fmt: skip

    # Then the mugs are on hand at Lyon, in a row made for them, and nowhere else gained
    assert received.status == 200, await received.text()
    assert at(engine, mug, lyon) == (2, 0) and at(engine, mug, berlin) == (3, 0)
    assert at(engine, plate, default) == (4, 0) and not has_row(engine, plate, lyon)
    levels = await client.get(f"/v1/admin/products/{mug}/stock", headers=bearer(admin))
    assert {(i["location_id"], i["on_hand"]) for i in (await levels.json())["items"]} == {
        (str(default), 0), (str(berlin), 3), (str(lyon), 2)}  # fmt: skip
    # and both movements name Lyon, so every location still adds up
    assert return_ledger(engine, return_id) == {(mug, lyon, "returned"): 2,
                                                (plate, lyon, "damaged"): 0}  # fmt: skip
    assert violations(engine) == []
    assert order(engine, order_id).amount_refunded == 2 * 1250 + 800


async def test_an_unknown_location_refuses_the_receipt_and_changes_nothing(client, deps, engine):
    # Given a delivered order and a return of all of it, not yet received
    order_id, return_id, mug, plate, berlin, default = await delivered_from_two_locations(
        client, deps, engine)  # fmt: skip
    admin = await admin_token(client, engine)
    before = fingerprint(engine)

    # When the warehouse receives it at a location that does not exist, or is no id
    unknown = await receive(client, admin, return_id, (mug, 2, "restock"),
                            (plate, 1, "restock"), location_id=str(uuid.uuid4()))  # fmt: skip
    not_an_id = await receive(client, admin, return_id, (mug, 2, "restock"),
                              location_id="berlin")  # fmt: skip

    # Then both are refused as the body's fault
    assert unknown.status == 422, await unknown.text()
    error = (await unknown.json())["error"]
    assert (error["code"], error["details"]) == ("unknown_location", {"field": "location_id"})
    assert not_an_id.status == 422
    assert (await not_an_id.json())["error"]["code"] == "validation_error"
    # and the return, the stock, the ledger and the money are as they were
    assert fingerprint(engine) == before
    kept = the_return(engine, return_id)
    assert (kept.status, kept.refund_id, kept.received_lines) == ("requested", None, [])
    assert at(engine, mug, berlin) == (3, 0) and at(engine, plate, default) == (4, 0)
    assert return_ledger(engine, return_id) == {}
    assert order(engine, order_id).amount_refunded == 0
    assert outbox(engine, m.PROCESS_REFUND) == 0

    # When it is received after all, naming no location
    received = await receive(client, admin, return_id, (mug, 2, "restock"))

    # Then it was still receivable, and the mugs went back to Berlin
    assert received.status == 200, await received.text()
    assert at(engine, mug, berlin) == (5, 0) and violations(engine) == []
