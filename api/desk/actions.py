"""The operator desk's actions on one order: cancel, resume, hold and release.

Each runs under the order's row lock in one transaction, is recorded on the order's
timeline with the admin who did it (``details: {"admin", "admin_email"}``), and answers
the order as the API shows it. Each is idempotent: by nature where the state says the
work is done (cancelling a cancelled order, holding a held one: the same answer, nothing
done again), and with an ``Idempotency-Key`` header for all four (the same key on the
same route replays the first answer for 24 hours; on another route it is 422).

- cancel: the customer cancel's plan (``api.shared.cancellation.cancel_locked``, the saga's
  compensation in ``pipelines.compensation``): stock back, refund or void queued,
  e-mail queued. 409 once shipped.
- resume a ``needs_attention`` order: back to where it stopped (``attention_from``);
  the order's dead letters are replayed as ``fulfillment dlq replay`` does, or, with
  none left, the stage's message is queued; a refund still due (one Stripe refused)
  is tried again, with a new refund. 409 for any other status.
- hold: stops the saga before shipping (``on_hold``, ``held_from``): steps skip the
  order, the sweeper leaves it. release: back to ``held_from`` and that stage's message
  queued again, so the saga goes on (a payment settled meanwhile is read from Stripe).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.context import DEAD_LETTERS, SESSIONS, SETTINGS
from api.shared.errors import ApiError, ErrorCode, not_found
from api.shared.idempotency import (
    KEY_TTL,
    idempotency_key,
    lock_id,
    request_fingerprint,
    stored_response,
)
from api.shared.jsonio import read_optional_model, respond_data
from api.shared.line_cancel import cancel_lines_locked, cancel_unshipped_locked
from api.shared.order_lookup import order_id
from api.shared.principal import authenticate
from api.shared.schemas import OrderCancel
from fulfillment.messages import REFUND_PAYMENT
from fulfillment.models import IdempotencyKey, Order, User
from fulfillment.order_view import order_out
from fulfillment.outbox import outbox_insert
from fulfillment.states import HOLDABLE
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import transition
from monitoring import metrics
from pipelines.saga import BY_STATE

log = logging.getLogger(__name__)

#: The actions take no body: a key is told apart by its route alone.
FINGERPRINT = request_fingerprint({})
#: The e-mail's reason when an operator cancels.
MERCHANT_REQUEST = "merchant_request"

#: An action: (session, locked order, who did it) -> the status the order left, or None
#: when it had nothing to do.
Action = Callable[[AsyncSession, Order, dict[str, str]], Awaitable[str | None]]


async def _cancel(session, order, who, *, capture) -> str | None:
    return await cancel_unshipped_locked(session, order, step="admin_cancel", details=who,
                                         capture=capture, reason=MERCHANT_REQUEST)  # fmt: skip


async def _hold(session, order, who) -> str | None:
    if order.status == S.ON_HOLD:
        return None
    if S(order.status) not in HOLDABLE or order.refund_due:
        raise ApiError(409, ErrorCode.ORDER_NOT_HOLDABLE,
                       f"an order that is {order.status} cannot be held: only one that has "
                       "not shipped, with no compensation under way",
                       {"status": order.status})  # fmt: skip
    before = order.status
    order.held_from = before
    session.add(transition(order, S.ON_HOLD, step="admin_hold", now=datetime.now(UTC),
                           details={**who, "held_from": before}))  # fmt: skip
    return before


async def _release(session, order, who) -> str | None:
    if order.status != S.ON_HOLD or order.held_from is None:
        raise ApiError(409, ErrorCode.ORDER_NOT_ON_HOLD, f"the order is {order.status}, not on_hold",
                       {"status": order.status})  # fmt: skip
    target = S(order.held_from)
    session.add(transition(order, target, step="admin_release", now=datetime.now(UTC),
                           details=who))  # fmt: skip
    order.held_from = None
    await _send_stage(session, order, target)
    return S.ON_HOLD.value


async def _resume(session, order, who, *, letters: list[str]) -> str | None:
    if order.status != S.NEEDS_ATTENTION or order.attention_from is None:
        raise ApiError(409, ErrorCode.ORDER_NOT_NEEDS_ATTENTION,
                       f"the order is {order.status}, not needs_attention",
                       {"status": order.status})  # fmt: skip
    target = S(order.attention_from)
    session.add(transition(order, target, step="admin_resume", now=datetime.now(UTC),
                           details={**who, "resumed": True, "dead_letters": letters}))  # fmt: skip
    order.attention_from = None
    if not letters:
        await _send_stage(session, order, target)
    if order.refund_due:  # a refund Stripe refused: the compensation tries a new one
        await session.execute(outbox_insert(REFUND_PAYMENT, order_id=str(order.id),
                                            request_id=order.request_id))  # fmt: skip
    return S.NEEDS_ATTENTION.value


async def _send_stage(session: AsyncSession, order: Order, state: S) -> None:
    """Queue the message of ``state``'s saga stage, if it has one (through the outbox:
    it leaves only if this transaction commits)."""
    stage = BY_STATE.get(state)
    if stage is not None:
        await session.execute(outbox_insert(stage.message, order_id=str(order.id),
                                            request_id=order.request_id))  # fmt: skip


async def _cancel_lines(session, order, who, *, wanted, capture) -> str | None:
    return await cancel_lines_locked(session, order, wanted, step="admin_cancel", details=who,
                                     capture=capture, reason=MERCHANT_REQUEST)  # fmt: skip


async def cancel(request: web.Request) -> web.Response:
    body = await read_optional_model(request, OrderCancel)
    capture = request.app[SETTINGS].payment_capture
    if body is None:
        return await _act(request, functools.partial(_cancel, capture=capture))
    wanted = [(str(line.product_id), line.quantity) for line in body.lines]
    action = functools.partial(_cancel_lines, wanted=wanted, capture=capture)
    return await _act(
        request, action, fingerprint=request_fingerprint(body.model_dump(mode="json"))
    )


async def hold(request: web.Request) -> web.Response:
    return await _act(request, _hold)


async def release(request: web.Request) -> web.Response:
    return await _act(request, _release)


async def resume(request: web.Request) -> web.Response:
    letters = await _dead_letters(request)
    ids = [letter.id for letter in letters]
    response = await _act(request, functools.partial(_resume, letters=ids))
    if letters and response.status == 200 and "Idempotent-Replayed" not in response.headers:
        await _replay(request, letters)
    return response


async def _act(
    request: web.Request, action: Action, *, fingerprint: str = FINGERPRINT
) -> web.Response:
    principal = authenticate(request)
    key = idempotency_key(request)
    oid = order_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        if key is not None:
            replay = await _stored(session, principal.user_id, key, request.path, fingerprint)
            if replay is not None:
                return respond_data(replay[1], status=replay[0],
                                    headers={"Idempotent-Replayed": "true"})  # fmt: skip
        order = await session.scalar(select(Order).where(Order.id == oid).with_for_update())
        if order is None:
            raise not_found("order")
        email = await session.scalar(select(User.email).where(User.id == principal.user_id))
        who = {"admin": str(principal.user_id), "admin_email": email or ""}
        left = await action(session, order, who)
        await session.flush()
        await session.refresh(order, ["updated_at", "lines"])
        body = order_out(order).model_dump(mode="json")
        now = order.status
        if key is not None:
            session.add(IdempotencyKey(user_id=principal.user_id, key=key, method="POST",
                                       path=request.path, request_hash=fingerprint,
                                       response_status=200, response_body=body))  # fmt: skip
    if left is not None:
        metrics.order_transitions_total.labels(left, now).inc()
    return respond_data(body)


async def _stored(session: AsyncSession, user_id, key: str, path: str, fingerprint: str):
    """(status, body) stored under the admin's key, or None to go on; 409 while another
    request holds the key, 422 for a key used on another route."""
    if not await session.scalar(select(func.pg_try_advisory_xact_lock(lock_id(user_id, key)))):
        raise ApiError(409, ErrorCode.IDEMPOTENCY_KEY_IN_USE,
                       "a request with this Idempotency-Key is still being processed; "
                       "retry shortly")  # fmt: skip
    stored = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )
    if stored is None:
        return None
    if stored.created_at < datetime.now(UTC) - KEY_TTL:  # expired: the key starts afresh
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == stored.id))
        return None
    return stored_response((stored.id, stored.path, stored.request_hash, stored.response_status,
                            stored.response_body, stored.created_at),
                           path=path, fingerprint=fingerprint)  # fmt: skip


async def _dead_letters(request: web.Request) -> list:
    store = request.app[DEAD_LETTERS]
    if store is None:
        return []
    oid = str(order_id(request))
    letters = await asyncio.to_thread(store.list)
    return [letter for letter in letters if letter.kwargs.get("order_id") == oid]


async def _replay(request: web.Request, letters: list) -> None:
    """Send the order's dead letters again (after the commit that resumed it). If the
    broker fails now, the sweeper re-drives the order once it has stalled."""
    store = request.app[DEAD_LETTERS]
    for letter in letters:
        try:
            await asyncio.to_thread(store.replay, letter.id)
        except Exception:
            log.warning("dead_letter_replay_failed", extra={"letter": letter.id}, exc_info=True)
