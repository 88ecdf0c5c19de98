"""A message's steps run as an actor runs them (``pipelines.actors.run_steps``): one
message takes a pending order to shipped once, however often it is delivered, and
permanent refusals go to the dead letters at once."""

from __future__ import annotations

import uuid

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Fulfillment
from fulfillment.states import OrderStatus as S
from integrations.errors import PermanentProviderError
from pipelines.actors import register_actors, run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.saga import steps_of
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
    twice,
)


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
        assert the_shipment(session, uuid.UUID(order_id)).tracking_code == (
            carrier.labels[order_id].tracking_code
        )
    # and two e-mails were sent at once, each once, with no message of their own
    assert sorted(mails(engine, mailer, order_id)) == ["order_confirmed", "shipped"]
    assert sorted(mailer.kinds(order_id=order_id)) == ["order_confirmed", "shipped"]
    # and no message was queued for any later step
    for later in (m.REQUEST_PAYMENT, m.SETTLE_PAYMENT, m.FULFIL_ORDER, m.SHIP_ORDER,
                  m.SEND_NOTIFICATION, m.REFUND_PAYMENT):  # fmt: skip
        assert outbox(engine, later) == 0, later


def test_actors_dead_letter_permanent_refusals_at_once(deps):
    actors = register_actors(StubBroker(), deps)
    assert all(a.options["throws"] == (PermanentProviderError,) for a in actors.values())
