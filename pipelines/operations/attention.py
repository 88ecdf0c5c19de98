"""Dead letters and their orders: when a step's retries run out the order is marked
``needs_attention`` with the last error; a redrive puts it back where it stopped."""

from __future__ import annotations

from fulfillment.states import TERMINAL
from fulfillment.states import OrderStatus as S
from pipelines.common import begin, lock_order, move
from pipelines.deps import Deps

#: Statuses an operator acts on next: a dead letter does not move the order.
OPERATOR_STATES = frozenset({S.NEEDS_ATTENTION, S.ON_HOLD})


def mark_needs_attention(deps: Deps, order_id: str, *, step: str, attempt: int, error: str) -> bool:
    """True if the order was moved to needs_attention (it is not, when it already
    finished, is already waiting for an operator, or an operator holds it: the release
    sends its stage's message again)."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or S(order.status) in TERMINAL or order.status in OPERATOR_STATES:
            return False
        order.attention_from = order.status
        move(
            session,
            order,
            S.NEEDS_ATTENTION,
            step=step,
            attempt=attempt,
            outcome="dead",
            error=error[:2000],
        )
    return True


def resume(deps: Deps, order_id: str, *, step: str = "redrive") -> str | None:
    """Put a needs_attention order back in the status it was dead-lettered from, so the
    replayed step finds it where it expects it. Returns that status, or None."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.NEEDS_ATTENTION or order.attention_from is None:
            return None
        target = S(order.attention_from)
        move(session, order, target, step=step, attempt=1, details={"resumed": True})
        order.attention_from = None
    return target.value
