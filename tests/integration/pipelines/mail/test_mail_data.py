"""The template data of an order's e-mails, read from PostgreSQL when the mail is sent:
what it holds, and what it costs (at most one statement per mail; none for an order
the process has read already, unless the mail must show the shipment)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy.orm import Session

from fulfillment.db import sync_session_factory
from fulfillment.models import Order, OrderLine, Product, Shipment, User
from fulfillment.order_number import order_number
from pipelines import sql
from pipelines.common import begin, lock_order
from pipelines.deps import Deps
from pipelines.locked_order import LinesCache
from pipelines.mail import data as mail_data
from pipelines.mail.claim import tell_customer
from pipelines.mail.notify import send_claimed
from tests.support.quoted import price_as_quoted
from tests.support.storefront import ADDRESS


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every statement the steps' SQL runner sends, in order (the real runner runs them)."""
    sent: list[str] = []
    run = sql._cursor

    def counted(session, statement, params):
        sent.append(str(statement).split()[0])
        return run(session, statement, params)

    monkeypatch.setattr(sql, "_cursor", counted)
    monkeypatch.setattr(mail_data, "_ORDERS_SEEN", LinesCache(16))  # a fresh process
    return sent


def an_order(engine, *, shipped: bool) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:10]}@example.com", password_hash="-",
                    first_name="Ada", last_name="Lovelace")  # fmt: skip
        mug = Product(sku=f"MUG-{uuid.uuid4().hex[:6]}", name="Blue Mug", price=Decimal("12.50"),
                      currency="usd", category="kitchen")  # fmt: skip
        pot = Product(sku=f"POT-{uuid.uuid4().hex[:6]}", name="Teapot", price=Decimal("30.00"),
                      currency="usd", category="kitchen")  # fmt: skip
        session.add_all([user, mug, pot])
        session.flush()
        lines = [OrderLine(position=1, product_id=mug.id, sku=mug.sku, name=mug.name, quantity=2,
                           unit_price=mug.price, unit_amount=1250),
                 OrderLine(position=2, product_id=pot.id, sku=pot.sku, name=pot.name, quantity=1,
                           unit_price=pot.price, unit_amount=3000)]  # fmt: skip
        order = Order(customer_id=user.id, currency="usd", total_amount=5500,
                      shipping_address=dict(ADDRESS), payment_method="pm_card_visa", lines=lines)  # fmt: skip
        session.add(order)
        session.flush()
        if shipped:
            session.add(Shipment(order_id=order.id, shipment_id=f"shp_{uuid.uuid4().hex[:8]}",
                                 tracking_code="9400100000000000000001", label_url="-",
                                 carrier="USPS", service="Priority"))  # fmt: skip
        return order.id


def claimed(kind: str, order_id: uuid.UUID, **data) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, order_id=order_id, first_name="Ada", data=data)


@pytest.fixture
def deps(db, settings) -> Deps:
    return Deps(sessions=sync_session_factory(db), payments=None, mailer=None, carrier=None,
                settings=settings, send_mail=send_claimed)  # fmt: skip


def test_the_confirmation_shows_the_order_and_reads_it_in_one_statement(deps, db, statements):
    # Given a placed order of two mugs and a teapot
    order_id = an_order(db, shipped=False)

    # When its confirmation's data is built
    data = mail_data.template_data(deps, claimed("order_confirmed", order_id))

    # Then it holds what the customer reads, from one statement
    assert statements == ["SELECT"]
    assert data["order_number"] == order_number(order_id) and data["first_name"] == "Ada"
    assert data["lines"] == [
        {"name": "Blue Mug", "sku": data["lines"][0]["sku"], "quantity": 2,
         "unit_price": "12.50", "line_total": "25.00"},
        {"name": "Teapot", "sku": data["lines"][1]["sku"], "quantity": 1,
         "unit_price": "30.00", "line_total": "30.00"},
    ]  # fmt: skip
    assert (data["total"], data["currency"], data["item_count"]) == ("55.00", "USD", 3)
    # placed without a quote: the lines are the whole total
    assert (data["subtotal"], data["shipping"], data["tax"]) == ("55.00", "0.00", "0.00")
    assert "shipping_method" not in data
    assert data["shipping_address"] == ADDRESS

    # and a later mail of the same order, in the same process, reads nothing
    cancelled = mail_data.template_data(deps, claimed("cancelled", order_id, reason="x"))
    assert statements == ["SELECT"] and cancelled["lines"] == data["lines"]


