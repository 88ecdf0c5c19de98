"""What an operator's refund takes (the refund answered is ``fulfillment.order_view.RefundOut``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field, StrictBool, StrictInt, StringConstraints, model_validator

from api.shared.schemas import MAX_LINE_QUANTITY, MAX_ORDER_LINES, Input, Price


class RefundLineIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)


class RefundCreate(Input):
    """A refund by lines (each at the price it was ordered, with its share of the line's
    tax) or by amount, not both; ``shipping`` adds the order's shipping and its tax, once
    per order, beside either or alone."""

    lines: list[RefundLineIn] | None = Field(default=None, min_length=1,
                                             max_length=MAX_ORDER_LINES)  # fmt: skip
    amount: Price | None = None
    shipping: StrictBool = Field(
        default=False,
        description="also refund the shipping the customer paid and its tax, once per order "
        "(409 shipping_already_refunded the second time; 422 no_shipping_charged for an "
        "order that paid none)",
    )
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = None

    @model_validator(mode="after")
    def _lines_or_amount(self) -> RefundCreate:
        if self.lines is not None and self.amount is not None:
            raise ValueError("give either lines or amount, not both")
        if self.lines is None and self.amount is None and not self.shipping:
            raise ValueError("give lines, amount or shipping")
        if self.amount is not None and self.amount <= 0:
            raise ValueError("amount must be more than 0")
        if self.lines is not None and len({line.product_id for line in self.lines}) < len(
            self.lines
        ):
            raise ValueError("each product may appear once")
        return self
