"""A customer's delivered order, a return asked for it and the warehouse receiving it,
through the real API: shared by the returns tests and the refund-key races."""

from __future__ import annotations

from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.payments.capture import capture_payment
from tests.support.steps import advance, new_product
from tests.support.storefront import bearer, customer_token, order_body


async def delivered_order(client, deps, engine, *, to: S = S.DELIVERED):
    """A customer's captured order of 2 mugs at 12.50 and 1 plate at 8.00 (5 of each in
    stock), taken to ``to``."""
    token = await customer_token(client)
    mug, plate = new_product(engine, on_hand=5), new_product(engine, on_hand=5, price="8.00")
    response = await client.post("/v1/orders", json=order_body((mug, 2), (plate, 1)),
                                 headers=bearer(token))  # fmt: skip
    assert response.status == 201, await response.text()
    order_id = (await response.json())["id"]
    advance(deps, order_id, to=S.SHIPPED)
    assert capture_payment(deps, order_id) == SUCCESS
    advance(deps, order_id, to=to)
    return order_id, token, mug, plate


async def ask_return(client, token: str, order_id: str, *lines, key: str | None = None):
    body = {"lines": [{"product_id": str(p), "quantity": q} for p, q in lines],
            "reason": "does not fit"}  # fmt: skip
    headers = {**bearer(token), **({"Idempotency-Key": key} if key else {})}
    return await client.post(f"/v1/orders/{order_id}/returns", json=body, headers=headers)


async def receive(client, admin: str, return_id: str, *lines):
    body = {"lines": [{"product_id": str(p), "quantity": q, "condition": c}
                      for p, q, c in lines]}  # fmt: skip
    return await client.post(f"/v1/admin/returns/{return_id}/receive", json=body,
                             headers=bearer(admin))  # fmt: skip
