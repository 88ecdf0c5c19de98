"""What the v1 API's bodies share (snake_case, as Stripe does): the strict ``Input`` base,
the error body, the page, prices, line limits, the postal address, the order's events and health. Each
feature's own bodies are in ``api/<feature>/schemas.py``; the order resource itself is
``fulfillment.order_view``. The same models validate input and describe the API in
``/v1/openapi.json``."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

#: Most lines one order may have.
MAX_ORDER_LINES = 50
#: Most units of one product on one line.
MAX_LINE_QUANTITY = 100

#: A price as the API writes it: a decimal string with at most two decimals ("12.50").
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


def _price_text(value: Any) -> Any:
    if not isinstance(value, str) or not re.fullmatch(PRICE_PATTERN, value):
        raise ValueError('a price is a decimal string with at most two decimals, e.g. "12.50"')
    return value


#: Checked as text first, so the schema's pattern is the whole rule: no number (a float
#: is not a price), no "", no "1e3", no spaces.
Price = Annotated[
    Decimal,
    BeforeValidator(_price_text),
    WithJsonSchema({"type": "string", "pattern": PRICE_PATTERN,
                    "description": 'decimal string, e.g. "12.50"'}),
]  # fmt: skip


class Input(BaseModel):
    """Request bodies: unknown fields are errors, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    error: ErrorBody


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    limit: int


# --- addresses (an order's shipping address, a location's ship-from address) -----------


class Address(Input):
    """A postal address: where an order ships to, where a location ships from."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    line1: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    state: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    country: Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2"
    )


# --- pages and order events (several features) ----------------------------------------


class OrderEventOut(BaseModel):
    id: int
    step: str
    from_status: str | None
    to_status: str | None
    attempt: int
    outcome: str
    error: str | None
    duration_ms: int | None
    details: dict[str, Any]
    created_at: datetime


# --- operations -------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


class CancelLineIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)


class OrderCancel(Input):
    """An optional cancel body: some of the order's unshipped units (absent: all of them)."""

    lines: list[CancelLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
