"""The sandbox's EasyPost rate card and one-call buy, through the unmodified SDK: a
shipment created with ``carrier`` and ``service`` is bought as it is created; a service
the control API withdrew is neither rated nor sold (EasyPost's 422, nothing kept); and a
one-call buy whose answer is lost has bought its label all the same (why the gateway
creates, keeps, then buys)."""

from __future__ import annotations

from collections.abc import Iterator

import easypost
import pytest
import requests

from tests.support.sandbox import TEST_TIMEOUT, RunningSandbox, running_sandbox

TO = {"name": "Ada", "street1": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH",
      "country": "GB"}  # fmt: skip
FROM = {"company": "Warehouse", "street1": "417 Montgomery St", "city": "San Francisco",
        "state": "CA", "zip": "94104", "country": "US"}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox) -> easypost.EasyPostClient:
    sandbox.reset()
    return easypost.EasyPostClient("EZTK_test", api_base=f"{sandbox.url}/easypost/v2")


def one_call(client: easypost.EasyPostClient, reference: str, **service: str):
    return client.shipment.create(reference=reference, to_address=TO, from_address=FROM,
                                  parcel={"weight": 10}, **service)  # fmt: skip


def bought(sandbox: RunningSandbox, reference: str) -> list[dict]:
    return [s for s in sandbox.shipments(reference=reference) if s["postage_label"]]


def test_a_one_call_buy_buys_the_service_named_as_the_shipment_is_created(sandbox, client):
    # When a shipment is created naming a carrier and a service (or the carrier's account)
    by_carrier = one_call(client, "order-1", carrier="USPS", service="Priority")
    by_account = one_call(client, "order-2", carrier_accounts=["ca_ups_sandbox"], service="Ground")

    # Then each is bought at once, at that service's rate, with its label and tracker
    assert (by_carrier.selected_rate.carrier, by_carrier.selected_rate.service) == (
        "USPS", "Priority")  # fmt: skip
    assert by_carrier.postage_label.label_url and by_carrier.tracker.status == "pre_transit"
    assert (by_account.selected_rate.carrier, by_account.selected_rate.service) == (
        "UPS", "Ground")  # fmt: skip
    # in one request each, and EasyPost lists them as bought
    assert [r["path"] for r in sandbox.requests("easypost")] == ["/easypost/v2/shipments"] * 2
    listed = client.shipment.all(purchased=True)["shipments"]
    assert {s.id for s in listed} == {by_carrier.id, by_account.id}


def test_a_withdrawn_service_is_neither_rated_nor_sold(sandbox, client):
    # Given the carrier no longer offers USPS Priority
    card = sandbox.withdraw_services(("USPS", "Priority"))
    assert card["withdrawn"] == [["USPS", "Priority"]] and len(card["offered"]) == 3

    # Then a new shipment's rates lack it, and a one-call buy of it is refused, nothing kept
    rated = client.shipment.create(to_address=TO, from_address=FROM, parcel={"weight": 10})
    assert ("USPS", "Priority") not in {(r.carrier, r.service) for r in rated.rates}
    with pytest.raises(easypost.errors.InvalidRequestError) as refused:
        one_call(client, "order-3", carrier="USPS", service="Priority")
    assert (refused.value.http_status, refused.value.code) == (422, "SHIPMENT.POSTAGE.FAILURE")
    assert "USPS Priority" in refused.value.message
    assert sandbox.shipments(reference="order-3") == []

    # When it is offered again, it is sold again
    sandbox.withdraw_services()
    assert one_call(client, "order-3", carrier="USPS", service="Priority").postage_label

    # and a service not on the rate card cannot be withdrawn
    wrong = requests.post(f"{sandbox.url}/_sandbox/easypost/services", timeout=5,
                          json={"withdrawn": [{"carrier": "DHL", "service": "Express"}]})  # fmt: skip
    assert wrong.status_code == 400 and "DHL" in wrong.json()["error"]


def test_a_one_call_buy_whose_answer_is_lost_has_bought_its_label(sandbox, client):
    # Given EasyPost answers shipment creates too late for the client
    sandbox.set_faults(easypost={"timeout_rate": 1.0, "timeout_seconds": 1.5,
                                 "paths": ["POST /easypost/v2/shipments$"]})  # fmt: skip
    impatient = easypost.EasyPostClient("EZTK_test", api_base=client.api_base,
                                        timeout=TEST_TIMEOUT)  # fmt: skip

    # When a one-call buy times out
    with pytest.raises(easypost.errors.TimeoutError):
        one_call(impatient, "order-4", carrier="USPS", service="Priority")

    # Then the label was bought all the same: sending it again would buy a second
    sandbox.clear_faults()
    (label,) = bought(sandbox, "order-4")
    assert label["selected_rate"]["service"] == "Priority"
