"""The sandbox verifies addresses and refunds labels as EasyPost does: checked through the
unmodified SDK."""

from __future__ import annotations

from collections.abc import Iterator

import easypost
import pytest

from sandbox.easypost.refunds import REFUND_SETTLE_SECONDS
from tests.support.sandbox import RunningSandbox, running_sandbox

#: EasyPost's own documented test addresses.
HQ = {"street1": "417 Montgomery Street", "city": "San Francisco", "state": "CA",
      "zip": "94104", "country": "US", "company": "EasyPost"}  # fmt: skip
TYPO = {**HQ, "street1": "417 Montgomery Streat", "city": "SF"}
UNDELIVERABLE = {"street1": "UNDELIEVRABLE ST", "city": "San Francisco", "state": "CA",
                 "zip": "94105", "country": "US"}  # fmt: skip
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


def bought(client: easypost.EasyPostClient, **extra):
    shipment = client.shipment.create(reference="order-1", to_address=HQ, from_address=FROM,
                                      parcel={"weight": 10}, **extra)  # fmt: skip
    return client.shipment.buy(shipment.id, rate=shipment.lowest_rate())


def test_a_deliverable_address_verifies_with_its_zip4(client):
    address = client.address.create(verify=True, **HQ)
    assert address.verifications.delivery.success is True
    assert address.verifications.delivery.errors == []
    assert (address.street1, address.city, address.zip) == (
        "417 MONTGOMERY ST", "SAN FRANCISCO", "94104-1129")  # fmt: skip


def test_a_correctable_address_comes_back_corrected(client):
    address = client.address.create_and_verify(**TYPO)
    assert (address.street1, address.city, address.zip) == (
        "417 MONTGOMERY ST", "SAN FRANCISCO", "94104-1129")  # fmt: skip
    # and verifying it again changes nothing
    again = client.address.verify(address.id)
    assert (again.street1, again.zip) == (address.street1, address.zip)


def test_an_undeliverable_address_fails_with_field_errors(client):
    # Without strictness: the Address, with its failed delivery verification
    address = client.address.create(verify=True, **UNDELIVERABLE)
    delivery = address.verifications.delivery
    assert delivery.success is False
    assert [(e.code, e.field) for e in delivery.errors] == [
        ("E.ADDRESS.NOT_FOUND", "address"), ("E.HOUSE_NUMBER.MISSING", "street1")]  # fmt: skip
    # Strictly: EasyPost's 422
    with pytest.raises(easypost.errors.InvalidRequestError) as raised:
        client.address.create_and_verify(**UNDELIVERABLE)
    assert raised.value.code == "ADDRESS.VERIFY.FAILURE"
    assert raised.value.errors[0]["code"] == "E.ADDRESS.NOT_FOUND"
    # and a shipment with verify_strict on its to_address is refused the same way
    with pytest.raises(easypost.errors.InvalidRequestError):
        client.shipment.create(to_address={**UNDELIVERABLE, "verify_strict": True},
                               from_address=FROM, parcel={"weight": 1})  # fmt: skip


def test_without_verify_an_address_is_kept_as_sent(client):
    address = client.address.create(**TYPO)
    assert address.street1 == "417 Montgomery Streat"
    assert address.verifications.to_dict() == {}


def test_a_refund_is_submitted_then_settles_on_the_clock(sandbox, client):
    # Given a bought label
    shipment = bought(client)

    # When it is refunded, twice
    assert client.shipment.refund(shipment.id).refund_status == "submitted"
    assert client.shipment.refund(shipment.id).refund_status == "submitted"

    # Then it settles to refunded once the clock passes, and its tracker never moved
    sandbox.advance_clock(REFUND_SETTLE_SECONDS - 5)
    assert client.shipment.retrieve(shipment.id).refund_status == "submitted"
    sandbox.advance_clock(10)
    settled = client.shipment.retrieve(shipment.id)
    assert settled.refund_status == "refunded"
    assert client.tracker.retrieve(shipment.tracker.id).status == "pre_transit"


def test_a_scanned_label_or_a_forced_outcome_is_rejected(sandbox, client):
    # Given a label the carrier has scanned, and one the control API says to reject
    scanned = bought(client)
    sandbox.set_tracker_status(scanned.tracker.id, "in_transit")
    forced = bought(client)

    # When both are refunded and the clock passes
    client.shipment.refund(scanned.id)
    client.shipment.refund(forced.id)
    sandbox.set_refund_outcome(forced.id, "rejected")
    sandbox.advance_clock(REFUND_SETTLE_SECONDS + 1)

    # Then both are rejected
    assert client.shipment.retrieve(scanned.id).refund_status == "rejected"
    assert client.shipment.retrieve(forced.id).refund_status == "rejected"


def test_return_labels_are_not_applicable_and_unbought_ones_cannot_be_refunded(client):
    returned = bought(client, is_return=True)
    assert client.shipment.refund(returned.id).refund_status == "not_applicable"
    unbought = client.shipment.create(to_address=HQ, from_address=FROM, parcel={"weight": 1})
    with pytest.raises(easypost.errors.InvalidRequestError) as raised:
        client.shipment.refund(unbought.id)
    assert raised.value.code == "SHIPMENT.REFUND.UNAVAILABLE"
