"""What the orders' routes take and answer (the order itself is ``fulfillment.order_view``,
which the merchant webhooks render too)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, StrictInt, field_validator, model_validator

from api.shared.schemas import (
    MAX_LINE_QUANTITY,
    MAX_ORDER_LINES,
    Address,
    Input,
    OrderEventOut,
    Page,
)
from fulfillment.order_view import OrderOut


class OrderItemIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)


class ItemsIn(Input):
    """Lines asked for, one per product, shipped to an address: an order's, a quote's."""

    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    shipping_address: Address

    @field_validator("items")
    @classmethod
    def _one_line_per_product(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        seen: set[UUID] = set()
        for item in items:
            if item.product_id in seen:
                raise ValueError(f"product {item.product_id} appears on more than one line")
            seen.add(item.product_id)
        return items


class OrderCreate(ItemsIn):
    payment_method: str = Field(pattern=r"^pm_[A-Za-z0-9_]{1,100}$")
    quote_id: UUID | None = Field(
        default=None, description="a checkout quote for these items and this address"
    )
    shipping_option_id: str | None = Field(
        default=None, max_length=200, description="one of the quote's shipping options"
    )

    @model_validator(mode="after")
    def _quote_and_option_together(self) -> OrderCreate:
        if (self.quote_id is None) != (self.shipping_option_id is None):
            raise ValueError("quote_id and shipping_option_id come together")
        return self


class OrderPage(Page[OrderOut]):
    pass


class OrderEventList(BaseModel):
    items: list[OrderEventOut]


class AddressProblemOut(BaseModel):
    code: str = Field(description="the carrier's code, e.g. E.ADDRESS.NOT_FOUND")
    field: str = Field(description="the address field (line1, postal_code, …) or address")
    message: str


class AddressVerdict(BaseModel):
    deliverable: bool
    address: dict[str, Any] | None = Field(
        description="the address as the carrier corrected it; null when undeliverable"
    )
    problems: list[AddressProblemOut]
