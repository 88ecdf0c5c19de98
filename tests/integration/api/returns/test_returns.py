"""Returns: a customer sends back some of a delivered order's units within the return
window, gets one prepaid label by e-mail, and once the warehouse has received them is
refunded by line - restocked units back on hand, damaged ones not - never for more units
than were delivered. The steps and the API run for real on PostgreSQL; EasyPost and
Stripe are the in-memory doubles (``tests.support.fakes``)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Order, OrderEvent, Return, StockMovement
from fulfillment.states import OrderStatus as S
from pipelines.common import SKIPPED, SUCCESS
from pipelines.payments.refunds import process_refund
from pipelines.returns.label import create_return_label
from tests.support.returns import ask_return, delivered_order, receive
from tests.support.steps import mails, make_deps, order, outbox, stock
from tests.support.storefront import admin_token, bearer


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return make_deps(engine, settings, payments, mailer, carrier)


def the_return(engine, return_id: str) -> Return:
    with Session(engine) as session:
        return session.get(Return, uuid.UUID(return_id))


def ledger(engine, return_id: str) -> dict[tuple[uuid.UUID, str], int]:
    with Session(engine) as session:
        rows = session.scalars(
            select(StockMovement).where(StockMovement.return_id == uuid.UUID(return_id))
        ).all()
        return {(row.product_id, row.reason): row.delta for row in rows}


def timeline(engine, order_id: str) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(OrderEvent.step).where(
            OrderEvent.order_id == uuid.UUID(order_id)).order_by(OrderEvent.id)))  # fmt: skip


async def test_a_return_is_labelled_received_restocked_and_refunded_by_line(
    client, deps, engine, payments, mailer, carrier
):
    # Given a delivered order of 2 mugs (12.50) and 1 plate (8.00)
    order_id, token, mug, plate = await delivered_order(client, deps, engine)
    assert stock(engine, mug) == (3, 0) and stock(engine, plate) == (4, 0)

    # When the customer returns all of it (and the request is retried with its key)
    first = await ask_return(client, token, order_id, (mug, 2), (plate, 1), key="ret-1")
    again = await ask_return(client, token, order_id, (mug, 2), (plate, 1), key="ret-1")

    # Then one return is requested, and its label message queued in the same commit
    assert first.status == again.status == 201, await first.text()
    created = await first.json()
    return_id = created["id"]
    assert (await again.json())["id"] == return_id and created["status"] == "requested"
    reused = await ask_return(client, token, order_id, (mug, 1), key="ret-1")
    assert (reused.status, (await reused.json())["error"]["code"]) == (
        422,
        "idempotency_key_reused",
    )
    assert outbox(engine, m.CREATE_RETURN_LABEL, return_id=return_id) == 1

    # When the label step runs twice
    assert create_return_label(deps, return_id) == SUCCESS
    assert create_return_label(deps, return_id) == SKIPPED

    # Then one return label was bought, kept, and e-mailed once
    labels = [label for ref, label in carrier.labels.items() if ref == f"return_{return_id}"]
    assert len(labels) == 1
    kept = the_return(engine, return_id)
    assert (kept.status, kept.shipment_id, kept.label_url) == (
        "label_created", labels[0].shipment_id, labels[0].label_url)  # fmt: skip
    sent = [mail for mail in mailer.sent if mail.kind == "return_label"]
    assert len(sent) == 1 and sent[0].data["label_url"] == labels[0].label_url

    # When the warehouse receives the mugs as new and the plate broken, twice
    admin = await admin_token(client, engine)
    received = await receive(client, admin, return_id, (mug, 2, "restock"), (plate, 1, "damaged"))
    twice = await receive(client, admin, return_id, (mug, 2, "restock"), (plate, 1, "damaged"))

    # Then the mugs are back in stock, the plate is not, the ledger says both, once
    assert received.status == twice.status == 200, await received.text()
    body = await received.json()
    assert body["status"] == "received" and body == await twice.json()
    assert stock(engine, mug) == (5, 0) and stock(engine, plate) == (4, 0)
    assert ledger(engine, return_id) == {(mug, "returned"): 2, (plate, "damaged"): 0}

    # When the refund it queued is processed (twice)
    refund_id = body["refund_id"]
    assert outbox(engine, m.PROCESS_REFUND, refund_id=refund_id) == 1
    assert process_refund(deps, refund_id) == SUCCESS
    process_refund(deps, refund_id)

    # Then the received lines were refunded once at their price, and the return is done
    assert [r.amount for r in payments.refund_keys.values()] == [2 * 1250 + 800]
    assert order(engine, order_id).amount_refunded == 3300
    assert the_return(engine, return_id).status == "refunded"
    listed = await client.get(f"/v1/orders/{order_id}/returns", headers=bearer(token))
    assert [(r["id"], r["status"]) for r in (await listed.json())["items"]] == [
        (return_id, "refunded")]  # fmt: skip
    steps = timeline(engine, order_id)
    for step in ("return_requested", "return_label", "return_received", "return_refunded"):
        assert steps.count(step) == 1, step
    assert mails(engine, mailer, order_id).count("return_label") == 1


async def test_nothing_beyond_what_was_delivered_can_be_returned(client, deps, engine):
    # Given a delivered order with one mug already asked back
    order_id, token, mug, plate = await delivered_order(client, deps, engine)
    assert (await ask_return(client, token, order_id, (mug, 1))).status == 201

    # When the customer asks back 2 more mugs, then a product not in the order
    too_many = await ask_return(client, token, order_id, (mug, 2), (plate, 1))
    stranger = await ask_return(client, token, order_id, (uuid.uuid4(), 1))

    # Then both are refused and nothing else was requested
    assert too_many.status == 409
    error = (await too_many.json())["error"]
    assert error["code"] == "return_exceeds_quantity"
    assert error["details"]["returnable_quantity"] == 1
    assert stranger.status == 422
    assert (await ask_return(client, token, order_id, (mug, 1))).status == 201
    with Session(engine) as session:
        count = session.scalars(select(Return).where(Return.order_id == uuid.UUID(order_id)))
        assert len(count.all()) == 2


async def test_a_return_after_the_window_or_before_delivery_is_refused(client, deps, engine):
    # Given an order delivered 31 days ago, and one that is only shipped
    late_id, late_token, mug, _ = await delivered_order(client, deps, engine)
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(late_id)).values(
            delivered_at=Order.delivered_at - timedelta(days=31)))  # fmt: skip
    shipped_id, shipped_token, shipped_mug, _ = await delivered_order(client, deps, engine,
                                                                      to=S.SHIPPED)  # fmt: skip

    # When their customers ask for returns, and a stranger asks for one
    late = await ask_return(client, late_token, late_id, (mug, 1))
    early = await ask_return(client, shipped_token, shipped_id, (shipped_mug, 1))
    stranger = await ask_return(client, shipped_token, late_id, (mug, 1))

    # Then each is refused with its reason, and the stranger learns nothing
    assert (late.status, (await late.json())["error"]["code"]) == (409, "return_window_closed")
    assert (early.status, (await early.json())["error"]["code"]) == (409, "order_not_delivered")
    assert stranger.status == 404
    assert outbox(engine, m.CREATE_RETURN_LABEL) == 0


async def test_a_label_whose_answer_was_lost_is_found_again_not_bought_twice(
    client, deps, engine, carrier, mailer
):
    # Given a requested return, and a label EasyPost buys but whose answer is lost
    order_id, token, mug, _ = await delivered_order(client, deps, engine)
    return_id = (await (await ask_return(client, token, order_id, (mug, 1))).json())["id"]
    carrier.lose_next("ship_return")
    with pytest.raises(Exception):  # noqa: B017 (the provider error, retried by Dramatiq)
        create_return_label(deps, return_id)
    assert the_return(engine, return_id).status == "requested"

    # When the step is retried
    assert create_return_label(deps, return_id) == SUCCESS

    # Then the label bought the first time was kept, and mailed once
    assert carrier.calls["ship_return"] == 2
    assert len([ref for ref in carrier.labels if ref == f"return_{return_id}"]) == 1
    assert (
        the_return(engine, return_id).shipment_id
        == carrier.labels[f"return_{return_id}"].shipment_id
    )
    assert mailer.kinds(order_id=order_id).count("return_label") == 1


async def test_a_receipt_beyond_the_return_changes_nothing(client, deps, engine, payments):
    # Given a requested return of one mug, and an operator
    order_id, token, mug, plate = await delivered_order(client, deps, engine)
    return_id = (await (await ask_return(client, token, order_id, (mug, 1))).json())["id"]
    admin = await admin_token(client, engine)

    # When the warehouse says it received two mugs, a plate, or a return that does not
    # exist, and the customer tries to receive it themselves
    split = await receive(client, admin, return_id, (mug, 1, "restock"), (mug, 1, "damaged"))
    other = await receive(client, admin, return_id, (plate, 1, "restock"))
    missing = await receive(client, admin, str(uuid.uuid4()), (mug, 1, "restock"))
    customer = await receive(client, token, return_id, (mug, 1, "restock"))

    # Then each is refused, and the return, the stock and the money are as they were
    assert (split.status, (await split.json())["error"]["code"]) == (409, "receipt_exceeds_return")
    assert (other.status, (await other.json())["error"]["code"]) == (422, "not_in_return")
    assert (missing.status, customer.status) == (404, 403)
    kept = the_return(engine, return_id)
    assert (kept.status, kept.refund_id, kept.received_lines) == ("requested", None, [])
    assert stock(engine, mug) == (3, 0) and ledger(engine, return_id) == {}
    assert order(engine, order_id).amount_refunded == 0
