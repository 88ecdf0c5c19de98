"""A return's label through the EasyPost gateway, against the sandbox: bought once per
return (reference ``return_<id>``), marked as a return, from the customer back to the
warehouse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from integrations.easypost_gateway import (
    DEFAULT_FROM_ADDRESS,
    EasyPostCarrier,
    build_easypost_carrier,
)
from tests.support.sandbox import FAST_RETRIES, TEST_TIMEOUT, RunningSandbox, running_sandbox

CUSTOMER = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def carrier(sandbox: RunningSandbox) -> EasyPostCarrier:
    sandbox.reset()
    return build_easypost_carrier(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def test_a_return_label_is_bought_once_and_is_a_return(sandbox, carrier):
    # Given a return whose label step already bought its label
    return_id = str(uuid.uuid4())
    first = carrier.ship_return(return_id=return_id, address=CUSTOMER)

    # When the step runs again
    second = carrier.ship_return(return_id=return_id, address=CUSTOMER)

    # Then it is the same label, bought once, on a return shipment between the customer
    # and the warehouse (EasyPost swaps a return's two addresses on the label)
    assert second == first and first.label_url and first.tracking_code
    (shipment,) = sandbox.shipments(reference=f"return_{return_id}")
    assert shipment["id"] == first.shipment_id and shipment["is_return"] is True
    assert shipment["to_address"]["zip"] == CUSTOMER["postal_code"]
    assert shipment["from_address"]["zip"] == DEFAULT_FROM_ADDRESS["zip"]
    buys = [r for r in sandbox.requests("easypost") if r["path"].endswith("/buy")]
    assert len(buys) == 1

    # and a void of it is not applicable: a return label is billed only when scanned
    assert carrier.void_label(first.shipment_id) == "not_applicable"
