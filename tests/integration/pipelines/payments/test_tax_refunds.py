"""Refunds give the tax back at Stripe Tax: an operator's refund by lines reverses those
units' tax share, a shipping refund the shipping's tax (once per order), the
compensation's full refund all the tax left, each once however often its message runs;
Stripe Tax down retries the refund step, which refunds once; a reversal Stripe Tax
refuses keeps the refund. Stripe (payments and tax) is the sandbox, through the real
SDK; the API and the database are real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from fulfillment.tax_share import tax_share
from integrations.errors import TransientProviderError
from pipelines.common import FAILED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.compensation import refund_payment
from pipelines.payments.refunds import process_refund
from pipelines.shipping.tracking import apply_tracking
from tests.support.interleave import hold, in_thread
from tests.support.sandbox import RunningSandbox, running_sandbox
from tests.support.steps import DEADLINE, advance, given_order, order, outbox
from tests.support.storefront import admin_token, bearer
from tests.support.taxed import (
    RECORD_PATH,
    REVERSAL_PATH,
    a_second_sale_is_refused,
    all_reversed,
    line_tax,
    refunded_by_stripe,
    refunds_of,
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


def captured(deps, engine) -> tuple[str, list[uuid.UUID]]:
    """A shipped order of 2 mugs and a plate on a calculation, its money captured."""
    order_id, products = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)
    assert capture_payment(deps, order_id) == SUCCESS
    return order_id, products


async def refund(client, admin: str, order_id: str, body: dict):
    headers = {**bearer(admin), "Idempotency-Key": uuid.uuid4().hex}
    response = await client.post(f"/v1/admin/orders/{order_id}/refunds", json=body,
                                 headers=headers)  # fmt: skip
    return response.status, await response.json()


def refunded_at_stripe(sandbox, engine, order_id: str) -> int:
    return refunded_by_stripe(sandbox, order(engine, order_id).payment_intent_id)


async def test_a_refund_of_one_line_reverses_that_lines_tax_share_once(
    client, deps, engine, sandbox
):
    # Given a captured order on a calculation, and an operator
    order_id, (mug, _) = captured(deps, engine)
    admin = await admin_token(client, engine)

    # When one mug of two is refunded by its line, and its message runs twice
    status, body = await refund(client, admin, order_id,
                                {"lines": [{"product_id": str(mug), "quantity": 1}]})  # fmt: skip
    assert status == 201, body
    share = tax_share(line_tax(engine, order_id, mug), 2, 0, 1)
    assert (body["amount_minor"], body["tax_amount"]) == (1250 + share, share) == (1361, 111)
    assert process_refund(deps, body["id"]) == SUCCESS
    process_refund(deps, body["id"])

    # Then Stripe refunded it once, and Stripe Tax reversed that mug's tax share once
    assert refunded_at_stripe(sandbox, engine, order_id) == 1361
    (kept,) = refunds_of(engine, order_id)
    reversal = transaction(sandbox, kept.tax_reversal_id)
    assert (reversal.type, reversal.reference) == ("reversal", f"refund_{kept.id}")
    assert transaction_tax(sandbox, reversal.id) == -111
    assert order(engine, order_id).tax_reversed_amount == 111
    assert len(requests_to(sandbox, REVERSAL_PATH)) == 1
    assert [e.outcome for e in tax_events(engine, order_id)] == ["tax_recorded", "tax_reversed"]


async def test_a_shipping_refund_gives_back_the_shipping_and_its_tax_once(
    client, deps, engine, sandbox
):
    # Given a captured order that paid 5.99 shipping (tax 0.53), and an operator
    order_id, _ = captured(deps, engine)
    admin = await admin_token(client, engine)
    placed = order(engine, order_id)
    assert (placed.shipping_amount, placed.shipping_tax_amount) == (599, 53)

    # When the shipping is refunded, and then again
    status, body = await refund(client, admin, order_id, {"shipping": True, "reason": "late"})
    again = await refund(client, admin, order_id, {"shipping": True, "amount": "1.00"})

    # Then the first gives back shipping and its tax; the second is refused, nothing made
    assert status == 201, body
    assert (body["amount_minor"], body["shipping_amount"], body["tax_amount"]) == (652, 599, 53)
    assert again[0] == 409 and again[1]["error"]["code"] == "shipping_already_refunded"
    assert len(refunds_of(engine, order_id)) == 1

    # When its message runs
    assert process_refund(deps, body["id"]) == SUCCESS

    # Then Stripe refunded 6.52, and Stripe Tax reversed the shipping's tax
    assert refunded_at_stripe(sandbox, engine, order_id) == 652
    (kept,) = refunds_of(engine, order_id)
    reversal = transaction(sandbox, kept.tax_reversal_id)
    assert (reversal.shipping_cost.amount, reversal.shipping_cost.amount_tax) == (-599, -53)
    assert order(engine, order_id).tax_reversed_amount == 53


async def test_a_shipping_refund_of_an_order_that_paid_none_is_refused(client, deps, engine):
    # Given a captured order placed without a quote (no shipping), and an operator
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    assert capture_payment(deps, order_id) == SUCCESS
    admin = await admin_token(client, engine)

    # When its shipping is refunded, or nothing at all is asked for
    status, body = await refund(client, admin, order_id, {"shipping": True})
    empty = await refund(client, admin, order_id, {"shipping": False})

    # Then both are refused, and nothing is refunded
    assert (status, body["error"]["code"]) == (422, "no_shipping_charged")
    assert empty[0] == 422 and empty[1]["error"]["code"] == "validation_error"
    assert refunds_of(engine, order_id) == []


async def test_the_compensations_full_refund_reverses_all_the_tax_left(
    client, deps, engine, sandbox
):
    # Given a captured order on a calculation, one mug already refunded by its line
    order_id, (mug, _) = captured(deps, engine)
    admin = await admin_token(client, engine)
    _, first = await refund(client, admin, order_id,
                            {"lines": [{"product_id": str(mug), "quantity": 1}]})  # fmt: skip
    assert process_refund(deps, first["id"]) == SUCCESS

    # When its parcel will not arrive and the compensation refunds the rest, twice
    advance(deps, order_id, to=S.IN_TRANSIT)
    assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED
    assert refund_payment(deps, order_id) == SUCCESS
    refund_payment(deps, order_id)

    # Then everything captured is refunded, and every cent of the tax reversed: the
    # compensation's refund carried the mug, the plate and the shipping left
    kept = order(engine, order_id)
    assert (kept.status, kept.amount_refunded) == (S.REFUNDED, kept.amount_captured)
    assert refunded_at_stripe(sandbox, engine, order_id) == kept.amount_captured
    _, compensation = refunds_of(engine, order_id)
    assert compensation.source == "compensation"
    assert (compensation.tax_amount, compensation.shipping_amount) == (kept.tax_amount - 111, 599)
    assert transaction_tax(sandbox, compensation.tax_reversal_id) == -(kept.tax_amount - 111)
    assert kept.tax_reversed_amount == kept.tax_amount
    assert all_reversed(sandbox, kept.tax_transaction_id)


def test_a_capture_held_before_its_commit_while_the_compensation_refunds_records_one_sale(
    deps, engine, sandbox
):
    # Given a shipped order on a calculation whose capture (and sale) Stripe has just
    # made, held before its commit
    order_id, _ = taxed_order(deps, engine)
    advance(deps, order_id, to=S.IN_TRANSIT)
    with hold("capture_payment.before_commit") as point:
        capturing = in_thread(lambda: capture_payment(deps, order_id))
        point.wait_reached()

        # When the parcel is lost and the compensation refunds what Stripe captured
        assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED
        assert refund_payment(deps, order_id) == SUCCESS
        point.release()
        capturing.result(DEADLINE)

    # Then both recorded the one sale (one reference), kept once, and all its tax reversed
    kept = order(engine, order_id)
    assert (kept.status, kept.amount_refunded) == (S.REFUNDED, kept.total_amount)
    assert a_second_sale_is_refused(sandbox, order_id, kept.tax_calculation_id)
    assert kept.tax_reversed_amount == kept.tax_amount
    assert all_reversed(sandbox, kept.tax_transaction_id)
    assert [e.outcome for e in tax_events(engine, order_id)] == ["tax_recorded", "tax_reversed"]


async def test_stripe_tax_down_at_a_refund_retries_the_step_which_refunds_once(
    client, deps, engine, sandbox
):
    # Given a captured order on a calculation, a refund of its plate accepted, and Stripe
    # Tax answering 503 for a while
    order_id, (_, plate) = captured(deps, engine)
    admin = await admin_token(client, engine)
    _, body = await refund(client, admin, order_id,
                           {"lines": [{"product_id": str(plate), "quantity": 1}]})  # fmt: skip
    sandbox.set_faults(stripe={"fail_next": 10, "paths": [REVERSAL_PATH]})

    # When the refund step runs: Stripe refunds, Stripe Tax fails after the call's retries
    with pytest.raises(TransientProviderError):
        process_refund(deps, body["id"])
    (waiting,) = refunds_of(engine, order_id)
    assert (waiting.status, waiting.tax_reversal_id) == ("pending", None)

    # When Stripe Tax is back and the message is retried
    sandbox.clear_faults()
    assert process_refund(deps, body["id"]) == SUCCESS

    # Then Stripe refunded once (the retry found its refund by key) and the tax is reversed
    assert refunded_at_stripe(sandbox, engine, order_id) == 800 + 71
    (kept,) = refunds_of(engine, order_id)
    assert kept.status == "succeeded" and transaction_tax(sandbox, kept.tax_reversal_id) == -71
    assert order(engine, order_id).tax_reversed_amount == 71


async def test_a_reversal_stripe_tax_refuses_keeps_the_refund_and_is_tried_when_sent_again(
    client, deps, engine, sandbox
):
    # Given a captured order on a calculation, a refund of its plate, and Stripe Tax
    # refusing the next reversal
    order_id, (_, plate) = captured(deps, engine)
    admin = await admin_token(client, engine)
    _, body = await refund(client, admin, order_id,
                           {"lines": [{"product_id": str(plate), "quantity": 1}]})  # fmt: skip
    sandbox.set_faults(stripe={"fail_next": 1, "error_status": 400, "paths": [REVERSAL_PATH]})

    # When the refund step runs
    assert process_refund(deps, body["id"]) == SUCCESS

    # Then the customer has the money back; the tax is not reversed, and the timeline says so
    assert refunded_at_stripe(sandbox, engine, order_id) == 871
    (kept,) = refunds_of(engine, order_id)
    assert (kept.status, kept.tax_reversal_id) == ("succeeded", None)
    assert order(engine, order_id).tax_reversed_amount == 0
    assert [e.outcome for e in tax_events(engine, order_id)] == [
        "tax_recorded", "tax_reversal_failed"]  # fmt: skip

    # When its message is sent again (the cause settled): the reversal alone is tried
    assert process_refund(deps, body["id"]) == SUCCESS

    # Then the tax is reversed, the money was not refunded twice
    assert refunded_at_stripe(sandbox, engine, order_id) == 871
    (kept,) = refunds_of(engine, order_id)
    assert transaction_tax(sandbox, kept.tax_reversal_id) == -71
    assert order(engine, order_id).tax_reversed_amount == 71


async def test_a_refund_made_before_the_sale_was_kept_is_reversed_once_it_is(
    client, deps, engine, sandbox
):
    # Given a captured order whose sale Stripe Tax refused at capture, and a refund of its
    # plate that succeeded then, with no sale to reverse its tax from
    order_id, (_, plate) = taxed_order(deps, engine)
    advance(deps, order_id, to=S.SHIPPED)
    sandbox.set_faults(stripe={"fail_next": 1, "error_status": 400, "paths": [RECORD_PATH]})
    assert capture_payment(deps, order_id) == SUCCESS
    assert order(engine, order_id).tax_transaction_id is None
    admin = await admin_token(client, engine)
    _, plate_refund = await refund(client, admin, order_id,
                                   {"lines": [{"product_id": str(plate), "quantity": 1}]})  # fmt: skip
    assert process_refund(deps, plate_refund["id"]) == SUCCESS

    # When the parcel is lost: the compensation records the sale before it refunds the rest
    advance(deps, order_id, to=S.IN_TRANSIT)
    assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED
    assert refund_payment(deps, order_id) == SUCCESS

    # Then the commit that kept the sale sent the plate's refund again, whose tax alone is
    # now reversed: all the order's tax is given back, each part once
    assert outbox(engine, m.PROCESS_REFUND, refund_id=plate_refund["id"]) == 2
    assert process_refund(deps, plate_refund["id"]) == SUCCESS
    process_refund(deps, plate_refund["id"])
    kept = order(engine, order_id)
    assert kept.tax_reversed_amount == kept.tax_amount
    assert all_reversed(sandbox, kept.tax_transaction_id)
    assert [e.outcome for e in tax_events(engine, order_id)] == [
        "tax_record_failed", "tax_reversal_failed", "tax_recorded", "tax_reversed",
        "tax_reversed"]  # fmt: skip
