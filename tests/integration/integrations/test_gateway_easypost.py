"""The EasyPost carrier against the sandbox, through the official SDK, over loopback: one
label per reference however a try ends, of the service paid for when there is one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from integrations.easypost_gateway import EasyPostCarrier, build_easypost_carrier
from integrations.errors import PermanentProviderError, ServiceNotOffered, TransientProviderError
from integrations.ports import Parcel, ShippingService, TrackerStatus
from tests.support.sandbox import FAST_RETRIES, TEST_TIMEOUT, RunningSandbox, running_sandbox

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}

#: A service a customer paid for (a quote's option), dearer than the cheapest rate.
PRIORITY = ShippingService("USPS", "Priority")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def carrier(sandbox: RunningSandbox) -> EasyPostCarrier:
    sandbox.reset()
    return build_easypost_carrier(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def test_a_retried_shipping_step_buys_one_label(sandbox, carrier):
    # Given an order whose shipping step already bought a label
    order_id = str(uuid.uuid4())
    first = carrier.ship(order_id=order_id, address=ADDRESS, parcel=Parcel(weight_oz=24))

    # When the step runs again
    second = carrier.ship(order_id=order_id, address=ADDRESS, parcel=Parcel(weight_oz=24))

    # Then it is the same shipment and label: the cheapest rate, bought once
    assert second == first
    (shipment,) = sandbox.shipments(reference=order_id)
    assert shipment["id"] == first.shipment_id
    assert (first.carrier, first.service, first.rate) == ("USPS", "GroundAdvantage", "5.80")
    buys = [r for r in sandbox.requests("easypost") if r["path"].endswith("/buy")]
    assert len(buys) == 1


def test_a_create_whose_answer_was_lost_leaves_an_unbought_shipment_and_one_label(sandbox, carrier):
    # Given EasyPost creates shipments but answers too late for the client
    sandbox.set_faults(easypost={"timeout_rate": 1.0, "timeout_seconds": 1.5,
                                 "paths": ["POST /easypost/v2/shipments$"]})  # fmt: skip
    order_id = str(uuid.uuid4())

    # When the order is shipped: every try's create times out, so nothing is bought
    with pytest.raises(TransientProviderError):
        carrier.ship(order_id=order_id, address=ADDRESS)
    assert sandbox.shipments(reference=order_id)
    assert not [s for s in sandbox.shipments(reference=order_id) if s["postage_label"]]

    # When EasyPost answers again and the step is retried
    sandbox.clear_faults()
    label = carrier.ship(order_id=order_id, address=ADDRESS)

    # Then one label is bought: the shipments whose answer was lost stay unbought (free)
    (bought,) = [s for s in sandbox.shipments(reference=order_id) if s["postage_label"]]
    assert label.shipment_id == bought["id"]
    assert len([r for r in sandbox.requests("easypost") if r["path"].endswith("/buy")]) == 1


def test_a_retry_whose_address_was_corrected_buys_for_the_new_address(sandbox, carrier):
    # Given a shipment made and kept for an order, whose purchase never happened
    order_id = str(uuid.uuid4())
    sandbox.set_faults(easypost={"fail_next": 3, "error_status": 503,
                                 "paths": ["POST /easypost/v2/shipments/"]})  # fmt: skip
    with pytest.raises(TransientProviderError):
        carrier.ship(order_id=order_id, address=ADDRESS)
    sandbox.clear_faults()

    # When the order ships to a corrected address
    corrected = {**ADDRESS, "line1": "13 St James's Square"}
    label = carrier.ship(order_id=order_id, address=corrected)

    # Then the label is for the corrected address, and it is the one label
    (bought,) = [s for s in sandbox.shipments(reference=order_id) if s["postage_label"]]
    assert bought["id"] == label.shipment_id
    assert bought["to_address"]["street1"].upper().startswith("13 ST JAMES")
    assert carrier.find_shipment(order_id) == label


def test_an_undeliverable_address_is_a_permanent_error(sandbox, carrier):
    # When an order is shipped to an address EasyPost cannot find
    address = {**ADDRESS, "line1": "1 Undeliverable Lane"}
    with pytest.raises(PermanentProviderError) as raised:
        carrier.ship(order_id=str(uuid.uuid4()), address=address)

    # Then EasyPost's code comes back at once
    assert (raised.value.http_status, raised.value.code) == (422, "ADDRESS.VERIFY.FAILURE")


def test_retry_after_is_honoured_for_easypost(sandbox, carrier):
    # Given EasyPost rate-limits the first call and asks for a one-second pause
    sandbox.set_faults(easypost={"fail_next": 1, "error_status": 429, "retry_after": 1})

    # When an order is shipped
    carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS)

    # Then the retry waited as long as asked (the SDK drops headers; the gateway keeps them)
    first, second = sandbox.requests("easypost")[:2]
    assert first["status"] == 429
    assert second["at"] - first["at"] >= 1.0


def test_the_tracker_follows_the_parcel(sandbox, carrier):
    # Given a shipped order
    label = carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS)
    assert carrier.retrieve_tracker(label.tracker_id).status == TrackerStatus.PRE_TRANSIT

    # When the carrier reports progress
    sandbox.set_tracker_status(label.tracker_id, "out_for_delivery")

    # Then both ways of asking see it
    assert carrier.retrieve_tracker(label.tracker_id).status == TrackerStatus.OUT_FOR_DELIVERY
    found = carrier.find_tracker(label.tracking_code)
    assert (found.id, found.shipment_id) == (label.tracker_id, label.shipment_id)
    assert carrier.find_tracker("no-such-code") is None


def test_find_shipment_sees_only_bought_labels(sandbox, carrier):
    order_id = str(uuid.uuid4())
    assert carrier.find_shipment(order_id) is None
    label = carrier.ship(order_id=order_id, address=ADDRESS)
    assert carrier.find_shipment(order_id) == label


def easypost_calls(sandbox: RunningSandbox) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in sandbox.requests("easypost")]


def test_the_service_paid_for_is_bought_in_one_create_and_one_buy(sandbox, carrier):
    # When an order placed on a quote's USPS Priority option gets its label, first try
    label = carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS, service=PRIORITY,
                         lookup=False)  # fmt: skip
    made = easypost_calls(sandbox)

    # Then it is USPS Priority, not the cheapest rate (USPS GroundAdvantage at 5.45)
    assert (label.carrier, label.service, label.rate) == ("USPS", "Priority", "8.45")
    # bought in one create and one buy of that shipment, with no read of it
    assert made == ["POST /easypost/v2/shipments",
                    f"POST /easypost/v2/shipments/{label.shipment_id}/buy"]  # fmt: skip


def test_a_service_no_longer_offered_buys_nothing_until_it_is_offered_again(sandbox, carrier):
    # Given EasyPost no longer offers USPS Priority
    sandbox.withdraw_services(("USPS", "Priority"))
    order_id = str(uuid.uuid4())

    # When an order paid for it is shipped
    with pytest.raises(ServiceNotOffered) as refused:
        carrier.ship(order_id=order_id, address=ADDRESS, service=PRIORITY)

    # Then nothing is bought (no cheaper service instead), and the refusal, permanent,
    # says which service and what is offered
    assert isinstance(refused.value, PermanentProviderError)
    assert refused.value.message == (
        "USPS Priority is no longer offered for this parcel (offered: USPS GroundAdvantage, "
        "UPS Ground, FedEx FEDEX_2_DAY)")  # fmt: skip
    assert not [call for call in easypost_calls(sandbox) if call.endswith("/buy")]

    # When it is offered again and the step is retried
    sandbox.withdraw_services()
    label = carrier.ship(order_id=order_id, address=ADDRESS, service=PRIORITY)

    # Then it is bought from a new shipment (the kept one's rates are as of its making),
    # and it is the one label of the order
    assert label.service == "Priority"
    shipments = sandbox.shipments(reference=order_id)
    assert [s["id"] for s in shipments if s["postage_label"]] == [label.shipment_id]
    assert len(shipments) == 2
    assert carrier.find_shipment(order_id) == label


def test_a_paid_for_label_whose_answer_was_lost_is_bought_once(sandbox, carrier):
    # Given EasyPost sells labels but answers too late for the client
    sandbox.set_faults(easypost={"timeout_rate": 1.0, "timeout_seconds": 1.5,
                                 "paths": ["POST /easypost/v2/shipments/"]})  # fmt: skip
    order_id = str(uuid.uuid4())

    # When an order paid for USPS Priority is shipped
    label = carrier.ship(order_id=order_id, address=ADDRESS, service=PRIORITY, lookup=False)

    # Then the retry found the label the lost answer had bought: one, of that service
    (bought,) = [s for s in sandbox.shipments(reference=order_id) if s["postage_label"]]
    assert (bought["id"], label.service) == (label.shipment_id, "Priority")
    assert len([call for call in easypost_calls(sandbox) if call.endswith("/buy")]) == 1


def test_a_label_is_bought_without_building_the_sdks_shipment_objects(sandbox, carrier,
                                                                      monkeypatch):  # fmt: skip
    # Given the SDK's shipment calls made unusable: their answers become objects
    def refused(**_):
        raise AssertionError("the label's calls read EasyPost's JSON as it came")

    monkeypatch.setattr("easypost.services.shipment_service.convert_to_easypost_object", refused)
    monkeypatch.setattr("easypost.services.base_service.convert_to_easypost_object", refused)
    order_id = str(uuid.uuid4())

    # When an order's label is bought, and found again by a later try
    label = carrier.ship(order_id=order_id, address=ADDRESS, service=PRIORITY)
    again = carrier.ship(order_id=order_id, address=ADDRESS, service=PRIORITY)

    # Then it is the paid-for service's label, once
    (bought,) = [s for s in sandbox.shipments(reference=order_id) if s["postage_label"]]
    assert (label.shipment_id, label.service) == (bought["id"], "Priority")
    assert again == label and carrier.find_shipment(order_id) == label
