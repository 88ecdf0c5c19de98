"""``POST /v1/admin/orders/{id}/packages/{package_id}/move``: an operator sends an
unshipped package (the order's stock at one location) from another location, also while
other packages of the order have left (not to a location whose package has).

In one transaction, under the order's row lock: the label purchase must be idle (a
shared hold, as an address change takes: no purchase starts before this commits, and
the next one ships from the new location), the destination must be active and ship to
the order's country, and its stock is taken with one conditional UPDATE per product,
with the inventory rows of both locations locked in (product, location) order, the
order every writer of several rows keeps; the source's units are released and the
order's allocation names the destination. Any shortfall is ``409 insufficient_stock``
and nothing changes. (Medusa #16488 moved a reservation without checking the
destination's stock.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from api.desk.schemas import PackageMove
from api.shared.cancellation import some_unshipped
from api.shared.context import SESSIONS
from api.shared.errors import ApiError, ErrorCode, not_found, path_uuid
from api.shared.jsonio import read_model, respond
from api.shared.label_purchase import no_label_in_flight
from api.shared.location_lookup import unknown_location
from api.shared.order_lookup import order_id
from api.shared.principal import authenticate
from fulfillment import stock
from fulfillment.checkpoints import reach_async
from fulfillment.models import Inventory, Location, Order
from fulfillment.order_view import order_out
from fulfillment.packages import Package, moved, packages_of
from fulfillment.stock import StockState
from fulfillment.transitions import note


def _package_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "package_id", "package")


async def move_package(request: web.Request) -> web.Response:
    principal = authenticate(request)
    body = await read_model(request, PackageMove)
    oid, pid = order_id(request), _package_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(select(Order).where(Order.id == oid).with_for_update())
        if order is None:
            raise not_found("order")
        package = next((p for p in packages_of(order.id, order.status, order.stock_state,
                                                order.allocation, order.parcels)
                        if p.id == pid), None)  # fmt: skip
        if package is None:
            raise not_found("package")
        location = await session.get(Location, body.location_id)
        if location is None:
            raise unknown_location(body.location_id)
        target = location.id
        if target == package.location_id:
            await session.refresh(order, ["lines"])
            return respond(order_out(order))
        _movable(order, package)
        if str(target) in (order.parcels or {}):
            raise ApiError(409, ErrorCode.PACKAGE_NOT_MOVABLE,
                           "the order's package from that location has left already",
                           {"location_id": str(target)})  # fmt: skip
        await no_label_in_flight(session, order, message="the label is being bought from the "
                                 "package's location right now")  # fmt: skip
        _eligible(location, str(order.shipping_address.get("country", "")))
        await _take(session, package.lines, source=package.location_id, target=target)
        order.allocation = moved(order.allocation, package.location_id, target)
        session.add(note(order, step="move_package", now=datetime.now(UTC), outcome="moved",
                         details={"admin": str(principal.user_id), "package": str(pid),
                                  "from": str(package.location_id), "to": str(target),
                                  "lines": package.lines}))  # fmt: skip
        await session.flush()
        await reach_async("move_package.before_commit")  # order and inventory rows held
        await session.refresh(order, ["lines", "updated_at"])
        body_out = order_out(order)
    return respond(body_out)


def _movable(order: Order, package: Package) -> None:
    """Only a package still waiting for its label, of an order whose stock is reserved
    and that has not shipped, or has shipped some packages of several (paused or not)."""
    if (order.stock_state != StockState.RESERVED or not some_unshipped(order)
            or order.refund_due or package.parcel is not None):  # fmt: skip
        raise ApiError(409, ErrorCode.PACKAGE_NOT_MOVABLE,
                       f"a package of an order that is {order.status} cannot move: only one "
                       "whose stock is reserved and that has not shipped",
                       {"status": order.status, "stock_state": order.stock_state,
                        "package_status": package.status})  # fmt: skip


def _eligible(location: Location, country: str) -> None:
    if not location.active or (location.ships_to and country.upper() not in location.ships_to):
        raise ApiError(409, ErrorCode.LOCATION_NOT_ELIGIBLE,
                       "the location is inactive or does not ship to the order's country",
                       {"location_id": str(location.id), "active": location.active,
                        "ships_to": list(location.ships_to), "country": country})  # fmt: skip


async def _take(session, lines: list[dict], *, source: uuid.UUID, target: uuid.UUID) -> None:
    """The package's units reserved at ``target`` (or 409, nothing changed), released at
    ``source``; the rows of both locked first, in (product, location) order."""
    products = sorted(uuid.UUID(line["product_id"]) for line in lines)
    await session.execute(pg_insert(Inventory).values([{"product_id": p, "location_id": target}
                                                       for p in products])
                          .on_conflict_do_nothing())  # fmt: skip
    await session.execute(
        select(Inventory.product_id).where(Inventory.product_id.in_(products),
                                           Inventory.location_id.in_([source, target]))
        .order_by(Inventory.product_id, Inventory.location_id).with_for_update()
    )  # fmt: skip
    for line in sorted(lines, key=lambda line: line["product_id"]):
        product, quantity = uuid.UUID(line["product_id"]), int(line["quantity"])
        if (await session.execute(*stock.reserve(product, quantity, target))).first() is None:
            raise ApiError(409, ErrorCode.INSUFFICIENT_STOCK,
                           "the location does not have the package's units available",
                           {"product_id": str(product), "quantity": quantity,
                            "location_id": str(target)})  # fmt: skip
        await session.execute(*stock.release(product, quantity, source))
