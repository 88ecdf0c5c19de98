"""Shipping through the official EasyPost SDK (``easypost.EasyPostClient``).

EasyPost takes no idempotency keys, and its shipment list cannot be searched by
``reference`` (it pages newest first, 100 at a time: at 20 orders a second the 300
newest are 15 seconds of traffic). So the shipment made for a reference (the order id,
``return_<id>``) is kept in a ``ShipmentLedger`` - committed - before it is bought, and
only a kept shipment is ever bought: a retry, however late, retrieves that shipment by
id and buys it only if no earlier try did. A create whose answer was lost leaves an
unbought shipment nobody pays for.

An order placed on a quote's option has its label bought for the service the customer
paid for (``ShippingService``), picked from the kept shipment's rates; when they lack
it, ``ServiceNotOffered`` and nothing is bought (never a cheaper service instead). Such
a label is not bought with EasyPost's one-call buy (``carrier`` and ``service`` on the
create), though that saves the buy call: a one-call create buys as it creates, so one
whose answer was lost (a timeout, which the in-call retry and the next try send again)
would have bought a label no ledger knew of, and every resend another. Created then
bought, the purchase is of a kept shipment, which EasyPost sells once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import easypost
import easypost.errors
import requests
from easypost.requestor import RequestMethod, Requestor
from requests.adapters import HTTPAdapter

from fulfillment.checkpoints import reach
from fulfillment.settings import Settings
from fulfillment.shipping_options import ShippingRate
from integrations.easypost_ledger import MemoryShipmentLedger, request_digest, return_reference
from integrations.easypost_wire import (
    from_easypost_address,
    offers,
    pick_rate,
    to_easypost_address,
    to_easypost_parcel,
    to_label,
    to_shipping_rate,
    to_tracking,
    tracker_status,
)
from integrations.errors import classify, our_address_field
from integrations.ports import (
    AddressProblem,
    KeptShipment,
    Label,
    LiveLabel,
    Parcel,
    ShipmentLedger,
    ShippingService,
    Tracking,
    VerifiedAddress,
    ships_as_is,
)
from integrations.retry import DEFAULT_POLICY, RetryPolicy, call_provider
from integrations.sdk_http import sdk_session

T = TypeVar("T")
GET, POST = RequestMethod.GET, RequestMethod.POST

#: Provider label in metrics and errors.
PROVIDER = "easypost"
#: Seconds one HTTP request to EasyPost may take.
DEFAULT_TIMEOUT = 10.0
#: EasyPost's own API, used when EASYPOST_API_BASE is unset.
EASYPOST_API_BASE = "https://api.easypost.com/v2"
#: Where parcels leave from unless told otherwise.
DEFAULT_FROM_ADDRESS: Mapping[str, str] = {
    "company": "Fulfillment Warehouse",
    "street1": "417 Montgomery Street",
    "city": "San Francisco",
    "state": "CA",
    "zip": "94104",
    "country": "US",
    "phone": "4155550100",
}
#: How far back ``fulfillment verify`` looks for bought labels.
LOOKBACK = timedelta(days=30)
#: EasyPost's answer to buying a shipment already bought.
POSTAGE_EXISTS = "SHIPMENT.POSTAGE.EXISTS"
#: How many pages of 100 bought labels ``fulfillment verify`` reads at most.
AUDIT_PAGES = 50


class EasyPostCarrier:
    """The ``Carrier`` port on EasyPost shipments and trackers."""

    def __init__(
        self,
        client: easypost.EasyPostClient,
        *,
        from_address: Mapping[str, str] = DEFAULT_FROM_ADDRESS,
        policy: RetryPolicy = DEFAULT_POLICY,
        ledger: ShipmentLedger | None = None,
    ) -> None:
        self._client = client
        #: Process-local unless given: the worker's wiring gives the database's.
        self._ledger = ledger if ledger is not None else MemoryShipmentLedger()
        self._from_address = dict(from_address)
        self._policy = policy
        self._seen = threading.local()
        client.subscribe_to_response_hook(self._remember_headers)

    def ship(
        self,
        *,
        order_id: str,
        address: Mapping[str, Any],
        parcel: Parcel | None = None,
        service: ShippingService | None = None,
        lookup: bool = True,
        from_address: Mapping[str, Any] | None = None,
    ) -> Label:
        """Buy the order's label, once, from ``from_address`` (a stock location's; None:
        the configured ship-from address), of ``service`` (None: the cheapest rate).
        With ``lookup`` (any try after the first), the shipment an earlier try kept is
        retrieved and bought only if it is not yet; a first try skips that read. The
        destination is verified strictly by the shipment itself (an undeliverable one
        is ``ADDRESS.VERIFY.FAILURE``), unless an operator said to ship it as it is."""
        reference = str(order_id)
        to_address = to_easypost_address(address)
        if not ships_as_is(address):  # the shipment's own strict verification: no extra call
            to_address["verify_strict"] = True
        params = {
            "reference": reference,
            "to_address": to_address,
            "from_address": self._ship_from(from_address),
            "parcel": to_easypost_parcel(parcel or Parcel()),
        }
        return to_label(self._bought(params, service, lookup=lookup))

    def rates(
        self,
        *,
        address: Mapping[str, Any],
        parcel: Parcel,
        from_address: Mapping[str, Any] | None = None,
    ) -> list[ShippingRate]:
        """EasyPost's rates for a shipment made for them and never bought (a quote): one
        ``POST /shipments``, no reference, no verification of the destination (the
        label's purchase verifies it)."""
        params = {
            "to_address": to_easypost_address(address),
            "from_address": self._ship_from(from_address),
            "parcel": to_easypost_parcel(parcel),
        }
        shipment = self._call("quote_rates", lambda: self._client.shipment.create(**params))
        return sorted((to_shipping_rate(rate) for rate in shipment.get("rates") or []),
                      key=lambda rate: (rate.amount, rate.carrier, rate.service))  # fmt: skip

    def _ship_from(self, from_address: Mapping[str, Any] | None) -> Any:
        """A stock location's address, or the configured ship-from address (None)."""
        return self._from_address if from_address is None else to_easypost_address(from_address)

    def find_shipment(self, order_id: str) -> Label | None:
        kept = self._ledger.recall(str(order_id))
        if kept is None:
            return None
        shipment = self._retrieve(kept.shipment_id)
        return None if shipment.get("postage_label") is None else to_label(shipment)

    def retrieve_tracker(self, tracker_id: str) -> Tracking:
        tracker = self._call("retrieve_tracker", lambda: self._client.tracker.retrieve(tracker_id))
        return to_tracking(tracker)

    def find_tracker(self, tracking_code: str) -> Tracking | None:
        page = self._call(
            "list_trackers", lambda: self._client.tracker.all(tracking_code=tracking_code)
        )
        trackers = page.get("trackers") or []
        return to_tracking(trackers[0]) if trackers else None

    def verify_address(self, address: Mapping[str, Any]) -> VerifiedAddress:
        """EasyPost's delivery verification (``POST /addresses`` with ``verify``): whether
        the address is deliverable, the address as EasyPost corrected it (in our shape),
        and the problems it found, by field. One call, never strict, so an undeliverable
        address is an answer, not an error."""
        params = to_easypost_address(address)
        checked = self._call("verify_address",
                             lambda: self._client.address.create(verify=True, **params))  # fmt: skip
        delivery = (checked.get("verifications") or {}).get("delivery") or {}
        problems = tuple(
            AddressProblem(code=str(error.get("code") or "E.ADDRESS.NOT_FOUND"),
                           field=our_address_field(error.get("field")),
                           message=str(error.get("message") or ""))
            for error in delivery.get("errors") or []
        )  # fmt: skip
        deliverable = bool(delivery.get("success")) and not problems
        corrected = from_easypost_address(checked, original=address) if deliverable else None
        return VerifiedAddress(deliverable=deliverable, address=corrected, problems=problems)

    def void_label(self, shipment_id: str) -> str:
        """Ask EasyPost to refund a bought label (``POST /shipments/{id}/refund``) and
        answer its ``refund_status``. A label whose refund was already asked for is not
        asked again: its status is answered as it stands (a retry after a lost answer
        finds it submitted)."""

        def void() -> Any:
            shipment = self._client.shipment.retrieve(shipment_id)
            if shipment.get("refund_status"):
                return shipment
            return self._client.shipment.refund(shipment_id)

        return str(self._call("refund_shipment", void).get("refund_status"))

    def label_refund_status(self, shipment_id: str) -> str | None:
        """Where a label's refund stands: None (never asked), ``submitted``,
        ``refunded``, ``rejected`` or ``not_applicable``."""
        shipment = self._call("retrieve_shipment",
                              lambda: self._client.shipment.retrieve(shipment_id))  # fmt: skip
        return shipment.get("refund_status")

    def ship_return(
        self, *, return_id: str, address: Mapping[str, Any], parcel: Parcel | None = None
    ) -> Label:
        """Buy a return's label: a shipment with ``is_return`` set, given as the
        outbound one is (to the customer, from the warehouse) since EasyPost swaps the
        two addresses of a return, so the label takes the parcel from the customer's
        address back to the warehouse. Its reference is ``return_<id>``, and every try
        recalls the shipment kept for it first, so a retry buys no second label (a
        return label is only billed when scanned, but one per return is what the
        customer gets)."""
        params = {
            "reference": return_reference(return_id),
            "to_address": to_easypost_address(address),
            "from_address": self._from_address,
            "parcel": to_easypost_parcel(parcel or Parcel()),
            "is_return": True,
        }
        return to_label(self._bought(params, None, lookup=True))

    def bought_labels(self) -> list[LiveLabel]:
        """Every label bought within ``LOOKBACK`` (up to ``AUDIT_PAGES`` pages of 100),
        with its refund status and tracker status: what ``fulfillment verify`` checks."""

        def read() -> list[Any]:
            since = (datetime.now(UTC) - LOOKBACK).isoformat()
            found: list[Any] = []
            page = self._client.shipment.all(page_size=100, purchased=True, start_datetime=since)
            for _ in range(AUDIT_PAGES):
                shipments = page.get("shipments") or []
                found += shipments
                if not shipments or not page.get("has_more"):
                    break
                page = self._client.shipment.all(page_size=100, purchased=True,
                                                 start_datetime=since,
                                                 before_id=shipments[-1]["id"])  # fmt: skip
            return found

        return [
            LiveLabel(shipment_id=s["id"], reference=s.get("reference") or "",
                      refund_status=s.get("refund_status"),
                      tracker_status=tracker_status((s.get("tracker") or {}).get("status")))
            for s in self._call("list_shipments", read)
            if s.get("postage_label") is not None
        ]  # fmt: skip

    def _bought(
        self, params: Mapping[str, Any], service: ShippingService | None, *, lookup: bool
    ) -> Any:
        """The bought shipment of ``params["reference"]``: the kept one (bought now if
        no try did), or a new one, kept before it is bought. A kept shipment still
        unbought that was made for another request (the customer corrected the address
        since a purchase was refused), or whose rates (as of its making) lack the service
        paid for (it was not offered then; it may be now), gives way to a new one."""
        reference, digest = params["reference"], request_digest(params)
        kept = self._ledger.recall(reference) if lookup else None
        if kept is not None:
            shipment = self._retrieve(kept.shipment_id)
            if shipment.get("postage_label") is not None or (
                kept.request_digest == digest and offers(shipment, service)
            ):
                return self._buy(shipment, service)
        created = self._call("create_shipment",
                             lambda: self._shipments(POST, "", {"shipment": dict(params)}))  # fmt: skip
        reach("easypost.shipment_created")
        mine = KeptShipment(shipment_id=created["id"], request_digest=digest)
        if kept is None:
            kept = self._ledger.keep(reference, mine)
        else:
            kept = self._ledger.replace(reference, old=kept.shipment_id, new=mine)
        reach("easypost.shipment_kept")
        if kept.shipment_id == mine.shipment_id:
            return self._buy(created, service)
        return self._buy(self._retrieve(kept.shipment_id), service)  # another try's won

    def _retrieve(self, shipment_id: str) -> Any:
        return self._call("retrieve_shipment", lambda: self._shipments(GET, f"/{shipment_id}"))

    def _shipments(self, method: RequestMethod, path: str, params: Any = None) -> dict[str, Any]:
        """A label's shipment calls (create, retrieve, buy) through the SDK's own
        requestor (its encoding, headers, hooks and error mapping), answered as the
        plain dict of its JSON: the SDK's objects for a whole shipment (addresses,
        parcel, rates, fees, tracker) cost about 100 µs of CPU a call to build, more
        than the JSON itself, and everything here reads them as mappings."""
        return Requestor(self._client).request(method=method, url=f"/shipments{path}",
                                               params=params)  # fmt: skip

    def _buy(self, shipment: Any, service: ShippingService | None) -> Any:
        """The shipment bought: as it is if it was, else its rate of ``service`` (the
        cheapest for None) bought, the rate picked from the shipment in hand before any
        call (a shipment's rates do not change; one lacking the service is refused
        without a request). Only an in-call retry (an earlier try may have bought it
        before its answer was lost) reads it again first."""
        if shipment.get("postage_label") is not None:
            return shipment
        try:
            rate = pick_rate(shipment, service, operation="buy_shipment")
        except easypost.errors.FilteringError as exc:  # no rates at all: the SDK's own error
            raise classify(exc, provider=PROVIDER, operation="buy_shipment") from exc
        tries = 0

        def buy() -> Any:
            nonlocal tries
            tries += 1
            current = shipment if tries == 1 else self._shipments(GET, f"/{shipment['id']}")
            if current.get("postage_label") is not None:
                return current
            try:
                return self._shipments(POST, f"/{current['id']}/buy", {"rate": {"id": rate["id"]}})
            except easypost.errors.ApiError as exc:
                if getattr(exc, "code", None) != POSTAGE_EXISTS:
                    raise
                # a purchase whose answer was lost landed meanwhile: that label is the one
                return self._shipments(GET, f"/{current['id']}")

        return self._call("buy_shipment", buy)

    def _remember_headers(self, **response: Any) -> None:
        self._seen.headers = response.get("headers")

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self._seen.headers = None
            try:
                return fn()
            except easypost.errors.ApiError as exc:
                # The SDK drops response headers; keep Retry-After for the classifier.
                exc.response_headers = getattr(self._seen, "headers", None)
                raise

        return call_provider(attempt, provider=PROVIDER, operation=operation, policy=self._policy)


def build_easypost_carrier(
    settings: Settings,
    *,
    from_address: Mapping[str, str] = DEFAULT_FROM_ADDRESS,
    timeout: float = DEFAULT_TIMEOUT,
    policy: RetryPolicy = DEFAULT_POLICY,
    ledger: ShipmentLedger | None = None,
) -> EasyPostCarrier:
    base = settings.easypost_api_base or EASYPOST_API_BASE
    client = easypost.EasyPostClient(
        settings.easypost_api_key.get_secret_value(), api_base=base, timeout=timeout
    )
    # The SDK's session mounts an adapter that retries on its own; tenacity owns retries
    # here, and the SDK calls through the pooled session (``integrations.sdk_http``).
    session = sdk_session()
    if isinstance(session, requests.Session):
        session.mount(base, HTTPAdapter(max_retries=0))
    client._requests_session = session
    return EasyPostCarrier(client, from_address=from_address, policy=policy, ledger=ledger)
