"""Lines priced from the catalogue, never from the client (``fulfillment.ordering``), or
the ``422`` that says why not: for an order's placement and for a checkout quote."""

from __future__ import annotations

import uuid

from api.shared.errors import ApiError, ErrorCode
from fulfillment.ordering import (
    CatalogueEntry,
    MixedCurrencies,
    PricedOrder,
    ProductsUnavailable,
    price_order,
)


def price_or_refuse(
    requested: list[tuple[uuid.UUID, int]], catalogue: dict[uuid.UUID, CatalogueEntry]
) -> PricedOrder:
    try:
        return price_order(requested, catalogue)
    except ProductsUnavailable as exc:
        raise ApiError(
            422, ErrorCode.PRODUCT_UNAVAILABLE, "some products are unknown or not for sale",
            {"product_ids": [str(pid) for pid in exc.product_ids]},
        ) from None  # fmt: skip
    except MixedCurrencies as exc:
        raise ApiError(
            422, ErrorCode.CURRENCY_MISMATCH, str(exc), {"currencies": sorted(exc.currencies)}
        ) from None
