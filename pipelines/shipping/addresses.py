"""Shipping addresses the carrier refuses: the order waits in ``address_invalid`` (the
customer is told) instead of being refunded, until the customer fixes the address
(``PATCH /v1/orders/{id}/shipping_address``) or an operator says to ship it as it is
(``POST /v1/admin/orders/{id}/address-override``); both send it back to ``fulfilling``
with a ``ship_order`` message. The sweeper asks the carrier again, rarely, in case the
address was fine after all (``recheck_address``).

No extra carrier call on the happy path: the label purchase verifies the destination
strictly itself (``integrations.easypost_gateway``), and only its refusal lands here.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import select

from fulfillment.models import Order
from fulfillment.states import OrderStatus as S
from integrations.errors import PermanentProviderError, address_problems, is_address_failure
from integrations.ports import NotificationKind
from pipelines.common import FAILED, SKIPPED, SUCCESS, begin, lock_order, move, reading, record
from pipelines.deps import Deps
from pipelines.mail.claim import tell_customer


def is_refused_address(exc: PermanentProviderError | None) -> bool:
    return exc is not None and is_address_failure(exc)


def address_refused(
    deps: Deps, order_id: str, exc: PermanentProviderError, *, step: str, attempt: int
) -> str:
    """The carrier refused the order's address: ``address_invalid``, the customer told
    what to fix. Nothing is refunded; the stock stays reserved for the order."""
    problems = address_problems(exc)
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.FULFILLING or order.refund_due:
            return SKIPPED
        move(session, order, S.ADDRESS_INVALID, step=step, attempt=attempt, outcome="failed",
             error=str(exc), details={"problems": problems})  # fmt: skip
        tell_customer(session, order, NotificationKind.ADDRESS_INVALID, problems=problems)
    return FAILED


def recheck_address(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """The sweeper's resend for an order left in ``address_invalid``: ask the carrier
    once more; a deliverable address sends the order back to ``fulfilling`` (the label
    follows in the same message), any other answer leaves it waiting."""
    with reading(deps) as session:
        row = session.execute(
            select(Order.status, Order.shipping_address).where(Order.id == uuid.UUID(order_id))
        ).one_or_none()
    if row is None or row.status != S.ADDRESS_INVALID:
        return SKIPPED
    verdict = deps.carrier.verify_address(row.shipping_address)
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.ADDRESS_INVALID:
            return SKIPPED
        if not verdict.deliverable:
            problems: list[dict[str, Any]] = [asdict(p) for p in verdict.problems]
            record(session, order, step="recheck_address", attempt=attempt,
                   outcome="still_invalid", details={"problems": problems})  # fmt: skip
            return SKIPPED
        order.shipping_address = dict(verdict.address or row.shipping_address)
        move(session, order, S.FULFILLING, step="recheck_address", attempt=attempt,
             details={"verified": True})  # fmt: skip
    return SUCCESS
