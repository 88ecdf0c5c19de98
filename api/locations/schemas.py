"""Bodies of the locations' routes (``/v1/admin/locations``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints, field_validator

from api.shared.schemas import Address, Input, Page

#: Ranks a location may have (lower ships first); a new one is ranked 100.
MAX_PRIORITY = 10_000
#: Most countries one location may list in ``ships_to``.
MAX_SHIPS_TO = 250

#: No control character (C0, DEL or C1) anywhere, no space at either end: refused, not
#: stripped, so the description's pattern is the whole rule.
NAME_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
#: 1 to 100 characters.
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Country = Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$")]
Priority = Annotated[StrictInt, Field(ge=0, le=MAX_PRIORITY, description="lower ships first")]
ShipsTo = Annotated[
    list[Country],
    Field(max_length=MAX_SHIPS_TO,
          description="ISO 3166-1 alpha-2 codes (upper-cased); empty: ships everywhere"),
]  # fmt: skip


def _countries(codes: list[str] | None) -> list[str] | None:
    """Each country once, in alphabetical order."""
    return None if codes is None else sorted(set(codes))


class LocationCreate(Input):
    name: Name
    address: Address = Field(description="the ship-from address")
    priority: Priority = 100
    ships_to: ShipsTo = []
    active: StrictBool = True

    _ships_to = field_validator("ships_to")(_countries)


class LocationUpdate(Input):
    """Only the fields sent change; each may be left out but not sent as null. The
    default location cannot be deactivated."""

    name: Name = None  # type: ignore[assignment]
    address: Address = None  # type: ignore[assignment]
    priority: Priority = None  # type: ignore[assignment]
    ships_to: ShipsTo = None  # type: ignore[assignment]
    active: StrictBool = None  # type: ignore[assignment]

    _ships_to = field_validator("ships_to")(_countries)


class LocationOut(BaseModel):
    id: UUID
    name: str
    address: Address
    priority: int
    ships_to: list[str]
    active: bool
    default: bool = Field(description="the location stock goes to when none is named")
    created_at: datetime
    updated_at: datetime


class LocationPage(Page[LocationOut]):
    pass
