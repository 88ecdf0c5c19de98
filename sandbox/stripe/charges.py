"""Stripe's Charges and Refunds behind the sandbox's PaymentIntents, with Stripe's rules:

- a charge is made when a confirm authorizes the card: captured at once for
  ``capture_method=automatic``, else an authorization (``captured: false``) whose
  ``payment_method_details.card.capture_before`` says when it lapses;
- what is never captured is released as Stripe shows it, a refund on the charge
  (``amount_refunded``): the rest of a partial capture, a cancelled authorization
  (``charge.refunded``), or one that lapsed (``charge.expired``, refund reason
  ``expired_uncaptured_charge``);
- refunds take what was captured and not yet refunded (``amount - amount_refunded``, the
  released part counting as refunded), several partial ones allowed; an uncaptured
  charge is not refunded (its PaymentIntent is cancelled instead);
- a refund may be created ``pending``, and one under way settles later
  (``sandbox.stripe.refunds``): a failed one gives its amount back to the charge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.store import Store
from sandbox.stripe.cards import card_details, refund_failure
from sandbox.stripe.refunds import RefundTerms, opening_status, settled_events
from sandbox.stripe.wire import amount_param, invalid, list_page, no_such
from sandbox.wire import new_id

#: Records an event about an object and sends it to the endpoints that want it.
Publish = Callable[[str, Mapping[str, Any]], Any]


def amount_to_capture(capturable: int, params: Mapping[str, Any]) -> int:
    """``amount_to_capture`` of a capture: all that is capturable unless given, never
    more."""
    raw = params.get("amount_to_capture")
    if raw in (None, ""):
        return capturable
    try:
        amount = int(raw)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {raw}", code="parameter_invalid_integer", param="amount_to_capture"
        ) from None
    if amount < 1:
        raise invalid("This value must be greater than or equal to 1.", param="amount_to_capture")
    if amount > capturable:
        raise invalid(
            f"The amount to capture ({amount}) is greater than the amount capturable on "
            f"this PaymentIntent ({capturable}).",
            code="amount_too_large",
            param="amount_to_capture",
        )
    return amount


class Charges:
    def __init__(
        self,
        publish: Publish,
        *,
        store: Store,
        clock: Callable[[], float],
        authorization_seconds: float,
    ) -> None:
        self._store = store
        self.charges: dict[str, dict[str, Any]] = store.load("charge")
        #: EasyPost's refunds under way share the store's kind "refund" (keyed by
        #: shipment): only Stripe's own are taken.
        self.refunds: dict[str, dict[str, Any]] = {
            refund_id: refund
            for refund_id, refund in store.load("refund").items()
            if refund.get("object") == "refund"
        }
        self._publish = publish
        self._clock = clock
        self._authorization_seconds = authorization_seconds

    def _now(self) -> int:
        return int(self._clock())

    def _keep(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._store.put(kind, obj["id"], obj)
        return obj

    # Charges --------------------------------------------------------------------------

    def create(
        self,
        intent: Mapping[str, Any],
        *,
        failure: tuple[str, str, str] | None,
        capture: bool,
    ) -> dict[str, Any]:
        """The charge a confirm makes: failed, captured, or an authorization held until
        ``capture_before`` (now plus the authorization's validity)."""
        paid, now = failure is None, self._now()
        captured = paid and capture
        held = paid and not capture
        deadline = now + int(self._authorization_seconds) if held else None
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if captured else 0,
            "amount_refunded": 0,
            "captured": captured,
            "created": now,
            "currency": intent["currency"],
            "description": intent["description"],
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "paid": paid,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": card_details(
                intent["payment_method"], capture_before=deadline
            ),
            "refunded": False,
            "status": "succeeded" if paid else "failed",
            "failure_code": None if paid else failure[0],
            "failure_message": None if paid else failure[2],
        }
        self.charges[charge["id"]] = self._keep("charge", charge)
        return charge

    def capture_before(self, charge_id: str | None) -> int | None:
        """When an authorization lapses; None once it is captured or released."""
        charge = self.charges.get(charge_id or "")
        if charge is None or charge["captured"] or charge["refunded"]:
            return None
        return (charge["payment_method_details"].get("card") or {}).get("capture_before")

    def capture(self, charge: dict[str, Any], amount: int) -> dict[str, Any]:
        """Capture ``amount`` of an authorization; the rest is released at once."""
        charge.update(captured=True, amount_captured=amount)
        charge["payment_method_details"]["card"].pop("capture_before", None)
        self._release(charge, reason=None)
        self._keep("charge", charge)
        self._publish("charge.captured", charge)
        return charge

    def void(self, charge: dict[str, Any]) -> None:
        """A cancelled authorization: all of it released (``charge.refunded``)."""
        self._release(charge, reason=None)
        self._publish("charge.refunded", charge)

    def expire(self, charge: dict[str, Any]) -> None:
        """An authorization not captured by ``capture_before``: released
        (``charge.expired``)."""
        self._release(charge, reason="expired_uncaptured_charge")
        self._publish("charge.expired", charge)

    def _release(self, charge: dict[str, Any], *, reason: str | None) -> None:
        amount = charge["amount"] - charge["amount_captured"] - charge["amount_refunded"]
        if amount > 0:
            self._record_refund(charge, amount, reason=reason, metadata={})

    # Refunds --------------------------------------------------------------------------

    def create_refund(
        self,
        charge: dict[str, Any],
        params: Mapping[str, Any],
        *,
        terms: RefundTerms,
    ) -> dict[str, Any]:
        """``POST /v1/refunds`` on a charge: up to what was captured and not refunded
        (a pending refund counting as refunded), ``pending`` when ``terms`` say so."""
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        if not charge["captured"]:
            raise invalid(
                f"This uncaptured Charge was created by a PaymentIntent "
                f"({charge['payment_intent']}). You must cancel the PaymentIntent to reverse "
                "the authorization instead of refunding the Charge directly.",
                code="charge_not_refundable",
            )
        amount = amount_param(params) if params.get("amount") is not None else remaining
        if amount > remaining:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on "
                f"charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund = self._record_refund(
            charge,
            amount,
            reason=params.get("reason"),
            metadata=params.get("metadata"),
            status=opening_status(terms),
        )
        self._publish("charge.refunded", charge)
        return refund

    def settle_refund(self, refund: dict[str, Any], outcome: str) -> dict[str, Any]:
        """A refund under way ends ``outcome``: events when its status changes, and a
        failed one's amount back on the charge."""
        before = refund["status"]
        refund["status"] = outcome
        if "pending_reason" in refund:
            refund["pending_reason"] = None
        if outcome == "failed" and before != "failed":
            charge = self.charges[refund["charge"]]
            refund["failure_reason"] = refund_failure(charge["payment_method"]) or "unknown"
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            self._keep("charge", charge)
        self._keep("refund", refund)
        for kind in settled_events(before, outcome):
            self._publish(kind, refund)
        return refund

    def _record_refund(
        self,
        charge: dict[str, Any],
        amount: int,
        *,
        reason: str | None,
        metadata: Any,
        status: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": self._now(),
            "currency": charge["currency"],
            "metadata": dict(metadata or {}),
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "succeeded",
            **(status or {}),
        }
        self.refunds[refund["id"]] = self._keep("refund", refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._keep("charge", charge)
        return refund

    def refund(self, refund_id: str) -> dict[str, Any]:
        if refund_id not in self.refunds:
            raise no_such("refund", refund_id, param="id")
        return self.refunds[refund_id]

    def list_refunds(self, query: Mapping[str, str]) -> dict[str, Any]:
        found = [
            r
            for r in self.refunds.values()
            if query.get("payment_intent") in (None, r["payment_intent"])
            and query.get("charge") in (None, r["charge"])
        ]
        return list_page(found, query, url="/v1/refunds")
