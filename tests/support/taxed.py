"""Orders placed on a Stripe Tax calculation, for the tests of tax at the money steps:
the steps wired to the sandbox's Stripe (payments and tax through the real SDK), the
calculation made there, the order written as placement writes one on a quote, and what
Stripe Tax holds of it read back through the SDK, as a support engineer could."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import stripe
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from fulfillment import checkpoints
from fulfillment.line_cancellation import price_cancel
from fulfillment.models import Order, OrderEvent, OrderLine, Refund
from fulfillment.settings import Settings
from integrations.stripe_gateway import build_stripe_gateway
from integrations.stripe_tax import build_stripe_tax
from integrations.tax_port import TaxLine
from pipelines.deps import Deps
from sandbox.stripe.tax import REFERENCE_USED
from tests.support.fakes import FakeCarrier, FakeMailer
from tests.support.sandbox import FAST_RETRIES, TEST_TIMEOUT, RunningSandbox, wired_to
from tests.support.steps import make_deps, new_customer, new_product, place_orders
from tests.support.stripe_capture import stripe_client

#: New York taxes goods and shipping at 8.875 % in the sandbox's table.
NEW_YORK = {"name": "Grace Hopper", "line1": "350 5th Ave", "city": "New York",
            "state": "NY", "postal_code": "10118", "country": "US"}  # fmt: skip
#: Two mugs at 12.50 (tax 222) and a plate at 8.00 (tax 71), shipped for 5.99 (tax 53).
ITEMS = ((2, "12.50"), (1, "8.00"))
SHIPPING = 599
#: Stripe Tax's paths, for faults on them alone.
RECORD_PATH = "POST /v1/tax/transactions/create_from_calculation"
REVERSAL_PATH = "POST /v1/tax/transactions/create_reversal"


def tax_deps(engine: Engine, settings: Settings, sandbox: RunningSandbox, *,
             capture: str = "shipment") -> Deps:  # fmt: skip
    """The steps' world on the sandbox's Stripe (emptied first): payments and tax through
    the real gateways; mail and carrier in memory."""
    wired = wired_to(settings, sandbox).model_copy(update={"payment_capture": capture})
    payments = build_stripe_gateway(wired, timeout=TEST_TIMEOUT, policy=FAST_RETRIES)
    deps = make_deps(engine, wired, payments, FakeMailer(), FakeCarrier())
    return replace(deps, tax=build_stripe_tax(wired, timeout=TEST_TIMEOUT, policy=FAST_RETRIES))


def put_on_calculation(deps: Deps, engine: Engine, order_id: str, *,
                       shipping: int = SHIPPING) -> str:  # fmt: skip
    """Price a pending order as placement prices one on a quote: a calculation made at
    Stripe Tax for its lines and ``shipping`` to New York, the order's shipping and tax
    (each line's) written from it. Returns the calculation's id."""
    oid = uuid.UUID(order_id)
    with Session(engine) as session:
        lines = session.scalars(select(OrderLine).where(OrderLine.order_id == oid)).all()
    taxed = [TaxLine(str(line.product_id), line.unit_amount * line.quantity, line.quantity,
                     "txcd_99999999") for line in lines]  # fmt: skip
    calculation = deps.tax.calculate(currency="usd", lines=taxed, shipping=shipping,
                                     address=NEW_YORK)  # fmt: skip
    subtotal = sum(line.amount for line in taxed)
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == oid).values(
            subtotal_amount=subtotal, shipping_amount=shipping, tax_amount=calculation.tax,
            shipping_tax_amount=calculation.shipping_tax,
            total_amount=subtotal + shipping + calculation.tax,
            tax_calculation_id=calculation.id, shipping_address=NEW_YORK))  # fmt: skip
        for line in lines:
            session.execute(update(OrderLine).where(OrderLine.id == line.id).values(
                tax_amount=calculation.line_taxes[str(line.product_id)]))  # fmt: skip
    return calculation.id


def taxed_order(deps: Deps, engine: Engine, *, shipping: int = SHIPPING,
                items=ITEMS) -> tuple[str, list[uuid.UUID]]:  # fmt: skip
    """A new customer's pending order of ``items`` ((quantity, price)), on a calculation."""
    products = [new_product(engine, on_hand=5, price=price) for _, price in items]
    (order_id,) = place_orders(engine, new_customer(engine),
                               *((p, q) for p, (q, _) in zip(products, items, strict=True)),
                               address=NEW_YORK)  # fmt: skip
    put_on_calculation(deps, engine, order_id, shipping=shipping)
    return order_id, products


def cancel_unpaid(engine: Engine, order_id: str, product: uuid.UUID, quantity: int) -> dict:
    """Cancel units of a pending order as the cancel of lines does before the money is
    taken (``fulfillment.line_cancellation``): ``amount_cancelled`` grows by their price
    and tax share. Returns the cancelled line."""
    with Session(engine) as session, session.begin():
        order = session.get(Order, uuid.UUID(order_id))
        amount, (line,) = price_cancel(order.lines, order.cancelled_lines,
                                       [(str(product), quantity)])  # fmt: skip
        order.amount_cancelled += amount
        order.cancelled_lines = [*order.cancelled_lines, {**line, "refunded": False}]
    return line


def line_tax(engine: Engine, order_id: str, product: uuid.UUID) -> int:
    with Session(engine) as session:
        return session.scalar(select(OrderLine.tax_amount).where(
            OrderLine.order_id == uuid.UUID(order_id), OrderLine.product_id == product))  # fmt: skip


def refunds_of(engine: Engine, order_id: str) -> list[Refund]:
    with Session(engine) as session:
        return list(session.scalars(select(Refund).where(
            Refund.order_id == uuid.UUID(order_id)).order_by(Refund.created_at)))  # fmt: skip


def tax_events(engine: Engine, order_id: str) -> list[OrderEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(OrderEvent).where(
            OrderEvent.order_id == uuid.UUID(order_id), OrderEvent.outcome.startswith("tax_"))
            .order_by(OrderEvent.id)))  # fmt: skip


