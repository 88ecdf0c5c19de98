"""The catalogue: public reads, admin writes. Stock is counted per location; a
product's public ``on_hand``, ``reserved`` and ``available`` are summed over the active
locations (``available``: on hand minus reserved)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from api.catalog.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductQuery,
    ProductUpdate,
    StockLevel,
    StockLevels,
    StockSet,
)
from api.shared.context import SESSIONS
from api.shared.errors import ApiError, ErrorCode, not_found, path_uuid
from api.shared.jsonio import read_model, respond
from api.shared.location_lookup import known_location
from api.shared.paging import page_of, query_model
from fulfillment import stock as stock_sql
from fulfillment.checkpoints import reach_async
from fulfillment.models import Inventory, Location, Product
from fulfillment.money import format_decimal


def product_out(product: Product) -> ProductOut:
    rows = [row for row in product.inventory if row.location_active]
    on_hand, reserved = sum(r.on_hand for r in rows), sum(r.reserved for r in rows)
    return ProductOut(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        price=format_decimal(product.price, product.currency),
        currency=product.currency,
        category=product.category,
        active=product.is_active,
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def product_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "product_id", "product")


async def list_products(request: web.Request) -> web.Response:
    query = query_model(request, ProductQuery)
    conditions = [Product.is_active.is_(True)]
    if query.category:
        conditions.append(Product.category == query.category.strip().lower())
    if query.search:
        pattern = f"%{_escape_like(query.search.strip())}%"
        conditions.append(
            or_(
                Product.name.ilike(pattern),
                Product.sku.ilike(pattern),
                Product.description.ilike(pattern),
            )
        )
    async with request.app[SESSIONS]() as session:
        rows, total = await page_of(session, Product, query, where=conditions,
                                    order_by=(Product.name, Product.id))  # fmt: skip
        items = [product_out(p) for p in rows]
    return respond(ProductPage(items=items, total=total, page=query.page, limit=query.limit))


async def get_product(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        product = await session.get(Product, product_id(request))
    if product is None or not product.is_active:
        raise not_found("product")
    return respond(product_out(product))


async def create_product(request: web.Request) -> web.Response:
    body = await read_model(request, ProductCreate)
    product = Product(
        sku=body.sku,
        name=body.name,
        description=body.description,
        price=body.price,
        currency=body.currency,
        category=body.category,
        is_active=body.active,
    )
    try:
        async with request.app[SESSIONS]() as session, session.begin():
            session.add(product)
            await session.flush()
            session.add(Inventory(product_id=product.id, on_hand=body.on_hand, reserved=0))
            if body.on_hand:
                await session.execute(*stock_sql.movement(product.id, body.on_hand, "count"))
    except IntegrityError:
        raise ApiError(
            409, ErrorCode.SKU_TAKEN, f"a product with sku {body.sku!r} exists"
        ) from None
    return await _respond_fresh(request, product.id, status=201)


async def update_product(request: web.Request) -> web.Response:
    body = await read_model(request, ProductUpdate)
    changes = body.model_dump(exclude_unset=True)
    if "active" in changes:
        changes["is_active"] = changes.pop("active")
    async with request.app[SESSIONS]() as session, session.begin():
        found = await session.scalar(
            update(Product)
            .where(Product.id == product_id(request))
            .values(**changes, updated_at=func.now())
            .returning(Product.id)
        )
    if found is None:
        raise not_found("product")
    return await _respond_fresh(request, found)


async def set_stock(request: web.Request) -> web.Response:
    """Sets the counted stock at a location (the default one when none is named). It
    may not drop below what open orders hold reserved there. The row is made when the
    location never held the product, then locked: a reservation's conditional UPDATE
    and this count take turns on it."""
    body = await read_model(request, StockSet)
    pid = product_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        if await session.scalar(select(Product.id).where(Product.id == pid)) is None:
            raise not_found("product")
        if body.location_id is not None:
            where = await known_location(session, body.location_id)
        else:
            where = await session.scalar(select(Location.id).where(Location.is_default))
        await session.execute(pg_insert(Inventory).values(product_id=pid, location_id=where)
                              .on_conflict_do_nothing())  # fmt: skip
        stock = await session.scalar(
            select(Inventory).where(Inventory.product_id == pid, Inventory.location_id == where)
            .with_for_update().execution_options(populate_existing=True)
        )  # fmt: skip
        if body.on_hand < stock.reserved:
            raise ApiError(
                409,
                ErrorCode.STOCK_BELOW_RESERVED,
                f"{stock.reserved} units are reserved by open orders there; on_hand cannot go lower",
                {"reserved": stock.reserved, "requested_on_hand": body.on_hand,
                 "location_id": str(where)},
            )  # fmt: skip
        if body.on_hand != stock.on_hand:
            await session.execute(*stock_sql.movement(pid, body.on_hand - stock.on_hand, "count",
                                                      location_id=where))  # fmt: skip
        stock.on_hand = body.on_hand
        await session.flush()
        await reach_async("set_stock.before_commit")  # the inventory row is held
    return await _respond_fresh(request, pid)


#: Every location, with the product's stock there (zeros where it has none).
_LEVELS = (
    select(Location.id, Location.name, Location.active,
           func.coalesce(Inventory.on_hand, 0), func.coalesce(Inventory.reserved, 0))
    .outerjoin(Inventory, (Inventory.location_id == Location.id)
               & (Inventory.product_id == bindparam("b_product")))
    .order_by(Location.priority, Location.name)
)  # fmt: skip


async def stock_levels(request: web.Request) -> web.Response:
    pid = product_id(request)
    async with request.app[SESSIONS]() as session:
        if await session.scalar(select(Product.id).where(Product.id == pid)) is None:
            raise not_found("product")
        rows = (await session.execute(_LEVELS, {"b_product": pid})).all()
    return respond(StockLevels(items=[
        StockLevel(location_id=lid, location_name=name, active=active, on_hand=on_hand,
                   reserved=reserved, available=on_hand - reserved)
        for lid, name, active, on_hand, reserved in rows
    ]))  # fmt: skip


async def _respond_fresh(
    request: web.Request, pid: uuid.UUID, *, status: int = 200
) -> web.Response:
    async with request.app[SESSIONS]() as session:
        product = await session.get(Product, pid)
    if product is None:
        raise not_found("product")
    return respond(product_out(product), status=status)
