"""A quoted order's e-mails (issue 24), sent by the real steps through the SendGrid SDK to
the sandbox, which renders them with the repository's templates: the confirmation and
the shipped mail show the subtotal, the shipping paid for, the tax and the total; the
mail of a refund of a taxed line gives its price with its tax share, and says of it the
tax when the notification carries the refund's split."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import OrderLine, Refund
from fulfillment.order_number import order_number
from fulfillment.states import OrderStatus as S
from integrations.sendgrid_gateway import build_sendgrid_mailer
from pipelines.payments.refunds import process_refund
from tests.support.quoted import price_as_quoted
from tests.support.sandbox import (
    FAST_RETRIES,
    TEST_TIMEOUT,
    RunningSandbox,
    running_sandbox,
    wait_for,
)
from tests.support.steps import advance, make_deps, new_customer, new_product, place_orders
from tests.support.storefront import admin_token, bearer

#: The four amounts of the quoted order below, as the plain text of its mails shows them:
#: 2 x 12.50 and 1 x 8.00 (tax 2.22 and 0.71), USPS Priority for 6.90 (tax 0.61).
FOUR_AMOUNTS = (
    "Subtotal: 33.00 USD\nShipping (USPS Priority): 6.90 USD\nTax: 3.54 USD\nTotal: 43.44 USD"
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def deps(engine, settings, payments, carrier, sandbox):
    """The steps, the card captured at order, mailing through the sandbox's SendGrid."""
    sandbox.reset()
    mailer = build_sendgrid_mailer(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)
    at_order = settings.model_copy(update={"payment_capture": "order"})
    return make_deps(engine, at_order, payments, mailer, carrier)


def quoted_order(engine) -> tuple[str, uuid.UUID]:
    """(order id, the mug's product id) of a pending order priced on a quote."""
    mug, plate = new_product(engine, on_hand=5), new_product(engine, on_hand=5, price="8.00")
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 2), (plate, 1))
    amounts = price_as_quoted(engine, order_id, line_taxes=(222, 71), shipping=690,
                              shipping_tax=61)  # fmt: skip
    assert (amounts.subtotal, amounts.tax, amounts.total) == (3300, 354, 4344)
    return order_id, mug


def rendered(sandbox: RunningSandbox, order_id: str, kind: str) -> dict[str, str]:
    """The order's mail of ``kind`` as the sandbox rendered it."""

    def find() -> dict | None:
        mine = [m for m in sandbox.messages() if m["custom_args"].get("order_id") == order_id
                and m["custom_args"].get("kind") == kind]  # fmt: skip
        return mine[0]["rendered"] if mine and mine[0].get("rendered") else None

    return wait_for(find, what=f"the {kind} mail rendered")


def test_a_quoted_orders_confirmation_and_shipped_mail_show_its_four_amounts(deps, engine, sandbox):
    # Given an order priced on a quote: shipping and tax on top of its lines
    order_id, _ = quoted_order(engine)

    # When it is paid, then shipped
    advance(deps, order_id, to=S.SHIPPED)

    # Then both mails show the lines, subtotal, shipping (with what was paid for), tax and total
    for kind in ("order_confirmed", "shipped"):
        mail = rendered(sandbox, order_id, kind)
        assert FOUR_AMOUNTS in mail["plain"], mail["plain"]
        assert "- Mug x 2 at 12.50 USD = 25.00 USD" in mail["plain"]
        for label, amount in (("Subtotal", "33.00"), ("Shipping (USPS Priority)", "6.90"),
                              ("Tax", "3.54")):  # fmt: skip
            assert f'{label}</td><td align="right">{amount} USD</td>' in mail["html"]
        assert "<strong>43.44 USD</strong>" in mail["html"]
    assert rendered(sandbox, order_id, "order_confirmed")["subject"] == (
        f"Order {order_number(order_id)} is confirmed"
    )


async def test_the_refund_of_a_taxed_line_mails_its_price_with_its_tax(
    client, deps, engine, sandbox
):
    # Given a quoted order, paid (captured at order)
    order_id, mug = quoted_order(engine)
    advance(deps, order_id, to=S.FULFILLING)

    # When an operator refunds one of its two mugs, and the refund goes through
    admin = await admin_token(client, engine)
    response = await client.post(
        f"/v1/admin/orders/{order_id}/refunds",
        json={"lines": [{"product_id": str(mug), "quantity": 1}]},
        headers={**bearer(admin), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status == 201, await response.text()
    with Session(engine) as session:
        refund = session.scalar(select(Refund).where(Refund.order_id == uuid.UUID(order_id)))
        taxes = session.scalars(select(OrderLine.tax_amount).where(
            OrderLine.order_id == uuid.UUID(order_id)).order_by(OrderLine.position)).all()  # fmt: skip
    assert (refund.amount, refund.tax_amount, list(taxes)) == (1361, 111, [222, 71])
    process_refund(deps, str(refund.id))

    # Then the mail gives back 12.50 and the unit's share of its line's tax, 1.11,
    # part of the order's total, whose four amounts it shows too
    mail = rendered(sandbox, order_id, "refunded")
    assert "we have refunded 13.61 USD (including 1.11 USD tax)" in mail["plain"], mail["plain"]
    assert "part of its total of 43.44 USD" in mail["plain"]
    assert FOUR_AMOUNTS in mail["plain"]
    assert "<strong>13.61 USD</strong>" in mail["html"]
