"""Placing an order: the API's hot path, written as a few SQL statements.

One transaction, and in it: the products (one SELECT), then the order, its lines, its
first timeline event and the outbox message that starts the pipeline, all in one
INSERT statement (data-modifying CTEs), so an accepted order costs a handful of round
trips whatever its size. Prices come from the catalogue, never from the client.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from api.errors import ApiError
from api.schemas import OrderCreate, OrderItemOut, OrderOut
from fulfillment.messages import RESERVE_INVENTORY
from fulfillment.money import format_decimal, from_minor
from fulfillment.ordering import (
    CatalogueEntry,
    MixedCurrencies,
    PricedOrder,
    ProductsUnavailable,
    price_order,
)

PRODUCTS = text(
    "SELECT id, sku, name, price, currency, is_active FROM products WHERE id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))

INSERT_ORDER = text(
    """
    WITH new_order AS (
        INSERT INTO orders (id, customer_id, status, currency, total_amount, shipping_address,
                            payment_method, created_at, updated_at, status_changed_at)
        VALUES (:id, :customer_id, 'pending', :currency, :total, CAST(:address AS jsonb),
                :payment_method, :now, :now, :now)
    ), new_lines AS (
        INSERT INTO order_lines (order_id, position, product_id, sku, name, quantity,
                                 unit_price, unit_amount)
        SELECT :id, l.position, l.product_id, l.sku, l.name, l.quantity, l.unit_price,
               l.unit_amount
        FROM jsonb_to_recordset(CAST(:lines AS jsonb)) AS l(
            position int, product_id uuid, sku text, name text, quantity int,
            unit_price numeric, unit_amount bigint)
    ), first_event AS (
        INSERT INTO order_events (order_id, step, to_status, created_at)
        VALUES (:id, 'accept', 'pending', :now)
    )
    INSERT INTO outbox (queue_name, actor_name, kwargs)
    VALUES (:queue, :actor, CAST(:kwargs AS jsonb))
    """
)


async def place_order(
    conn: AsyncConnection, *, customer_id: uuid.UUID, body: OrderCreate
) -> dict[str, Any]:
    """Writes the order in ``conn``'s transaction and returns its API representation."""
    requested = [(item.product_id, item.quantity) for item in body.items]
    rows = await conn.execute(PRODUCTS, {"ids": [pid for pid, _ in requested]})
    catalogue = {row.id: CatalogueEntry(*row) for row in rows}
    priced = _price(requested, catalogue)
    order_id, now = uuid.uuid4(), datetime.now(UTC)
    address = body.shipping_address.model_dump(exclude_none=True)
    await conn.execute(
        INSERT_ORDER,
        {
            "id": order_id, "customer_id": customer_id, "currency": priced.currency,
            "total": priced.total_amount, "address": json.dumps(address),
            "payment_method": body.payment_method, "now": now,
            "lines": json.dumps([_line_json(line) for line in priced.lines]),
            "queue": RESERVE_INVENTORY[1], "actor": RESERVE_INVENTORY[0],
            "kwargs": json.dumps({"order_id": str(order_id)}),
        },
    )  # fmt: skip
    return _representation(order_id, priced, address=address, now=now)


def _price(requested, catalogue) -> PricedOrder:
    try:
        return price_order(requested, catalogue)
    except ProductsUnavailable as exc:
        raise ApiError(
            422, "product_unavailable", "some products are unknown or not for sale",
            {"product_ids": [str(pid) for pid in exc.product_ids]},
        ) from None  # fmt: skip
    except MixedCurrencies as exc:
        raise ApiError(
            422, "currency_mismatch", str(exc), {"currencies": sorted(exc.currencies)}
        ) from None


def _line_json(line) -> dict[str, Any]:
    return {
        "position": line.position, "product_id": str(line.product_id), "sku": line.sku,
        "name": line.name, "quantity": line.quantity, "unit_price": str(line.unit_price),
        "unit_amount": line.unit_amount,
    }  # fmt: skip


def _representation(order_id, priced: PricedOrder, *, address, now: datetime) -> dict[str, Any]:
    """The same JSON ``GET /v1/orders/{id}`` answers for this order."""
    currency = priced.currency
    return OrderOut(
        id=order_id,
        status="pending",
        items=[
            OrderItemOut(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=format_decimal(line.unit_price, currency),
            )
            for line in priced.lines
        ],
        total=format_decimal(from_minor(priced.total_amount, currency), currency),
        total_amount=priced.total_amount,
        currency=currency,
        shipping_address=address,
        created_at=now,
        updated_at=now,
    ).model_dump(mode="json")
