from __future__ import annotations

import pytest

from fulfillment.states import (
    HAPPY_PATH,
    HOLDABLE,
    TERMINAL,
    IllegalTransition,
    can_transition,
    check_transition,
)
from fulfillment.states import (
    OrderStatus as S,
)


def test_the_happy_path_only_moves_forward():
    for i, current in enumerate(HAPPY_PATH):
        for j, target in enumerate(HAPPY_PATH):
            assert can_transition(current, target) == (j > i), (current, target)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_nothing_leaves_a_terminal_state(terminal):
    assert not any(can_transition(terminal, target) for target in S)


def test_side_exits():
    assert can_transition(S.PENDING, S.REJECTED)
    assert can_transition(S.PAYMENT_PENDING, S.CANCELLED)
    assert can_transition(S.SHIPPED, S.REFUNDED)
    assert not can_transition(S.SHIPPED, S.CANCELLED)  # too late to cancel
    assert not can_transition(S.PAID, S.REJECTED)


def test_needs_attention_is_entered_from_any_live_state_and_resumes():
    live = [s for s in S if s not in TERMINAL and s not in (S.NEEDS_ATTENTION, S.ON_HOLD)]
    assert all(can_transition(s, S.NEEDS_ATTENTION) for s in live)
    assert all(can_transition(S.NEEDS_ATTENTION, s) for s in live)


def test_check_transition_raises_on_a_step_backwards():
    with pytest.raises(IllegalTransition, match="from shipped to paid"):
        check_transition(S.SHIPPED, S.PAID)


def test_on_hold_is_entered_before_shipping_and_left_only_by_release_or_a_cancel():
    # entered from every status before shipping, from nothing later or paused
    assert {s for s in S if can_transition(s, S.ON_HOLD)} == set(HOLDABLE)
    assert not can_transition(S.SHIPPED, S.ON_HOLD)
    assert not can_transition(S.NEEDS_ATTENTION, S.ON_HOLD)
    # left backwards to where it was held (a release), or for a cancel or a refund
    assert {s for s in S if can_transition(S.ON_HOLD, s)} == set(HOLDABLE) | {
        S.CANCELLED,
        S.REFUNDED,
    }
    # never forwards past shipping, never to needs_attention (a dead letter leaves it held)
    assert not can_transition(S.ON_HOLD, S.SHIPPED)
    assert not can_transition(S.ON_HOLD, S.NEEDS_ATTENTION)
    assert not can_transition(S.ON_HOLD, S.REJECTED)


def test_address_invalid_is_left_only_for_fulfilling_or_a_cancel():
    assert can_transition(S.FULFILLING, S.ADDRESS_INVALID)
    assert can_transition(S.ADDRESS_INVALID, S.FULFILLING)
    assert can_transition(S.ADDRESS_INVALID, S.CANCELLED)
    assert not can_transition(S.ADDRESS_INVALID, S.SHIPPED)  # the label comes first
    assert not can_transition(S.PAID, S.ADDRESS_INVALID)


def test_a_finished_order_goes_back_to_an_operator_only_when_a_step_asks():
    # a rejected label void reopens a cancelled or refunded order, and nothing else does
    assert can_transition(S.CANCELLED, S.NEEDS_ATTENTION, reopen=True)
    assert can_transition(S.REFUNDED, S.NEEDS_ATTENTION, reopen=True)
    assert not can_transition(S.CANCELLED, S.NEEDS_ATTENTION)
    assert not can_transition(S.DELIVERED, S.NEEDS_ATTENTION, reopen=True)
    assert not can_transition(S.CANCELLED, S.FULFILLING, reopen=True)
