"""A location named in a request body (stock set at it, a return restocked at it): one
check for every feature that takes a ``location_id``."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.errors import ApiError, ErrorCode
from fulfillment.models import Location


async def known_location(session: AsyncSession, location_id: uuid.UUID) -> uuid.UUID:
    """``location_id`` if such a location exists (active or not), else ``422
    unknown_location``: the body names it, so it is the body that is wrong."""
    if await session.scalar(select(Location.id).where(Location.id == location_id)) is None:
        raise unknown_location(location_id)
    return location_id


def unknown_location(location_id: uuid.UUID) -> ApiError:
    return ApiError(422, ErrorCode.UNKNOWN_LOCATION, f"no location {location_id}",
                    {"field": "location_id"})  # fmt: skip