def transaction(sandbox: RunningSandbox, transaction_id: str):
    """A tax transaction (a sale or a reversal) as Stripe Tax holds it."""
    return stripe_client(sandbox.url).v1.tax.transactions.retrieve(transaction_id)


def transaction_tax(sandbox: RunningSandbox, transaction_id: str) -> int:
    held = transaction(sandbox, transaction_id)
    items = stripe_client(sandbox.url).v1.tax.transactions.line_items.list(
        transaction_id, {"limit": 100}).data  # fmt: skip
    return sum(i.amount_tax for i in items) + (
        held.shipping_cost.amount_tax if held.shipping_cost else 0)  # fmt: skip


def a_second_sale_is_refused(sandbox: RunningSandbox, order_id: str, calculation_id: str) -> bool:
    """True when Stripe Tax holds a sale under the order's reference already (a reference
    is used once): asked afresh, with no idempotency key, it refuses."""
    params = {"calculation": calculation_id, "reference": f"order_{order_id}"}
    try:
        stripe_client(sandbox.url).v1.tax.transactions.create_from_calculation(params)
    except stripe.InvalidRequestError as exc:
        return exc.code == REFERENCE_USED
    return False


def all_reversed(sandbox: RunningSandbox, transaction_id: str) -> bool:
    """True when nothing is left of the sale to reverse: a full reversal is refused."""
    params = {"mode": "full", "original_transaction": transaction_id,
              "reference": f"probe_{uuid.uuid4().hex}"}  # fmt: skip
    try:
        stripe_client(sandbox.url).v1.tax.transactions.create_reversal(params)
    except stripe.InvalidRequestError as exc:
        return "fully reversed" in str(exc)
    return False


def refunded_by_stripe(sandbox: RunningSandbox, intent_id: str) -> int:
    """What Stripe has given back of a PaymentIntent (refunds succeeded or pending)."""
    listed = stripe_client(sandbox.url).v1.refunds.list({"payment_intent": intent_id,
                                                         "limit": 100})  # fmt: skip
    return sum(r.amount for r in listed.data if r.status in ("succeeded", "pending"))


def requests_to(sandbox: RunningSandbox, path: str) -> list[dict]:
    """Stripe requests the sandbox answered on ``path`` ("METHOD /path"), oldest first."""
    method, _, where = path.partition(" ")
    return [r for r in sandbox.requests("stripe") if (r["method"], r["path"]) == (method, where)]


class WorkerDied(Exception):
    """The worker's process ended here (a kill at a named point)."""


@contextmanager
def dies_at(name: str) -> Iterator[None]:
    """Every writer that reaches point ``name`` dies there: its transaction never commits,
    as if the process had been killed (``fulfillment.checkpoints``)."""

    def die() -> None:
        raise WorkerDied(name)

    async def die_async() -> None:
        raise WorkerDied(name)

    checkpoints.install(name, die, die_async)
    try:
        yield
    finally:
        checkpoints.remove(name)
