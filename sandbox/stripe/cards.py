"""Stripe's test PaymentMethods as the sandbox knows them: which succeed, which are
declined and how, which ask for 3-D Secure, whose refunds fail later
(``pm_card_refundFail``, Stripe's 4000 0000 0000 5126: the charge succeeds, a refund on it
is ``succeeded`` at first and ``failed`` later, see ``sandbox.stripe.refunds``), the card
details a charge shows, and the ``next_action`` Stripe hands back while a customer
authenticates."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sandbox.wire import new_id

#: Declined test cards: (code, decline_code, message), as the 402 ``card_error`` says.
DECLINES: Mapping[str, tuple[str, str, str]] = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedFraudulent": ("card_declined", "fraudulent", "Your card was declined."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
}
#: Cards whose issuer asks for 3-D Secure on a one-off payment, with the step Stripe's
#: client SDKs take (``next_action.use_stripe_sdk.type``). ``authenticationRequiredOnSetup``
#: asks on every payment that is not made with a card set up for later use, which is
#: every payment the sandbox takes.
AUTHENTICATION_REQUIRED: Mapping[str, str] = {
    "pm_card_authenticationRequired": "stripe_3ds2_fingerprint",
    "pm_card_threeDSecure2Required": "stripe_3ds2_fingerprint",
    "pm_card_authenticationRequiredOnSetup": "stripe_3ds2_fingerprint",
    "pm_card_threeDSecureRequired": "three_d_secure_redirect",
}
#: (brand, last4) of each test card (Stripe's test numbers).
CARDS: Mapping[str, tuple[str, str]] = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_amex": ("amex", "8431"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_chargeDeclinedFraudulent": ("visa", "0019"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069"),
    "pm_card_chargeDeclinedIncorrectCvc": ("visa", "0127"),
    "pm_card_authenticationRequired": ("visa", "3184"),
    "pm_card_threeDSecure2Required": ("visa", "3220"),
    "pm_card_authenticationRequiredOnSetup": ("visa", "3155"),
    "pm_card_threeDSecureRequired": ("visa", "3063"),
    "pm_card_refundFail": ("visa", "5126"),
}
#: Cards whose refunds are made and then fail, with the refund's ``failure_reason``.
REFUND_FAILURES: Mapping[str, str] = {"pm_card_refundFail": "expired_or_canceled_card"}
#: Stripe's words when the customer fails (or abandons) 3-D Secure.
AUTHENTICATION_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide "
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent "
    "again."
)
#: Visa's 3-D Secure directory server, as Stripe names it in a fingerprint step.
_DIRECTORY_SERVER = {"name": "visa", "id": "A000000003"}


def known(method: str) -> bool:
    return method in CARDS


def decline(method: str) -> tuple[str, str, str] | None:
    return DECLINES.get(method)


def authentication_step(method: str) -> str | None:
    return AUTHENTICATION_REQUIRED.get(method)


def refund_failure(method: str | None) -> str | None:
    """The ``failure_reason`` a refund on a charge made with ``method`` ends with, None
    for a card whose refunds go through."""
    return REFUND_FAILURES.get(method or "")


def card_details(method: str, *, capture_before: int | None = None) -> dict[str, Any]:
    """``payment_method_details`` of a charge made with ``method``; ``capture_before`` is
    only there while the charge is an authorization waiting for capture."""
    brand, last4 = CARDS.get(method, ("visa", "4242"))
    card: dict[str, Any] = {
        "brand": brand,
        "last4": last4,
        "exp_month": 12,
        "exp_year": 2034,
        "funding": "credit",
        "country": "US",
        "network": brand,
    }
    if capture_before is not None:
        card["capture_before"] = capture_before
    return {"type": "card", "card": card}


def next_action(intent: Mapping[str, Any], step: str, *, return_url: str | None) -> dict:
    """What a confirm that needs 3-D Secure answers in ``next_action``: a redirect when
    the confirm named a ``return_url``, else the step for Stripe's client SDKs."""
    source = new_id("src")
    if return_url:
        url = (
            "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_sandbox"
            f"&payment_intent={intent['id']}&source={source}"
        )
        return {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": url, "return_url": return_url},
        }
    if step == "three_d_secure_redirect":
        sdk = {
            "type": step,
            "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{source}"
            f"?client_secret={new_id('src_client_secret')}",
            "source": source,
        }
    else:
        sdk = {
            "type": step,
            "merchant": "acct_sandbox",
            "three_d_secure_2_source": source,
            "directory_server_name": _DIRECTORY_SERVER["name"],
            "server_transaction_id": str(uuid.uuid4()),
            "three_ds_method_url": "",
            "three_ds_optimizations": "",
            "directory_server_encryption": {
                "directory_server_id": _DIRECTORY_SERVER["id"],
                "algorithm": "RSA",
                "certificate": "",
                "root_certificate_authorities": [],
            },
            "one_click_authn": None,
        }
    return {"type": "use_stripe_sdk", "use_stripe_sdk": sdk}


def authentication_failure(method: str) -> dict[str, Any]:
    """``last_payment_error`` after the customer failed 3-D Secure."""
    code = "payment_intent_authentication_failure"
    return {
        "type": "invalid_request_error",
        "code": code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": AUTHENTICATION_FAILED,
        "payment_method": {"id": method, "object": "payment_method", "type": "card"},
    }


def card_error(method: str, failure: tuple[str, str, str], *, charge_id: str) -> dict:
    """The ``card_error`` of a declined charge (and the intent's ``last_payment_error``)."""
    code, decline_code, message = failure
    return {
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": message,
        "charge": charge_id,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "payment_method": {"id": method, "object": "payment_method", "type": "card"},
    }
