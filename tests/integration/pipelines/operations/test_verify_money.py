"""Stripe as the sandbox holds it, read back: its search lags as Stripe's does, and
``fulfillment verify`` finds money a cancelled order still holds there (a live
authorization, a capture still due) and refunds kept as made that Stripe refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from fulfillment.models import Order, Refund
from fulfillment.settings import Settings
from fulfillment.states import OrderStatus as S
from integrations.stripe_gateway import StripeGateway, build_stripe_gateway
from pipelines.operations.invariants import check_all
from sandbox.config import SEARCH_LAG_SECONDS
from tests.support.interleave import hold, in_thread
from tests.support.sandbox import (
    FAST_RETRIES,
    TEST_TIMEOUT,
    RunningSandbox,
    running_sandbox,
    wired_to,
)
from tests.support.steps import new_customer, new_product, place_orders


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def wired(settings: Settings, sandbox: RunningSandbox) -> Settings:
    return wired_to(settings, sandbox)


@pytest.fixture
def gateway(wired: Settings) -> StripeGateway:
    return build_stripe_gateway(wired, timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def test_stripe_search_shows_a_new_payment_intent_only_after_its_lag(sandbox, gateway):
    # Given a PaymentIntent just created
    order_id = str(uuid.uuid4())
    made = gateway.charge(order_id=order_id, amount=1250, currency="usd",
                          payment_method="pm_card_visa")  # fmt: skip

    # Then Stripe's search does not show it yet (it is not read-after-write), a read
    # by id does, and the search shows it once the lag has passed
    assert gateway.find_payment(order_id) is None
    assert gateway.retrieve_payment(made.id).id == made.id
    sandbox.advance_clock(SEARCH_LAG_SECONDS + 1)
    assert gateway.find_payment(order_id).id == made.id


def test_a_search_lag_of_zero_shows_a_new_payment_intent_at_once(sandbox, gateway):
    # Given a sandbox whose search is set to keep up at once (a test that needs it)
    sandbox.set_faults(stripe={"search_lag": 0})
    order_id = str(uuid.uuid4())
    made = gateway.charge(order_id=order_id, amount=1250, currency="usd",
                          payment_method="pm_card_visa")  # fmt: skip

    # Then the search finds it at once
    assert gateway.find_payment(order_id).id == made.id


def cancelled_order(engine: Engine, **values) -> str:
    (order_id,) = place_orders(engine, new_customer(engine), (new_product(engine, on_hand=5), 1))
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id))
                        .values(status=S.CANCELLED.value, stock_state="released", **values))  # fmt: skip
    return order_id


def test_verify_finds_a_live_authorization_and_a_capture_due_on_a_cancelled_order(
    db, wired, gateway
):
    engine = db
    # Given a cancelled order that never learnt of its authorization (it landed after
    # the cancel), and another whose capture is still due
    held = cancelled_order(engine)
    gateway.charge(order_id=held, amount=1250, currency="usd", payment_method="pm_card_visa",
                   capture_method="manual")  # fmt: skip
    due = cancelled_order(engine, capture_due=True)

    # When verify reads Stripe back
    violations = check_all(wired).violations

    # Then it reports both
    assert any(held in v and "live at Stripe" in v for v in violations), violations
    assert any(due in v and "capture is still due" in v for v in violations), violations


def test_verify_finds_a_refund_kept_as_made_that_stripe_refused(db, wired, gateway):
    engine = db
    # Given a refund kept as succeeded here that Stripe does not hold (it refused it)
    order_id = cancelled_order(engine, amount_authorized=1250, amount_captured=1250,
                               amount_refunded=1250, capture_method="automatic")  # fmt: skip
    with Session(engine) as session, session.begin():
        session.add(Refund(order_id=uuid.UUID(order_id), amount=1250, currency="usd",
                           source="compensation", request_key="compensation",
                           status="succeeded", provider_refund_id="re_refused"))  # fmt: skip

    # Then verify reports it
    violations = check_all(wired).violations
    assert any(order_id in v and "has no such refund" in v for v in violations), violations


def test_a_refund_made_while_verify_reads_stripe_is_not_a_violation(db, wired, gateway):
    engine = db
    # Given a cancelled order whose charge is at Stripe and whose refund is under way
    order_id = cancelled_order(engine)
    charge = gateway.charge(order_id=order_id, amount=1250, currency="usd",
                            payment_method="pm_card_visa")  # fmt: skip
    refund_id = uuid.uuid4()
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id)).values(
            payment_intent_id=charge.id, capture_method="automatic", amount_authorized=1250,
            amount_captured=1250, amount_refunded=1250, refund_due=True))  # fmt: skip
        session.add(Refund(id=refund_id, order_id=uuid.UUID(order_id), amount=1250,
                           currency="usd", source="compensation", request_key="compensation",
                           status="pending"))  # fmt: skip

    # When verify has read the database and the refund is made and kept before it
    # reads Stripe
    with hold("verify.after_database_snapshot") as point:
        verifying = in_thread(lambda: check_all(wired))
        point.wait_reached()
        made = gateway.refund(order_id=order_id, payment_id=charge.id, amount=1250,
                              key=f"refund_{refund_id}")  # fmt: skip
        with Session(engine) as session, session.begin():
            session.execute(update(Refund).where(Refund.id == refund_id)
                            .values(status="succeeded", provider_refund_id=made.id))  # fmt: skip
            session.execute(update(Order).where(Order.id == uuid.UUID(order_id))
                            .values(refund_due=False, payment_status="refunded"))  # fmt: skip
        point.release()
        report = verifying.result(timeout=60)

    # Then verify saw the refund under way, not a refund that Stripe lacks
    assert not [v for v in report.violations if order_id in v], report.violations

    # And once it has been made, verify agrees with Stripe about it
    assert not [v for v in check_all(wired).violations if order_id in v]
