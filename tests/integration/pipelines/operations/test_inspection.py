"""``fulfillment orders show``: what an operator reads of one order, its money included."""

from __future__ import annotations

import uuid

from fulfillment.states import OrderStatus as S
from pipelines.operations.inspection import describe_order
from tests.support.quoted import price_as_quoted
from tests.support.steps import given_order


def test_an_order_on_a_quote_shows_its_subtotal_shipping_and_tax(deps, engine):
    plain, _ = given_order(deps, engine, at=S.PENDING)
    quoted, _ = given_order(deps, engine, at=S.PENDING)
    price_as_quoted(engine, quoted, line_taxes=[222])

    shown = describe_order(deps.settings, uuid.UUID(quoted))
    assert "total    34.73 USD" in shown  # 25.00 + 6.90 + (2.22 + 0.61)
    assert "subtotal 25.00   shipping 6.90 (USPS Priority)   tax 2.83   tax sale -" in shown
    assert "subtotal" not in describe_order(deps.settings, uuid.UUID(plain))
