"""Placing and reading orders through the real app on a real database."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from psycopg.errors import ForeignKeyViolation
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.orders.placement import OrderWriter, Placement
from api.shared.context import ENGINE, ORDER_WRITER
from api.shared.errors import ApiError
from api.shared.idempotency import lock_id
from fulfillment.models import IdempotencyKey, Order, OrderEvent, OrderLine, OutboxMessage
from monitoring import metrics
from tests.support.placements import placement
from tests.support.storefront import add_product, bearer, customer_token, order_body, register

IDEMPOTENCY = "Idempotency-Key"


def count(engine, model) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


async def test_an_order_is_priced_from_the_catalogue_and_written_with_its_outbox_message(
    client, db
):
    # Given a customer and two products
    token = await customer_token(client)
    mug = add_product(db, price="12.50")
    tea = add_product(db, price="9.75")

    # When they order 2 mugs and 3 teas
    response = await client.post(
        "/v1/orders", json=order_body((mug, 2), (tea, 3)), headers=bearer(token)
    )

    # Then the order is accepted at catalogue prices
    assert response.status == 201
    order = await response.json()
    assert order["status"] == "pending"
    assert order["total"] == "54.25" and order["total_amount"] == 5425
    assert order["currency"] == "usd"
    assert [(i["quantity"], i["unit_price"]) for i in order["items"]] == [(2, "12.50"), (3, "9.75")]
    # and its lines, first event and pipeline message were committed together
    with Session(db) as session:
        oid = uuid.UUID(order["id"])
        assert session.scalar(select(func.count()).where(OrderLine.order_id == oid)) == 2
        event = session.scalar(select(OrderEvent).where(OrderEvent.order_id == oid))
        assert (event.step, event.to_status) == ("accept", "pending")
        message = session.scalar(
            select(OutboxMessage).where(OutboxMessage.actor_name == "reserve_inventory")
        )
        assert message.kwargs == {"order_id": order["id"]} and message.delivered_at is None
    # and the answer is the stored order as a read shows it (no payment before the charge)
    shown = await (await client.get(f"/v1/orders/{order['id']}", headers=bearer(token))).json()
    assert {k: v for k, v in shown.items() if k != "payment"} == {
        k: v for k, v in order.items() if k != "payment"}  # fmt: skip


async def test_the_client_cannot_set_prices(client, db):
    token = await customer_token(client)
    mug = add_product(db, price="12.50")
    body = order_body((mug, 1))
    body["items"][0]["unit_price"] = "0.01"

    response = await client.post("/v1/orders", json=body, headers=bearer(token))

    assert response.status == 422
    assert count(db, Order) == 0


async def test_two_lines_of_one_product_are_refused(client, db):
    # (Medusa #16502: two lines of one item were each checked alone, and oversold)
    token = await customer_token(client)
    mug = add_product(db, on_hand=3)

    response = await client.post("/v1/orders", json=order_body((mug, 2), (mug, 2)),
                                 headers=bearer(token))  # fmt: skip

    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "validation_error" and "more than one line" in json.dumps(error)
    assert count(db, Order) == 0


async def test_replaying_the_same_key_and_body_returns_the_first_order(client, db):
    token = await customer_token(client)
    mug = add_product(db)
    headers = {**bearer(token), IDEMPOTENCY: "order-attempt-1"}

    first = await client.post("/v1/orders", json=order_body((mug, 1)), headers=headers)
    second = await client.post("/v1/orders", json=order_body((mug, 1)), headers=headers)

    assert first.status == second.status == 201
    assert (await first.json()) == (await second.json())
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count(db, Order) == 1 and count(db, OutboxMessage) == 2  # welcome + one order


async def test_a_key_reused_with_another_body_is_refused(client, db):
    token = await customer_token(client)
    mug = add_product(db)
    headers = {**bearer(token), IDEMPOTENCY: "order-attempt-2"}
    await client.post("/v1/orders", json=order_body((mug, 1)), headers=headers)

    response = await client.post("/v1/orders", json=order_body((mug, 5)), headers=headers)

    assert response.status == 422
    assert (await response.json())["error"]["code"] == "idempotency_key_reused"
    assert count(db, Order) == 1


async def test_keys_belong_to_one_customer(client, db):
    mug = add_product(db)
    alice, bob = await customer_token(client), await customer_token(client)

    a = await client.post(
        "/v1/orders", json=order_body((mug, 1)), headers={**bearer(alice), IDEMPOTENCY: "same"}
    )
    b = await client.post(
        "/v1/orders", json=order_body((mug, 1)), headers={**bearer(bob), IDEMPOTENCY: "same"}
    )

    assert a.status == b.status == 201
    assert (await a.json())["id"] != (await b.json())["id"]


async def test_a_key_still_in_progress_is_answered_409(client, db):
    # Given another request is processing this customer's key right now
    token = await customer_token(client)
    me = await (await client.get("/v1/users/me", headers=bearer(token))).json()
    mug = add_product(db)
    with db.connect() as holder:
        holder.execute(
            text("SELECT pg_advisory_lock(:k)"), {"k": lock_id(uuid.UUID(me["id"]), "busy")}
        )
        # When the client retries with the same key
        response = await client.post(
            "/v1/orders", json=order_body((mug, 1)), headers={**bearer(token), IDEMPOTENCY: "busy"}
        )
        holder.rollback()
    # Then it is told to come back, and nothing was written
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "idempotency_key_in_use"
    assert count(db, Order) == 0


async def test_concurrent_retries_with_one_key_create_one_order(client, db):
    token = await customer_token(client)
    mug = add_product(db)
    headers = {**bearer(token), IDEMPOTENCY: "burst"}

    responses = await asyncio.gather(
        *[client.post("/v1/orders", json=order_body((mug, 1)), headers=headers) for _ in range(8)]
    )

    statuses = sorted(r.status for r in responses)
    assert set(statuses) <= {201, 409} and 201 in statuses
    ids = {(await r.json())["id"] for r in responses if r.status == 201}
    assert len(ids) == 1 and count(db, Order) == 1


async def test_an_expired_key_starts_a_new_order(client, db):
    token = await customer_token(client)
    mug = add_product(db)
    headers = {**bearer(token), IDEMPOTENCY: "old-key"}
    first = await (
        await client.post("/v1/orders", json=order_body((mug, 1)), headers=headers)
    ).json()
    with db.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"))

    second = await client.post("/v1/orders", json=order_body((mug, 1)), headers=headers)

    assert second.status == 201 and (await second.json())["id"] != first["id"]
    assert count(db, Order) == 2 and count(db, IdempotencyKey) == 1


async def test_customers_see_only_their_own_orders(client, db):
    mug = add_product(db)
    alice, bob = await customer_token(client), await customer_token(client)
    order = await (
        await client.post("/v1/orders", json=order_body((mug, 1)), headers=bearer(alice))
    ).json()

    own = await client.get(f"/v1/orders/{order['id']}", headers=bearer(alice))
    other = await client.get(f"/v1/orders/{order['id']}", headers=bearer(bob))
    other_events = await client.get(f"/v1/orders/{order['id']}/events", headers=bearer(bob))
    bob_list = await (await client.get("/v1/orders", headers=bearer(bob))).json()

    assert own.status == 200 and (await own.json())["id"] == order["id"]
    assert other.status == 404 and other_events.status == 404
    assert (await other.json())["error"]["code"] == "not_found"
    assert bob_list == {"items": [], "total": 0, "page": 1, "limit": 20}


async def test_order_list_is_paginated_newest_first(client, db):
    mug = add_product(db)
    token = await customer_token(client)
    ids = []
    for _ in range(3):
        response = await client.post("/v1/orders", json=order_body((mug, 1)), headers=bearer(token))
        ids.append((await response.json())["id"])

    page1 = await (await client.get("/v1/orders?limit=2", headers=bearer(token))).json()
    page2 = await (await client.get("/v1/orders?limit=2&page=2", headers=bearer(token))).json()

    assert page1["total"] == 3 and [o["id"] for o in page1["items"]] == ids[::-1][:2]
    assert [o["id"] for o in page2["items"]] == ids[:1]


async def test_the_timeline_starts_with_the_acceptance(client, db):
    mug = add_product(db)
    token = await customer_token(client)
    order = await (
        await client.post("/v1/orders", json=order_body((mug, 1)), headers=bearer(token))
    ).json()

    events = await (
        await client.get(f"/v1/orders/{order['id']}/events", headers=bearer(token))
    ).json()

    assert [(e["step"], e["from_status"], e["to_status"]) for e in events["items"]] == [
        ("accept", None, "pending")
    ]


async def test_an_unknown_order_id_is_404(client, db):
    token = await customer_token(client)
    for path in (f"/v1/orders/{uuid.uuid4()}", "/v1/orders/not-a-uuid"):
        response = await client.get(path, headers=bearer(token))
        assert response.status == 404


async def test_registration_queues_one_welcome_message(client, db):
    user = await register(client)
    with Session(db) as session:
        messages = session.scalars(
            select(OutboxMessage).where(OutboxMessage.actor_name == "send_welcome_email")
        ).all()
    assert [m.kwargs for m in messages] == [{"user_id": user["id"]}]


# --- group commit: orders that arrive together share one transaction ------------------


def _batches() -> tuple[float, float]:
    """(batches written, orders in them) from the group-commit histogram."""
    samples = {s.name: s.value for s in metrics.order_batch_size.collect()[0].samples}
    return samples["fulfillment_order_batch_size_count"], samples[
        "fulfillment_order_batch_size_sum"
    ]


async def _answers(writer: OrderWriter, placements: list[Placement]) -> list:
    """Every placement is queued before the writer wakes, so they form one batch."""
    return await asyncio.gather(*(writer.place(p) for p in placements), return_exceptions=True)


async def test_orders_arriving_together_share_one_transaction_and_get_their_own_answers(client, db):
    # Given two customers, one of whom placed an order under a key earlier
    ann = uuid.UUID((await register(client))["id"])
    bob = uuid.UUID((await register(client))["id"])
    mug = add_product(db, price="12.50")
    earlier = await client.app[ORDER_WRITER].place(
        placement(ann, order_body((mug, 1)), key="earlier")
    )
    writer = OrderWriter(client.app[ENGINE], writers=1)
    batches_before, orders_before = _batches()

    # When five requests arrive together: two new orders, one of them under a key; the
    # same key again; a retry of the earlier key; an unknown product
    try:
        fresh, keyed, same_key, retry, unknown = await _answers(writer, [
            placement(ann, order_body((mug, 2))),
            placement(bob, order_body((mug, 1)), key="k1"),
            placement(bob, order_body((mug, 1)), key="k1"),
            placement(ann, order_body((mug, 1)), key="earlier"),
            placement(bob, order_body((uuid.uuid4(), 1))),
        ])  # fmt: skip
    finally:
        await writer.close()

    # Then they were written as one batch
    assert _batches() == (batches_before + 1, orders_before + 5)
    # and each was answered on its own
    assert fresh[0] == keyed[0] == 201 and not fresh[2] and not keyed[2]
    assert isinstance(same_key, ApiError) and same_key.code == "idempotency_key_in_use"
    assert retry == (201, earlier[1], True)
    assert isinstance(unknown, ApiError) and unknown.code == "product_unavailable"
    # and exactly the two new orders were committed, each with its rows and message
    assert count(db, Order) == 3
    for answer in (fresh, keyed):
        oid = uuid.UUID(answer[1]["id"])
        with Session(db) as session:
            assert session.scalar(select(func.count()).where(OrderLine.order_id == oid)) == 1
            assert session.scalar(select(func.count()).where(OrderEvent.order_id == oid)) == 1
            assert session.scalar(select(func.count()).where(
                OutboxMessage.kwargs["order_id"].astext == str(oid))) == 1  # fmt: skip
            stored = session.get(Order, oid)
            assert stored.total_amount == answer[1]["total_amount"]
    # and the keyed one replays as any other would
    with Session(db) as session:
        row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "k1"))
        assert row.user_id == bob and row.response_body == keyed[1]


async def test_a_batch_of_keys_answers_each_by_its_own_key(client, db):
    # Given a key held by another request right now, and a key whose order is past the
    # replay window, among other keys
    ann = uuid.UUID((await register(client))["id"])
    mug = add_product(db)
    old = await client.app[ORDER_WRITER].place(placement(ann, order_body((mug, 1)), key="old"))
    with db.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"))
    writer = OrderWriter(client.app[ENGINE], writers=1)

    # When they arrive in one batch, the held key between the others
    with db.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id(ann, "busy")})
        try:
            first, busy, again, last = await _answers(writer, [
                placement(ann, order_body((mug, 1)), key="first"),
                placement(ann, order_body((mug, 2)), key="busy"),
                placement(ann, order_body((mug, 1)), key="old"),
                placement(ann, order_body((mug, 3)), key="last"),
            ])  # fmt: skip
        finally:
            await writer.close()
            holder.rollback()

    # Then only the held key is told to wait; the expired one places a new order
    assert isinstance(busy, ApiError) and busy.code == "idempotency_key_in_use"
    assert first[0] == again[0] == last[0] == 201
    assert again[1]["id"] != old[1]["id"] and not again[2]
    assert [first[1]["items"][0]["quantity"], last[1]["items"][0]["quantity"]] == [1, 3]
    with Session(db) as session:
        rows = session.execute(select(IdempotencyKey.key, IdempotencyKey.response_body))
        keys = {key: body for key, body in rows}
    assert sorted(keys) == ["first", "last", "old"]
    assert keys["old"]["id"] == again[1]["id"] and keys["last"]["id"] == last[1]["id"]


async def test_a_batch_whose_write_fails_writes_its_orders_one_by_one(client, db):
    # Given two customers' orders, and one for a customer who no longer exists
    ann = uuid.UUID((await register(client))["id"])
    bob = uuid.UUID((await register(client))["id"])
    mug = add_product(db)
    writer = OrderWriter(client.app[ENGINE], writers=1)

    # When they arrive together
    try:
        first, gone, second = await _answers(writer, [
            placement(ann, order_body((mug, 1)), key="a"),
            placement(uuid.uuid4(), order_body((mug, 1))),
            placement(bob, order_body((mug, 1))),
        ])  # fmt: skip
    finally:
        await writer.close()

    # Then the bad one fails on its own and the others are accepted and written
    assert isinstance(gone, ForeignKeyViolation)
    assert first[0] == second[0] == 201
    assert count(db, Order) == 2 and count(db, IdempotencyKey) == 1
    assert count(db, OutboxMessage) >= 2


async def test_a_closed_writer_turns_requests_away_with_503(client, db):
    writer = OrderWriter(client.app[ENGINE], writers=1)
    await writer.close()
    with pytest.raises(ApiError) as refused:
        await writer.place(placement(uuid.uuid4(), order_body((uuid.uuid4(), 1))))
    assert refused.value.status == 503 and count(db, Order) == 0
