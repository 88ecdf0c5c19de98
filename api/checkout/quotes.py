"""``POST /v1/checkout/quotes``: what an order will cost before it is placed, and ``GET
/v1/checkout/quotes/{quote_id}`` (its customer's).

The lines are priced from the catalogue (nothing priced by the client is trusted). The
shipping options are the carrier's rates for the order's parcel from the ship-from
address to the customer's (``fulfillment.shipping_options``: the merchant's services,
handling, free shipping); with the carrier out of reach, a flat estimated option or
``503 shipping_unavailable``. Each option's tax is a Stripe Tax calculation of the lines
and that shipping (``TAX_PROVIDER=none``: prices include tax, tax 0); Stripe Tax out of
reach is ``503 tax_unavailable`` and nothing is stored. The quote is stored with its
calculations, for its customer, until ``QUOTE_TTL_SECONDS`` have passed.

A customer waits: the providers are asked on a thread, with one quick retry each, and
the calculations of options that cost the same to ship are made once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from api.checkout.schemas import QuoteCreate, QuoteLineOut, QuoteOut, ShippingOptionOut
from api.orders.addresses import CARRIER, INTERACTIVE, RETRY_AFTER, TIMEOUT
from api.shared.context import SESSIONS, SETTINGS
from api.shared.errors import ApiError, ErrorCode, not_found, path_uuid
from api.shared.jsonio import read_model, respond
from api.shared.pricing import price_or_refuse
from api.shared.principal import authenticate
from fulfillment.models import Product, Quote
from fulfillment.money import format_minor
from fulfillment.ordering import CatalogueEntry, PricedOrder
from fulfillment.settings import Settings
from fulfillment.shipping_options import (
    ShippingOption,
    ShippingUnavailable,
    parcel_weight_oz,
    shipping_options,
)
from integrations.errors import PermanentProviderError, ProviderError
from integrations.ports import Parcel
from integrations.stripe_tax import build_stripe_tax
from integrations.tax_port import TaxCalculation, TaxCalculator, TaxLine

#: The tax calculator the API asks while a customer waits (built when the app starts).
TAX = web.AppKey("tax", TaxCalculator)
#: A product with no tax code of its own: Stripe's general tangible goods.
DEFAULT_TAX_CODE = "txcd_99999999"
#: Stripe Tax's refusal of the address (no country, a US address with no state...).
TAX_LOCATION_INVALID = "customer_tax_location_invalid"


async def tax_ctx(app: web.Application) -> AsyncIterator[None]:
    app[TAX] = build_stripe_tax(app[SETTINGS], timeout=TIMEOUT, policy=INTERACTIVE)
    yield


async def create_quote(request: web.Request) -> web.Response:
    principal = authenticate(request)
    body = await read_model(request, QuoteCreate)
    settings = request.app[SETTINGS]
    requested = [(item.product_id, item.quantity) for item in body.items]
    address = body.shipping_address.model_dump(exclude_none=True)
    async with request.app[SESSIONS]() as session:
        products = (await session.scalars(
            select(Product).where(Product.id.in_([pid for pid, _ in requested])))).all()  # fmt: skip
    priced = price_or_refuse(requested, {p.id: _entry(p) for p in products})
    tax_codes = {p.id: p.tax_code or DEFAULT_TAX_CODE for p in products}
    options = await _options(request, settings, priced, address)
    taxes = await _taxes(request, settings, priced, tax_codes, address, options)
    now = datetime.now(UTC)
    quote = Quote(
        id=uuid.uuid4(), customer_id=principal.user_id, currency=priced.currency,
        items=[{"product_id": str(line.product_id), "quantity": line.quantity,
                "unit_amount": line.unit_amount, "tax_code": tax_codes[line.product_id]}
               for line in priced.lines],
        shipping_address=address, subtotal=priced.total_amount,
        options=[_stored(option, taxes[option.shipping], priced.total_amount) for option in options],
        created_at=now, expires_at=now + timedelta(seconds=settings.quote_ttl_seconds),
    )  # fmt: skip
    async with request.app[SESSIONS]() as session, session.begin():
        session.add(quote)
    return respond(quote_out(quote), status=201)


async def get_quote(request: web.Request) -> web.Response:
    principal = authenticate(request)
    quote_id = path_uuid(request, "quote_id", "quote")
    async with request.app[SESSIONS]() as session:
        quote = await session.get(Quote, quote_id)
    if quote is None or quote.customer_id != principal.user_id:
        raise not_found("quote")
    return respond(quote_out(quote))


def _entry(product: Product) -> CatalogueEntry:
    return CatalogueEntry(product_id=product.id, sku=product.sku, name=product.name,
                          price=product.price, currency=product.currency,
                          active=product.is_active)  # fmt: skip


async def _options(
    request: web.Request, settings: Settings, priced: PricedOrder, address: dict[str, Any]
) -> list[ShippingOption]:
    units = sum(line.quantity for line in priced.lines)
    parcel = Parcel(weight_oz=parcel_weight_oz(units))
    try:
        rates = await asyncio.to_thread(request.app[CARRIER].rates, address=address, parcel=parcel)
    except ProviderError:
        rates = None  # the fallback, if the merchant set one
    try:
        return shipping_options(
            rates, subtotal=priced.total_amount, currency=priced.currency,
            services=settings.shipping_services, free_over=settings.shipping_free_over,
            handling=settings.shipping_handling_amount, fallback=settings.shipping_fallback_amount,
        )  # fmt: skip
    except ShippingUnavailable as exc:
        raise ApiError(503, ErrorCode.SHIPPING_UNAVAILABLE, f"no shipping can be quoted: {exc}",
                       headers={"Retry-After": str(RETRY_AFTER)}) from None  # fmt: skip


async def _taxes(
    request: web.Request,
    settings: Settings,
    priced: PricedOrder,
    tax_codes: dict[uuid.UUID, str],
    address: dict[str, Any],
    options: list[ShippingOption],
) -> dict[int, TaxCalculation | None]:
    """The calculation for each distinct shipping price (None without a tax provider)."""
    prices = sorted({option.shipping for option in options})
    if settings.tax_provider == "none":
        return dict.fromkeys(prices)
    lines = [TaxLine(reference=str(line.product_id), amount=line.unit_amount * line.quantity,
                     quantity=line.quantity, tax_code=tax_codes[line.product_id])
             for line in priced.lines]  # fmt: skip
    calculator = request.app[TAX]

    def calculate(shipping: int) -> TaxCalculation:
        return calculator.calculate(currency=priced.currency, lines=lines, shipping=shipping,
                                    address=address)  # fmt: skip

    try:
        found = await asyncio.gather(*(asyncio.to_thread(calculate, p) for p in prices))
    except PermanentProviderError as exc:
        if exc.code == TAX_LOCATION_INVALID:
            raise ApiError(422, ErrorCode.TAX_LOCATION_INVALID, "tax cannot be calculated for "
                           "this address: check its country, state and postal code") from None  # fmt: skip
        raise _tax_unavailable() from None
    except ProviderError:
        raise _tax_unavailable() from None
    return dict(zip(prices, found, strict=True))


def _tax_unavailable() -> ApiError:
    return ApiError(503, ErrorCode.TAX_UNAVAILABLE, "tax cannot be calculated right now",
                    headers={"Retry-After": str(RETRY_AFTER)})  # fmt: skip


def _stored(option: ShippingOption, tax: TaxCalculation | None, subtotal: int) -> dict[str, Any]:
    amount = tax.tax if tax is not None else 0
    return {
        "id": option.id, "carrier": option.carrier, "service": option.service,
        "delivery_days": option.delivery_days, "estimated": option.estimated,
        "shipping": option.shipping, "tax": amount, "total": subtotal + option.shipping + amount,
        "tax_calculation": tax.id if tax is not None else None,
        "line_taxes": dict(tax.line_taxes) if tax is not None else {},
        "shipping_tax": tax.shipping_tax if tax is not None else 0,
    }  # fmt: skip


def quote_out(quote: Quote) -> QuoteOut:
    def money(amount: int) -> str:
        return format_minor(amount, quote.currency)

    return QuoteOut(
        id=quote.id, expires_at=quote.expires_at, currency=quote.currency,
        lines=[QuoteLineOut(product_id=item["product_id"], quantity=item["quantity"],
                            unit_amount=item["unit_amount"]) for item in quote.items],
        subtotal=money(quote.subtotal), subtotal_amount=quote.subtotal,
        shipping_options=[ShippingOptionOut(
            id=o["id"], carrier=o["carrier"], service=o["service"],
            delivery_days=o["delivery_days"], estimated=o["estimated"],
            shipping=money(o["shipping"]), shipping_amount=o["shipping"],
            tax=money(o["tax"]), tax_amount=o["tax"],
            total=money(o["total"]), total_amount=o["total"]) for o in quote.options],
    )  # fmt: skip
