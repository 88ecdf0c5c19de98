"""The checkout's routes: a quote of what an order will cost, and reading it back."""

from __future__ import annotations

from api.checkout import quotes
from api.checkout.schemas import QuoteCreate, QuoteOut
from api.shared.routing import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/checkout/quotes",
        quotes.create_quote,
        "Quote an order before placing it: its subtotal from the catalogue, and each "
        "shipping option with its tax and total (503 when the carrier, without a flat "
        "rate, or the tax service cannot be reached)",
        "orders",
        "user",
        request=QuoteCreate,
        response=QuoteOut,
        status=201,
        errors=(429, 503),
    ),
    Route(
        "GET",
        "/v1/checkout/quotes/{quote_id}",
        quotes.get_quote,
        "One of the caller's quotes",
        "orders",
        "user",
        response=QuoteOut,
    ),
)
