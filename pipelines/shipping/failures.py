"""Goods that will not reach the customer: the whole order's (``shipping_failed``: stock
back, refund, e-mail), or one package's of several (``package_failed``: that package's
lines refunded, the rest go on; ``package_not_shipped``: its label cannot be bought after
others left, an operator decides). And goods that may still go, but not as paid for
(``service_not_offered``: the carrier no longer offers the service the customer paid
for; an operator decides)."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import bindparam, select

from fulfillment.checkpoints import reach
from fulfillment.models import OrderLine, Refund
from fulfillment.packages import Package
from fulfillment.refunds import RefundLineRefused, price_refund_lines
from fulfillment.states import OrderStatus as S
from fulfillment.states import can_transition
from integrations.errors import ServiceNotOffered
from pipelines import compensation as plans
from pipelines.common import FAILED, SKIPPED, begin, lock_order, move, record
from pipelines.compensation import compensate
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.payments.refunds import RefundRefused, accept_refund
from pipelines.saga import REFUNDABLE
from pipelines.shipping.labels import SHIPPING

#: What the refund of a package's lines is priced from.
_LINES = select(OrderLine).where(OrderLine.order_id == bindparam("b_order"))
_REFUNDS = select(Refund).where(Refund.order_id == bindparam("b_order"))
#: The refunds' source for a package that will not arrive.
PACKAGE_FAILED = "package_failed"


def shipping_failed(deps: Deps, order_id: str, *, step: str, attempt: int, error: str) -> str:
    """Compensation: the goods will not reach the customer. Release or restock, refund
    (the refund step then marks the order refunded) and tell the customer."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in REFUNDABLE or order.refund_due:
            return SKIPPED
        compensate(session, order, plans.shipping_failed(error=error), step=step, attempt=attempt)
        reach("shipping_failed.before_commit")
    return FAILED


def package_failed(
    session, order: LockedOrder, package: Package, error: str, *, attempt: int
) -> None:
    """One parcel of several will not arrive (the carrier said so); the others go on.
    Under the order's row lock: its lines are refunded by the one refund rule (key
    ``package_<id>``: a replay refunds nothing twice), its customer told by the refund's
    own e-mail. Before the capture there is nothing to refund from: an operator decides
    (``needs_attention``), as a capture under way would not see a smaller amount."""
    details = {"package": {"id": str(package.id), "location_id": str(package.location_id)}}
    if not order.amount_captured:
        _to_operator(session, order, f"{error}; package {package.id} will not arrive and the "
                     "payment is not captured yet: refund its lines once it is", details,
                     attempt=attempt)  # fmt: skip
        return
    priced_from = SimpleNamespace(lines=session.scalars(_LINES, {"b_order": order.id}).all(),
                                  cancelled_lines=order.cancelled_lines)  # fmt: skip
    refunds = session.scalars(_REFUNDS, {"b_order": order.id}).all()
    try:
        amount, lines = price_refund_lines(
            priced_from, refunds, [(line["product_id"], line["quantity"]) for line in package.lines]
        )  # fmt: skip
        refund, statements = accept_refund(order, amount=amount, source=PACKAGE_FAILED,
                                           request_key=f"package_{package.id}", lines=lines,
                                           reason="the parcel will not arrive")  # fmt: skip
    except (RefundRefused, RefundLineRefused) as exc:
        _to_operator(session, order, f"{error}; the refund of package {package.id} was "
                     f"refused: {exc}", details, attempt=attempt)  # fmt: skip
        return
    for statement in statements:
        session.execute(statement)
    record(session, order, step="apply_tracking", attempt=attempt, outcome="package_failed",
           error=error, details={**details, "refund": str(refund["id"]), "amount": amount})  # fmt: skip


def package_not_shipped(
    deps: Deps, order_id: str, package: Package | None, error: str, *, attempt: int
) -> str:
    """A package's label was refused after others had left: the parcels on their way are
    not undone; an operator decides (a redrive buys it again, a refund by its lines)."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.PARTIALLY_SHIPPED or order.refund_due:
            return SKIPPED
        where = (
            {}
            if package is None
            else {"package": {"id": str(package.id), "location_id": str(package.location_id)}}
        )
        _to_operator(session, order, f"the label of a package could not be bought: {error}",
                     where, attempt=attempt, step="ship_order")  # fmt: skip
    return FAILED


def service_not_offered(
    deps: Deps, order_id: str, package: Package | None, refusal: ServiceNotOffered, *,
    attempt: int,
) -> str:  # fmt: skip
    """The carrier no longer offers, for the order's (or a package's) parcel, the service
    the customer paid for: no cheaper service is bought in its place and nothing is
    refunded; the order waits in ``needs_attention`` with the reason. An operator's
    resume buys that service again (the carrier is asked afresh: it ships once the
    service is offered again); a cancel refunds. Buying another service is not a desk
    action yet."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in SHIPPING or order.refund_due:
            return SKIPPED
        details: dict = {"carrier": refusal.carrier, "service": refusal.service}
        if package is not None:
            details["package"] = {"id": str(package.id), "location_id": str(package.location_id)}
        _to_operator(session, order, f"{refusal.message}; the customer paid for it, so no "
                     "other service was bought: resume once it is offered again, or cancel",
                     details, attempt=attempt, step="ship_order")  # fmt: skip
    return FAILED


def _to_operator(session, order: LockedOrder, reason: str, details: dict, *, attempt: int,
                 step: str = "apply_tracking") -> None:  # fmt: skip
    if order.status == S.NEEDS_ATTENTION or not can_transition(S(order.status), S.NEEDS_ATTENTION):
        record(session, order, step=step, attempt=attempt, outcome="failed", error=reason,
               details=details)  # fmt: skip
        return
    order.attention_from = order.status
    move(session, order, S.NEEDS_ATTENTION, step=step, attempt=attempt, outcome="failed",
         error=reason, details=details)  # fmt: skip
