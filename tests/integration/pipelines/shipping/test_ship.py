"""Packing and the label (``fulfil_order``, ``ship_order``): one parcel, one label and
the stock taken once, a retry looks for the label an earlier try bought, and an
address the carrier refuses waits for the customer."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Fulfillment, StockMovement
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.shipping.ship import fulfil_order, ship_order
from tests.support.shipments import the_shipment
from tests.support.steps import (
    DELIVERIES,
    given_order,
    mails,
    order,
    outbox,
    status,
    stock,
    transitions,
)
from tests.support.storefront import ADDRESS


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
        shipment = the_shipment(session, uuid.UUID(order_id))
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


def test_an_address_the_carrier_refuses_waits_for_the_customer_not_a_refund(
    deps, engine, payments, mailer
):
    # Given a packed order (2 of 5 units) to an address the carrier cannot deliver to
    bad_address = {**ADDRESS, "postal_code": "00000"}
    order_id, product = given_order(deps, engine, at=S.FULFILLING, address=bad_address)

    # When shipping is attempted
    assert ship_order(deps, order_id) == FAILED

    # Then no label, the order waits in address_invalid with its stock, nothing is
    # refunded, and the customer is asked to fix the address (easypost_sandbox/
    # test_addresses.py follows it to the end)
    assert status(engine, order_id) == S.ADDRESS_INVALID
    assert stock(engine, product) == (5, 2)
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 0
    assert payments.refunds == {}
    assert "ADDRESS.VERIFY.FAILURE" in order(engine, order_id).last_error
    assert mails(engine, mailer, order_id)[-1] == "address_invalid"
