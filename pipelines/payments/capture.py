"""The capture (``PAYMENT_CAPTURE=shipment``): the authorization taken at order is
captured once, when the first package ships, and authorizations about to lapse are
never left to lapse unseen.

- ``ship_order`` sets ``capture_due`` in the commit that ships; ``capture_payment``
  follows in the same message (and the sweeper re-sends it while it stays due). It calls
  Stripe outside any lock with the key ``order_<id>_capture``: a second run, a replay or
  a concurrent duplicate gets Stripe's first answer, never a second capture. A
  compensation that began while the capture was in flight wins: under the order's lock
  the capture only clears ``capture_due`` (the compensation clears it too), and the
  refund step reads from Stripe whether it voids or refunds. An intent
  that can no longer be captured is read back as Stripe holds it and never refunded
  (a peer refunded on "already captured").
- The order's tax (an order placed on a quote) is recorded at Stripe Tax between the
  capture and its commit, and kept in that commit (``pipelines.payments.tax``): a retry
  finds the capture made and records the sale once (its reference ``order_<id>``); a
  transient failure retries the message; a refusal keeps the capture and tells the
  timeline. The sale is kept even when a compensation took over meanwhile: the money was
  captured, and the compensation's refund reverses its tax.
- Stripe lets an authorization lapse 7 days after it was taken (``capture_before``).
  The scheduler sends an order that has not shipped ``AUTHORIZATION_EXPIRY_MARGIN``
  ahead of it to ``needs_attention`` (``workers.sweeper.flag_expiring_authorizations``); Stripe's own expiry (``payment_intent.canceled``
  with reason ``automatic``, ``charge.expired``) does the same through its webhook.
"""

from __future__ import annotations

from fulfillment.checkpoints import reach
from integrations.errors import PermanentProviderError
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    lock_order,
    read_order,
    reading,
    record,
)
from pipelines.deps import Deps
from pipelines.payments.authorization import keep_payment, lapsed, needs_attention
from pipelines.payments.counts import count_payment
from pipelines.payments.tax import keep_sale, record_sale


def capture_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or not order.capture_due or order.refund_due:
            return SKIPPED
        intent_id = order.payment_intent_id
        # what is due: the total less the units cancelled before shipping (the rest of
        # the authorization is released by Stripe)
        amount = min(order.amount_authorized, order.total_amount - order.amount_cancelled)
    try:
        payment = deps.payments.capture(intent_id, order_id=str(order_id), amount=amount)
    except PermanentProviderError as exc:
        payment = None
        failure = str(exc)
    # the tax of what was captured, recorded before the commit that keeps the capture
    sale = record_sale(deps, order) if payment is not None and payment.succeeded else None
    reach("capture_payment.before_commit")
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None:
            return SKIPPED
        keep_sale(session, order, sale, step="capture_payment", attempt=attempt)
        if not order.capture_due:
            return SKIPPED
        if order.refund_due:  # a compensation began meanwhile: its refund step settles
            order.capture_due = False  # the money, whatever this capture did at Stripe
            record(session, order, step="capture_payment", attempt=attempt,
                   outcome="superseded", details={"by": "compensation"})  # fmt: skip
            return SKIPPED
        if payment is not None and payment.succeeded:
            keep_payment(order, payment)
            order.capture_due = False
            count_payment(session, "capture", "succeeded")
            record(session, order, step="capture_payment", attempt=attempt, outcome="captured",
                   details={"payment_intent": payment.id, "amount": payment.amount_received})  # fmt: skip
            return SUCCESS
        reason = (f"the authorization could not be captured: {failure}" if payment is None
                  else lapsed(payment))  # fmt: skip
        order.capture_due = False
        count_payment(session, "capture", "failed")
        if payment is not None:
            keep_payment(order, payment)
        needs_attention(session, order, reason=reason, step="capture_payment", attempt=attempt)
    return FAILED
