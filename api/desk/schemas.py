"""What the operator desk (``/v1/admin/orders``) takes and answers. An order on the desk
is the order as the API shows it (``OrderOut``, the payment included) plus what an
operator needs beside it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.shared.paging import PageQuery
from api.shared.schemas import Input, OrderEventOut, Page
from fulfillment.messages import QUEUES
from fulfillment.order_view import OrderOut
from fulfillment.states import OrderStatus
from workers.dead_letters import DeadLetter

#: Every order status, spelled out in the description (a query parameter's schema
#: cannot point to a shared definition).
STATUSES = tuple(status.value for status in OrderStatus)
#: The longest a stalled order can have waited for the filter to find it: a year.
MAX_STALLED_MINUTES = 525_600


class DeadLetterQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    queue: Literal[QUEUES] | None = None  # type: ignore[valid-type]


# The worker's own model under its API name: no docstring, so the document stays as it was.
class DeadLetterOut(DeadLetter):
    pass


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    total: int


class DeadLetterReplayed(BaseModel):
    replayed: DeadLetterOut


class DeskOrderQuery(PageQuery):
    """Filters of ``GET /v1/admin/orders``; all of them must hold."""

    status: list[Literal[STATUSES]] | None = Field(  # type: ignore[valid-type]
        default=None, description="one or several; repeat the parameter or separate by commas"
    )
    created_from: datetime | None = Field(
        default=None, description="ISO 8601, inclusive; without an offset it is UTC"
    )
    created_to: datetime | None = Field(
        default=None, description="ISO 8601, inclusive; without an offset it is UTC"
    )
    email: str | None = Field(
        default=None, min_length=1, max_length=320, description="the customer's, any case"
    )
    product: str | None = Field(
        default=None, min_length=1, max_length=64, description="a product's id or SKU"
    )
    needs_attention: bool | None = None
    stalled_minutes: int | None = Field(
        default=None, ge=1, le=MAX_STALLED_MINUTES,
        description="a live (not finished) order whose status has not changed for this long",
    )  # fmt: skip

    @field_validator("created_from", "created_to")
    @classmethod
    def _utc_unless_said(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _range(self) -> DeskOrderQuery:
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise ValueError("created_from is after created_to")
        return self


class CustomerOut(BaseModel):
    id: UUID
    email: str
    name: str


class DeskOrderOut(OrderOut):
    customer: CustomerOut
    status_changed_at: datetime
    last_error: str | None = Field(description="the last step's error, if it failed")
    attention_from: str | None = Field(description="where a needs_attention order stopped")
    held_from: str | None = Field(description="where an on_hold order was held")


class DeskOrderPage(Page[DeskOrderOut]):
    pass


class ShipmentOut(BaseModel):
    shipment_id: str
    carrier: str
    service: str
    tracking_code: str
    tracker_status: str | None
    label_url: str
    created_at: datetime
    updated_at: datetime


class EmailOut(BaseModel):
    kind: str
    status: str = Field(description="pending, sending, sent or failed")
    created_at: datetime
    sent_at: datetime | None
    error: str | None


class DeskOrderDetail(DeskOrderOut):
    shipments: list[ShipmentOut]
    emails: list[EmailOut] = Field(description="e-mails the order called for, oldest first")
    timeline: list[OrderEventOut] = Field(description="every order event, oldest first")
    dead_letters: list[DeadLetterOut] = Field(description="dead-lettered messages of the order")


def desk_order_fields(order: Any, customer: Any) -> dict[str, Any]:
    """What ``DeskOrderOut`` adds to the order resource."""
    return {
        "customer": CustomerOut(id=customer.id, email=customer.email,
                                name=f"{customer.first_name} {customer.last_name}"),
        "status_changed_at": order.status_changed_at, "last_error": order.last_error,
        "attention_from": order.attention_from, "held_from": order.held_from,
    }  # fmt: skip


class PackageMove(Input):
    """Where an unshipped package should ship from instead."""

    location_id: UUID
