"""The label is of the service the customer paid for: an order placed on a quote's
option ships with that carrier's service, not the cheapest; when the carrier no longer
offers it, the order waits for an operator (nothing bought, nothing refunded) and
ships once it is offered again and the operator resumes it; a retried or duplicated
shipping message buys one label. Quote, order and resume through the API, the steps on
a real PostgreSQL, EasyPost through the official SDK against the sandbox."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Order
from fulfillment.shipping_options import parcel_weight_oz
from fulfillment.states import OrderStatus as S
from integrations.ports import Parcel, ShippingService
from pipelines.actors import run_steps
from pipelines.outcome import FAILED, SUCCESS
from pipelines.shipping.ship import ship_order
from tests.support.sandbox import RunningSandbox
from tests.support.shipments import the_shipment
from tests.support.shipping import GOOD, packed, queued, status
from tests.support.steps import DELIVERIES, stock, transitions
from tests.support.storefront import add_product, admin_token, bearer, customer_token

#: The option the customer picks: dearer than the cheapest (USPS GroundAdvantage).
PRIORITY = ("USPS", "Priority")


@pytest.fixture
def offered(sandbox: RunningSandbox):
    """The sandbox's rate card as a test left it is put back (the sandbox is the
    module's)."""
    yield sandbox
    sandbox.withdraw_services()


async def quoted_order(client, engine, token: str, service: tuple[str, str]) -> tuple[str, str]:
    """A customer's order for 2 units on a checkout quote, its option ``service``:
    (order id, product id)."""
    product = add_product(engine, on_hand=5)
    items = [{"product_id": str(product), "quantity": 2}]
    response = await client.post("/v1/checkout/quotes", headers=bearer(token),
                                 json={"items": items, "shipping_address": GOOD})  # fmt: skip
    assert response.status == 201, await response.text()
    quote = await response.json()
    (option,) = [o for o in quote["shipping_options"]
                 if (o["carrier"], o["service"]) == service]  # fmt: skip
    assert option["shipping_amount"] > min(o["shipping_amount"] for o in quote["shipping_options"])
    body = {"items": items, "shipping_address": GOOD, "payment_method": "pm_card_visa",
            "quote_id": quote["id"], "shipping_option_id": option["id"]}  # fmt: skip
    response = await client.post("/v1/orders", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    placed = await response.json()
    assert (placed["shipping_carrier"], placed["shipping_service"]) == service
    return placed["id"], str(product)


def calls(sandbox: RunningSandbox, since: int) -> list[str]:
    """The EasyPost requests made after the ``since`` first, as "METHOD /path"."""
    return [f"{r['method']} {r['path']}" for r in sandbox.requests("easypost")[since:]]


def bought(sandbox: RunningSandbox, reference: str) -> list[dict]:
    return [s for s in sandbox.shipments(reference=reference) if s["postage_label"]]


async def test_a_quoted_orders_label_is_of_the_service_paid_for_in_one_create_and_one_buy(
    client, engine, deps, sandbox
):
    # Given an order placed on the quote's USPS Priority option, packed
    token = await customer_token(client)
    order_id, _ = await quoted_order(client, engine, token, PRIORITY)
    packed(deps, order_id)
    before = len(sandbox.requests("easypost"))

    # When its label is bought
    assert ship_order(deps, order_id) == SUCCESS
    made = calls(sandbox, before)

    # Then it is USPS Priority (not the cheaper GroundAdvantage), as stored and at EasyPost
    assert status(deps, order_id) == S.SHIPPED
    with Session(engine) as session:
        shipment = the_shipment(session, uuid.UUID(order_id))
        assert (shipment.carrier, shipment.service) == PRIORITY
    (label,) = bought(sandbox, order_id)
    assert (label["selected_rate"]["carrier"], label["selected_rate"]["service"]) == PRIORITY
    # in one create and one buy of that shipment, and no read of it
    assert made == [
        "POST /easypost/v2/shipments", f"POST /easypost/v2/shipments/{label['id']}/buy"]  # fmt: skip


async def test_a_service_no_longer_offered_waits_for_an_operator_then_ships_as_paid_for(
    client, engine, deps, mailer, offered
):
    # Given an order placed on USPS Priority, which the carrier no longer offers
    token = await customer_token(client)
    order_id, product = await quoted_order(client, engine, token, PRIORITY)
    offered.withdraw_services(PRIORITY)

    # When its one message reserves, charges, packs and tries to buy the label
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id) == FAILED

    # Then the order waits for an operator, saying which service and why
    assert status(deps, order_id) == S.NEEDS_ATTENTION
    with Session(engine) as session:
        order = session.get(Order, uuid.UUID(order_id))
        assert order.last_error.startswith("USPS Priority is no longer offered for this parcel")
        assert "no other service was bought" in order.last_error
        assert order.attention_from == S.FULFILLING
    # and nothing was bought, nothing refunded, the stock still held, no bad news mailed
    assert bought(offered, order_id) == []
    assert queued(engine, m.REFUND_PAYMENT) == 0
    assert stock(engine, uuid.UUID(product)) == (5, 2)
    assert {mail.kind for mail in mailer.sent} == {"order_confirmed"}

    # When the carrier offers it again and an operator resumes the order
    offered.withdraw_services()
    admin = await admin_token(client, engine)
    response = await client.post(f"/v1/admin/orders/{order_id}/resume", headers=bearer(admin))
    assert response.status == 200, await response.text()
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS

    # Then it ships with the service paid for, the one label bought
    assert status(deps, order_id) == S.SHIPPED
    (label,) = bought(offered, order_id)
    assert (label["selected_rate"]["carrier"], label["selected_rate"]["service"]) == PRIORITY


@DELIVERIES
async def test_a_quoted_order_shipped_again_and_again_buys_one_label(
    client, engine, deps, sandbox, run
):
    # Given an order on USPS Priority whose label was bought, its commit lost
    token = await customer_token(client)
    order_id, _ = await quoted_order(client, engine, token, PRIORITY)
    packed(deps, order_id)
    with Session(engine) as session:
        address = dict(session.get(Order, uuid.UUID(order_id)).shipping_address)
    first = deps.carrier.ship(order_id=order_id, address=address, lookup=False,
                              parcel=Parcel(weight_oz=parcel_weight_oz(2)),
                              service=ShippingService(*PRIORITY))  # fmt: skip

    # When the shipping message is delivered more than once (a retry, the sweeper)
    outcomes = run(lambda: run_steps(deps, m.SHIP_ORDER, order_id=order_id))

    # Then the order shipped once, with that label, and no second one was bought (the
    # copies after the first find it shipped; one of them may capture the payment)
    assert SUCCESS in outcomes
    assert status(deps, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.SHIPPED) == 1
    (label,) = bought(sandbox, order_id)
    assert label["id"] == first.shipment_id and first.service == "Priority"
    with Session(engine) as session:
        assert the_shipment(session, uuid.UUID(order_id)).shipment_id == first.shipment_id
