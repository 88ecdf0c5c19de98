"""Bodies of the return routes (``/v1/orders/{id}/returns``,
``/v1/admin/returns/{id}/receive``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StrictInt, StringConstraints, model_validator

from api.shared.schemas import MAX_LINE_QUANTITY, MAX_ORDER_LINES, Input
from fulfillment.models import Return
from fulfillment.returns import ReturnStatus

Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]


class ReturnLineIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)


class ReturnCreate(Input):
    """Units of a delivered order to send back, each product once."""

    lines: list[ReturnLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    reason: Reason | None = None

    @model_validator(mode="after")
    def _one_line_per_product(self) -> ReturnCreate:
        if len({line.product_id for line in self.lines}) < len(self.lines):
            raise ValueError("each product may appear once")
        return self


class ReceivedLineIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)
    condition: Literal["restock", "damaged"] = Field(
        description="restock: back to stock; damaged: kept out of stock (refunded all the same)"
    )


class ReturnReceive(Input):
    """What the warehouse took back of a return; a product may appear once per condition."""

    lines: list[ReceivedLineIn] = Field(min_length=1, max_length=2 * MAX_ORDER_LINES)
    #: Where the restocked units go back on hand; absent: where each was taken from.
    location_id: UUID | None = None

    @model_validator(mode="after")
    def _one_line_per_condition(self) -> ReturnReceive:
        pairs = {(line.product_id, line.condition) for line in self.lines}
        if len(pairs) < len(self.lines):
            raise ValueError("each product may appear once per condition")
        return self


class ReturnLineOut(BaseModel):
    product_id: UUID
    quantity: int


class ReceivedLineOut(ReturnLineOut):
    condition: Literal["restock", "damaged"]


class ReturnOut(BaseModel):
    id: UUID
    order_id: UUID
    status: ReturnStatus
    lines: list[ReturnLineOut]
    reason: str | None
    tracking_code: str | None = Field(description="the return parcel's, once its label exists")
    label_url: str | None = Field(description="the prepaid label to print, once it exists")
    received_lines: list[ReceivedLineOut]
    received_at: datetime | None
    refund_id: UUID | None = Field(description="the refund that pays the received lines")
    created_at: datetime
    updated_at: datetime


class ReturnList(BaseModel):
    items: list[ReturnOut]


def return_out(row: Return) -> ReturnOut:
    return ReturnOut(
        id=row.id, order_id=row.order_id, status=ReturnStatus(row.status), lines=row.lines,
        reason=row.reason, tracking_code=row.tracking_code, label_url=row.label_url,
        received_lines=row.received_lines, received_at=row.received_at, refund_id=row.refund_id,
        created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip
