"""The sandbox's own control API under ``/_sandbox`` (never fault-injected):

- ``GET /health`` - up, and its seed
- ``GET|POST|DELETE /faults`` - read, merge (``{"stripe": {...}, "*": {...}, "seed": N}``,
  fields of ``ProviderFaults``), or clear the faults
- ``POST /reset`` (``{"seed": N}`` optional) - forget every object, mail, key and delivery;
  faults and Stripe's webhook endpoints back to the start configuration; random streams
  re-seeded
- ``POST /clock`` (``{"seconds": N}``) - move the sandbox clock forward: trackers move,
  Stripe authorizations past their ``capture_before`` lapse (``charge.expired``,
  ``payment_intent.canceled`` with reason ``automatic``), and Stripe refunds under way
  whose time has come settle (``sandbox.stripe.refunds``)
- ``POST /trackers/{id}`` (``{"status": "return_to_sender"}``) - put a tracker in a status
- ``POST /shipments/{id}/refund_outcome`` (``{"outcome": "rejected"}``) - how a label
  refund under way settles (``easypost_refunds``)
- ``POST /easypost/services`` (``{"withdrawn": [{"carrier": "USPS", "service":
  "Priority"}]}``) - EasyPost's rate card but those services, for new shipments (a
  one-call buy of one is refused); ``{"withdrawn": []}`` offers them all again; answers
  ``{"offered", "withdrawn"}`` as [carrier, service] pairs; 400 for a pair not on the card
- ``GET /webhooks`` and ``GET /requests`` (``?provider=``) - what was sent and received
- ``POST /stripe/payment_intents/{id}/authenticate`` (``{"outcome": "complete"}`` or
  ``{"outcome": "fail"}``) - the customer's 3-D Secure for a PaymentIntent in
  ``requires_action``: complete goes on as a confirm without authentication would
  (``requires_capture`` or ``succeeded``, or the card's decline), fail leaves it in
  ``requires_payment_method`` with ``payment_intent_authentication_failure``; answers the
  PaymentIntent; 400 for another outcome, 404 for an unknown intent, 409 when it is not
  waiting for authentication
- ``POST /stripe/refunds/{id}/settle`` (``{"outcome": "succeeded"}`` or
  ``{"outcome": "failed"}``) - a Stripe refund under way (``pending`` under the fault
  ``stripe.refund_pending``, or ``succeeded`` on ``pm_card_refundFail`` and due to fail)
  settles now: ``refund.updated`` and ``charge.refund.updated`` when its status changes,
  ``refund.failed`` too and its amount back on the charge when it fails; answers the
  refund; 400 for another outcome, 404 for an unknown refund, 409 for one already final
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.easypost.wire import EasyPostFailure
from sandbox.stripe.refunds import OUTCOMES as REFUND_OUTCOMES
from sandbox.stripe.wire import StripeFailure
from sandbox.world import SANDBOX

#: Where the control API lives.
PREFIX = "/_sandbox"


def setup_control_routes(app: web.Application) -> None:
    router = app.router
    router.add_get(f"{PREFIX}/health", health)
    router.add_get(f"{PREFIX}/faults", get_faults)
    router.add_post(f"{PREFIX}/faults", set_faults)
    router.add_delete(f"{PREFIX}/faults", clear_faults)
    router.add_post(f"{PREFIX}/reset", reset)
    router.add_post(f"{PREFIX}/clock", advance_clock)
    router.add_post(PREFIX + "/trackers/{id}", set_tracker_status)
    router.add_post(PREFIX + "/shipments/{id}/refund_outcome", set_refund_outcome)
    router.add_post(f"{PREFIX}/easypost/services", set_offered_services)
    router.add_post(PREFIX + "/stripe/payment_intents/{id}/authenticate", authenticate)
    router.add_post(PREFIX + "/stripe/refunds/{id}/settle", settle_refund)
    router.add_get(f"{PREFIX}/webhooks", webhooks)
    router.add_get(f"{PREFIX}/requests", requests_seen)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "seed": request.app[SANDBOX].faults.seed})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SANDBOX].faults.snapshot())


async def set_faults(request: web.Request) -> web.Response:
    """Body ``{"stripe": {"error_rate": 0.5}, "*": {...}, "seed": 7}``: merged into the
    current faults, all or nothing; ``seed`` re-seeds the random streams."""
    faults = request.app[SANDBOX].faults
    body = await _json(request)
    seed = body.pop("seed", None)
    try:
        faults.configure(body)
        if seed is not None:
            faults.reseed(int(seed))
    except (TypeError, ValueError) as exc:
        raise _bad_request(str(exc)) from None
    return web.json_response(faults.snapshot())


async def clear_faults(request: web.Request) -> web.Response:
    faults = request.app[SANDBOX].faults
    faults.clear()
    return web.json_response(faults.snapshot())


async def reset(request: web.Request) -> web.Response:
    """Forget all objects, mail, keys, deliveries; faults and Stripe's webhook endpoints
    back to the start configuration; random streams re-seeded (with ``{"seed": N}`` when
    given)."""
    body = await _json(request)
    sandbox = request.app[SANDBOX]
    try:
        seed = None if body.get("seed") is None else int(body["seed"])
    except (TypeError, ValueError):
        raise _bad_request("seed must be an integer") from None
    await sandbox.reset(seed)
    return web.json_response({"status": "reset", "seed": sandbox.faults.seed})


async def advance_clock(request: web.Request) -> web.Response:
    """``{"seconds": N}``: move the sandbox clock forward; trackers catch up at once."""
    body = await _json(request)
    try:
        seconds = float(body.get("seconds", 0))
    except (TypeError, ValueError):
        raise _bad_request("seconds must be a number") from None
    if seconds < 0:
        raise _bad_request("the clock only moves forward")
    sandbox = request.app[SANDBOX]
    sandbox.clock.advance(seconds)
    sandbox.stripe.catch_up()
    sandbox.easypost.tick()
    return web.json_response({"offset": sandbox.clock.offset})


async def set_tracker_status(request: web.Request) -> web.Response:
    """``{"status": "return_to_sender"}``: put a tracker in any EasyPost status now."""
    body = await _json(request)
    try:
        tracker = request.app[SANDBOX].easypost.set_status(
            request.match_info["id"], str(body.get("status"))
        )
    except EasyPostFailure as exc:
        return web.json_response(exc.body, status=exc.status)
    return web.json_response(tracker)


#: What the customer can do with a 3-D Secure challenge.
AUTHENTICATION_OUTCOMES = ("complete", "fail")


async def authenticate(request: web.Request) -> web.Response:
    """``{"outcome": "complete" | "fail"}``: how the customer's 3-D Secure went."""
    body = await _json(request)
    outcome = body.get("outcome")
    if outcome not in AUTHENTICATION_OUTCOMES:
        raise _bad_request(f"outcome must be one of {', '.join(AUTHENTICATION_OUTCOMES)}")
    stripe = request.app[SANDBOX].stripe
    try:
        intent = stripe.authenticate(request.match_info["id"], complete=outcome == "complete")
    except StripeFailure as exc:
        message = exc.body["error"]["message"]
        return web.json_response({"error": message}, status=exc.status)
    return web.json_response(intent)


