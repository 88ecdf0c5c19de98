"""Request and response bodies of the v1 API (snake_case, as Stripe does). The same
models validate input and describe the API in ``/v1/openapi.json``."""

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
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fulfillment.order_view import (  # noqa: F401 (the order resource, and its refunds)
    OrderItemOut,
    OrderOut,
    RefundOut,
)

#: Most lines one order may have.
MAX_ORDER_LINES = 50
#: Most units of one product on one line.
MAX_LINE_QUANTITY = 100

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Password = Annotated[str, Field(min_length=10, max_length=128)]
Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]
Currency = Annotated[str, StringConstraints(to_lower=True, pattern=r"^[a-zA-Z]{3}$")]
Category = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]
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


# --- users and auth ---------------------------------------------------------------------


class RegisterRequest(Input):
    email: EmailStr = Field(max_length=320)
    password: Password
    first_name: Name
    last_name: Name


class UpdateMeRequest(Input):
    first_name: Name | None = None
    last_name: Name | None = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None, max_length=128, description="required when changing the password"
    )


class UserOut(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str
    role: Literal["customer", "admin"]
    created_at: datetime


class LoginRequest(Input):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=128)


class RefreshRequest(Input):
    refresh_token: str = Field(min_length=1, max_length=200)


class PasswordResetRequest(Input):
    email: str = Field(min_length=1, max_length=320)


class PasswordResetAccepted(BaseModel):
    """The same answer whether or not an account has the e-mail."""

    accepted: Literal[True] = True
    message: str


class PasswordResetConfirm(Input):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# --- catalogue --------------------------------------------------------------------------


class ProductCreate(Input):
    sku: Sku
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: str = Field(default="", max_length=5000)
    price: Price
    currency: Currency = "usd"
    category: Category
    active: StrictBool = True
    on_hand: StrictInt = Field(default=0, ge=0, le=10_000_000)


class ProductUpdate(Input):
    """Only the fields sent change; each may be left out but not sent as null."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = (
        None  # type: ignore[assignment]
    )
    description: str = Field(default=None, max_length=5000)  # type: ignore[assignment]
    price: Price = None  # type: ignore[assignment]
    category: Category = None  # type: ignore[assignment]
    active: StrictBool = None  # type: ignore[assignment]


class StockSet(Input):
    on_hand: StrictInt = Field(ge=0, le=10_000_000)


class ProductOut(BaseModel):
    id: UUID
    sku: str
    name: str
    description: str
    price: str = Field(description='decimal string, e.g. "12.50"')
    currency: str
    category: str
    active: bool
    on_hand: int
    reserved: int
    available: int = Field(description="on hand minus reserved")
    created_at: datetime
    updated_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    limit: int


class ProductPage(Page[ProductOut]):
    pass


# --- orders -----------------------------------------------------------------------------


class OrderItemIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)


class Address(Input):
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


class OrderCreate(Input):
    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    shipping_address: Address
    payment_method: str = Field(pattern=r"^pm_[A-Za-z0-9_]{1,100}$")

    @field_validator("items")
    @classmethod
    def _one_line_per_product(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        seen: set[UUID] = set()
        for item in items:
            if item.product_id in seen:
                raise ValueError(f"product {item.product_id} appears on more than one line")
            seen.add(item.product_id)
        return items


class RefundLineIn(Input):
    product_id: UUID
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)


class RefundCreate(Input):
    """A refund by lines (each at the price it was ordered) or by amount, not both."""

    lines: list[RefundLineIn] | None = Field(default=None, min_length=1,
                                             max_length=MAX_ORDER_LINES)  # fmt: skip
    amount: Price | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = None

    @model_validator(mode="after")
    def _lines_or_amount(self) -> RefundCreate:
        if (self.lines is None) == (self.amount is None):
            raise ValueError("give either lines or amount")
        if self.amount is not None and self.amount <= 0:
            raise ValueError("amount must be more than 0")
        if self.lines is not None and len({line.product_id for line in self.lines}) < len(
            self.lines
        ):
            raise ValueError("each product may appear once")
        return self


class OrderPage(Page[OrderOut]):
    pass


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


class OrderEventList(BaseModel):
    items: list[OrderEventOut]


# --- webhooks and operators -------------------------------------------------------------


class WebhookAck(BaseModel):
    received: Literal[True]
    duplicate: bool = Field(description="the event was stored before; nothing happened again")


# --- operations -------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
