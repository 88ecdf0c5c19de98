"""The sandbox's pure parts: fault draws, wire decoding, SendGrid's validation, the CLI's
fault flags, the tracker clock, Stripe's subscription lists. No I/O."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from cli.sandbox import parse_faults
from integrations.stripe_events import SUBSCRIBED_EVENTS
from sandbox import ProviderFaults, SandboxConfig
from sandbox.easypost.ledger import EasyPostLedger
from sandbox.easypost.trackers import PROGRESSION
from sandbox.faults import FaultInjector
from sandbox.sendgrid.mail import validate
from sandbox.stripe.endpoints import event_types
from sandbox.wire import decode_form, parse_query

FLAKY = ProviderFaults(error_rate=0.3, rate_limit_rate=0.1, timeout_rate=0.1, latency_jitter=0.5)
ADDRESS = {"street1": "417 Montgomery St", "city": "San Francisco", "zip": "94104"}
#: Seconds between tracker statuses in the clock tests.
STEP = 10.0


def draws(injector: FaultInjector, count: int = 50) -> list[tuple]:
    return [
        (d.status, d.hang, round(d.latency, 6))
        for d in (
            injector.decide("stripe", method="POST", path="/v1/payment_intents")
            for _ in range(count)
        )
    ]


def test_a_seed_fixes_every_draw():
    config = SandboxConfig(seed=11, faults={"stripe": FLAKY})
    assert draws(FaultInjector(config)) == draws(FaultInjector(config))
    assert draws(FaultInjector(config)) != draws(
        FaultInjector(SandboxConfig(seed=12, faults={"stripe": FLAKY}))
    )


def test_reset_replays_the_same_draws():
    injector = FaultInjector(SandboxConfig(seed=5, faults={"stripe": FLAKY}))
    first = draws(injector)
    injector.reset(5)
    assert draws(injector) == first


def test_fail_next_fails_exactly_that_many_then_heals():
    injector = FaultInjector(SandboxConfig())
    injector.configure({"stripe": {"fail_next": 2, "error_status": 429, "retry_after": 3}})
    decisions = [injector.decide("stripe", method="GET", path="/v1/refunds") for _ in range(3)]
    assert [(d.status, d.retry_after) for d in decisions] == [(429, 3), (429, 3), (None, None)]


def test_paths_narrow_the_faults_and_a_dollar_means_exactly():
    faults = ProviderFaults(error_rate=1.0, paths=("POST /easypost/v2/shipments$",))
    assert faults.applies_to("POST", "/easypost/v2/shipments")
    assert not faults.applies_to("POST", "/easypost/v2/shipments/shp_1/buy")
    assert not faults.applies_to("GET", "/easypost/v2/shipments")


def test_webhook_plans_hold_back_and_duplicate_on_request():
    injector = FaultInjector(SandboxConfig())
    injector.configure(
        {
            "easypost": {
                "webhook_reorder_rate": 1,
                "webhook_reorder_hold": 2,
                "webhook_duplicate_rate": 1,
            }
        }
    )
    plan = injector.webhook_plan("easypost")
    assert plan.delay == 2.0 and plan.duplicate_delay is not None
    assert injector.webhook_plan("stripe").duplicate_delay is None


@pytest.mark.parametrize(
    "update",
    [
        {"stripe": {"nope": 1}},
        {"paypal": {}},
        {"*": {"error_rate": 1.5}},
        {"stripe": {"error_status": 200}},
        {"stripe": {"latency": "slow"}},
        {"stripe": []},
    ],
)
def test_bad_fault_updates_change_nothing(update):
    injector = FaultInjector(SandboxConfig(faults={"stripe": FLAKY}))
    with pytest.raises(ValueError):
        injector.configure(update)
    assert injector.faults["stripe"] == FLAKY


def test_stripe_form_bodies_decode_to_nested_params():
    body = (
        "amount=1250&metadata[order_id]=o-1&payment_method_types[0]=card"
        "&automatic_payment_methods[enabled]=false&expand[]=latest_charge"
    )
    assert decode_form(body) == {
        "amount": "1250",
        "metadata": {"order_id": "o-1"},
        "payment_method_types": ["card"],
        "automatic_payment_methods": {"enabled": "false"},
        "expand": ["latest_charge"],
    }


def test_search_queries_parse_into_clauses():
    assert parse_query("metadata['order_id']:'o-1' AND status:\"succeeded\" AND amount:50") == [
        ("metadata", "order_id", "o-1"),
        ("status", None, "succeeded"),
        ("amount", None, "50"),
    ]
    with pytest.raises(ValueError):
        parse_query("status:'a' OR status:'b'")


def test_sendgrid_accepts_a_dynamic_template_mail_and_lists_every_problem_otherwise():
    good = {
        "from": {"email": "a@example.com"},
        "template_id": "d-welcome",
        "personalizations": [{"to": [{"email": "b@example.com"}]}],
    }
    assert validate(good) == []
    assert {e["field"] for e in validate({})} == {
        "personalizations",
        "from.email",
        "content",
        "subject",
    }
    assert [e["field"] for e in validate({**good, "template_id": "welcome"})] == ["template_id"]


def test_cli_fault_flags_apply_to_all_then_to_one_provider():
    faults = parse_faults(
        ("stripe.fail_next=3", "*.paths=POST /v1"), {"latency": 0.2, "seed": None}
    )
    assert faults["stripe"].fail_next == 3 and faults["sendgrid"].fail_next == 0
    assert all(f.latency == 0.2 and f.paths == ("POST /v1",) for f in faults.values())
    with pytest.raises(ValueError):
        parse_faults(("stripe.error_rate",), {})


class Trackers:
    """An EasyPost ledger on a clock the test moves, and the tracker events it sent."""

    def __init__(self, *, step: float = STEP) -> None:
        self.now = 1_000.0
        self.events: list[dict[str, Any]] = []
        self.ledger = EasyPostLedger(self.events.append, clock=lambda: self.now, step_seconds=step)

    def buy(self) -> str:
        shipment = self.ledger.create_shipment(
            {"shipment": {"to_address": ADDRESS, "from_address": ADDRESS, "parcel": {"weight": 8}}},
            origin="http://sandbox",
        )
        rate = {"id": shipment["rates"][0]["id"]}
        bought = self.ledger.buy(shipment["id"], {"rate": rate}, origin="http://sandbox")
        return bought["tracker"]["id"]

    def at(self, now: float) -> list[tuple[str, str, str]]:
        """Move the clock to ``now`` and tick: the moves made, as (tracker, from, to)."""
        self.now, sent = now, len(self.events)
        self.ledger.tick()
        return [
            (e["result"]["id"], e["previous_attributes"]["status"], e["result"]["status"])
            for e in self.events[sent:]
        ]

    def status(self, tracker_id: str) -> str:
        return self.ledger.trackers[tracker_id]["status"]


def test_the_first_tracker_move_comes_a_full_step_after_the_purchase():
    # Given a label bought at t0
    clock = Trackers()
    bought_at = clock.now
    tracker_id = clock.buy()

    # When the clock ticks just before one step has passed, then at one step
    early = clock.at(bought_at + STEP - 0.001)
    on_time = clock.at(bought_at + STEP)

    # Then nothing moved early, and exactly the first move came on time
    assert early == [] and clock.ledger.next_move_at() == bought_at + STEP * 2
    assert on_time == [(tracker_id, "pre_transit", "in_transit")]


def test_the_clock_walks_many_trackers_one_status_a_step_and_then_lets_them_go():
    # Given 1,000 labels bought over 25 seconds, and a clock that ticks at odd times
    clock, rng = Trackers(), random.Random(3)
    bought: dict[str, float] = {}
    for n in range(1_000):
        clock.now = 1_000.0 + n * 0.025
        bought[clock.buy()] = clock.now
    moves: list[tuple[str, str, str]] = []
    now = clock.now
    end = now + 5 * STEP
    while now < end:
        # When the clock ticks, every tracker is where its age says, moved one step at a time
        now += rng.uniform(0.0, STEP / 2)
        moves += clock.at(now)
        for tracker_id, at in bought.items():
            expected = PROGRESSION[min(int((now - at) // STEP), len(PROGRESSION) - 1)]
            assert clock.status(tracker_id) == expected

    # Then each tracker sent exactly one event per move, in order, and none is still moving
    walk = list(itertools.pairwise(PROGRESSION))
    by_tracker: dict[str, list[tuple[str, str]]] = {}
    for tracker_id, before, after in moves:
        by_tracker.setdefault(tracker_id, []).append((before, after))
    assert by_tracker == {tracker_id: walk for tracker_id in bought}
    assert clock.ledger.in_motion == 0 and clock.ledger.next_move_at() is None
    assert clock.at(now + 100 * STEP) == []


def test_only_trackers_still_on_their_way_stay_on_the_clock():
    # Given three trackers: one delivered, one returned to sender, one moving
    clock = Trackers()
    delivered, returned, moving = clock.buy(), clock.buy(), clock.buy()
    clock.ledger.set_status(delivered, "delivered")
    clock.ledger.set_status(returned, "return_to_sender")

    # When a step passes
    moves = clock.at(clock.now + STEP)

    # Then only the moving one moved, and only it is still on the clock
    assert moves == [(moving, "pre_transit", "in_transit")]
    assert clock.ledger.in_motion == 1


def test_the_control_api_still_puts_a_tracker_anywhere_and_the_clock_follows():
    clock = Trackers()
    bought_at = clock.now
    tracker_id = clock.buy()

    # A tracker put in transit early is not moved there a second time
    clock.ledger.set_status(tracker_id, "in_transit")
    assert clock.at(bought_at + STEP) == []
    assert clock.at(bought_at + 2 * STEP) == [(tracker_id, "in_transit", "out_for_delivery")]

    # One put back to pre_transit catches up with its age at the next tick
    clock.ledger.set_status(tracker_id, "pre_transit")
    assert clock.at(bought_at + 2.5 * STEP) == [
        (tracker_id, "pre_transit", "in_transit"),
        (tracker_id, "in_transit", "out_for_delivery"),
    ]

    # One taken off course stays there; put back on course, it moves again
    clock.ledger.set_status(tracker_id, "failure")
    assert clock.at(bought_at + 10 * STEP) == []
    clock.ledger.set_status(tracker_id, "out_for_delivery")
    assert clock.at(bought_at + 10 * STEP) == [(tracker_id, "out_for_delivery", "delivered")]


def test_a_stopped_clock_moves_nothing():
    clock = Trackers(step=0)
    tracker_id = clock.buy()
    assert clock.at(clock.now + 10_000) == [] and clock.status(tracker_id) == "pre_transit"
    assert clock.ledger.next_move_at() is None


def test_subscription_lists_take_stripe_event_types_or_a_star():
    assert event_types(["*"]) == ["*"]
    assert event_types(SUBSCRIBED_EVENTS) == list(SUBSCRIBED_EVENTS)
    for bad in ([], ["payments"], ["payment_intent.*"], ["Payment_Intent.Succeeded"]):
        with pytest.raises(ValueError):
            event_types(bad)


def test_the_readme_lists_the_webhooks_a_production_deployment_subscribes_to():
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert all(f"`{kind}`" in readme for kind in (*SUBSCRIBED_EVENTS, "tracker.updated"))
