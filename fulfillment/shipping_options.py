"""What a customer may pay for shipping (a quote's options): the carriers' rates for the
order's parcel, narrowed to the services the merchant offers (``SHIPPING_SERVICES``),
plus the handling amount, free above ``SHIPPING_FREE_OVER``; when the carrier cannot be
reached, one flat option marked estimated (``SHIPPING_FALLBACK_AMOUNT``) or none.
Amounts in minor units."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from fulfillment.money import to_minor

#: Weight of one packed unit, in ounces, until products carry their own: the parcel a
#: quote prices is the one ``ship_order`` buys a label for.
UNIT_WEIGHT_OZ = 12
#: The fallback option's carrier and service.
FLAT = ("flat", "standard")


@dataclass(frozen=True, slots=True)
class ShippingRate:
    """One service a carrier offers for a parcel between two addresses, its price in
    minor units (the carrier port's ``rates``)."""

    carrier: str
    service: str
    amount: int
    currency: str
    delivery_days: int | None = None


class ShippingUnavailable(Exception):
    """No option can be offered: the carrier is out of reach and no fallback is set, or
    it offers none of the merchant's services to this address."""


@dataclass(frozen=True, slots=True)
class ShippingOption:
    id: str
    carrier: str
    service: str
    delivery_days: int | None
    #: What the customer pays for shipping, in minor units.
    shipping: int
    #: The flat fallback, priced without the carrier.
    estimated: bool = False


def parcel_weight_oz(units: int) -> float:
    return float(UNIT_WEIGHT_OZ * units)


def option_id(carrier: str, service: str) -> str:
    """A stable id for a service: ``usps_priority``."""
    return re.sub(r"[^a-z0-9]+", "_", f"{carrier}_{service}".lower()).strip("_")


def offered(rates: Iterable[ShippingRate], services: Iterable[str]) -> list[ShippingRate]:
    """The rates of the services the merchant offers (all when it names none)."""
    wanted = {service.lower().replace(" ", "") for service in services}
    return [r for r in rates if not wanted or f"{r.carrier}:{r.service}".lower() in wanted]


def shipping_options(
    rates: list[ShippingRate] | None,
    *,
    subtotal: int,
    currency: str,
    services: Iterable[str] = (),
    free_over: Decimal | None = None,
    handling: Decimal = Decimal("0"),
    fallback: Decimal | None = None,
) -> list[ShippingOption]:
    """The options for an order of ``subtotal`` (minor units), cheapest first, from the
    carrier's ``rates`` (None: the carrier could not be reached)."""
    free = free_over is not None and subtotal >= to_minor(free_over, currency)
    extra = to_minor(handling, currency)
    if rates is None:
        if fallback is None:
            raise ShippingUnavailable("the carrier cannot be reached and no flat rate is set")
        price = 0 if free else to_minor(fallback, currency) + extra
        return [ShippingOption(id=option_id(*FLAT), carrier=FLAT[0], service=FLAT[1],
                               delivery_days=None, shipping=price, estimated=True)]  # fmt: skip
    options = {}
    for rate in offered(rates, services):
        if rate.currency.lower() != currency.lower():
            continue  # a rate in another currency cannot be charged in this one
        option = ShippingOption(id=option_id(rate.carrier, rate.service), carrier=rate.carrier,
                                service=rate.service, delivery_days=rate.delivery_days,
                                shipping=0 if free else rate.amount + extra)  # fmt: skip
        if option.id not in options or option.shipping < options[option.id].shipping:
            options[option.id] = option
    if not options:
        raise ShippingUnavailable("the carrier offers none of the store's services here")
    return sorted(options.values(), key=lambda o: (o.shipping, o.delivery_days or 99, o.id))
