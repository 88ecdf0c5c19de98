"""Stripe refunds that settle later in the sandbox, its pure parts and its ledger on a
clock only the test moves: how a new refund starts and when it settles, the events a
settlement sends and to whom, the pending share's draws, the store. No I/O but a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox import ProviderFaults, SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.store import Store
from sandbox.stripe.endpoints import WebhookEndpoints
from sandbox.stripe.ledger import StripeLedger
from sandbox.stripe.refunds import (
    RefundSettlements,
    RefundTerms,
    opening_status,
    plan,
    settled_events,
)

TERMS = RefundTerms(settle_after=10.0, fail_after=20.0)
PENDING = RefundTerms(pending=True, settle_after=10.0, fail_after=20.0)


def test_a_new_refund_starts_succeeded_or_pending_processing():
    assert opening_status(TERMS) == {"status": "succeeded"}
    assert opening_status(PENDING) == {"status": "pending", "pending_reason": "processing"}


@pytest.mark.parametrize(
    ("terms", "failure", "planned"),
    [
        (TERMS, None, None),
        (PENDING, None, ("succeeded", 10.0)),
        (TERMS, "expired_or_canceled_card", ("failed", 20.0)),
        (PENDING, "expired_or_canceled_card", ("failed", 20.0)),
    ],
)
def test_a_refund_is_under_way_when_pending_or_on_a_card_whose_refunds_fail(
    terms, failure, planned
):
    assert plan(terms, failure=failure) == planned


def test_a_settlement_sends_events_only_when_the_status_changes():
    assert settled_events("succeeded", "succeeded") == ()
    assert settled_events("pending", "succeeded") == ("charge.refund.updated", "refund.updated")
    assert settled_events("succeeded", "failed") == (
        "charge.refund.updated",
        "refund.updated",
        "refund.failed",
    )


def test_refunds_under_way_are_due_when_the_clock_passes_their_time_soonest_first():
    now = [100.0]
    settlements = RefundSettlements(store=Store(), clock=lambda: now[0])
    settlements.plan("re_late", outcome="failed", after=20)
    settlements.plan("re_soon", outcome="succeeded", after=10)

    now[0] += 10
    assert settlements.take_due() == [("re_soon", "succeeded")]
    now[0] += 10
    assert settlements.take_due() == [("re_late", "failed")]
    assert settlements.take_due() == []
    assert not settlements.under_way("re_late")


def test_the_pending_share_draws_from_its_own_seeded_stream():
    flaky = ProviderFaults(error_rate=0.3, refund_pending=0.5)
    plain = FaultInjector(SandboxConfig(seed=3, faults={"stripe": flaky}))
    drawing = FaultInjector(SandboxConfig(seed=3, faults={"stripe": flaky}))

    pendings = [drawing.refund_pending() for _ in range(40)]
    again = FaultInjector(SandboxConfig(seed=3, faults={"stripe": flaky}))

    # the request faults are the same whether refunds draw or not; the seed fixes both
    assert [drawing.decide("stripe", method="GET", path="/").status for _ in range(5)] == [
        plain.decide("stripe", method="GET", path="/").status for _ in range(5)
    ]
    assert pendings == [again.refund_pending() for _ in range(40)]
    assert 0 < sum(pendings) < 40
    never = FaultInjector(SandboxConfig())
    always = FaultInjector(SandboxConfig(faults={"stripe": ProviderFaults(refund_pending=1)}))
    assert not any(never.refund_pending() for _ in range(20))
    assert all(always.refund_pending() for _ in range(20))


def test_the_pending_share_is_a_share():
    with pytest.raises(ValueError, match="refund_pending"):
        ProviderFaults.from_mapping({"refund_pending": 1.5})
    faults = ProviderFaults.from_mapping({"refund_fail_after": "2", "refund_settle_after": 0})
    assert (faults.refund_fail_after, faults.refund_settle_after) == (2.0, 0.0)


def ledger_on(now: list[float], sent: list[tuple[str, list[str]]], **kwargs: Any) -> StripeLedger:
    store = kwargs.pop("store", None)
    endpoints = WebhookEndpoints(
        lambda event, urls: sent.append((event["type"], list(urls))),
        secret="whsec",
        default_url="http://api.test/v1/webhooks/stripe",
        default_events=("charge.refunded", "refund.failed"),
        store=store,
    )
    return StripeLedger(endpoints, store=store, clock=lambda: now[0], **kwargs)


def paid(ledger: StripeLedger, method: str) -> dict[str, Any]:
    return ledger.create_intent(
        {"amount": "2000", "currency": "usd", "payment_method_types": ["card"],
         "payment_method": method, "confirm": "true"}
    )  # fmt: skip


def test_a_failed_refund_is_sent_only_to_endpoints_subscribed_to_each_type():
    now, sent = [1_000.0], []
    ledger = ledger_on(now, sent, refund_terms=lambda: TERMS)
    intent = paid(ledger, "pm_card_refundFail")
    refund = ledger.create_refund({"payment_intent": intent["id"]})

    now[0] += 20
    assert ledger.settle_due() == 1

    url = ["http://api.test/v1/webhooks/stripe"]
    assert sent[-3:] == [("charge.refund.updated", []), ("refund.updated", []),
                         ("refund.failed", url)]  # fmt: skip
    assert ledger.refund(refund["id"])["status"] == "failed"
    assert ledger.book.charges[intent["latest_charge"]]["amount_refunded"] == 0
    kept = ledger.endpoints.list_events({"type": "refund.*"})["data"]
    assert sorted(e["type"] for e in kept) == ["refund.failed", "refund.updated"]


def test_stripe_refunds_load_beside_easypost_refunds_under_way(tmp_path: Path):
    # Given a store holding a Stripe refund and an EasyPost label refund under way,
    # both under the store's kind "refund"
    path = tmp_path / "sandbox.sqlite3"
    store = Store(path)
    ledger = ledger_on([1_000.0], [], store=store)
    refund = ledger.create_refund({"payment_intent": paid(ledger, "pm_card_visa")["id"]})
    store.put("refund", "shp_1", {"requested": 1_000.0, "outcome": None, "scanned": False})
    store.close()

    # When the ledger is built again from it
    again = ledger_on([1_000.0], [], store=Store(path))

    # Then it holds its own refund only, and lists it
    assert list(again.book.refunds) == [refund["id"]]
    assert [r["id"] for r in again.list_refunds({})["data"]] == [refund["id"]]
