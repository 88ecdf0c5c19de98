"""``fulfillment verify`` on the tax, against the sandbox's Stripe Tax read through the
gateway: orders whose tax was recorded, reversed with a refund and with units cancelled
before the capture pass; a captured order with no sale, a sale that is not the order's,
a reversal not counted and a refund whose tax was never reversed are each reported."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from fulfillment.models import Order, Refund
from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.operations.invariants import check_all
from pipelines.payments.capture import capture_payment
from pipelines.payments.refunds import accept_refund, process_refund
from tests.support.sandbox import RunningSandbox, running_sandbox
from tests.support.steps import advance, order
from tests.support.taxed import REVERSAL_PATH, cancel_unpaid, tax_deps, taxed_order


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def deps(engine, settings, sandbox):
    return tax_deps(engine, settings, sandbox)


def captured(deps, engine, *, cancel_one: bool = False) -> tuple[str, list[uuid.UUID]]:
    order_id, products = taxed_order(deps, engine)
    if cancel_one:  # a mug of two, before the charge: the capture takes the rest
        cancel_unpaid(engine, order_id, products[0], 1)
    advance(deps, order_id, to=S.SHIPPED)
    assert capture_payment(deps, order_id) == SUCCESS
    return order_id, products


def refund_plate(deps, engine, order_id: str, plate: uuid.UUID) -> str:
    """An operator's refund of the plate (8.00 and its tax 0.71), made and settled."""
    with Session(engine) as session, session.begin():
        held = session.get(Order, uuid.UUID(order_id), with_for_update=True)
        lines = [{"product_id": str(plate), "quantity": 1, "amount": 871, "tax": 71}]
        row, statements = accept_refund(held, amount=871, source="operator",
                                        request_key=uuid.uuid4().hex, lines=lines)  # fmt: skip
        for statement in statements:
            session.execute(statement)
    assert process_refund(deps, str(row["id"])) == SUCCESS
    return str(row["id"])


def about(order_id: str, violations: list[str]) -> list[str]:
    return [v for v in violations if order_id in v]


def set_order(engine, order_id: str, **values) -> None:
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id)).values(**values))


def test_orders_whose_tax_was_recorded_and_reversed_pass(deps, engine):
    # Given a captured order whose plate was refunded, and one captured after a mug
    # was cancelled unpaid
    refunded, (_, plate) = captured(deps, engine)
    refund_plate(deps, engine, refunded, plate)
    cancelled, _ = captured(deps, engine, cancel_one=True)
    assert order(engine, refunded).tax_reversed_amount == 71
    assert order(engine, cancelled).tax_reversed_amount == 111

    # When verify reads the database and Stripe Tax
    report = check_all(deps.settings)

    # Then all is well with both orders (the test's products were stocked without a
    # ledger entry: that rule is not this test's)
    assert report.checked_orders == 2
    assert [v for v in report.violations if "ledger says" not in v] == []


def test_verify_finds_a_captured_order_with_no_sale_and_a_sale_that_is_not_the_orders(deps, engine):
    # Given a captured order whose sale was never kept, and one that keeps another's
    lost, _ = captured(deps, engine)
    set_order(engine, lost, tax_transaction_id=None)
    other, _ = captured(deps, engine)
    cheaper, _ = taxed_order(deps, engine, items=((1, "3.00"),))
    advance(deps, cheaper, to=S.SHIPPED)
    assert capture_payment(deps, cheaper) == SUCCESS
    set_order(engine, other, tax_transaction_id=order(engine, cheaper).tax_transaction_id)

    # When verify runs
    violations = check_all(deps.settings).violations

    # Then it reports both
    assert any("no tax transaction was recorded" in v for v in about(lost, violations)), violations
    assert any("the order's tax is" in v for v in about(other, violations)), violations


def test_verify_finds_tax_reversed_that_does_not_add_up(deps, engine):
    # Given a captured order whose refund was reversed but not counted on the order, and
    # one captured after a cancel whose reversal is not counted either
    refunded, (_, plate) = captured(deps, engine)
    refund_plate(deps, engine, refunded, plate)
    set_order(engine, refunded, tax_reversed_amount=0)
    cancelled, _ = captured(deps, engine, cancel_one=True)
    set_order(engine, cancelled, tax_reversed_amount=0)

    # When verify runs
    violations = check_all(deps.settings).violations

    # Then it reports each: what was reversed is not what was given back
    assert any("tax reversed 0" in v and "carry 71" in v for v in about(refunded, violations))
    assert any("before the capture 111" in v for v in about(cancelled, violations)), violations


def test_verify_finds_a_refund_whose_tax_stripe_tax_never_reversed(deps, engine, sandbox):
    # Given a captured order whose plate's refund succeeded but whose reversal was refused
    order_id, (_, plate) = captured(deps, engine)
    sandbox.set_faults(stripe={"fail_next": 1, "error_status": 400, "paths": [REVERSAL_PATH]})
    refund_id = refund_plate(deps, engine, order_id, plate)

    # When verify runs
    violations = about(order_id, check_all(deps.settings).violations)

    # Then it names the refund whose tax Stripe Tax never reversed
    assert any(refund_id in v and "never reversed" in v for v in violations), violations


def test_verify_finds_a_reversal_stripe_tax_does_not_hold(deps, engine):
    # Given a refund kept as reversed by a reversal Stripe Tax has never seen
    order_id, (_, plate) = captured(deps, engine)
    refund_id = refund_plate(deps, engine, order_id, plate)
    with Session(engine) as session, session.begin():
        session.execute(update(Refund).where(Refund.id == uuid.UUID(refund_id))
                        .values(tax_reversal_id="tax_unknown"))  # fmt: skip

    # Then verify reports it
    violations = about(order_id, check_all(deps.settings).violations)
    assert any("does not show tax transaction tax_unknown" in v for v in violations), violations
