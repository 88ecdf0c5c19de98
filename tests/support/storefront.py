"""What a storefront does over HTTP, as test helpers (aiohttp test client or a real
session against a running server: both have .post/.get/.put/.patch)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fulfillment.accounts import upsert_admin
from fulfillment.models import Inventory, Product
from fulfillment.stock import movement

PASSWORD = "correct horse battery"

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: Any, email: str | None = None) -> dict[str, Any]:
    email = email or f"{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"}
    response = await client.post("/v1/users", json=body)
    assert response.status == 201, await response.text()
    return await response.json()


async def login(client: Any, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    return await response.json()


async def customer_token(client: Any) -> str:
    user = await register(client)
    return (await login(client, user["email"]))["access_token"]


async def admin_token(client: Any, engine: Engine) -> str:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    with Session(engine) as session, session.begin():
        upsert_admin(session, email=email, password=PASSWORD)
    return (await login(client, email))["access_token"]


def add_product(
    engine: Engine,
    *,
    price: str = "12.50",
    on_hand: int = 100,
    currency: str = "usd",
    active: bool = True,
    category: str = "kitchen",
    name: str | None = None,
) -> uuid.UUID:
    """A product written straight to the database (the API path has its own tests)."""
    with Session(engine) as session, session.begin():
        product = Product(
            sku=f"SKU-{uuid.uuid4().hex[:10]}",
            name=name or f"Product {uuid.uuid4().hex[:6]}",
            price=Decimal(price),
            currency=currency,
            category=category,
            is_active=active,
        )
        session.add(product)
        session.flush()
        session.add(Inventory(product_id=product.id, on_hand=on_hand))
        if on_hand:
            session.execute(*movement(product.id, on_hand, "count"))
        return product.id


def order_body(*lines: tuple[uuid.UUID, int], payment_method: str = "pm_card_visa") -> dict:
    return {
        "items": [{"product_id": str(pid), "quantity": qty} for pid, qty in lines],
        "shipping_address": dict(ADDRESS),
        "payment_method": payment_method,
    }
