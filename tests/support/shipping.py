"""Orders on their way to a label, as the shipping tests on the EasyPost sandbox drive them:
EasyPost's own test addresses, an order placed through the API and packed by the real
steps, and what its status, timeline and outbox show."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fulfillment.models import Order, OrderEvent, OutboxMessage
from fulfillment.states import OrderStatus as S
from pipelines.deps import Deps
from pipelines.payments.payment import request_payment
from pipelines.stock.reservation import reserve_inventory
from tests.support.storefront import add_product, bearer

#: EasyPost's own test addresses, in our shape.
GOOD = {"name": "Ada Lovelace", "line1": "417 Montgomery Streat", "city": "SF",
        "state": "CA", "postal_code": "94104", "country": "US"}  # fmt: skip


BAD = {**GOOD, "line1": "1 Undeliverable Lane"}


async def place(client, engine: Engine, token: str, address: dict) -> str:
    product = add_product(engine, on_hand=5)
    body = {"items": [{"product_id": str(product), "quantity": 2}],
            "shipping_address": address, "payment_method": "pm_card_visa"}  # fmt: skip
    response = await client.post("/v1/orders", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


def packed(deps: Deps, order_id: str) -> None:
    """Reserved, charged and packed: the label is next."""
    reserve_inventory(deps, order_id)
    request_payment(deps, order_id)
    assert status(deps, order_id) == S.FULFILLING


def status(deps: Deps, order_id: str) -> S:
    with deps.sessions() as session:
        return S(session.get(Order, uuid.UUID(order_id)).status)


def steps_of(engine: Engine, order_id: str) -> list[tuple[str, str | None, str]]:
    with Session(engine) as session:
        events = session.scalars(select(OrderEvent).where(OrderEvent.order_id == uuid.UUID(order_id))
                                 .order_by(OrderEvent.id))  # fmt: skip
        return [(e.step, e.to_status, e.outcome) for e in events]


def queued(engine: Engine, message: tuple[str, str], **kwargs: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(
            OutboxMessage.actor_name == message[0], OutboxMessage.kwargs.contains(kwargs)))  # fmt: skip
