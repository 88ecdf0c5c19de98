"""The operator desk on the real app and database: the order list and its filters, one
order in full, who may use it, and the actions that need no worker (cancel, hold and
release, the refusals). ``test_desk_saga.py`` runs the actions through real workers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api.shared.context import TOKENS
from cli.main import group
from fulfillment import messages as m
from fulfillment.models import (
    Notification,
    Order,
    OrderEvent,
    OutboxMessage,
    Product,
    User,
)
from fulfillment.states import OrderStatus as S
from pipelines.stock.reservation import reserve_inventory
from tests.support.quoted import price_as_quoted
from tests.support.steps import stock
from tests.support.storefront import add_product, bearer, order_body
from workers.sweeper import sweep
from workers.wiring import build_deps

NOW = datetime.now(UTC)


async def place(client, token: str, *lines) -> str:
    response = await client.post("/v1/orders", json=order_body(*lines), headers=bearer(token))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


def set_order(db, order_id: str, **values: Any) -> None:
    with Session(db) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id)).values(**values))


async def customer(client, db, *, role: str = "customer") -> tuple[str, str]:
    """(e-mail, access token) of a new account, written straight to the database and
    given a token by the app's own token service (logins have tests of their own; each
    costs an argon2 hash)."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    with Session(db) as session, session.begin():
        user = User(email=email, password_hash="-", first_name="Ada", last_name="Lovelace",
                    role=role)  # fmt: skip
        session.add(user)
        session.flush()
        user_id = user.id
    return email, client.server.app[TOKENS].issue_access(user_id=user_id, role=role)


async def admin_token(client, db) -> str:
    return (await customer(client, db, role="admin"))[1]


async def ids(client, admin: str, query: str) -> list[str]:
    response = await client.get(f"/v1/admin/orders?{query}", headers=bearer(admin))
    assert response.status == 200, await response.text()
    return [item["id"] for item in (await response.json())["items"]]


def sku_of(db, product_id: uuid.UUID) -> str:
    with Session(db) as session:
        return session.get(Product, product_id).sku


async def test_each_filter_finds_the_right_orders(client, db):
    # Given two customers, two products and four orders in different situations
    admin = await admin_token(client, db)
    (ada, ada_token), (_, bob_token) = await customer(client, db), await customer(client, db)
    mug, tea = add_product(db), add_product(db)
    fresh = await place(client, ada_token, (mug, 1))  # pending, just placed
    stuck = await place(client, bob_token, (tea, 1))
    set_order(db, stuck, status=S.NEEDS_ATTENTION.value, attention_from=S.FULFILLING.value)
    old = await place(client, ada_token, (tea, 2))
    set_order(db, old, status=S.DELIVERED.value, created_at=NOW - timedelta(days=3),
              status_changed_at=NOW - timedelta(days=3))  # fmt: skip
    stalled = await place(client, bob_token, (mug, 1), (tea, 1))
    set_order(db, stalled, status=S.PAID.value, created_at=NOW - timedelta(hours=3),
              status_changed_at=NOW - timedelta(hours=2))  # fmt: skip

    # Then every filter finds exactly its orders, newest first
    assert await ids(client, admin, "") == [stuck, fresh, stalled, old]
    assert await ids(client, admin, "status=needs_attention") == [stuck]
    assert await ids(client, admin, "status=paid,delivered") == [stalled, old]
    assert await ids(client, admin, "status=paid&status=delivered") == [stalled, old]
    day_ago = (NOW - timedelta(days=1)).isoformat()
    assert await ids(client, admin, f"created_to={day_ago.replace('+00:00', 'Z')}") == [old]
    assert await ids(client, admin, f"created_from={day_ago[:19]}") == [stuck, fresh, stalled]
    assert await ids(client, admin, f"email={ada.upper()}") == [fresh, old]
    assert await ids(client, admin, f"product={mug}") == [fresh, stalled]
    assert await ids(client, admin, f"product={sku_of(db, tea)}") == [stuck, stalled, old]
    assert await ids(client, admin, "needs_attention=true") == [stuck]
    assert await ids(client, admin, "needs_attention=false") == [fresh, stalled, old]
    assert await ids(client, admin, "stalled_minutes=60") == [stalled]  # old is finished
    assert await ids(client, admin, "stalled_minutes=60&status=pending") == []
    # and the list pages like the others, each order with its customer
    page = await (await client.get("/v1/admin/orders?limit=3&page=2", headers=bearer(admin))).json()
    assert (page["total"], page["page"], page["limit"]) == (4, 2, 3)
    assert [item["id"] for item in page["items"]] == [old]
    assert page["items"][0]["customer"]["email"] == ada
    assert page["items"][0]["items"][0]["quantity"] == 2


