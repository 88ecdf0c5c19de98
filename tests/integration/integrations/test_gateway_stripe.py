"""The Stripe gateway against the sandbox, through the official SDK, over loopback."""

from __future__ import annotations

import uuid

import pytest
import stripe
from prometheus_client import REGISTRY

from integrations.errors import PermanentProviderError, TransientProviderError
from integrations.stripe_gateway import StripeGateway, build_stripe_gateway
from sandbox.config import SEARCH_LAG_SECONDS
from tests.support.sandbox import FAST_RETRIES


def charge(gateway: StripeGateway, order_id: str, *, amount: int = 1250, method="pm_card_visa"):
    return gateway.charge(order_id=order_id, amount=amount, currency="usd", payment_method=method)


def counted(operation: str, outcome: str) -> float:
    labels = {"provider": "stripe", "operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("fulfillment_integration_requests_total", labels) or 0.0


def test_a_retried_payment_step_charges_the_customer_once(sandbox, gateway):
    # Given an order whose payment step already ran once
    order_id = str(uuid.uuid4())
    first = charge(gateway, order_id)

    # When the step runs again (a redelivered message, a worker restart)
    second = charge(gateway, order_id)

    # Then Stripe holds one PaymentIntent for the order, and both runs saw it
    intents = sandbox.search_payment_intents(order_id)
    assert [intent["id"] for intent in intents] == [first.id]
    assert second == first
    assert first.succeeded and first.amount == 1250 and first.order_id == order_id


def test_an_answer_lost_to_a_timeout_is_replayed_not_charged_again(sandbox, gateway):
    # Given Stripe takes the charge but its answer never arrives in time
    sandbox.set_faults(
        stripe={"timeout_rate": 1.0, "timeout_seconds": 5, "paths": ["POST /v1/payment_intents$"]}
    )
    order_id = str(uuid.uuid4())
    impatient = build_stripe_gateway(sandbox.settings(), timeout=0.3, policy=FAST_RETRIES)

    # When the payment step calls Stripe (and retries with the same key)
    with pytest.raises(TransientProviderError) as raised:
        charge(impatient, order_id)
    sandbox.clear_faults()
    payment = charge(gateway, order_id)

    # Then every try carried the order's key, and there is still one PaymentIntent
    assert raised.value.code == "timeout"
    keys = {r["idempotency_key"] for r in sandbox.requests("stripe") if r["method"] == "POST"}
    assert keys == {f"order_{order_id}_payment"}
    assert [i["id"] for i in sandbox.search_payment_intents(order_id)] == [payment.id]


def test_the_same_key_with_another_amount_is_refused_by_stripe(sandbox, gateway):
    # Given an order charged 12.50 under its payment key
    order_id = str(uuid.uuid4())
    charge(gateway, order_id)
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": sandbox.url})

    # When the same key comes back with another amount
    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.payment_intents.create(
            {
                "amount": 999,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "payment_method_types": ["card"],
                "confirm": True,
                "metadata": {"order_id": order_id},
            },
            {"idempotency_key": f"order_{order_id}_payment"},
        )

    # Then Stripe's idempotency error says so, and the gateway calls it permanent
    assert raised.value.http_status == 400
    assert "same parameters" in str(raised.value)
    with pytest.raises(PermanentProviderError) as classified:
        charge(gateway, order_id, amount=999)
    assert classified.value.code == "idempotency_error"


@pytest.mark.parametrize(
    ("method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_a_decline_is_permanent_and_carries_the_decline_code(
    sandbox, gateway, method, decline_code
):
    # Given a card Stripe declines
    order_id = str(uuid.uuid4())
    before = counted("create_payment_intent", "permanent_error")

    # When the order is charged
    with pytest.raises(PermanentProviderError) as raised:
        charge(gateway, order_id, method=method)

    # Then the error is permanent, with Stripe's decline code, after a single try
    assert raised.value.code == decline_code
    assert raised.value.http_status == 402
    assert len(sandbox.requests("stripe")) == 1
    assert counted("create_payment_intent", "permanent_error") == before + 1
    # and the PaymentIntent says why it failed
    sandbox.advance_clock(
        SEARCH_LAG_SECONDS + 1
    )  # Stripe's search is not read-after-write: it catches up
    payment = gateway.find_payment(order_id)
    assert payment.status == "requires_payment_method"
    assert payment.failure_code == decline_code


def test_a_503_storm_is_retried_then_surfaces_as_transient(sandbox, gateway):
    # Given Stripe answers 503 to everything for a while
    sandbox.set_faults(stripe={"fail_next": 50, "error_status": 503})
    before = counted("create_payment_intent", "transient_error")

    # When the order is charged
    with pytest.raises(TransientProviderError) as raised:
        charge(gateway, str(uuid.uuid4()))

    # Then the gateway tried as often as its policy allows, then gave up for now
    assert raised.value.http_status == 503
    assert len(sandbox.requests("stripe")) == FAST_RETRIES.attempts
    assert counted("create_payment_intent", "transient_error") == before + 1


def test_a_short_storm_is_ridden_out_within_the_call(sandbox, gateway):
    # Given two 503s, then a healthy Stripe
    sandbox.set_faults(stripe={"fail_next": 2})
    order_id = str(uuid.uuid4())

    # When the order is charged
    payment = charge(gateway, order_id)

    # Then it is paid, once
    assert payment.succeeded
    assert len(sandbox.search_payment_intents(order_id)) == 1


def test_retry_after_is_honoured(sandbox, gateway):
    # Given Stripe rate-limits the first call and asks for a one-second pause
    sandbox.set_faults(stripe={"fail_next": 1, "error_status": 429, "retry_after": 1})

    # When the order is charged
    payment = charge(gateway, str(uuid.uuid4()))

    # Then the retry came no sooner than Stripe asked (the backoff alone is ~10 ms)
    first, second = sandbox.requests("stripe")[:2]
    assert first["status"] == 429 and second["status"] == 200
    assert second["at"] - first["at"] >= 1.0
    assert payment.succeeded


def test_a_refund_is_made_once_for_the_order(sandbox, gateway):
    # Given a paid order
    order_id = str(uuid.uuid4())
    payment = charge(gateway, order_id)

    # When the refund step runs twice
    first = gateway.refund(order_id=order_id, payment_id=payment.id)
    second = gateway.refund(order_id=order_id, payment_id=payment.id)

    # Then one full refund exists
    assert first == second
    assert (first.amount, first.status, first.payment_id) == (1250, "succeeded", payment.id)


def test_a_refund_is_read_back_as_stripe_holds_it(sandbox, gateway):
    # Given a refunded order
    order_id = str(uuid.uuid4())
    payment = charge(gateway, order_id)
    made = gateway.refund(order_id=order_id, payment_id=payment.id, amount=500, key="refund_1")

    # When the refund is read again
    read = gateway.retrieve_refund(made.id)

    # Then it is the same refund, settled, with no failure
    assert read == made
    assert (read.amount, read.status, read.failure_reason, read.given_back, read.final) == (
        500, "succeeded", None, True, True)  # fmt: skip


def test_cancelling_a_payment_that_never_succeeded(sandbox, gateway):
    # Given a declined order's PaymentIntent
    order_id = str(uuid.uuid4())
    with pytest.raises(PermanentProviderError):
        charge(gateway, order_id, method="pm_card_chargeDeclined")
    sandbox.advance_clock(
        SEARCH_LAG_SECONDS + 1
    )  # Stripe's search is not read-after-write: it catches up
    payment = gateway.find_payment(order_id)

    # When it is cancelled (twice: the step may run again)
    cancelled = gateway.cancel_payment(payment.id, order_id=order_id)
    again = gateway.cancel_payment(payment.id, order_id=order_id)

    # Then it is canceled
    assert cancelled.status == again.status == "canceled"


def _proxy_lookups(monkeypatch) -> list[str]:
    """Every time requests reads the proxy variables for a call, the URL it was for."""
    import requests.sessions

    looked: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counting(url, no_proxy=None):
        looked.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    return looked


def _no_proxy_settings(monkeypatch, tmp_path) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))


def test_without_proxy_variables_calls_do_not_read_the_environment(sandbox, monkeypatch,
                                                                    tmp_path):  # fmt: skip
    _no_proxy_settings(monkeypatch, tmp_path)
    looked = _proxy_lookups(monkeypatch)
    gateway = build_stripe_gateway(sandbox.settings(), timeout=5, policy=FAST_RETRIES)

    charge(gateway, str(uuid.uuid4()))
    charge(gateway, str(uuid.uuid4()))

    assert looked == []


def test_with_a_proxy_variable_requests_keeps_reading_it(sandbox, monkeypatch, tmp_path):
    _no_proxy_settings(monkeypatch, tmp_path)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the sandbox is not proxied
    looked = _proxy_lookups(monkeypatch)
    gateway = build_stripe_gateway(sandbox.settings(), timeout=5, policy=FAST_RETRIES)

    payment = charge(gateway, str(uuid.uuid4()))

    assert payment.succeeded and looked
