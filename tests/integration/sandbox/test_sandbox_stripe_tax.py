"""Stripe Tax in the sandbox, through the unmodified SDK and the ``StripeTax`` gateway: a
calculation's figures by the rate table, its refusal of an address it cannot place, a
sale recorded once per reference, reversals that never give back more than remains, a
fault on calculations alone, and the records kept across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from integrations.errors import PermanentProviderError, TransientProviderError
from integrations.stripe_gateway import build_stripe_gateway
from integrations.stripe_tax import StripeTax, build_stripe_tax
from integrations.tax_port import TaxLine
from sandbox import SandboxConfig, SandboxThread
from sandbox.stripe.tax import CALCULATION_SECONDS, REFERENCE_USED
from tests.support.sandbox import FAST_RETRIES, TEST_TIMEOUT, RunningSandbox, running_sandbox
from tests.support.stripe_capture import stripe_client

NEW_YORK = {"name": "Grace Hopper", "line1": "350 5th Ave", "city": "New York",
            "state": "NY", "postal_code": "10118", "country": "US"}  # fmt: skip
CALIFORNIA = {**NEW_YORK, "city": "San Francisco", "state": "CA", "postal_code": "94105"}
BERLIN = {"name": "Ada", "line1": "Unter den Linden 1", "city": "Berlin",
          "postal_code": "10117", "country": "DE"}  # fmt: skip
#: Two mugs (12.50 each) and a plate (8.00), shipped for 5.99.
LINES = [TaxLine("mug", 2500, 2, "txcd_99999999"), TaxLine("plate", 800, 1, "txcd_99999999")]
SHIPPING = 599


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def tax(sandbox: RunningSandbox) -> StripeTax:
    sandbox.reset()
    return build_stripe_tax(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def sdk_params(address: dict, *, lines=LINES, shipping: int = SHIPPING) -> dict:
    fields = ("line1", "city", "state", "postal_code", "country")
    return {"currency": "usd",
            "line_items": [{"amount": line.amount, "reference": line.reference, "quantity": line.quantity,
                            "tax_code": line.tax_code, "tax_behavior": "exclusive"} for line in lines],
            "customer_details": {"address_source": "shipping",
                                 "address": {f: address[f] for f in fields if f in address}},
            "shipping_cost": {"amount": shipping}, "expand": ["line_items"]}  # fmt: skip


def test_a_new_york_calculation_taxes_each_line_and_the_shipping(sandbox, tax):
    # When the SDK asks for the tax on two lines and shipping to New York (8.875 %)
    client = stripe_client(sandbox.url)
    calculation = client.v1.tax.calculations.create(sdk_params(NEW_YORK))

    # Then each line is taxed on its own, rounded half up, and the shipping as well
    assert calculation.object == "tax.calculation" and calculation.id.startswith("taxcalc_")
    items = calculation.line_items.data
    assert [(i.reference, i.amount, i.amount_tax, i.quantity) for i in items] == [
        ("mug", 2500, 222, 2),  # 221.875
        ("plate", 800, 71, 1),  # 71.0
    ]
    assert (calculation.shipping_cost.amount, calculation.shipping_cost.amount_tax) == (599, 53)
    assert calculation.tax_amount_exclusive == 222 + 71 + 53
    assert calculation.tax_amount_inclusive == 0
    assert calculation.amount_total == 2500 + 800 + 599 + 346
    assert calculation.tax_breakdown[0].tax_rate_details.percentage_decimal == "8.875"
    # it can be recorded for 90 days, and its line items are read back as they were made
    assert calculation.expires_at - calculation.tax_date == CALCULATION_SECONDS
    listed = client.v1.tax.calculations.line_items.list(calculation.id)
    assert [i.id for i in listed.data] == [i.id for i in items]
    assert client.v1.tax.calculations.retrieve(calculation.id).tax_amount_exclusive == 346


def test_california_does_not_tax_shipping_and_germany_does(tax):
    california = tax.calculate(
        currency="usd", lines=LINES[:1], shipping=SHIPPING, address=CALIFORNIA
    )
    germany = tax.calculate(currency="eur", lines=LINES[:1], shipping=SHIPPING, address=BERLIN)  # fmt: skip

    assert (california.line_taxes, california.shipping_tax, california.tax) == (
        {"mug": 181},
        0,
        181,
    )
    assert (germany.line_taxes, germany.shipping_tax, germany.tax) == ({"mug": 475}, 114, 589)  # fmt: skip


def test_a_calculation_of_many_lines_is_read_in_full(tax):
    # Given more lines than the first page of a calculation holds
    lines = [TaxLine(f"p{i:02}", 1000 + i, 1, "txcd_99999999") for i in range(25)]

    calculation = tax.calculate(currency="usd", lines=lines, shipping=0, address=NEW_YORK)

    assert list(calculation.line_taxes) == [line.reference for line in lines]
    assert calculation.line_taxes["p24"] == 91  # 1024 at 8.875 % = 90.88


def test_an_address_the_tax_cannot_be_placed_at_is_a_400(sandbox, tax):
    client = stripe_client(sandbox.url)
    for address in ({**NEW_YORK, "state": ""}, {**NEW_YORK, "country": ""},
                    {**NEW_YORK, "country": "USA"}):  # fmt: skip
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.tax.calculations.create(sdk_params(address))
        assert raised.value.http_status == 400
        assert raised.value.code == "customer_tax_location_invalid"

    # and the gateway says so as a permanent error, Stripe's code kept
    stateless = {key: value for key, value in NEW_YORK.items() if key != "state"}
    with pytest.raises(PermanentProviderError) as refused:
        tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=stateless)
    assert refused.value.code == "customer_tax_location_invalid"


def test_recording_twice_under_one_reference_makes_one_transaction(sandbox, tax):
    # Given a calculation recorded as the sale of an order
    calculation = tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK)
    first = tax.record(calculation_id=calculation.id, reference="order-1")

    # When it is recorded again under the same reference (a retry)
    again = tax.record(calculation_id=calculation.id, reference="order-1")

    # Then it is the same transaction, whose lines are known by our product ids
    assert again == first
    assert (first.type, first.reference, first.tax) == ("transaction", "order-1", 346)
    assert set(first.line_items) == {"mug", "plate"}
    assert all(item_id.startswith("tax_li_") for item_id in first.line_items.values())
    # while another request under that reference, without the key, is refused
    client = stripe_client(sandbox.url)
    params = {"calculation": calculation.id, "reference": "order-1"}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.tax.transactions.create_from_calculation(params)
    assert (raised.value.http_status, raised.value.code) == (400, REFERENCE_USED)


def test_a_calculation_unknown_or_expired_is_not_recorded(sandbox, tax):
    with pytest.raises(PermanentProviderError) as unknown:
        tax.record(calculation_id="taxcalc_nope", reference="order-2")
    assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")

    calculation = tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK)
    sandbox.advance_clock(CALCULATION_SECONDS + 1)
    with pytest.raises(PermanentProviderError) as expired:
        tax.record(calculation_id=calculation.id, reference="order-2")
    assert expired.value.http_status == 400 and "expired" in expired.value.message


def test_a_partial_reversal_gives_back_negative_amounts_once_per_reference(sandbox, tax):
    # Given a recorded sale
    calculation = tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK)
    sale = tax.record(calculation_id=calculation.id, reference="order-3")

    # When one mug and the shipping are given back
    reversal = tax.reverse(transaction_id=sale.id, reference="order-3-refund-1",
                           lines={"mug": (1250, 111)}, shipping=(599, 53))  # fmt: skip

    # Then Stripe holds a reversal of the sale, in negative amounts
    assert (reversal.type, reversal.tax) == ("reversal", -164)
    held = stripe_client(sandbox.url).v1.tax.transactions.retrieve(
        reversal.id, {"expand": ["line_items"]}
    )
    assert held.reversal.original_transaction == sale.id
    (line,) = held.line_items.data
    assert (line.amount, line.amount_tax, line.reference) == (-1250, -111, "mug")
    assert line.reversal.original_line_item == sale.line_items["mug"]
    assert (held.shipping_cost.amount, held.shipping_cost.amount_tax) == (-599, -53)
    # and the same reference again answers the reversal made first
    again = tax.reverse(transaction_id=sale.id, reference="order-3-refund-1",
                        lines={"mug": (1250, 111)}, shipping=(599, 53))  # fmt: skip
    assert again == reversal


def test_reversing_more_than_remains_is_refused(sandbox, tax):
    # Given a sale of which one mug and the shipping were given back
    calculation = tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK)
    sale = tax.record(calculation_id=calculation.id, reference="order-4")
    tax.reverse(transaction_id=sale.id, reference="order-4-refund-1",
                lines={"mug": (1250, 111)}, shipping=(599, 53))  # fmt: skip

    # Then more than the other mug, or any more shipping, is refused
    for lines, shipping in (({"mug": (1251, 111)}, None), ({"mug": (1250, 112)}, None),
                            ({}, (1, 0))):  # fmt: skip
        with pytest.raises(PermanentProviderError) as refused:
            tax.reverse(transaction_id=sale.id, reference="order-4-refund-2", lines=lines,
                        shipping=shipping)  # fmt: skip
        assert refused.value.http_status == 400
    # while exactly what remains of the mug is taken, and a full reversal takes the rest
    rest = tax.reverse(transaction_id=sale.id, reference="order-4-refund-2",
                       lines={"mug": (1250, 111)})  # fmt: skip
    assert rest.tax == -111
    client = stripe_client(sandbox.url)
    full = {"original_transaction": sale.id, "mode": "full", "reference": "order-4-refund-3",
            "expand": ["line_items"]}  # fmt: skip
    last = client.v1.tax.transactions.create_reversal(full)
    assert [(i.reference, i.amount, i.amount_tax) for i in last.line_items.data] == [
        ("plate", -800, -71)
    ]
    with pytest.raises(stripe.InvalidRequestError, match="fully reversed"):
        client.v1.tax.transactions.create_reversal({**full, "reference": "order-4-refund-4"})


def test_a_fault_on_tax_calculations_fails_them_alone(sandbox, tax):
    # Given the sandbox failing the next calculations, more than the gateway retries
    sandbox.set_faults(stripe={"paths": ["POST /v1/tax/calculations"], "fail_next": 3})

    # Then a calculation fails for now, after its retries
    with pytest.raises(TransientProviderError):
        tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK)
    failed = [r for r in sandbox.requests("stripe") if r["path"] == "/v1/tax/calculations"]
    assert [r["status"] for r in failed] == [503, 503, 503]

    # while payments go on, and the next calculation goes through
    payments = build_stripe_gateway(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)
    paid = payments.charge(order_id="order-5", amount=4245, currency="usd",
                           payment_method="pm_card_visa")  # fmt: skip
    assert paid.succeeded
    assert (
        tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK).tax == 346
    )


def test_tax_records_survive_a_restart(tmp_path: Path):
    config = SandboxConfig(state_path=str(tmp_path / "sandbox.sqlite3"), tracker_step_seconds=0)

    # Given a calculation recorded before a restart
    with SandboxThread(config) as server:
        tax = build_stripe_tax(RunningSandbox(server).settings(), timeout=TEST_TIMEOUT,
                               policy=FAST_RETRIES)  # fmt: skip
        calculation = tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING,
                                    address=NEW_YORK)  # fmt: skip
        sale = tax.record(calculation_id=calculation.id, reference="order-6")

    # When the sandbox starts again on the same file
    with SandboxThread(config) as server:
        tax = build_stripe_tax(RunningSandbox(server).settings(), timeout=TEST_TIMEOUT,
                               policy=FAST_RETRIES)  # fmt: skip
        # Then the sale is there, its recording replays, and it can be reversed
        assert tax.retrieve_transaction(sale.id) == sale
        assert tax.record(calculation_id=calculation.id, reference="order-6") == sale
        reversal = tax.reverse(transaction_id=sale.id, reference="order-6-refund-1",
                               lines={"plate": (800, 71)})  # fmt: skip
        assert reversal.tax == -71
        # and its reference is still taken
        params = {"calculation": calculation.id, "reference": "order-6"}
        with pytest.raises(stripe.InvalidRequestError):
            stripe_client(server.url).v1.tax.transactions.create_from_calculation(params)


def test_line_items_come_only_when_expanded_and_the_gateway_asks_for_them_in_each_call(
    sandbox, tax
):
    # Given a calculation as Stripe answers it when not asked for its line items
    client = stripe_client(sandbox.url)
    bare = {key: value for key, value in sdk_params(NEW_YORK).items() if key != "expand"}
    assert client.v1.tax.calculations.create(bare).line_items is None
    sandbox.reset()

    # When the gateway calculates, records, reverses and reads a sale
    calculation = tax.calculate(currency="usd", lines=LINES, shipping=SHIPPING, address=NEW_YORK)
    sale = tax.record(calculation_id=calculation.id, reference="order-5")
    reversal = tax.reverse(transaction_id=sale.id, reference="order-5-refund-1",
                           lines={"mug": (1250, 111)})  # fmt: skip

    # Then each is one request whose answer carried the line items (no listing of them)
    assert calculation.line_taxes == {"mug": 222, "plate": 71}
    assert set(sale.line_items) == {"mug", "plate"} and reversal.tax == -111
    paths = [entry["path"] for entry in sandbox.requests("stripe")]
    assert paths == ["/v1/tax/calculations", "/v1/tax/transactions/create_from_calculation",
                     f"/v1/tax/transactions/{sale.id}", "/v1/tax/transactions/create_reversal"]  # fmt: skip
    assert not [path for path in paths if path.endswith("/line_items")]