async def test_bad_filter_values_are_422_and_name_the_parameter(client, db):
    admin = await admin_token(client, db)
    for query, field in [
        ("status=lost", "status"),
        ("created_from=yesterday", "created_from"),
        ("stalled_minutes=0", "stalled_minutes"),
        ("needs_attention=maybe", "needs_attention"),
        ("email=", "email"),
        ("page=0", "page"),
    ]:
        response = await client.get(f"/v1/admin/orders?{query}", headers=bearer(admin))
        assert response.status == 422, query
        error = (await response.json())["error"]
        assert error["code"] == "validation_error"
        assert field in [f["field"].split(".")[0] for f in error["details"]["fields"]], query
    backwards = "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z"
    response = await client.get(f"/v1/admin/orders?{backwards}", headers=bearer(admin))
    assert response.status == 422


async def test_the_desk_is_for_admins_only(client, db):
    _, token = await customer(client, db)
    order_id = await place(client, token, (add_product(db), 1))
    paths = [("GET", "/v1/admin/orders"), ("GET", f"/v1/admin/orders/{order_id}")] + [
        ("POST", f"/v1/admin/orders/{order_id}/{action}")
        for action in ("cancel", "resume", "hold", "release")
    ]
    for method, path in paths:
        assert (await client.request(method, path, headers=bearer(token))).status == 403, path
        assert (await client.request(method, path)).status == 401, path
    assert status_of(db, order_id) == S.PENDING


def status_of(db, order_id: str) -> S:
    with Session(db) as session:
        return S(session.get(Order, uuid.UUID(order_id)).status)


def count(db, model, *conditions) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))


async def test_cancel_twice_gives_the_same_answer_and_one_compensation(client, db, settings):
    # Given an order whose 2 units the real reservation step holds
    admin = await admin_token(client, db)
    _, token = await customer(client, db)
    product = add_product(db, on_hand=10)
    order_id = await place(client, token, (product, 2))
    reserve_inventory(build_deps(settings, pool_size=1), order_id)
    assert status_of(db, order_id) == S.RESERVED

    # When an operator cancels it twice, then twice more under one Idempotency-Key
    url = f"/v1/admin/orders/{order_id}/cancel"
    answers = [await client.post(url, headers=bearer(admin)) for _ in range(2)]
    keyed = [await client.post(url, headers={**bearer(admin), "Idempotency-Key": "k-1"})
             for _ in range(2)]  # fmt: skip

    # Then every answer is the cancelled order, the same each time
    bodies = [await r.json() for r in answers + keyed]
    assert [r.status for r in answers + keyed] == [200] * 4
    assert all(body == bodies[0] for body in bodies) and bodies[0]["status"] == "cancelled"
    assert keyed[1].headers["Idempotent-Replayed"] == "true"
    # and the compensation ran once: stock back once, one e-mail
    assert stock(db, product) == (10, 0)
    oid = uuid.UUID(order_id)
    with Session(db) as session:
        (mail,) = session.scalars(select(Notification).where(Notification.order_id == oid))
        mail, reason = mail.id, mail.data["reason"]
    assert reason == "merchant_request"  # the e-mail says the shop cancelled, not the customer
    assert count(db, Notification, Notification.order_id == oid,
                 Notification.kind == "cancelled") == 1  # fmt: skip
    assert count(db, OutboxMessage, OutboxMessage.actor_name == m.SEND_NOTIFICATION[0],
                 OutboxMessage.kwargs.contains({"notification_id": str(mail)})) == 1  # fmt: skip
    # (whether a reserved order's cancel queues a refund step is the plan's call: once at most)
    assert count(db, OutboxMessage, OutboxMessage.actor_name == m.REFUND_PAYMENT[0]) <= 1
    # and the timeline names the admin who did it
    with Session(db) as session:
        event = session.scalar(select(OrderEvent).where(OrderEvent.order_id == oid,
                                                        OrderEvent.step == "admin_cancel"))  # fmt: skip
    assert (event.from_status, event.to_status) == ("reserved", "cancelled")
    me = await (await client.get("/v1/users/me", headers=bearer(admin))).json()
    assert event.details == {"admin": me["id"], "admin_email": me["email"]}


