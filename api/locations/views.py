"""``/v1/admin/locations``: the places stock ships from. Admins only
(``api.shared.access``).

A name is unique: the unique index decides between two writers at once, and its refusal
is answered ``409 location_name_taken``. A change locks the location's row first, so the
default location is never deactivated, whatever else is being changed at the same time.
"""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.locations.schemas import LocationCreate, LocationOut, LocationPage, LocationUpdate
from api.shared.context import SESSIONS
from api.shared.errors import ApiError, ErrorCode, not_found, path_uuid
from api.shared.jsonio import read_model, respond
from api.shared.paging import PageQuery, page_of, query_model
from fulfillment.checkpoints import reach_async
from fulfillment.models import Location

L = Location


def location_out(location: Location) -> LocationOut:
    return LocationOut(
        id=location.id, name=location.name, address=location.address,
        priority=location.priority, ships_to=list(location.ships_to), active=location.active,
        default=location.is_default, created_at=location.created_at,
        updated_at=location.updated_at,
    )  # fmt: skip


def location_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "location_id", "location")


def name_taken(name: str) -> ApiError:
    return ApiError(409, ErrorCode.LOCATION_NAME_TAKEN, f"a location named {name!r} exists",
                    {"field": "name"})  # fmt: skip


async def create_location(request: web.Request) -> web.Response:
    body = await read_model(request, LocationCreate)
    values = body.model_dump() | {"id": uuid.uuid4()}
    try:
        async with request.app[SESSIONS]() as session, session.begin():
            location = await session.scalar(insert(L).values(**values).returning(L))
            await reach_async("create_location.before_commit")  # its name is held
    except IntegrityError:
        raise name_taken(body.name) from None
    return respond(location_out(location), status=201)


async def list_locations(request: web.Request) -> web.Response:
    """Every location, in the order they ship: by priority, then by name."""
    query = query_model(request, PageQuery)
    async with request.app[SESSIONS]() as session:
        rows, total = await page_of(session, L, query, order_by=(L.priority, L.name, L.id))
        items = [location_out(location) for location in rows]
    return respond(LocationPage(items=items, total=total, page=query.page, limit=query.limit))


async def get_location(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        location = await session.get(L, location_id(request))
    if location is None:
        raise not_found("location")
    return respond(location_out(location))


async def update_location(request: web.Request) -> web.Response:
    body = await read_model(request, LocationUpdate)
    changes = body.model_dump(exclude_unset=True)
    lid = location_id(request)
    try:
        async with request.app[SESSIONS]() as session, session.begin():
            locked = await session.scalar(select(L.is_default).where(L.id == lid).with_for_update())
            if locked is None:
                raise not_found("location")
            if locked and changes.get("active") is False:
                raise ApiError(409, ErrorCode.DEFAULT_LOCATION_INACTIVE,
                               "the default location cannot be deactivated",
                               {"field": "active"})  # fmt: skip
            location = await session.scalar(
                update(L).where(L.id == lid).values(**changes, updated_at=func.now()).returning(L)
            )
            await reach_async("update_location.before_commit")  # the row is held
    except IntegrityError:
        raise name_taken(changes.get("name", "")) from None
    return respond(location_out(location))
