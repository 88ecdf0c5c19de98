"""What the catalogue's routes take and answer: products, their stock and the browse query."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints

from api.shared.paging import PageQuery
from api.shared.schemas import Input, Page, Price

Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]


Currency = Annotated[str, StringConstraints(to_lower=True, pattern=r"^[a-zA-Z]{3}$")]


Category = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]


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
    """The counted stock at one location (absent: the default location)."""

    on_hand: StrictInt = Field(ge=0, le=10_000_000)
    location_id: UUID | None = None


class StockLevel(BaseModel):
    """A product's stock at one location; ``available`` is on hand minus reserved."""

    location_id: UUID
    location_name: str
    active: bool
    on_hand: int
    reserved: int
    available: int


class StockLevels(BaseModel):
    """One entry per location, in priority order; a location that never held the product
    shows zeros."""

    items: list[StockLevel]


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


class ProductPage(Page[ProductOut]):
    pass


class ProductQuery(PageQuery):
    category: str | None = Field(default=None, max_length=64)
    search: str | None = Field(default=None, max_length=100)
