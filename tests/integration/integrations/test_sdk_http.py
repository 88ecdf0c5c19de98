"""The SDKs' pooled HTTP session (``integrations.sdk_http``), through the Stripe and
EasyPost SDKs against the sandbox: calls share kept-alive connections, and a refused
connection and a late answer are told apart as they were over requests."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from fulfillment.embedded import free_port
from integrations.easypost_gateway import build_easypost_carrier
from integrations.errors import TransientProviderError
from integrations.ports import Parcel
from integrations.sdk_http import PooledSession, sdk_session
from integrations.stripe_gateway import build_stripe_gateway
from tests.support.sandbox import FAST_RETRIES, TEST_TIMEOUT

ADDRESS = {"name": "Ada Lovelace", "line1": "1 Market St", "city": "San Francisco",
           "state": "CA", "postal_code": "94105", "country": "US"}  # fmt: skip


def charge(gateway, order_id: str):
    return gateway.charge(order_id=order_id, amount=1250, currency="usd",
                          payment_method="pm_card_visa")  # fmt: skip


def test_stripe_calls_share_one_connection_and_send_what_the_sdk_built(sandbox, gateway):
    # Given three orders charged one after the other, and one read back
    payments = [charge(gateway, str(uuid.uuid4())) for _ in range(3)]
    assert gateway.retrieve_payment(payments[0].id).id == payments[0].id

    # Then every call went over one kept-alive connection
    session = gateway._client._requestor._client._session
    assert isinstance(session, PooledSession)
    assert session.connections_opened == 1
    # and Stripe got the SDK's form body, key and idempotency key on each POST
    posts = [r for r in sandbox.requests("stripe") if r["method"] == "POST"]
    assert [r["idempotency_key"] for r in posts] == [
        f"order_{p.order_id}_payment" for p in payments
    ]
    assert all(p.amount == 1250 and p.succeeded for p in payments)


def test_a_refused_connection_is_a_connection_error_for_both_sdks(sandbox):
    closed = f"http://127.0.0.1:{free_port()}"
    settings = sandbox.settings(stripe_api_base=closed, easypost_api_base=f"{closed}/v2")
    stripe = build_stripe_gateway(settings, timeout=TEST_TIMEOUT, policy=FAST_RETRIES)
    carrier = build_easypost_carrier(settings, timeout=TEST_TIMEOUT, policy=FAST_RETRIES)

    with pytest.raises(TransientProviderError) as stripe_refused:
        charge(stripe, str(uuid.uuid4()))
    with pytest.raises(TransientProviderError) as easypost_refused:
        carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS, parcel=Parcel(weight_oz=8))

    # nothing was sent: safe to try again at once, unlike a timeout
    assert stripe_refused.value.code == "connection_error"
    assert easypost_refused.value.code == "connection_error"


def test_an_easypost_answer_later_than_the_timeout_is_a_timeout(sandbox):
    sandbox.reset()
    carrier = build_easypost_carrier(sandbox.settings(), timeout=0.3, policy=FAST_RETRIES)
    sandbox.set_faults(easypost={"timeout_rate": 1.0, "timeout_seconds": 1.0,
                                 "paths": ["POST /easypost/v2/shipments$"]})  # fmt: skip
    try:
        with pytest.raises(TransientProviderError) as late:
            carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS, parcel=Parcel(weight_oz=8))
    finally:
        sandbox.clear_faults()
    assert late.value.code == "timeout"


def test_a_query_is_sent_and_json_read_as_requests_would(sandbox):
    # Given two shipments bought
    sandbox.reset()
    carrier = build_easypost_carrier(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)
    for _ in range(2):
        carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS, parcel=Parcel(weight_oz=8))

    # When the list is asked for a page of one, the query given apart from the URL
    session = PooledSession()
    answer = session.request("get", f"{sandbox.url}/easypost/v2/shipments",
                             params={"page_size": 1},
                             headers={"Authorization": "Bearer EZTK_sandbox"},
                             timeout=TEST_TIMEOUT)  # fmt: skip

    # Then the server saw the query: one shipment, and more to come
    assert answer.status_code == 200, answer.text
    listed = json.loads(answer.text)
    assert (len(listed["shipments"]), listed["has_more"]) == (1, True)
    assert answer.headers["content-type"].startswith("application/json")


def test_a_proxy_in_the_environment_keeps_requests(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert isinstance(sdk_session(), requests.Session)
    monkeypatch.delenv("HTTPS_PROXY")
    for name in ("HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    assert isinstance(sdk_session(), PooledSession)
