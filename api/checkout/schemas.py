"""What the checkout's routes take and answer."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from api.orders.schemas import ItemsIn


class QuoteCreate(ItemsIn):
    """The lines and the address an order will have."""


class ShippingOptionOut(BaseModel):
    id: str = Field(description="what the order names to take this option")
    carrier: str
    service: str
    delivery_days: int | None
    estimated: bool = Field(description="a flat rate, priced while the carrier was away")
    shipping: str = Field(description="a decimal string, as prices are")
    shipping_amount: int = Field(description="minor units")
    tax: str
    tax_amount: int = Field(description="minor units: the lines' tax and the shipping's")
    total: str
    total_amount: int = Field(description="subtotal + shipping + tax, minor units")


class QuoteLineOut(BaseModel):
    product_id: UUID
    quantity: int
    unit_amount: int = Field(description="minor units, from the catalogue")


class QuoteOut(BaseModel):
    id: UUID
    expires_at: datetime
    currency: str
    lines: list[QuoteLineOut]
    subtotal: str
    subtotal_amount: int = Field(description="minor units")
    shipping_options: list[ShippingOptionOut] = Field(description="cheapest first")
