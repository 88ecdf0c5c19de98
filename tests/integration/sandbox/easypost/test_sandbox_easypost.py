"""The sandbox speaks enough EasyPost for the unmodified SDK: checked through the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import easypost
import pytest
import requests

from tests.support.sandbox import RunningSandbox, running_sandbox, wait_for

TO = {
    "name": "Ada",
    "street1": "12 St James's Square",
    "city": "London",
    "zip": "SW1Y 4JH",
    "country": "GB",
}
FROM = {
    "company": "Warehouse",
    "street1": "417 Montgomery St",
    "city": "San Francisco",
    "state": "CA",
    "zip": "94104",
    "country": "US",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox) -> easypost.EasyPostClient:
    sandbox.reset()
    return easypost.EasyPostClient("EZTK_test", api_base=f"{sandbox.url}/easypost/v2")


def ship(client: easypost.EasyPostClient, reference: str, weight: float = 10):
    return client.shipment.create(
        reference=reference, to_address=TO, from_address=FROM, parcel={"weight": weight}
    )


def test_create_rate_buy_and_track(sandbox, client):
    # Given a shipment with rates
    shipment = ship(client, "order-1")
    assert isinstance(shipment, easypost.models.Shipment) and len(shipment.rates) == 4

    # When its lowest rate is bought
    bought = client.shipment.buy(shipment.id, rate=shipment.lowest_rate())

    # Then it has a label, a tracking code and a tracker, and the label can be fetched
    assert bought.selected_rate.id == shipment.lowest_rate().id
    assert bought.tracker.status == "pre_transit" and bought.tracking_code
    image = requests.get(bought.postage_label.label_url, timeout=5)
    assert image.headers["Content-Type"] == "image/png"

    # and when the carrier scans it, the tracker and the shipment say so
    sandbox.set_tracker_status(bought.tracker.id, "in_transit")
    tracker = client.tracker.retrieve(bought.tracker.id)
    assert [d.status for d in tracker.tracking_details] == ["pre_transit", "in_transit"]
    assert client.shipment.retrieve(shipment.id).status == "in_transit"


def test_postage_is_bought_once(client):
    shipment = ship(client, "order-2")
    client.shipment.buy(shipment.id, rate=shipment.lowest_rate())
    with pytest.raises(easypost.errors.InvalidRequestError) as raised:
        client.shipment.buy(shipment.id, rate=shipment.lowest_rate())
    assert raised.value.code == "SHIPMENT.POSTAGE.EXISTS"


def test_shipments_list_newest_first_in_pages(client):
    created = [ship(client, f"order-{n}").id for n in range(5)]
    first = client.shipment.all(page_size=2)
    second = client.shipment.get_next_page(first, page_size=2)
    assert [s.id for s in first["shipments"] + second["shipments"]] == created[::-1][:4]
    assert second["has_more"] is True
    bought = client.shipment.all(purchased=True)
    assert bought["shipments"] == []


def test_bad_input_answers_like_easypost(client):
    with pytest.raises(easypost.errors.InvalidRequestError) as address:
        client.shipment.create(to_address={"name": "x"}, from_address=FROM, parcel={"weight": 1})
    assert address.value.code == "ADDRESS.VERIFY.FAILURE"
    assert {e["field"] for e in address.value.errors} == {
        "to_address.street1",
        "to_address.city",
        "to_address.zip",
    }
    with pytest.raises(easypost.errors.NotFoundError):
        client.shipment.retrieve("shp_nope")
    unauthorized = easypost.EasyPostClient("", api_base=client.api_base)
    with pytest.raises(easypost.errors.UnauthorizedError):
        unauthorized.shipment.all()


def test_without_a_clock_trackers_stand_still(sandbox, client):
    # Given a sandbox whose tracker clock is stopped (step 0), and a bought label
    shipment = ship(client, "order-3")
    bought = client.shipment.buy(shipment.id, rate=shipment.lowest_rate())

    # When an hour passes
    sandbox.advance_clock(3600)

    # Then the tracker is where it was, and can be found by its code
    found = client.tracker.all(tracking_code=bought.tracking_code)["trackers"]
    assert [(t.id, t.status) for t in found] == [(bought.tracker.id, "pre_transit")]


def test_with_a_clock_trackers_walk_to_delivered_on_their_own():
    # Given a sandbox whose trackers move every 50 ms
    with running_sandbox(tracker_step_seconds=0.05) as sandbox:
        client = easypost.EasyPostClient("EZTK_test", api_base=f"{sandbox.url}/easypost/v2")
        shipment = ship(client, "order-4")

        # When a label is bought
        bought = client.shipment.buy(shipment.id, rate=shipment.lowest_rate())

        # Then its tracker reaches delivered through every status on the way
        wait_for(
            lambda: client.tracker.retrieve(bought.tracker.id).status == "delivered",
            what="delivery",
        )
        tracker = client.tracker.retrieve(bought.tracker.id)
        assert [d.status for d in tracker.tracking_details] == [
            "pre_transit",
            "in_transit",
            "out_for_delivery",
            "delivered",
        ]
