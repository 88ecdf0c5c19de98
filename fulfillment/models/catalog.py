"""The catalog: products, their stock, and the stock ledger.

The database makes overselling impossible: ``0 <= reserved <= on_hand``."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    select,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk
from fulfillment.models.locations import Location


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="ck_products_price"),
        CheckConstraint("currency ~ '^[a-z]{3}$'", name="ck_products_currency"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str] = mapped_column(String(64), index=True)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    #: Its Stripe Tax product tax code (None: ``txcd_99999999``, general tangible goods).
    tax_code: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    #: Its stock at each location that holds a row for it (migration 0017).
    inventory: Mapped[list[Inventory]] = relationship(
        lazy="selectin", order_by="Inventory.location_id"
    )


#: The default location's id, as the database says (migration 0017): the column default
#: of every stock row, so a writer that names no location writes at the default one.
DEFAULT_LOCATION = text("default_location_id()")


class Inventory(Base):
    """A product's stock at one location."""

    __tablename__ = "inventory"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="ck_inventory_on_hand"),
        CheckConstraint("reserved >= 0", name="ck_inventory_reserved"),
        CheckConstraint("reserved <= on_hand", name="ck_inventory_not_oversold"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locations.id", name="fk_inventory_location_id"),
        primary_key=True,
        server_default=DEFAULT_LOCATION,
    )
    on_hand: Mapped[int] = mapped_column(Integer, server_default="0")
    reserved: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = updated_column()

    #: Whether its location is active (a subquery in the select list: a row locked
    #: ``FOR UPDATE`` does not lock its location).
    location_active: Mapped[bool] = column_property(
        select(Location.active).where(Location.id == location_id).scalar_subquery()
    )


class StockMovement(Base):
    """The stock ledger: every change of on-hand stock at a location, so each location's
    on hand can be audited. One movement per (order, product, location, reason), which
    makes consuming stock idempotent."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        Index(
            "uq_stock_movements_order",
            "order_id",
            "product_id",
            "location_id",
            "reason",
            unique=True,
            postgresql_where=text("order_id IS NOT NULL"),
        ),
        Index("ix_stock_movements_product", "product_id"),
        #: A return's movements (migration 0011): one per (return, product, reason).
        Index(
            "uq_stock_movements_return",
            "return_id",
            "product_id",
            "location_id",
            "reason",
            unique=True,
            postgresql_where=text("return_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locations.id", name="fk_stock_movements_location_id"),
        server_default=DEFAULT_LOCATION,
    )
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"))
    #: The return that brought the units back (reasons ``returned`` and ``damaged``).
    return_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("returns.id", name="fk_stock_movements_return_id")
    )
    created_at: Mapped[datetime] = created_column()
