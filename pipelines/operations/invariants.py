"""``fulfillment verify``: the correctness rules, checked against the database and
against what Stripe, SendGrid and EasyPost themselves recorded (EasyPost: no live label
for an order that will never ship; Stripe Tax: ``pipelines.operations.tax_invariants``).
Every violation is listed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from fulfillment.checkpoints import reach
from fulfillment.db import create_sync_db_engine
from fulfillment.models import (
    WEBHOOK_UNAPPLIED_AFTER,
    Inventory,
    Order,
    Refund,
    StockMovement,
    WebhookEvent,
)
from fulfillment.settings import Settings
from fulfillment.states import TERMINAL
from fulfillment.states import OrderStatus as S
from fulfillment.stock import StockState
from integrations.audit import ProviderRecords, read_provider_records
from integrations.easypost_gateway import build_easypost_carrier
from integrations.ports import LiveLabel
from integrations.stripe_tax import build_stripe_tax
from pipelines.operations.session_invariants import check_sessions
from pipelines.operations.tax_invariants import check_tax
from pipelines.saga import PAID_STATES, UNPAID_STATES


@dataclass
class Report:
    checked_orders: int = 0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        head = f"checked {self.checked_orders} orders: "
        head += "all invariants hold" if self.ok else f"{len(self.violations)} violation(s)"
        return [
            head,
            *(f"  VIOLATION {v}" for v in self.violations),
            *(f"  note: {n}" for n in self.notes),
        ]

    def as_dict(self) -> dict:
        return {"ok": self.ok, "checked_orders": self.checked_orders,
                "violations": self.violations, "notes": self.notes}  # fmt: skip


def check_all(settings: Settings) -> Report:
    engine = create_sync_db_engine(settings, pool_size=1)
    report = Report()
    try:
        with Session(engine) as session:
            # One snapshot of the database, taken before Stripe is read: what a writer
            # keeps here follows what it did at Stripe, so Stripe read afterwards holds
            # at least what the snapshot says it did (a refund or a void finishing
            # during verify is still under way in the snapshot, not a violation).
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            orders = session.scalars(select(Order)).all()
            report.checked_orders = len(orders)
            reach("verify.after_database_snapshot")
            records = read_provider_records(settings)
            check_payments(orders, records, report, refunds=refund_totals(session))
            check_refunds_made(session, records, report)
            check_tax(orders, session, report, read=build_stripe_tax(settings).retrieve_transaction)
            check_mail(records, report)
            check_stock(session, report)
            check_progress(orders, settings, session, report)
            check_labels(orders, build_easypost_carrier(settings).bought_labels(), report)
            check_sessions(session, report)
            check_webhooks(session, report, bound=WEBHOOK_UNAPPLIED_AFTER)
    finally:
        engine.dispose()
    return report


def check_labels(orders, labels: list[LiveLabel], report: Report) -> None:
    """No live label at the carrier (bought, not voided) for an order that will never
    ship: a cancelled one, or one refunded before it shipped. A void still being
    settled is a note; one the carrier rejected is a violation."""
    never_shipped = {str(order.id) for order in orders
                     if order.status == S.CANCELLED
                     or (order.status == S.REFUNDED and order.shipped_at is None)}  # fmt: skip
    for label in labels:
        # a package's label of an order in several: "<order id>:<location id>"
        if label.reference.partition(":")[0] not in never_shipped:
            continue
        if label.refund_status in (None, "rejected"):
            report.violations.append(
                f"order {label.reference} will never ship but its label {label.shipment_id} "
                f"is live at the carrier (refund status {label.refund_status or 'none'})"
            )
        elif label.refund_status == "submitted":
            report.notes.append(f"order {label.reference}: void of {label.shipment_id} "
                                "still in progress")  # fmt: skip


def check_payments(orders, records: ProviderRecords, report: Report,
                   refunds: dict | None = None) -> None:  # fmt: skip
    """Per order, against Stripe's own records: charged (captured) at most once; an
    order that holds money holds it at Stripe; captured never more than authorized; no
    capture for an order cancelled before it shipped; what was captured is the total less
    the units cancelled before the money was taken; every cancelled authorization voided;
    refunds never more than captured and equal to what Stripe refunded."""
    refunds = refunds or {}
    for order in orders:
        paid = records.succeeded_payments.get(str(order.id), [])
        intents = records.intents.get(str(order.id), [])
        held = [i for i in intents if i.status == "requires_capture"]
        status = S(order.status)
        if len(paid) > 1:
            report.violations.append(f"order {order.id} was charged {len(paid)} times: {paid}")
        awaiting_capture = order.capture_method == "manual" and not order.amount_captured
        if status in PAID_STATES and not paid and not (awaiting_capture and held):
            report.violations.append(f"order {order.id} is {status} but Stripe holds no payment")
        for intent in intents:
            if intent.captured > intent.amount:
                report.violations.append(f"order {order.id}: {intent.id} captured "
                                         f"{intent.captured} of {intent.amount} authorized")  # fmt: skip
        if order.amount_captured > order.amount_authorized:
            report.violations.append(f"order {order.id} captured more than it authorized")
        due = order.total_amount - (order.amount_cancelled or 0)
        if order.amount_captured and order.amount_captured != due:
            report.violations.append(f"order {order.id} captured {order.amount_captured}, but "
                                     f"{due} was due (total less what was cancelled unpaid)")  # fmt: skip
        never_shipped = status in UNPAID_STATES and order.shipped_at is None
        if never_shipped and order.capture_method == "manual" and paid and not order.refund_due:
            report.violations.append(
                f"order {order.id} was cancelled before shipping but captured {paid}"
            )
        # read back from Stripe, whatever the order recorded of its payment (a charge
        # that landed after the cancel may never have been written on the order)
        if status in UNPAID_STATES and held and not order.refund_due:
            report.violations.append(f"order {order.id} is {status} but its authorization "
                                     f"{held[0].id} is live at Stripe (never voided)")  # fmt: skip
        elif status in UNPAID_STATES and held:
            report.notes.append(f"order {order.id}: void of {held[0].id} still in progress")
        if status in UNPAID_STATES and order.capture_due:
            report.violations.append(f"order {order.id} is {status} but a capture is still due")
        for intent in paid:
            kept = records.payment_amounts[intent] - records.refunded.get(intent, 0)
            if status in UNPAID_STATES and kept > 0 and not order.refund_due:
                report.violations.append(
                    f"order {order.id} is {status} but keeps {kept} of {intent}"
                )
            if status in UNPAID_STATES and kept > 0 and order.refund_due:
                report.notes.append(f"order {order.id}: refund of {intent} still in progress")
        refunded_here = refunds.get(order.id, (0, 0))
        at_stripe = sum(records.refunded.get(intent, 0) for intent in paid)
        if order.amount_refunded > order.amount_captured or at_stripe > sum(
            records.payment_amounts[intent] for intent in paid
        ):
            report.violations.append(f"order {order.id} refunded more than it captured")
        succeeded, pending = refunded_here
        if not pending and succeeded != at_stripe and (succeeded or order.capture_method):
            report.violations.append(f"order {order.id}: refunds succeeded here {succeeded}, "
                                     f"Stripe refunded {at_stripe}")  # fmt: skip


#: Refunds this side says Stripe made, with Stripe's id for each.
_MADE = select(Refund.id, Refund.order_id, Refund.provider_refund_id).where(
    Refund.status == "succeeded"
)


def check_refunds_made(session: Session, records: ProviderRecords, report: Report) -> None:
    """Every refund kept as succeeded is one Stripe holds and did not refuse."""
    for refund_id, order_id, provider_id in session.execute(_MADE):
        at_stripe = records.refund_statuses.get(provider_id or "")
        if at_stripe not in ("succeeded", "pending"):
            report.violations.append(
                f"order {order_id}: refund {refund_id} is kept as succeeded but Stripe "
                f"{'refused it (' + at_stripe + ')' if at_stripe else 'has no such refund'}"
            )


def refund_totals(session: Session) -> dict:
    """(succeeded, pending) refund amounts per order, from the refund rows."""
    totals: dict = {}
    rows = session.execute(select(Refund.order_id, Refund.status, func.sum(Refund.amount))
                           .group_by(Refund.order_id, Refund.status)).all()  # fmt: skip
    for order_id, status, amount in rows:
        succeeded, pending = totals.get(order_id, (0, 0))
        if status == "succeeded":
            succeeded += amount
        elif status == "pending":
            pending += amount
        totals[order_id] = (succeeded, pending)
    return totals


def check_mail(records: ProviderRecords, report: Report) -> None:
    if records.mails is None:
        report.notes.append("the mail log cannot be read from this provider; e-mails not checked")
        return
    for key, count in records.mails.items():
        if count > 1:
            report.violations.append(f"e-mail {key} was sent {count} times")


#: What every order holding stock holds, per (product, location): its allocation less the
#: packages that have left, or (an order reserved before locations) its lines at the
#: default location.
_HELD = text("""
    SELECT (a->>'product_id')::uuid, (a->>'location_id')::uuid, sum((a->>'quantity')::int)
    FROM orders o, jsonb_array_elements(o.allocation) a
    WHERE o.stock_state = 'reserved' AND NOT o.parcels ? (a->>'location_id') GROUP BY 1, 2
    UNION ALL
    SELECT l.product_id, default_location_id(), sum(l.quantity)
    FROM orders o JOIN order_lines l ON l.order_id = o.id
    WHERE o.stock_state = 'reserved' AND o.allocation = '[]'::jsonb GROUP BY 1, 2