async def settle_refund(request: web.Request) -> web.Response:
    """``{"outcome": "succeeded" | "failed"}``: a Stripe refund under way settles now."""
    body = await _json(request)
    outcome = body.get("outcome")
    if outcome not in REFUND_OUTCOMES:
        raise _bad_request(f"outcome must be one of {', '.join(REFUND_OUTCOMES)}")
    try:
        refund = request.app[SANDBOX].stripe.settle_refund(request.match_info["id"], outcome)
    except StripeFailure as exc:
        return web.json_response({"error": exc.body["error"]["message"]}, status=exc.status)
    return web.json_response(refund)


async def set_refund_outcome(request: web.Request) -> web.Response:
    """``{"outcome": "rejected"}``: the shipment's refund under way settles that way."""
    body = await _json(request)
    try:
        shipment = request.app[SANDBOX].easypost.set_refund_outcome(
            request.match_info["id"], str(body.get("outcome"))
        )
    except EasyPostFailure as exc:
        return web.json_response(exc.body, status=exc.status)
    return web.json_response(shipment)


async def set_offered_services(request: web.Request) -> web.Response:
    """``{"withdrawn": [{"carrier", "service"}, ...]}``: services no longer offered."""
    body = await _json(request)
    try:
        pairs = [(str(item["carrier"]), str(item["service"])) for item in body["withdrawn"]]
    except (KeyError, TypeError):
        raise _bad_request('withdrawn must be a list of {"carrier", "service"}') from None
    try:
        card = request.app[SANDBOX].easypost.set_offered(pairs)
    except EasyPostFailure as exc:
        raise _bad_request(exc.body["error"]["message"]) from None
    return web.json_response(card)


async def webhooks(request: web.Request) -> web.Response:
    provider = request.query.get("provider")
    return web.json_response({"deliveries": request.app[SANDBOX].webhooks.log(provider)})


async def requests_seen(request: web.Request) -> web.Response:
    provider = request.query.get("provider")
    journal = request.app[SANDBOX].journal
    seen = [entry for entry in journal if provider in (None, entry["provider"])]
    return web.json_response({"requests": seen})


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise _bad_request("the body must be JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
