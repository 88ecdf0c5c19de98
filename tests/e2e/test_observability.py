"""Proof that the dashboards and alerts work: a real Prometheus (the Debian binary)
scrapes a running system (API, workers, scheduler, sandbox) at 1 s while orders flow,
with declined cards, a short Stripe outage, a slow SendGrid and forged webhooks; then
every metric the code defines, every dashboard query and every alert expression is
checked through Prometheus's HTTP API."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import insert

from fulfillment.models import WebhookEndpoint
from monitoring import metrics
from tests.support.merchant import Receiver
from tests.support.prometheus import (
    Prometheus,
    alert_rules,
    dashboard_queries,
    grafana_expr,
    has_values,
    running_prometheus,
)
from tests.support.storefront import add_product
from tests.support.system import System, wait_until
from tests.support.traffic import place_orders

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"

#: Which process exports what: the API its requests and webhooks, the workers (through
#: Dramatiq's multiprocess exporter) the steps and provider calls, the scheduler the gauges.
EXPORTED_BY = {
    "fulfillment_http_requests_total": "fulfillment-api",
    "fulfillment_webhooks_total": "fulfillment-api",
    "fulfillment_step_total": "fulfillment-worker",
    "fulfillment_integration_requests_total": "fulfillment-worker",
    "fulfillment_order_lead_time_seconds_count": "fulfillment-worker",
    "dramatiq_messages_total": "fulfillment-worker",
    "dramatiq_message_duration_milliseconds_count": "fulfillment-worker",
    "fulfillment_queue_depth": "fulfillment-scheduler",
    "fulfillment_dead_letters": "fulfillment-scheduler",
    "fulfillment_orders_in_state": "fulfillment-scheduler",
    "fulfillment_oldest_order_age_seconds": "fulfillment-scheduler",
}

#: (alert, what it is about) that the faults below must make fire.
EXPECTED_FIRING = {
    # the charge runs in the message that placed the order: its dead letter is there
    ("DeadLettersPresent", "inventory"),
    ("IntegrationErrorRateHigh", "stripe"),
    ("IntegrationLatencyHigh", "sendgrid"),
    ("WebhookSignatureFailures", "stripe"),
}


def scrape_targets(system: System) -> dict[str, str]:
    env = system.env
    return {
        "fulfillment-api": f"127.0.0.1:{env['API_METRICS_PORT']}",
        "fulfillment-worker": f"127.0.0.1:{env['WORKER_METRICS_PORT']}",
        "fulfillment-scheduler": f"127.0.0.1:{env['SCHEDULER_METRICS_PORT']}",
    }


def every_target_up(prometheus: Prometheus) -> bool:
    targets = prometheus.targets()
    return len(targets) == 4 and all(target["health"] == "up" for target in targets)


@pytest.fixture
def prometheus(system, tmp_path):
    with running_prometheus(tmp_path / "prometheus", scrape_targets(system)) as server:
        wait_until(lambda: every_target_up(server), timeout=60, what="every target up",
                   on_fail=lambda: f"{server.targets()}\n{system.logs()}")  # fmt: skip
        yield server


@pytest.fixture
def merchant():
    """A merchant's webhook receiver on loopback."""
    with Receiver() as receiver:
        yield receiver


def forge_webhooks(system: System, count: int) -> None:
    for _ in range(count):
        response = requests.post(
            f"{system.api_url}/v1/webhooks/stripe",
            json={"id": "evt_forged", "type": "payment_intent.succeeded", "data": {}},
            headers={"Stripe-Signature": "t=1,v1=00ff"}, timeout=10,
        )  # fmt: skip
        assert response.status_code == 400


def exported_samples(collector) -> str:
    if isinstance(collector, Counter):
        return f"{collector._name}_total"
    if isinstance(collector, Histogram):
        return f"{collector._name}_count"
    return collector._name


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.system_env(WORKER_MAX_RETRIES="2", WORKER_MAX_BACKOFF_MS="300")
def test_every_metric_dashboard_query_and_alert_works_on_a_running_system(
    system, prometheus, db, merchant
):
    started = time.time() - 5
    product = add_product(db, on_hand=1000)
    # (a merchant's webhook endpoint, so order events are delivered and measured)
    with db.begin() as conn:
        conn.execute(insert(WebhookEndpoint).values(url=merchant.url, event_types=["*"],
                                                    secret="whsec_observability"))  # fmt: skip

    # Given orders flowing, one in five with a declined card
    cards = [DECLINED if i % 5 == 0 else VISA for i in range(10)]
    asyncio.run(place_orders(system.api_url, product, cards))
    assert system.wait_all_terminal(expected=10, timeout=150) == {"delivered": 8, "cancelled": 2}

    # When Stripe fails every call and SendGrid answers slowly, for a short while
    system.faults(stripe={"error_rate": 1.0}, sendgrid={"latency": 2.5})
    asyncio.run(place_orders(system.api_url, product, [VISA] * 6))
    # and someone posts forged webhooks (one first: a counter's first sample is its base)
    forge_webhooks(system, 1)
    time.sleep(2.5)
    forge_webhooks(system, 8)

    # Then the dead-letter and provider alerts fire
    wait_until(lambda: EXPECTED_FIRING.issubset(prometheus.firing()), timeout=150,
               what=f"alerts {sorted(EXPECTED_FIRING)} firing",
               on_fail=lambda: f"firing: {prometheus.firing()}\n{system.logs()}")  # fmt: skip
    system.clear_faults()
    # while the alerts for trouble nobody caused stay quiet
    assert not {name for name, _ in prometheus.firing()} & {"TargetDown", "ApiErrorRateHigh"}

    # And every metric the code defines has samples, from the process that owns it
    for collector in vars(metrics).values():
        if isinstance(collector, Counter | Gauge | Histogram):
            name = exported_samples(collector)
            assert prometheus.query(f"count({name})"), f"{name} has no samples"
    for name, job in EXPORTED_BY.items():
        jobs = {row["metric"]["job"] for row in prometheus.query(f"count by (job) ({name})")}
        assert job in jobs, f"{name} not exported by {job} (only {jobs})"

    # And every dashboard query parses and shows data over the run (the range ends one step
    # past now: its last evaluation point then falls after every sample already written,
    # such as the ALERTS series of an alert that fired a moment ago)
    end = time.time() + 2
    empty = [
        str(query)
        for query in dashboard_queries()
        if not has_values(prometheus.query_range(grafana_expr(query.expr), start=started, end=end))
    ]
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)

    # And every alert expression parses, and every rule evaluates cleanly
    for rule in alert_rules():
        prometheus.query(rule["expr"])  # raises on a parse error
    unhealthy = [(r["name"], r.get("lastError")) for r in prometheus.rules() if r["health"] != "ok"]
    assert not unhealthy
