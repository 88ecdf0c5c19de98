"""Stock locations (migration 0016): the warehouses, stores and 3PLs that ship orders,
each with its ship-from address, its rank and the countries it ships to."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk


class Location(Base):
    """A place stock ships from. Exactly one is the default (the migration creates it,
    holding the stock of a deployment that had no locations); it can never be inactive."""

    __tablename__ = "locations"
    __table_args__ = (
        Index("uq_locations_default", "is_default", unique=True,
              postgresql_where=text("is_default")),
    )  # fmt: skip

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text, unique=True)
    #: The ship-from address, as ``api.shared.schemas.Address`` has it.
    address: Mapped[dict[str, Any]]
    #: Lower ships first.
    priority: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    #: ISO 3166-1 alpha-2 codes, upper case; empty means everywhere.
    ships_to: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    is_default: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
