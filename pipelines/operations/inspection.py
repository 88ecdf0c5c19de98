"""``fulfillment orders show``: one order and its whole timeline, as text."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.db import create_sync_db_engine
from fulfillment.models import Notification, Order, OrderEvent, Shipment
from fulfillment.money import format_minor
from fulfillment.settings import Settings


def describe_order(settings: Settings, order_id: uuid.UUID) -> str | None:
    engine = create_sync_db_engine(settings, pool_size=1)
    try:
        with Session(engine) as session:
            order = session.get(Order, order_id)
            if order is None:
                return None
            events = session.scalars(
                select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
            ).all()
            shipments = session.scalars(
                select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.created_at)
            ).all()
            mails = session.scalars(
                select(Notification).where(Notification.order_id == order_id)
            ).all()
            return "\n".join(_render(order, events, shipments, mails))
    finally:
        engine.dispose()


def _render(order: Order, events, shipments, mails) -> list[str]:
    def money(amount: int) -> str:
        return format_minor(amount, order.currency)

    total = money(order.total_amount)
    lines = [
        f"order    {order.id}",
        f"status   {order.status}   stock {order.stock_state}   refund due {order.refund_due}",
        f"total    {total} {order.currency.upper()}   payment {order.payment_intent_id or '-'}"
        f"   refund {order.refund_id or '-'}",
        f"created  {order.created_at:%Y-%m-%d %H:%M:%S}   changed {order.status_changed_at:%Y-%m-%d %H:%M:%S}",
    ]
    if order.shipping_amount or order.tax_amount:  # placed on a checkout quote
        paid_for = " ".join(filter(None, (order.shipping_carrier, order.shipping_service)))
        lines.insert(3, f"         subtotal {money(order.subtotal_amount)}   shipping "
                     f"{money(order.shipping_amount)} ({paid_for or 'cheapest'})   tax "
                     f"{money(order.tax_amount)}   tax sale {order.tax_transaction_id or '-'}")  # fmt: skip
    if order.last_error:
        lines.append(f"error    {order.last_error}")
    for line in order.lines:
        lines.append(f"  {line.quantity:>3} x {line.sku:<16} {line.name}")
    for shipment in shipments:  # one per package
        lines.append(
            f"shipment {shipment.carrier} {shipment.tracking_code} ({shipment.tracker_status})"
        )
    for mail in mails:
        lines.append(f"e-mail   {mail.kind:<16} {mail.status}")
    lines.append("timeline")
    for event in events:
        move = (
            f"{event.from_status or '-'} -> {event.to_status}"
            if event.from_status != event.to_status
            else ""
        )
        error = f"  error: {event.error}" if event.error else ""
        lines.append(
            f"  {event.created_at:%H:%M:%S.%f}"[:-3]
            + f"  {event.step:<20} #{event.attempt:<2} {event.outcome:<10} {move}{error}"
        )
    return lines
