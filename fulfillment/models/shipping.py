"""Shipping: pick and pack, the carrier's label and tracker, the carrier shipment kept
before it is bought, and voided labels."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, updated_column


class Fulfillment(Base):
    """Pick and pack, recorded on its own: one per order."""

    __tablename__ = "fulfillments"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    parcel_weight_oz: Mapped[int] = mapped_column(Integer)
    picked_at: Mapped[datetime] = created_column()
    packed_at: Mapped[datetime] = created_column()


class Shipment(Base):
    """The carrier's label for one of an order's packages (its stock at one location:
    ``fulfillment.packages``) and the last tracker status seen."""

    __tablename__ = "shipments"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locations.id", name="fk_shipments_location_id"),
        primary_key=True,
        server_default=text("default_location_id()"),
    )
    shipment_id: Mapped[str] = mapped_column(String(255), unique=True)
    tracking_code: Mapped[str] = mapped_column(String(255), index=True)
    tracker_id: Mapped[str | None] = mapped_column(String(255))
    label_url: Mapped[str] = mapped_column(Text)
    carrier: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    tracker_status: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class CarrierShipment(Base):
    """The one carrier shipment made for a reference (an order id, ``return_<id>``),
    kept - committed - before it is bought (migration 0013): a later try buys or finds
    that shipment by id (``integrations.easypost_gateway``). No foreign key: it is
    written while the order's row is locked by the step that buys."""

    __tablename__ = "carrier_shipments"

    reference: Mapped[str] = mapped_column(String(255), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(String(255))
    request_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class LabelVoid(Base):
    """A label bought for goods that will not ship, voided through the carrier's refund
    (migration 0010): ``submitted`` until the carrier settles it ``refunded``,
    ``rejected`` (the label was scanned) or ``not_applicable`` (billed on scan)."""

    __tablename__ = "label_voids"
    __table_args__ = (
        CheckConstraint("status IN ('submitted', 'refunded', 'rejected', 'not_applicable')",
                        name="ck_label_voids_status"),
        Index("ix_label_voids_submitted", "requested_at",
              postgresql_where=text("status = 'submitted'")),
    )  # fmt: skip

    shipment_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(24))
    requested_at: Mapped[datetime] = created_column()
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the sweeper last asked for the void to be checked again.
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