async def test_a_key_used_on_another_action_is_refused(client, db):
    admin = await admin_token(client, db)
    _, token = await customer(client, db)
    order_id = await place(client, token, (add_product(db), 1))
    headers = {**bearer(admin), "Idempotency-Key": "desk-1"}

    held = await client.post(f"/v1/admin/orders/{order_id}/hold", headers=headers)
    reused = await client.post(f"/v1/admin/orders/{order_id}/release", headers=headers)

    assert held.status == 200 and reused.status == 422
    assert (await reused.json())["error"]["code"] == "idempotency_key_reused"
    assert status_of(db, order_id) == S.ON_HOLD


async def test_hold_and_release_are_recorded_and_release_queues_the_stage_again(client, db):
    # Given a pending order, held twice (the second changes nothing)
    admin = await admin_token(client, db)
    _, token = await customer(client, db)
    order_id = await place(client, token, (add_product(db), 1))
    hold = f"/v1/admin/orders/{order_id}/hold"
    first, again = [await client.post(hold, headers=bearer(admin)) for _ in range(2)]
    assert first.status == again.status == 200
    assert (await first.json())["status"] == (await again.json())["status"] == "on_hold"

    # When it is released
    released = await client.post(f"/v1/admin/orders/{order_id}/release", headers=bearer(admin))

    # Then it is pending again, with the message that reserves it queued a second time
    assert released.status == 200 and (await released.json())["status"] == "pending"
    assert count(db, OutboxMessage, OutboxMessage.actor_name == m.RESERVE_INVENTORY[0]) == 2
    detail = await (await client.get(f"/v1/admin/orders/{order_id}", headers=bearer(admin))).json()
    steps = [(e["step"], e["from_status"], e["to_status"]) for e in detail["timeline"]]
    assert steps == [("accept", None, "pending"), ("admin_hold", "pending", "on_hold"),
                     ("admin_release", "on_hold", "pending")]  # fmt: skip
    assert detail["timeline"][1]["details"]["held_from"] == "pending"
    assert detail["held_from"] is None
    # and a second release is refused: it is not held any more
    again = await client.post(f"/v1/admin/orders/{order_id}/release", headers=bearer(admin))
    assert again.status == 409 and (await again.json())["error"]["code"] == "order_not_on_hold"


async def test_a_shipped_order_cannot_be_held_cancelled_or_resumed(client, db):
    admin = await admin_token(client, db)
    _, token = await customer(client, db)
    order_id = await place(client, token, (add_product(db), 1))
    set_order(db, order_id, status=S.SHIPPED.value)

    for action, code in [("hold", "order_not_holdable"), ("cancel", "order_not_cancellable"),
                         ("resume", "order_not_needs_attention")]:  # fmt: skip
        response = await client.post(f"/v1/admin/orders/{order_id}/{action}", headers=bearer(admin))
        assert response.status == 409, action
        assert (await response.json())["error"]["code"] == code
    assert status_of(db, order_id) == S.SHIPPED
    missing = await client.post(f"/v1/admin/orders/{uuid.uuid4()}/hold", headers=bearer(admin))
    assert missing.status == 404


async def test_a_held_order_can_still_be_cancelled_and_its_detail_shows_it_all(client, db):
    # Given a held order
    admin = await admin_token(client, db)
    email, token = await customer(client, db)
    order_id = await place(client, token, (add_product(db), 3))
    await client.post(f"/v1/admin/orders/{order_id}/hold", headers=bearer(admin))

    # When the customer cancels it
    cancelled = await client.post(f"/v1/orders/{order_id}/cancel", headers=bearer(token))

    # Then it is cancelled, and the detail shows the customer, items, e-mail and timeline
    assert cancelled.status == 200
    detail = await (await client.get(f"/v1/admin/orders/{order_id}", headers=bearer(admin))).json()
    assert detail["status"] == "cancelled" and detail["held_from"] is None
    assert detail["customer"]["email"] == email and detail["customer"]["name"] == "Ada Lovelace"
    assert detail["items"][0]["quantity"] == 3
    assert [(mail["kind"], mail["status"], mail["sent_at"]) for mail in detail["emails"]] == [
        ("cancelled", "pending", None)
    ]
    assert [e["step"] for e in detail["timeline"]] == ["accept", "admin_hold", "customer_cancel"]
    assert detail["shipments"] == [] and detail["dead_letters"] == []
    assert detail["payment"]["refunds"] == []  # the order resource's payment, refunds listed