def test_a_quoted_orders_amounts_come_in_the_same_one_statement(deps, db, statements):
    # Given an order priced on a checkout quote (shipping and tax on top of its lines)
    order_id = an_order(db, shipped=False)
    price_as_quoted(db, order_id, line_taxes=(222, 266), shipping=690, shipping_tax=61)

    # When its confirmation's data is built
    data = mail_data.template_data(deps, claimed("order_confirmed", order_id))

    # Then it shows the four amounts and what shipping was paid for, read in one statement
    assert statements == ["SELECT"]
    assert (data["subtotal"], data["shipping"], data["tax"], data["total"]) == (
        "55.00", "6.90", "5.49", "67.39")  # fmt: skip
    assert data["shipping_method"] == "USPS Priority"


def test_the_shipped_mail_reads_the_shipment_and_nothing_else(deps, db, statements):
    # Given a shipped order whose confirmation this process sent
    order_id = an_order(db, shipped=True)
    mail_data.template_data(deps, claimed("order_confirmed", order_id))

    # When the shipped mail's data is built
    data = mail_data.template_data(
        deps, claimed("shipped", order_id, tracking_code="9400100000000000000001")
    )

    # Then the carrier and its tracking link come from one more statement
    assert statements == ["SELECT", "SELECT"]
    assert (data["carrier"], data["tracking_code"]) == ("USPS", "9400100000000000000001")
    assert data["tracking_url"].endswith("tLabels=9400100000000000000001")

    # and none when the notification carries the carrier too
    mail_data.template_data(
        deps, claimed("shipped", order_id, tracking_code="9400100000000000000001", carrier="USPS")
    )
    assert statements == ["SELECT", "SELECT"]


def test_a_claimed_mail_reads_in_the_claims_transaction(deps, db, statements):
    # Given a delivered order this process never saw
    order_id = an_order(db, shipped=True)

    # When its delivery mail is built in the transaction that claims it
    with deps.sessions.begin() as session:
        data = mail_data.template_data(deps, claimed("delivered", order_id), session=session)

    # Then the order, its lines and its shipment come in one statement
    assert statements == ["SELECT"]
    assert data["tracking_code"] == "9400100000000000000001" and len(data["lines"]) == 2


def test_a_mail_a_step_claims_brings_its_data_in_the_claims_statement(deps, db, statements,
                                                                     monkeypatch):  # fmt: skip
    # Given a shipped order this process never saw, and a step that tells its customer
    order_id = an_order(db, shipped=True)
    sent: list[tuple] = []
    stepping = replace(
        deps, send_mail=lambda deps, claimed, data=None: sent.append((claimed, data))
    )
    monkeypatch.setattr(mail_data, "reading", None)  # no transaction of its own to read in

    # When the step claims the delivery mail and commits
    with begin(stepping) as session:
        order = lock_order(session, str(order_id))
        statements.clear()
        tell_customer(session, order, "delivered")

    # Then the claim's one statement brought the order, its lines and its shipment, and
    # the mail goes with its data composed: nothing is read after the commit
    assert statements == ["WITH"]
    ((mail, data),) = sent
    assert mail.kind == "delivered" and data is not None
    assert (data["carrier"], data["tracking_code"]) == ("USPS", "9400100000000000000001")
    assert [line["name"] for line in data["lines"]] == ["Blue Mug", "Teapot"]
    assert (data["total"], data["first_name"]) == ("55.00", "Ada")
    # the same data the send would have composed by reading
    with deps.sessions.begin() as session:
        assert data == mail_data.template_data(deps, mail, session=session)

    # and a second mail of the order, the process holding it now, claims plainly
    with begin(stepping) as session:
        order = lock_order(session, str(order_id))
        statements.clear()
        tell_customer(session, order, "cancelled", reason="customer_request")
    assert statements == ["WITH"] and sent[-1][1] is None
