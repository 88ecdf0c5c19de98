"""The products an order writer has read, kept to price its later batches before reading
them again (``api.orders.placement``: the one-round-trip write)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from fulfillment.ordering import CatalogueEntry

#: A placement (``api.orders.placement.Placement``): anything with the order's ``body``.
P = TypeVar("P", bound=Any)

#: The most catalogue rows a writer keeps; past it, it starts again from what it reads.
READ_CATALOGUE_ROWS = 10_000


class ReadCatalogue:
    """The products a writer has read, to price later batches before reading them. Never
    trusted: ``GUARDED_WRITE`` checks each line against its row, and an order whose
    product changed since is decided on a fresh read."""

    def __init__(self) -> None:
        self.entries: dict[uuid.UUID, CatalogueEntry] = {}

    def keep(self, entries: dict[uuid.UUID, CatalogueEntry]) -> None:
        if len(self.entries) + len(entries) > READ_CATALOGUE_ROWS:
            self.entries.clear()
        self.entries.update(entries)

    def split(self, batch: list[P], *, quote_required: bool) -> tuple[list[P], list[P]]:
        """(placements whose every product was read and is on sale, the others). Orders
        on a quote are always read: the quote is read with the products."""
        if quote_required:
            return [], batch
        known, rest = [], []
        for p in batch:
            entries = (self.entries.get(item.product_id) for item in p.body.items)
            read = p.body.quote_id is None and all(e is not None and e.active for e in entries)
            (known if read else rest).append(p)
        return known, rest