async def test_the_desk_shows_subtotal_shipping_tax_total_and_the_shipping_paid_for(client, db):
    # Given an order placed on a quote (2 x 12.50, tax 2.22, USPS Priority for 6.90, its
    # tax 0.61) and one placed without
    admin = await admin_token(client, db)
    email, token = await customer(client, db)
    plain = await place(client, token, (add_product(db), 1))
    quoted = await place(client, token, (add_product(db), 2))
    price_as_quoted(db, quoted, line_taxes=(222,), shipping=690, shipping_tax=61)
    amounts = ("subtotal", "shipping", "tax", "total", "shipping_carrier", "shipping_service")

    # When an operator lists the customer's orders and opens the quoted one
    listed = await client.get(f"/v1/admin/orders?email={email}", headers=bearer(admin))
    detail = await client.get(f"/v1/admin/orders/{quoted}", headers=bearer(admin))

    # Then both show the four amounts, and the quoted one what shipping was paid for
    shown = {item["id"]: item for item in (await listed.json())["items"]}
    assert {k: shown[quoted][k] for k in amounts} == {
        "subtotal": "25.00", "shipping": "6.90", "tax": "2.83", "total": "34.73",
        "shipping_carrier": "USPS", "shipping_service": "Priority"}  # fmt: skip
    assert {k: shown[plain][k] for k in amounts} == {
        "subtotal": "12.50", "shipping": "0.00", "tax": "0.00", "total": "12.50",
        "shipping_carrier": None, "shipping_service": None}  # fmt: skip
    one = await detail.json()
    assert {k: one[k] for k in amounts} == {k: shown[quoted][k] for k in amounts}
    assert (one["subtotal_amount"], one["shipping_amount"], one["tax_amount"],
            one["total_amount"]) == (2500, 690, 283, 3473)  # fmt: skip


async def test_the_orders_list_command_filters_as_the_route_does(client, db, settings):
    # Given two orders, one waiting for an operator
    _, token = await customer(client, db)
    product = add_product(db)
    fine, stuck = await place(client, token, (product, 1)), await place(client, token, (product, 1))
    set_order(db, stuck, status=S.NEEDS_ATTENTION.value, last_error="carrier down")
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}

    # When on-call lists them from the command line
    def run(*args: str):
        return CliRunner().invoke(group, ["orders", "list", *args], env=env)

    listed = run("--needs-attention", "--json")
    everything = run(f"--product={product}")
    refused = run("--status", "lost")

    # Then the filters hold there as on the route, and a bad value is a usage error
    assert listed.exit_code == 0, listed.output
    assert [(row["id"], row["last_error"]) for row in json.loads(listed.output)] == [
        (stuck, "carrier down")
    ]
    assert everything.exit_code == 0 and "2 order(s)" in everything.output
    assert fine in everything.output and stuck in everything.output
    assert refused.exit_code == 2 and "unknown status lost" in refused.output


async def test_the_sweeper_leaves_a_held_order_alone(client, db):
    # Given two pending orders untouched for an hour, one of them held
    admin = await admin_token(client, db)
    _, token = await customer(client, db)
    product = add_product(db)
    held, other = await place(client, token, (product, 1)), await place(client, token, (product, 1))
    await client.post(f"/v1/admin/orders/{held}/hold", headers=bearer(admin))
    hour_ago = {"status_changed_at": NOW - timedelta(hours=1), "swept_at": None}
    set_order(db, held, **hour_ago)
    set_order(db, other, **hour_ago)

    # When the sweeper runs
    redriven = sweep(db, stall=timedelta(minutes=2))

    # Then only the order that is not held gets its message again
    assert redriven["stalled_orders"] == 1
    assert redrives(db, held) == 0 and redrives(db, other) == 1
    assert status_of(db, held) == S.ON_HOLD


def redrives(db, order_id: str) -> int:
    return count(db, OrderEvent, OrderEvent.order_id == uuid.UUID(order_id),
                  OrderEvent.step == "sweeper")  # fmt: skip
