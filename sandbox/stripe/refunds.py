"""Stripe refunds that settle later, as Stripe's do, on the sandbox clock:

- a refund on ``pm_card_refundFail`` (Stripe's 4000 0000 0000 5126) is created
  ``succeeded`` and turns ``failed`` ``stripe.refund_fail_after`` seconds later
  (``failure_reason: expired_or_canceled_card``);
- under the fault ``stripe.refund_pending`` (a share of new refunds) a refund is created
  ``pending`` (``pending_reason: processing``) and turns ``succeeded``
  ``stripe.refund_settle_after`` seconds later (``failed`` on ``pm_card_refundFail``);
- ``POST /_sandbox/stripe/refunds/{id}/settle {"outcome": "failed" | "succeeded"}``
  settles one under way at once; a refund no longer under way is final (409).

A change of status sends ``charge.refund.updated`` and ``refund.updated`` about the
refund, and ``refund.failed`` as well when it failed; a failed refund gives its amount
back to the charge (``amount_refunded`` goes down). The refunds under way are kept in
the store (``refund_settlement``), so they settle after a restart too. Refunds that
release what was never captured are never under way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.config import REFUND_SETTLE_SECONDS
from sandbox.store import Store

#: How a refund under way can end.
OUTCOMES = ("succeeded", "failed")
#: The store's kind for refunds under way: {"at": sandbox time, "outcome": ...} by id.
KIND = "refund_settlement"
#: Events about a refund whose status changed, by the status it changed to.
EVENTS = {
    "succeeded": ("charge.refund.updated", "refund.updated"),
    "failed": ("charge.refund.updated", "refund.updated", "refund.failed"),
}


@dataclass(frozen=True, slots=True)
class RefundTerms:
    """How a new refund goes: created ``pending`` or not, and the sandbox seconds before
    one under way succeeds (``settle_after``) or, on a card whose refunds fail, fails
    (``fail_after``)."""

    pending: bool = False
    settle_after: float = REFUND_SETTLE_SECONDS
    fail_after: float = REFUND_SETTLE_SECONDS


def opening_status(terms: RefundTerms) -> dict[str, Any]:
    """The status fields a new refund starts with."""
    if terms.pending:
        return {"status": "pending", "pending_reason": "processing"}
    return {"status": "succeeded"}


def plan(terms: RefundTerms, *, failure: str | None) -> tuple[str, float] | None:
    """(outcome, seconds from now) for a new refund that is under way, None for one that
    is final at once: a card whose refunds fail fails later, a pending refund succeeds
    later."""
    if failure is not None:
        return "failed", terms.fail_after
    if terms.pending:
        return "succeeded", terms.settle_after
    return None


def settled_events(before: str, outcome: str) -> tuple[str, ...]:
    """The events a refund settling from ``before`` to ``outcome`` sends: none when its
    status stays as it was."""
    return () if before == outcome else EVENTS[outcome]


class RefundSettlements:
    """The refunds under way and when each settles (sandbox time)."""

    def __init__(self, *, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._under_way: dict[str, dict[str, Any]] = store.load(KIND)

    def plan(self, refund_id: str, *, outcome: str, after: float) -> None:
        entry = {"at": self._clock() + after, "outcome": outcome}
        self._under_way[refund_id] = entry
        self._store.put(KIND, refund_id, entry)

    def under_way(self, refund_id: str) -> bool:
        return refund_id in self._under_way

    def take(self, refund_id: str) -> str:
        """Stop waiting for ``refund_id``; the outcome it was due to settle to."""
        self._store.delete(KIND, refund_id)
        return self._under_way.pop(refund_id)["outcome"]

    def take_due(self) -> list[tuple[str, str]]:
        """(refund id, outcome) of every refund whose time has come, soonest first; they
        are no longer under way."""
        now = self._clock()
        due = sorted((e["at"], rid) for rid, e in self._under_way.items() if e["at"] <= now)
        return [(refund_id, self.take(refund_id)) for _, refund_id in due]
