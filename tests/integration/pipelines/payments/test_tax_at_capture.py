"""Stripe Tax at capture: an order placed on a calculation has its sale recorded once, when
its money is captured (at shipment, or by an automatic charge), kept in the commit that
keeps the capture; the units cancelled before the capture have their tax reversed with
it; a retry, a worker killed before the commit, or Stripe Tax down records it once; a
refusal keeps the capture. Stripe (payments and tax) is the sandbox, through the real
SDK; the database is real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from fulfillment.models import Order
from fulfillment.states import OrderStatus as S
from fulfillment.tax_share import tax_share
from integrations.errors import TransientProviderError
from pipelines.common import SKIPPED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.tax import NO_CALCULATOR
from tests.support.sandbox import RunningSandbox, running_sandbox
from tests.support.steps import advance, given_order, order
from tests.support.taxed import (
    RECORD_PATH,
    REVERSAL_PATH,
    WorkerDied,
    a_second_sale_is_refused,
    cancel_unpaid,
    dies_at,
    line_tax,
    requests_to,
    tax_deps,
    tax_events,
    taxed_order,
    transaction,
    transaction_tax,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def deps(engine, settings, sandbox):
    return tax_deps(engine, settings, sandbox)


def test_a_captured_order_records_its_tax_once(deps, engine, sandbox):
    # Given an order placed on a tax calculation, shipped, its capture due
    order_id, _ = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)
    placed = order(engine, order_id)
    assert placed.tax_transaction_id is None and placed.tax_amount == 222 + 71 + 53

    # When the capture runs, and runs again
    assert capture_payment(deps, order_id) == SUCCESS
    assert capture_payment(deps, order_id) == SKIPPED

    # Then the money and the sale were kept in one go: the sale is at Stripe Tax under the
    # order's reference, for the order's tax, and no second one can be made
    kept = order(engine, order_id)
    assert kept.amount_captured == kept.total_amount == 3300 + 599 + 346
    sale = transaction(sandbox, kept.tax_transaction_id)
    assert (sale.type, sale.reference) == ("transaction", f"order_{order_id}")
    assert transaction_tax(sandbox, sale.id) == kept.tax_amount
    assert len(requests_to(sandbox, RECORD_PATH)) == 1
    assert a_second_sale_is_refused(sandbox, order_id, kept.tax_calculation_id)
    assert kept.tax_reversed_amount == 0
    assert [e.outcome for e in tax_events(engine, order_id)] == ["tax_recorded"]


def test_a_capture_killed_before_its_commit_records_the_sale_once_when_replayed(
    deps, engine, sandbox
):
    # Given a shipped order on a calculation, and a worker killed after Stripe captured
    # and Stripe Tax recorded, before its commit
    order_id, _ = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)
    with dies_at("capture_payment.before_commit"), pytest.raises(WorkerDied):
        capture_payment(deps, order_id)
    assert order(engine, order_id).tax_transaction_id is None  # nothing was kept

    # When the message is delivered again
    assert capture_payment(deps, order_id) == SUCCESS

    # Then Stripe Tax answered the retry with the sale made first: one sale, kept
    kept = order(engine, order_id)
    recorded = requests_to(sandbox, RECORD_PATH)
    assert len(recorded) == 2
    assert {r["idempotency_key"] for r in recorded} == {f"tax_record_order_{order_id}"}
    assert transaction(sandbox, kept.tax_transaction_id).reference == f"order_{order_id}"
    assert a_second_sale_is_refused(sandbox, order_id, kept.tax_calculation_id)
    assert kept.amount_captured == kept.total_amount
    assert [e.outcome for e in tax_events(engine, order_id)] == ["tax_recorded"]


def test_stripe_tax_down_at_capture_retries_the_step_which_then_records_once(deps, engine, sandbox):
    # Given a shipped order on a calculation, and Stripe Tax answering 503 for a while
    order_id, _ = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)
    sandbox.set_faults(stripe={"fail_next": 10, "paths": [RECORD_PATH]})

    # When the capture runs: Stripe captures, Stripe Tax fails after the call's retries
    with pytest.raises(TransientProviderError):
        capture_payment(deps, order_id)

    # Then nothing is kept, and the capture stays due for the message's retry
    waiting = order(engine, order_id)
    assert (waiting.capture_due, waiting.amount_captured, waiting.tax_transaction_id) == (
        True, 0, None)  # fmt: skip

    # When Stripe Tax is back and the message is retried
    sandbox.clear_faults()
    assert capture_payment(deps, order_id) == SUCCESS

    # Then the capture Stripe made is kept (found by its key, not made again) with the sale
    kept = order(engine, order_id)
    assert kept.amount_captured == kept.total_amount and not kept.capture_due
    assert transaction_tax(sandbox, kept.tax_transaction_id) == kept.tax_amount
    assert a_second_sale_is_refused(sandbox, order_id, kept.tax_calculation_id)
    captures = [r for r in sandbox.requests("stripe")
                if r["path"].endswith("/capture") and r["status"] == 200]  # fmt: skip
    assert {r["idempotency_key"] for r in captures} == {f"order_{order_id}_capture"}


def test_a_sale_stripe_tax_refuses_keeps_the_capture_and_tells_the_timeline(deps, engine, sandbox):
    # Given a shipped order whose calculation Stripe Tax no longer knows
    order_id, _ = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id))
                        .values(tax_calculation_id="taxcalc_unknown"))  # fmt: skip

    # When the capture runs
    assert capture_payment(deps, order_id) == SUCCESS

    # Then the money is kept captured, no sale is kept, and the timeline says why
    kept = order(engine, order_id)
    assert (kept.status, kept.amount_captured, kept.tax_transaction_id) == (
        S.SHIPPED, kept.total_amount, None)  # fmt: skip
    (event,) = tax_events(engine, order_id)
    assert event.outcome == "tax_record_failed" and "taxcalc_unknown" in event.error


def test_units_cancelled_before_the_capture_have_their_tax_reversed_with_the_sale(
    deps, engine, sandbox
):
    # Given an order on a calculation of which one mug of two was cancelled unpaid
    order_id, (mug, _) = taxed_order(deps, engine)
    cancelled = cancel_unpaid(engine, order_id, mug, 1)
    share = tax_share(line_tax(engine, order_id, mug), 2, 0, 1)
    assert cancelled["tax"] == share == 111
    advance(deps, order_id, to=S.SHIPPED)

    # When the capture runs (twice)
    assert capture_payment(deps, order_id) == SUCCESS
    capture_payment(deps, order_id)

    # Then the capture took the total less the cancelled unit, the sale is recorded for
    # the whole order and the cancelled unit's tax reversed at once, and counted
    kept = order(engine, order_id)
    assert kept.amount_captured == kept.total_amount - (1250 + 111)
    assert kept.tax_reversed_amount == 111
    assert transaction_tax(sandbox, kept.tax_transaction_id) == kept.tax_amount
    (event,) = tax_events(engine, order_id)
    reversal = transaction(sandbox, event.details["cancelled_reversal"])
    assert (reversal.type, reversal.reference) == ("reversal", f"order_{order_id}_cancelled")
    assert transaction_tax(sandbox, reversal.id) == -111
    assert len(requests_to(sandbox, REVERSAL_PATH)) == 1


def test_an_automatic_charge_records_the_tax_in_the_commit_that_keeps_it(engine, settings, sandbox):
    deps = tax_deps(engine, settings, sandbox, capture="order")
    # Given an order on a calculation, captured at order
    order_id, _ = taxed_order(deps, engine)

    # When it is reserved and charged
    advance(deps, order_id, to=S.FULFILLING)

    # Then the charge and its sale were kept together
    kept = order(engine, order_id)
    assert (kept.capture_method, kept.amount_captured) == ("automatic", kept.total_amount)
    assert transaction_tax(sandbox, kept.tax_transaction_id) == kept.tax_amount
    assert a_second_sale_is_refused(sandbox, order_id, kept.tax_calculation_id)


def test_an_order_without_a_quote_never_calls_stripe_tax(deps, engine, sandbox):
    # Given an order placed without a quote: no shipping, no tax, no calculation
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)

    # When it is captured
    assert capture_payment(deps, order_id) == SUCCESS

    # Then Stripe Tax was never asked anything
    kept = order(engine, order_id)
    assert (kept.tax_transaction_id, kept.tax_reversed_amount) == (None, 0)
    assert not [r for r in sandbox.requests("stripe") if r["path"].startswith("/v1/tax")]


def test_a_process_without_a_tax_calculator_keeps_the_capture_and_says_so(deps, engine):
    # Given a shipped order on a calculation, and a worker built without Stripe Tax
    order_id, _ = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)

    # When it captures
    assert capture_payment(replace(deps, tax=None), order_id) == SUCCESS

    # Then the money is kept and the timeline says why no sale was recorded
    kept = order(engine, order_id)
    assert (kept.amount_captured, kept.tax_transaction_id) == (kept.total_amount, None)
    (event,) = tax_events(engine, order_id)
    assert (event.outcome, event.error) == ("tax_record_failed", NO_CALCULATOR)
