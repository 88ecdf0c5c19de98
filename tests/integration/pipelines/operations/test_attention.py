"""Dead letters (``mark_needs_attention``, ``resume``): an order waits for an operator
and resumes where it stopped; a redriven shipment searches for an earlier label; a
finished order is never marked."""

from __future__ import annotations

import pytest

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.actors import run_steps
from pipelines.common import SKIPPED, SUCCESS
from pipelines.operations.attention import mark_needs_attention, resume
from pipelines.saga import steps_of
from pipelines.shipping.ship import fulfil_order
from tests.support.steps import given_order, order, status, transitions


def test_a_dead_lettered_order_waits_for_an_operator_and_resumes_where_it_stopped(
    deps, engine, carrier
):
    # Given a paid order whose fulfilment message ran out of retries (one paid before
    # packing joined the charge's commit)
    order_id, _ = given_order(deps, engine, at=S.PAID)

    # When it is marked (and the hook fires again)
    error = "TransientProviderError: warehouse unreachable"
    marked = [mark_needs_attention(deps, order_id, step="fulfil_order", attempt=13, error=error)
              for _ in range(2)]  # fmt: skip

    # Then it waits for an operator with the last error, and the steps leave it alone
    assert marked == [True, False]
    assert status(engine, order_id) == S.NEEDS_ATTENTION
    assert order(engine, order_id).last_error == error
    assert transitions(engine, order_id, S.NEEDS_ATTENTION) == 1
    assert fulfil_order(deps, order_id) == SKIPPED

    # When the dead letter is redriven
    assert resume(deps, order_id) == "paid"
    assert resume(deps, order_id) is None

    # Then the order is back where it stopped and its message carries it on: packed,
    # then shipped in the same message
    assert status(engine, order_id) == S.PAID
    assert steps_of(m.FULFIL_ORDER) == ("fulfil_order", "ship_order", "capture_payment")
    assert run_steps(deps, m.FULFIL_ORDER, order_id=order_id) == SUCCESS
    assert status(engine, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.FULFILLING) == 1
    assert carrier.labels_bought == 1


def test_a_dead_lettered_shipment_is_redriven_with_a_search_for_an_earlier_label(
    deps, engine, carrier
):
    # Given a packed order whose label purchase timed out on every try (the carrier
    # may have bought it), dead-lettered
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    carrier.lose_next("ship")
    with pytest.raises(TransientProviderError):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert mark_needs_attention(deps, order_id, step="ship_order", attempt=13, error="timeout")
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SKIPPED

    # When an operator redrives it, as the actor does: resume, then the message's steps
    assert resume(deps, order_id) == "fulfilling"
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS

    # Then the redrive looked for the label first, and no second label was bought
    assert carrier.lookups == [False, True]
    assert carrier.labels_bought == 1
    assert status(engine, order_id) == S.SHIPPED


def test_a_finished_order_is_never_marked_needs_attention(deps, engine):
    # Given a delivered order
    order_id, _ = given_order(deps, engine, at=S.DELIVERED)

    # When a late dead letter for it is reported
    marked = mark_needs_attention(deps, order_id, step="send_notification", attempt=13, error="x")

    # Then it stays delivered
    assert not marked and status(engine, order_id) == S.DELIVERED
