from __future__ import annotations

import pytest

from fulfillment.states import (
    HAPPY_PATH,
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
    live = [s for s in S if s not in TERMINAL and s != S.NEEDS_ATTENTION]
    assert all(can_transition(s, S.NEEDS_ATTENTION) for s in live)
    assert all(can_transition(S.NEEDS_ATTENTION, s) for s in live)


def test_check_transition_raises_on_a_step_backwards():
    with pytest.raises(IllegalTransition, match="from shipped to paid"):
        check_transition(S.SHIPPED, S.PAID)
