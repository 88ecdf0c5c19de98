"""Prices are decimals in the catalogue and integers in minor units on orders."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

#: Currencies Stripe treats as having no minor unit (amounts are whole units).
ZERO_DECIMAL_CURRENCIES = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)


def exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def to_minor(amount: Decimal, currency: str) -> int:
    """12.50 USD -> 1250; 500 JPY -> 500."""
    scaled = amount.scaleb(exponent(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    places = exponent(currency)
    return Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_decimal(amount: Decimal, currency: str) -> str:
    """The decimal string the API shows: "12.50", or "500" for a zero-decimal currency."""
    places = exponent(currency)
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def format_minor(amount: int, currency: str) -> str:
    """``format_decimal(from_minor(amount, currency), currency)`` in integer arithmetic:
    1250 USD -> "12.50", 500 JPY -> "500". Every order's representation formats four
    amounts, on the API's hot path and in each e-mail."""
    if exponent(currency) == 0:
        return str(amount)
    units, cents = divmod(abs(amount), 100)
    return f"{'-' if amount < 0 else ''}{units}.{cents:02d}"
