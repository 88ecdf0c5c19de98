"""Partial refunds an operator makes once the card is captured
(``PAYMENT_CAPTURE=shipment``): by line and by amount, never more than was captured,
together or at once, once per key; nothing captured means nothing to refund; a refund
Stripe refuses gives the amount back. Stripe is the in-memory double
(``tests.support.fakes``)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Refund
from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED
from pipelines.payments.capture import capture_payment
from pipelines.payments.refunds import process_refund
from tests.support.fakes import permanent
from tests.support.steps import advance, api_order, make_deps, order, outbox
from tests.support.storefront import admin_token, bearer, customer_token


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return make_deps(engine, settings, payments, mailer, carrier)


async def captured_order(client, deps, engine) -> tuple[str, str]:
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)  # 2 x 12.50 = 2500
    advance(deps, order_id, to=S.SHIPPED)
    capture_payment(deps, order_id)
    return order_id, token


async def refund(client, admin: str, order_id: str, body: dict, *, key: str | None = None):
    headers = {**bearer(admin), "Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post(f"/v1/admin/orders/{order_id}/refunds", json=body, headers=headers)


async def test_partial_refunds_by_line_and_amount_never_exceed_the_capture(
    client, deps, engine, payments, mailer
):
    # Given a captured order of 2 x 12.50, and an operator
    order_id, token = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)
    with Session(engine) as session:
        product_id = str(session.scalar(text("SELECT product_id FROM order_lines "
                                             "WHERE order_id = :o"), {"o": order_id}))  # fmt: skip

    # When one unit is refunded by line, and 5.00 by amount
    by_line = await refund(client, admin, order_id, {"lines": [{"product_id": product_id,
                                                                "quantity": 1}]})  # fmt: skip
    by_amount = await refund(client, admin, order_id, {"amount": "5.00", "reason": "scratched"})
    assert (by_line.status, by_amount.status) == (201, 201), await by_line.text()
    assert (await by_line.json())["amount"] == "12.50"

    # Then asking for more than remains (7.50) is refused and changes nothing
    too_much = await refund(client, admin, order_id, {"amount": "7.51"})
    assert too_much.status == 409
    assert (await too_much.json())["error"]["code"] == "refund_exceeds_captured"
    again = await refund(client, admin, order_id, {"lines": [{"product_id": product_id,
                                                              "quantity": 2}]})  # fmt: skip
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "refund_exceeds_quantity"

    # When the refund messages run (each twice)
    with Session(engine) as session:
        ids = [str(i) for i in session.scalars(select(Refund.id).where(
            Refund.order_id == uuid.UUID(order_id)))]  # fmt: skip
    assert outbox(engine, m.PROCESS_REFUND) == 2
    for refund_id in ids * 2:
        process_refund(deps, refund_id)

    # Then Stripe refunded each once, the order shows them, and each was e-mailed
    assert sorted(r.amount for r in payments.refund_keys.values()) == [500, 1250]
    kept = order(engine, order_id)
    assert (kept.amount_refunded, kept.payment_status) == (1750, "partially_refunded")
    response = await client.get(f"/v1/orders/{order_id}", headers=bearer(token))
    payment = (await response.json())["payment"]
    assert payment["refunded_amount"] == 1750 and len(payment["refunds"]) == 2
    assert {r["status"] for r in payment["refunds"]} == {"succeeded"}
    assert mailer.kinds(order_id=order_id).count("refunded") == 2


async def test_concurrent_refunds_that_together_exceed_the_capture_accept_one(
    client, deps, engine, payments
):
    # Given a captured order of 25.00
    order_id, _ = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)

    # When two operators refund 15.00 at the same moment
    answers = await asyncio.gather(*(refund(client, admin, order_id, {"amount": "15.00"})
                                     for _ in range(2)))  # fmt: skip

    # Then one is accepted and the other refused, and only one is ever refunded
    assert sorted(a.status for a in answers) == [201, 409]
    with Session(engine) as session:
        ids = [str(i) for i in session.scalars(select(Refund.id))]
    assert len(ids) == 1
    process_refund(deps, ids[0])
    assert [r.amount for r in payments.refund_keys.values()] == [1500]
    assert order(engine, order_id).amount_refunded == 1500


async def test_a_refund_retried_with_its_key_answers_the_first_and_refunds_once(
    client, deps, engine, payments
):
    order_id, _ = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)

    first = await refund(client, admin, order_id, {"amount": "10.00"}, key="refund-1")
    second = await refund(client, admin, order_id, {"amount": "10.00"}, key="refund-1")
    other = await refund(client, admin, order_id, {"amount": "9.00"}, key="refund-1")

    assert (first.status, second.status, other.status) == (201, 201, 422)
    assert (await first.json())["id"] == (await second.json())["id"]
    assert order(engine, order_id).amount_refunded == 1000
    missing = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                                headers=bearer(admin))  # fmt: skip
    assert missing.status == 400


async def test_nothing_captured_means_nothing_to_refund(client, deps, engine):
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)  # authorized, not captured
    admin = await admin_token(client, engine)

    response = await refund(client, admin, order_id, {"amount": "1.00"})

    assert response.status == 409
    assert (await response.json())["error"]["code"] == "nothing_captured"


async def test_a_refund_stripe_refuses_gives_the_amount_back(client, deps, engine, payments):
    order_id, _ = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)
    response = await refund(client, admin, order_id, {"amount": "10.00"})
    refund_id = (await response.json())["id"]
    payments.fail_next("refund", permanent("stripe", "create_refund", "charge_disputed"))

    assert process_refund(deps, refund_id) == FAILED

    kept = order(engine, order_id)
    assert kept.amount_refunded == 0 and kept.payment_status == "captured"
    with Session(engine) as session:
        assert session.get(Refund, uuid.UUID(refund_id)).status == "failed"
