"""Every metric the system exports, in one place. Dashboards and alerts depend on these
names (DESIGN.md, "Metrics"); labels are small fixed sets, never an id or an e-mail.

Metric objects are prometheus-client's module-level collectors, as the library intends.
Only Dramatiq's worker processes share their values through files: ``fulfillment
worker`` gives them a folder of their own, emptied at its start, and marks their
environment (``WORKER_METRICS_DIR``; ``cli.workers.metrics_env``). Every other process
(the API, the scheduler, the CLI) keeps its values in its own memory and serves them
from the default registry, whatever ``PROMETHEUS_MULTIPROC_DIR`` says: a shared env file
setting it for every process would otherwise have them write into, and read from, a
folder a worker's start empties.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, values

from fulfillment.transitions import MILESTONES as _MILESTONES

#: Set only in Dramatiq's worker processes, to their multiprocess folder.
WORKER_METRICS_DIR = "FULFILLMENT_WORKER_METRICS_DIR"

# Chosen before the first metric below is made: prometheus-client picks file-backed
# values whenever PROMETHEUS_MULTIPROC_DIR is set at its import.
if not os.environ.get(WORKER_METRICS_DIR):
    values.ValueClass = values.MutexValue

#: Outcome label values of ``fulfillment_step_total``.
STEP_OUTCOMES = ("success", "failed", "retry", "dead")
#: Milestone label values of ``fulfillment_order_lead_time_seconds``.
MILESTONES = tuple(_MILESTONES.values())

#: Event label values of ``fulfillment_email_events_total`` (SendGrid's event types;
#: any other type is counted as ``other``).
EMAIL_EVENTS = ("processed", "deferred", "delivered", "bounce", "dropped", "spamreport",
                "open", "click", "other")  # fmt: skip

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
auth_throttled_total = Counter(
    "fulfillment_auth_throttled_total",
    "Requests refused 429 by the throttle, by route and reason "
    "(address, account, customer, lockout).",
    ["route", "reason"],
)
orders_created_total = Counter(
    "fulfillment_orders_created_total", "Orders accepted (committed) by the API."
)
order_batch_size = Histogram(
    "fulfillment_order_batch_size",
    "Orders written by one API transaction (group commit of POST /v1/orders).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
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
email_events_total = Counter(
    "fulfillment_email_events_total",
    "SendGrid delivery events stored (duplicates not counted), by event: processed, "
    "deferred, delivered, bounce, dropped, spamreport, open, click, other.",
    ["event"],
)
queue_depth = Gauge(
    "fulfillment_queue_depth",
    "Messages in a queue, not yet acknowledged: ready ones under the queue's name, delayed "
    "ones (retries waiting out their backoff) under Dramatiq's delay queue, <queue>.DQ.",
    ["queue"],
    multiprocess_mode="max",
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
oldest_order_age_seconds = Gauge(
    "fulfillment_oldest_order_age_seconds",
    "Seconds the longest-waiting order of each live (non-terminal) state has been in it.",
    ["state"],
    multiprocess_mode="max",
)
authorizations_expiring = Gauge(
    "fulfillment_authorizations_expiring",
    "Card authorizations not yet captured that lapse within AUTHORIZATION_EXPIRY_MARGIN "
    "(Stripe's capture_before), on orders still going on.",
    multiprocess_mode="max",
)
#: What a payment operation can be, and how it can end.
PAYMENT_OPERATIONS = ("authorize", "charge", "requires_action", "capture", "void", "refund",
                      "tax_record", "tax_reversal")  # fmt: skip
PAYMENT_OUTCOMES = ("succeeded", "failed")
payment_operations_total = Counter(
    "fulfillment_payment_operations_total",
    "Payment operations whose outcome an order kept: authorizations and charges taken, "
    "cards needing their owner, captures, voids and refunds; Stripe Tax's sales recorded "
    "at capture and reversals with refunds.",
    ["operation", "outcome"],
)
worker_heartbeats = Gauge(
    "fulfillment_worker_heartbeats",
    "Broker processes (workers, and any process that sent a message) whose heartbeat "
    "Redis saw within the broker's heartbeat timeout.",
    multiprocess_mode="max",
)

#: Outcome label values of ``fulfillment_webhook_deliveries_total``: ``delivered`` (2xx),
#: ``retry`` (failed, will be retried), ``failed`` (failed, out of time), ``abandoned``
#: (its endpoint was disabled).
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "abandoned")
webhook_deliveries_total = Counter(
    "fulfillment_webhook_deliveries_total",
    "Attempts to deliver an event to a merchant's webhook endpoint, by outcome.",
    ["outcome"],
)
webhook_delivery_seconds = Histogram(
    "fulfillment_webhook_delivery_seconds",
    "Time one webhook delivery took, from connecting to the endpoint's answer.",
    buckets=STEP_BUCKETS,
)
webhook_endpoints_disabled_total = Counter(
    "fulfillment_webhook_endpoints_disabled_total",
    "Merchant webhook endpoints disabled after failing for WEBHOOK_DISABLE_AFTER_SECONDS.",
)

#: Outcome label values of ``fulfillment_label_voids_total``: ``submitted`` when a void is
#: asked for, then how the carrier settled it (EasyPost's ``refund_status``).
LABEL_VOID_OUTCOMES = ("submitted", "refunded", "rejected", "not_applicable")
label_voids_total = Counter(
    "fulfillment_label_voids_total",
    "Labels bought for goods that will not ship, voided through the carrier's refund: "
    "asked for (submitted), and settled (refunded, rejected, not_applicable).",
    ["outcome"],
)


#: Providers whose stored webhook events are applied after they are stored (SendGrid's
#: are applied as they are stored).
EVENT_PROVIDERS = ("stripe", "easypost")
provider_events_unapplied = Gauge(
    "fulfillment_provider_events_unapplied",
    "Stored Stripe and EasyPost webhook events still not applied a minute after they "
    "arrived (workers.gauges.UNAPPLIED_AFTER): each is an order that did not move when "
    "its provider said so.",
    ["provider"],
    multiprocess_mode="max",
)

#: Kind label values of ``fulfillment_sweeper_rescues_total``: what the sweeper found
#: dropped and sent again. ``order``: an order past its stage's deadline in a stage its
#: own message moves on (not one waiting on a customer or a provider, which the sweeper
#: only polls); ``webhook_event``: a stored provider event never applied; ``capture``,
#: ``refund``: an order's capture or refund still due; ``refund_row``: a refund accepted
#: but not made; ``notification``: an e-mail never sent.
RESCUE_KINDS = ("order", "webhook_event", "capture", "refund", "refund_row", "notification")
sweeper_rescues_total = Counter(
    "fulfillment_sweeper_rescues",
    "Orders, events, payments and e-mails the sweeper found dropped and sent again: "
    "each is a defect signal (a lost message, a race), never the routine path.",
    ["kind"],
)


def initialise_rescue_series() -> None:
    """Every rescue kind at zero from the scheduler's start, so the first rescue is an
    increase the SweeperRescues alert sees."""
    for kind in RESCUE_KINDS:
        sweeper_rescues_total.labels(kind)


def initialise_label_void_series() -> None:
    """Every outcome at zero from a worker's start, so the first rejected void is an
    increase the LabelVoidsRejected alert sees (a series born at 1 is not)."""
    for outcome in LABEL_VOID_OUTCOMES:
        label_voids_total.labels(outcome)


def initialise_step_series(steps: Iterable[tuple[str, str]]) -> None:
    """Create the step and lead-time series of a worker process at 0, for every
    (pipeline, step) given. A series that appears only with its first event hides that
    event from ``rate()`` and ``increase()``, which need a sample before it."""
    for pipeline, step in steps:
        step_duration_seconds.labels(pipeline, step)
        for outcome in STEP_OUTCOMES:
            step_total.labels(pipeline, step, outcome)
    for milestone in MILESTONES:
        order_lead_time_seconds.labels(milestone)
    for outcome in WEBHOOK_OUTCOMES:
        webhook_deliveries_total.labels(outcome)
    for operation in PAYMENT_OPERATIONS:
        for outcome in PAYMENT_OUTCOMES:
            payment_operations_total.labels(operation, outcome)


def initialise_throttle_series(series: Iterable[tuple[str, str]]) -> None:
    """Create ``fulfillment_auth_throttled_total`` at 0 for every (route, reason) the
    throttle can answer, so that the first refusal shows in ``increase()``."""
    for route, reason in series:
        auth_throttled_total.labels(route, reason)


def email_event_label(event: str) -> str:
    """The label of a SendGrid event type: one of ``EMAIL_EVENTS``."""
    return event if event in EMAIL_EVENTS else "other"


def initialise_email_event_series() -> None:
    """``fulfillment_email_events_total`` at 0 for every event label, so that the first
    bounce shows in ``rate()`` (the bounce-rate alert divides by these)."""
    for event in EMAIL_EVENTS:
        email_events_total.labels(event)
