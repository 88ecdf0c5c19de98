"""What the providers themselves recorded, for ``fulfillment verify``: every
PaymentIntent (authorized, captured, voided) and refund Stripe holds, and every e-mail SendGrid accepted (readable
where the provider allows it: the sandbox's ``GET /v3/messages``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import requests
import stripe
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fulfillment.settings import Settings

#: How often the SDK retries a failed read (a 5xx, a 429) before verify gives up.
AUDIT_RETRIES = 8
#: Most messages one read of the mail log returns.
MAIL_PAGE = 100_000


@dataclass(frozen=True)
class IntentRecord:
    """One PaymentIntent as Stripe holds it."""

    id: str
    status: str
    amount: int
    #: What was captured (Stripe's ``amount_received``).
    captured: int
    capture_method: str


@dataclass
class ProviderRecords:
    succeeded_payments: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    payment_amounts: dict[str, int] = field(default_factory=dict)
    refunded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: Every PaymentIntent of each order, whatever its status.
    intents: dict[str, list[IntentRecord]] = field(default_factory=lambda: defaultdict(list))
    #: Every refund Stripe holds, by id: its status (succeeded, pending, failed, canceled).
    refund_statuses: dict[str, str] = field(default_factory=dict)
    mails: Counter[str] | None = None  # dedup key -> how many were accepted


def read_provider_records(settings: Settings, *, timeout: float = 30.0) -> ProviderRecords:
    records = ProviderRecords()
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    client = stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(), base_addresses=base,
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=AUDIT_RETRIES,  # reads only: the SDK's own retries are safe
    )  # fmt: skip
    for obj in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter():
        intent = obj.to_dict()  # SDK objects are not dicts (stripe >= 15)
        order_id = (intent.get("metadata") or {}).get("order_id")
        if order_id:
            records.intents[order_id].append(IntentRecord(
                id=intent["id"], status=intent["status"], amount=intent["amount"],
                captured=int(intent.get("amount_received") or 0),
                capture_method=intent.get("capture_method") or "automatic"))  # fmt: skip
        if intent["status"] == "succeeded" and order_id:
            records.succeeded_payments[order_id].append(intent["id"])
            records.payment_amounts[intent["id"]] = intent["amount"]
    for obj in client.v1.refunds.list({"limit": 100}).auto_paging_iter():
        refund = obj.to_dict()
        records.refund_statuses[refund["id"]] = refund["status"]
        # only refunds of captured money (a void or an uncaptured remainder is not one)
        if refund["status"] in ("succeeded", "pending") and (
            refund["payment_intent"] in records.payment_amounts
        ):
            records.refunded[refund["payment_intent"]] += refund["amount"]
    records.mails = read_mail_log(settings, timeout=timeout)
    return records


def read_mail_log(settings: Settings, *, timeout: float) -> Counter[str] | None:
    """Accepted e-mails per de-duplication key, or None where the log cannot be read
    (real SendGrid only offers it as a paid add-on)."""
    if not settings.sendgrid_host:
        return None
    session = requests.Session()
    retries = Retry(
        total=AUDIT_RETRIES, backoff_factor=0.2, status_forcelist=(429, 500, 502, 503, 504)
    )
    session.mount("http://", HTTPAdapter(max_retries=retries))
    session.mount("https://", HTTPAdapter(max_retries=retries))
    response = session.get(
        f"{settings.sendgrid_host}/v3/messages",
        params={"limit": MAIL_PAGE},
        headers={"Authorization": f"Bearer {settings.sendgrid_api_key.get_secret_value()}"},
        timeout=timeout,
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return Counter(
        m["custom_args"]["dedup_key"]
        for m in response.json()["messages"]
        if "dedup_key" in m.get("custom_args", {})
    )