""")


def check_stock(session: Session, report: Report) -> None:
    """At every location: reserved stock equals what live orders hold there, and on hand
    equals that location's ledger."""
    held: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for product, location, quantity in session.execute(_HELD):
        held[(product, location)] = held.get((product, location), 0) + quantity
    ledger = dict(((p, loc), total) for p, loc, total in session.execute(
        select(StockMovement.product_id, StockMovement.location_id, func.sum(StockMovement.delta))
        .group_by(StockMovement.product_id, StockMovement.location_id)
    ))  # fmt: skip
    rows = {(row.product_id, row.location_id): row for row in session.scalars(select(Inventory))}
    for key in sorted(rows.keys() | held.keys() | ledger.keys(), key=str):
        row, where = rows.get(key), f"product {key[0]} at location {key[1]}"
        reserved, on_hand = (row.reserved, row.on_hand) if row is not None else (0, 0)
        if reserved != held.get(key, 0):
            report.violations.append(
                f"{where}: reserved {reserved}, orders hold {held.get(key, 0)}"
            )
        if on_hand != ledger.get(key, 0):
            report.violations.append(
                f"{where}: on hand {on_hand}, ledger says {ledger.get(key, 0)}"
            )
    released_live = session.scalar(
        select(func.count())
        .select_from(Order)
        .where(
            Order.stock_state == StockState.RESERVED, Order.status.in_([s.value for s in TERMINAL])
        )
    )
    if released_live:
        report.violations.append(f"{released_live} finished order(s) still hold reserved stock")


