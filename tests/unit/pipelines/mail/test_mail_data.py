"""What the e-mail templates are given, and the order number customers read."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from fulfillment.order_number import order_number
from integrations.ports import NotificationKind
from integrations.sendgrid_templates import load_templates
from pipelines.mail.data import compose, tracking_url
from sandbox.sendgrid.handlebars import render

ORDER_ID = uuid.UUID("6b1f0c2e-9a4d-4c1b-8e2f-0123456789ab")
ORDER = {
    "order_id": str(ORDER_ID), "order_number": order_number(ORDER_ID), "placed_on": "30 November 2026",
    "currency": "USD", "subtotal": "55.00", "shipping": "0.00", "tax": "0.00", "total": "55.00",
    "total_amount": 5500, "tax_amount": 0, "shipping_amount": 0, "item_count": 3,
    "lines": [{"name": "Blue Mug", "sku": "MUG", "quantity": 2, "unit_price": "12.50",
               "line_total": "25.00"}],
    "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square",
                         "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
}  # fmt: skip
#: The same order placed on a checkout quote: 55.00 of lines, 6.90 of USPS Priority,
#: 4.94 of tax (0.61 of it the shipping's).
QUOTED = {**ORDER, "subtotal": "55.00", "shipping": "6.90", "tax": "4.94", "total": "66.84",
          "shipping_method": "USPS Priority", "total_amount": 6684, "tax_amount": 494,
          "shipping_amount": 690}  # fmt: skip


def claimed(kind: str, **data) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, order_id=ORDER_ID, first_name="Ada", data=data)


def test_the_order_number_is_short_readable_and_the_same_for_the_same_order():
    assert order_number(ORDER_ID) == order_number(str(ORDER_ID))
    assert order_number(uuid.UUID(int=0)) == "0000-0000"
    number = order_number(ORDER_ID)
    assert len(number) == 9 and number[4] == "-"
    assert not set(number) & set("ILOU")


def test_every_kind_of_mail_has_a_template_with_subject_html_and_plain_text():
    sources = {source.kind: source for source in load_templates()}
    assert set(NotificationKind) <= set(sources)
    assert all(s.subject and s.html and s.plain for s in sources.values())
    assert all("{{>" not in s.html + s.plain for s in sources.values())  # includes spelled out


def test_a_full_refund_shows_the_total_and_a_partial_one_its_amount():
    full = compose(claimed("refunded"), order=ORDER, shipment=None)
    assert (full["refund_amount"], full["refund_partial"]) == ("55.00", False)

    partial = compose(claimed("refunded", amount=1250), order=ORDER, shipment=None)
    assert (partial["refund_amount"], partial["refund_partial"]) == ("12.50", True)
    as_text = compose(claimed("refunded", amount="12.50"), order=ORDER, shipment=None)
    assert as_text["refund_amount"] == "12.50"

    mail = render({"subject": _source("refunded").subject, "plain": _source("refunded").plain},
                  partial)  # fmt: skip
    assert mail["subject"] == f"Refund for order {order_number(ORDER_ID)}"
    assert "refunded 12.50 USD" in mail["plain"] and "of 55.00 USD" in mail["plain"]


def test_order_mails_show_subtotal_shipping_tax_and_total_and_what_shipping_was_paid_for():
    for kind in ("order_confirmed", "shipped", "refunded", "cancelled", "delivered"):
        data = compose(claimed(kind, tracking_code="9400 111"), order=QUOTED,
                       shipment=("USPS", "9400 111"))  # fmt: skip
        mail = render({"plain": _source(kind).plain, "html": _source(kind).html}, data)
        assert ("Subtotal: 55.00 USD\nShipping (USPS Priority): 6.90 USD\nTax: 4.94 USD\n"
                "Total: 66.84 USD") in mail["plain"], kind  # fmt: skip
        assert 'Tax</td><td align="right">4.94 USD</td>' in mail["html"], kind
        assert not {"total_amount", "tax_amount", "shipping_amount"} & set(data)

    # an order placed without a quote: its lines are its total, shipping and tax nothing
    plain = render({"plain": _source("order_confirmed").plain},
                   compose(claimed("order_confirmed"), order=ORDER, shipment=None))["plain"]  # fmt: skip
    assert "Subtotal: 55.00 USD\nShipping: 0.00 USD\nTax: 0.00 USD\nTotal: 55.00 USD" in plain


def test_a_refund_mail_says_of_its_amount_the_tax_and_shipping_where_there_are_some():
    def says(**carried) -> tuple[str, str | None, str | None]:
        data = compose(claimed("refunded", **carried), order=QUOTED, shipment=None)
        plain = render({"plain": _source("refunded").plain}, data)["plain"]
        return plain.split("\n")[2], data.get("refund_tax"), data.get("refund_shipping")

    # a line refunded with its tax share, as the refund row splits it
    line, tax, shipping = says(amount=1361, tax_amount=111, shipping_amount=0)
    assert (tax, shipping) == ("1.11", None)
    assert line.startswith("we have refunded 13.61 USD (including 1.11 USD tax) for your order")
    # the shipping alone, with its tax
    line, _, _ = says(amount=751, tax_amount=61, shipping_amount=690)
    assert "refunded 7.51 USD (including 0.61 USD tax and 6.90 USD shipping) for" in line
    line, _, _ = says(amount=690, shipping_amount=690)
    assert "refunded 6.90 USD (including 6.90 USD shipping) for" in line
    # the whole total: the order's own tax and shipping
    line, tax, shipping = says()
    assert (tax, shipping) == ("4.94", "6.90")
    assert "refunded 66.84 USD (including 4.94 USD tax and 6.90 USD shipping) for" in line
    # a part whose split the notification does not carry, and an untaxed order: no split
    assert says(amount=500)[1:] == (None, None)
    assert "refunded 5.00 USD for your order" in says(amount=500)[0]
    untaxed = compose(claimed("refunded"), order=ORDER, shipment=None)
    assert "refund_tax" not in untaxed and "refund_shipping" not in untaxed


def test_a_cancellation_says_why_in_words():
    data = compose(claimed("cancelled", reason="out_of_stock"), order=ORDER, shipment=None)
    assert data["reason_text"] == "an item in it is out of stock"
    odd = compose(claimed("payment_failed", reason="do_not_honor"), order=ORDER, shipment=None)
    assert odd["reason_text"] == "do not honor"


def test_shipped_mail_links_to_the_carriers_tracking_page():
    data = compose(claimed("shipped", tracking_code="9400 111"), order=ORDER,
                   shipment=("USPS", "9400 111"))  # fmt: skip
    assert data["carrier"] == "USPS" and data["tracking_code"] == "9400 111"
    assert data["tracking_url"] == "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400%20111"
    assert tracking_url("SomeLocalCourier", "X1") is None
    assert "tracking_url" not in compose(claimed("delivered"), order=ORDER,
                                         shipment=("SomeLocalCourier", "X1"))  # fmt: skip


def test_the_shipped_mail_shows_the_address_it_shipped_to_not_the_cached_one():
    corrected = {**ORDER["shipping_address"], "line1": "13 St James's Square"}
    data = compose(claimed("shipped", tracking_code="9400 111", carrier="USPS",
                           shipping_address=corrected), order=ORDER, shipment=None)  # fmt: skip
    assert data["shipping_address"]["line1"] == "13 St James's Square"
    assert data["order_number"] == ORDER["order_number"]


def test_what_the_notification_carries_is_kept_and_account_mail_needs_no_order():
    welcome = SimpleNamespace(kind="welcome", order_id=None, first_name="Ada", data={})
    assert compose(welcome, order=None, shipment=None) == {"first_name": "Ada"}
    reset = SimpleNamespace(kind="password_reset", order_id=None, first_name="Ada",
                            data={"reset_url": "https://shop.example/reset?t=1"})  # fmt: skip
    assert (
        compose(reset, order=None, shipment=None)["reset_url"] == "https://shop.example/reset?t=1"
    )
    assert "total_amount" not in compose(claimed("order_confirmed"), order=ORDER, shipment=None)


def _source(kind: str):
    return next(source for source in load_templates() if source.kind == kind)
