"""The sandbox's pure parts: fault draws, wire decoding, SendGrid's validation, the CLI's
fault flags. No I/O."""

from __future__ import annotations

import pytest

from cli.sandbox import parse_faults
from integrations.sandbox import ProviderFaults, SandboxConfig
from integrations.sandbox.faults import FaultInjector
from integrations.sandbox.sendgrid_mail import validate
from integrations.sandbox.wire import decode_form, parse_query

FLAKY = ProviderFaults(error_rate=0.3, rate_limit_rate=0.1, timeout_rate=0.1, latency_jitter=0.5)


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