def check_progress(orders, settings: Settings, session: Session, report: Report) -> None:
    """No order stalled past its deadline or waiting for an operator."""
    now = session.scalar(select(func.now()))
    deadline = timedelta(seconds=settings.stall_after_seconds * 3)
    for order in orders:
        status = S(order.status)
        if status == S.NEEDS_ATTENTION:
            report.violations.append(f"order {order.id} needs attention: {order.last_error}")
        elif status == S.ON_HOLD and now - order.status_changed_at > deadline:
            report.violations.append(
                f"order {order.id} held by an operator (from {order.held_from}) since "
                f"{order.status_changed_at:%Y-%m-%d %H:%M:%S}"
            )
        elif status not in TERMINAL and now - order.status_changed_at > deadline:
            report.violations.append(
                f"order {order.id} stalled in {status} since {order.status_changed_at:%Y-%m-%d %H:%M:%S}"
            )


def check_webhooks(session: Session, report: Report, *, bound: timedelta) -> None:
    """No provider event left unapplied for longer than ``bound``: each one is applied
    where it is stored, by the commit it waited for, or by its ``process_webhook``."""
    stale = session.execute(
        select(WebhookEvent.provider, WebhookEvent.event_id, WebhookEvent.event_type,
               WebhookEvent.tracking_code, WebhookEvent.order_id, WebhookEvent.received_at)
        .where(WebhookEvent.processed_at.is_(None),
               WebhookEvent.received_at < func.now() - bound)
        .order_by(WebhookEvent.received_at)
    ).all()  # fmt: skip
    for provider, event_id, kind, code, order_id, received in stale:
        about = f"order {order_id}" if order_id else f"tracking code {code}" if code else "no order"
        report.violations.append(
            f"{provider} event {event_id} ({kind}, {about}) received "
            f"{received:%Y-%m-%d %H:%M:%S} is not applied"
        )
