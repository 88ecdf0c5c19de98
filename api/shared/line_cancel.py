"""Cancelling some of a row-locked order's units before they ship (``POST
/v1/orders/{id}/cancel`` and the desk's cancel, with ``{"lines": [...]}``), in the
caller's transaction, by one rule (``fulfillment.line_cancellation``):

- only units that have not shipped: an order that has not shipped, or the packages still
  waiting of one partially shipped (409 ``order_not_cancellable`` otherwise), never more
  units than remain there (409 ``cancel_exceeds_order``); a cancel of every remaining
  unit of an order that has not shipped is the whole order's cancel (``cancel_locked``);
  one that drops the last waiting package of a partially shipped order leaves it as its
  parcels stand (``ship_order`` settles it: ``pipelines.shipping.ship``);
- not while its label is being bought for the parcel as it stands (409
  ``label_being_bought``; the shared hold keeps a purchase from starting before this
  commits, so the next one weighs the parcel without the cancelled units);
- the units' stock is given back where the order holds it (its packages shrink or are
  dropped: ``shrink``);
- the money follows: taken already (captured) → a refund by those lines, accepted by the
  one refund rule; not taken yet → ``amount_cancelled`` grows, and the charge asks (the
  capture takes) that much less. While an automatic charge may be in flight (``reserved``,
  ``payment_pending``, ``requires_action`` with ``PAYMENT_CAPTURE=order``) or the capture
  is due (the first parcel left: ``capture_payment`` may be calling Stripe with the amount
  it read) the cancel is 409 ``payment_in_progress``: the amount Stripe takes is already
  asked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.cancellation import cancel_locked, some_unshipped
from api.shared.errors import ApiError, ErrorCode
from api.shared.label_purchase import no_label_in_flight
from fulfillment import stock
from fulfillment.checkpoints import reach_async
from fulfillment.line_cancellation import CancelLineRefused, price_cancel, remaining
from fulfillment.messages import SHIP_ORDER
from fulfillment.models import Location, Order
from fulfillment.outbox import outbox_insert
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import note
from pipelines.payments.refunds import RefundRefused, accept_refund

#: Where an automatic charge may be in flight, for the amount as it was asked.
CHARGE_IN_FLIGHT = frozenset({S.RESERVED, S.PAYMENT_PENDING, S.REQUIRES_ACTION})


async def cancel_lines_locked(
    session: AsyncSession,
    order: Order,
    wanted: list[tuple[str, int]],
    *,
    step: str,
    capture: str,
    details: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str | None:
    """Cancel ``wanted`` ((product id, quantity)) of the row-locked ``order``. Returns
    the status it left when that was every unit left (the whole order cancelled), else
    None. ``capture`` is ``PAYMENT_CAPTURE``, for an order not charged yet."""
    if order.status == S.CANCELLED or not some_unshipped(order) or order.refund_due:
        raise ApiError(409, ErrorCode.ORDER_NOT_CANCELLABLE,
                       f"an order that is {order.status} can no longer be cancelled",
                       {"status": order.status})  # fmt: skip
    await session.refresh(order, ["lines"])
    try:
        amount, lines = price_cancel(order.lines, order.cancelled_lines, wanted)
    except CancelLineRefused as exc:
        raise ApiError(422 if exc.code == "not_in_order" else 409, ErrorCode(exc.code), str(exc),
                       exc.details) from None  # fmt: skip
    ordered = [(line.product_id, line.quantity) for line in order.lines]
    if order.parcels:  # some packages have left: only the waiting ones' units may go
        _only_unshipped(order, ordered, lines)
    elif not remaining(ordered, [*order.cancelled_lines, *lines]):
        return await cancel_locked(session, order, step=step, details=details, reason=reason)
    await no_label_in_flight(session, order, message="the label is being bought for the "
                             "parcel as it stands right now; cancel the whole order instead, "
                             "or these lines once it has shipped (a return)")  # fmt: skip
    refunded = (order.amount_captured or 0) > 0
    if not refunded and (order.capture_due or _charge_in_flight(order, capture)):
        raise ApiError(409, ErrorCode.PAYMENT_IN_PROGRESS,
                       "the payment is being taken for the order as it stands; cancel these "
                       "lines once it has settled", {"status": order.status})  # fmt: skip
    refund_id = None
    if refunded:
        try:
            refund, statements = accept_refund(order, amount=amount, source="cancel",
                                               request_key=f"cancel_{uuid.uuid4().hex}",
                                               lines=lines, reason=reason or "cancelled")  # fmt: skip
        except RefundRefused as exc:
            raise ApiError(409, ErrorCode(exc.code), str(exc), exc.details) from None
        for statement in statements:
            await session.execute(statement)
        refund_id = str(refund["id"])
    else:
        order.amount_cancelled = (order.amount_cancelled or 0) + amount
    dropped_last = await _give_back(session, order, lines)
    if dropped_last and order.status == S.PARTIALLY_SHIPPED:  # nothing waits: settled
        await session.execute(outbox_insert(SHIP_ORDER, order_id=str(order.id),
                                            request_id=order.request_id))  # fmt: skip
    order.cancelled_lines = [
        *order.cancelled_lines,
        *({**line, "refunded": refunded} for line in lines),
    ]
    session.add(note(order, step=step, now=datetime.now(UTC), outcome="lines_cancelled",
                     details={**(details or {}), "lines": lines, "amount": amount,
                              "refund": refund_id}))  # fmt: skip
    await session.flush()
    await reach_async("cancel_lines.before_commit")  # the order row is held
    return None


async def cancel_unshipped_locked(
    session: AsyncSession,
    order: Order,
    *,
    step: str,
    capture: str,
    details: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str | None:
    """A cancel without lines: the whole order while nothing has shipped
    (``cancel_locked``); once some of its packages have left, every unit still waiting
    in the others, by the rule of a cancel of lines (409 ``order_not_cancellable`` when
    none waits). Returns the status the order left, or None when it stays."""
    if not order.parcels or order.status == S.CANCELLED:
        return await cancel_locked(session, order, step=step, details=details, reason=reason)
    await session.refresh(order, ["lines"])
    waiting: dict[str, int] = {}
    if order.stock_state == stock.StockState.RESERVED and some_unshipped(order):
        waiting = _waiting(order, [(line.product_id, line.quantity) for line in order.lines])
    if not waiting:
        raise ApiError(409, ErrorCode.ORDER_NOT_CANCELLABLE,
                       f"every package of this {order.status} order has left",
                       {"status": order.status})  # fmt: skip
    return await cancel_lines_locked(session, order, sorted(waiting.items()), step=step,
                                     capture=capture, details=details, reason=reason)  # fmt: skip


def _charge_in_flight(order: Order, capture: str) -> bool:
    method = order.capture_method or ("manual" if capture == "shipment" else "automatic")
    waiting = (
        S(order.held_from) if order.status == S.ON_HOLD and order.held_from else S(order.status)
    )
    return method == "automatic" and waiting in CHARGE_IN_FLIGHT


def _waiting(order: Order, ordered: list[tuple[uuid.UUID, int]]) -> dict[str, int]:
    """Units per product (a string id) in the packages that have not left."""
    units: dict[str, int] = {}
    for h in stock.held_by(order, ordered):
        units[str(h.product_id)] = units.get(str(h.product_id), 0) + h.quantity
    return units


def _only_unshipped(order: Order, ordered: list[tuple[uuid.UUID, int]],
                    lines: list[dict[str, Any]]) -> None:  # fmt: skip
    """409 ``cancel_exceeds_order`` unless every unit asked for waits in a package that
    has not left (the order's allocation less its parcels)."""
    waiting = _waiting(order, ordered)
    for line in lines:
        left = waiting.get(line["product_id"], 0)
        if line["quantity"] > left:
            raise ApiError(409, ErrorCode.CANCEL_EXCEEDS_ORDER,
                           f"only {left} of this line have not shipped and may be cancelled",
                           {"product_id": line["product_id"], "cancellable_quantity": left})  # fmt: skip


async def _give_back(session: AsyncSession, order: Order, lines: list[dict[str, Any]]) -> bool:
    """The cancelled units' reservation released where the order holds them; its
    allocation keeps the rest (a package that loses every unit is gone). True when that
    dropped the last package waiting of a partially shipped order: its stock is then all
    consumed (every package left has taken its own)."""
    if order.stock_state != stock.StockState.RESERVED:
        return False  # not reserved yet (the reservation reserves what remains) or gone
    ordered = [(line.product_id, line.quantity) for line in order.lines]
    held = stock.held_by(order, ordered)
    if any(h.location_id is None for h in held):  # reserved before locations: the default
        default = await session.scalar(select(Location.id).where(Location.is_default))
        held = [h._replace(location_id=h.location_id or default) for h in held]
    kept, back = stock.shrink(held, lines)
    for h in sorted(back, key=lambda h: (str(h.product_id), str(h.location_id))):
        await session.execute(*stock.release(h.product_id, h.quantity, h.location_id))
    gone = order.parcels or {}  # packages that left keep their entries
    order.allocation = sorted(
        [*stock.allocation_json(kept), *(a for a in order.allocation if a["location_id"] in gone)],
        key=lambda a: (a["product_id"], a["location_id"]),
    )
    if kept or not gone:
        return False
    order.stock_state = stock.StockState.CONSUMED
    return True
