"""Every metric the system exports, in one place. Dashboards and alerts depend on these
names (DESIGN.md, "Metrics"); labels are small fixed sets, never an id or an e-mail.

Metric objects are prometheus-client's module-level collectors, as the library intends.
In worker processes ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is imported,
so the values go to the shared multiprocess files.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Buckets for in-process HTTP handling, in seconds.
HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Buckets for pipeline steps and provider calls, which wait on the network.
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Buckets for order lead times (accepted -> milestone), up to a week.
LEAD_TIME_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400)

http_requests_total = Counter(
    "fulfillment_http_requests_total",
    "HTTP requests answered by the API.",
    ["method", "route", "status"],
)
http_request_duration_seconds = Histogram(
    "fulfillment_http_request_duration_seconds",
    "Time the API took to answer, by route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
orders_created_total = Counter(
    "fulfillment_orders_created_total", "Orders accepted (committed) by the API."
)
order_transitions_total = Counter(
    "fulfillment_order_transitions_total",
    "Order status changes.",
    ["from_state", "to_state"],
)
step_duration_seconds = Histogram(
    "fulfillment_step_duration_seconds",
    "Time one pipeline step took.",
    ["pipeline", "step"],
    buckets=STEP_BUCKETS,
)
step_total = Counter(
    "fulfillment_step_total",
    "Pipeline step runs by outcome (success, retry, failed, dead).",
    ["pipeline", "step", "outcome"],
)
integration_requests_total = Counter(
    "fulfillment_integration_requests_total",
    "Calls to Stripe, SendGrid and EasyPost by outcome.",
    ["provider", "operation", "outcome"],
)
integration_request_duration_seconds = Histogram(
    "fulfillment_integration_request_duration_seconds",
    "Time a provider call took, retries included.",
    ["provider", "operation"],
    buckets=STEP_BUCKETS,
)
webhooks_total = Counter(
    "fulfillment_webhooks_total",
    "Provider webhooks received by outcome (accepted, duplicate, invalid_signature, rejected).",
    ["provider", "outcome"],
)
queue_depth = Gauge(
    "fulfillment_queue_depth", "Messages waiting in a queue.", ["queue"], multiprocess_mode="max"
)
dead_letters = Gauge(
    "fulfillment_dead_letters",
    "Messages in a queue's dead-letter queue.",
    ["queue"],
    multiprocess_mode="max",
)
outbox_pending = Gauge(
    "fulfillment_outbox_pending", "Outbox rows not yet delivered.", multiprocess_mode="max"
)
orders_in_state = Gauge(
    "fulfillment_orders_in_state", "Orders per status.", ["state"], multiprocess_mode="max"
)
order_lead_time_seconds = Histogram(
    "fulfillment_order_lead_time_seconds",
    "Time from acceptance to a milestone (paid, shipped, delivered).",
    ["milestone"],
    buckets=LEAD_TIME_BUCKETS,
)
