"""Stock at locations, for the step tests: locations made and products counted at them as
the admin API does (a ``count`` movement beside every count, so the ledger holds), what
each location holds, and what ``verify``'s stock check says of it all."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fulfillment import stock as stock_sql
from fulfillment.models import Inventory, Location, StockMovement
from pipelines.operations.invariants import Report, check_stock
from tests.support.steps import new_product

WAREHOUSE = {"name": "Lager", "line1": "Alexanderplatz 1", "city": "Berlin",
             "postal_code": "10178", "country": "DE"}  # fmt: skip


def new_location(
    engine: Engine, *, priority: int = 10, ships_to: Iterable[str] = (), active: bool = True
) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        location = Location(name=f"loc-{uuid.uuid4().hex[:8]}", address=dict(WAREHOUSE),
                            priority=priority, ships_to=list(ships_to), active=active)  # fmt: skip
        session.add(location)
        session.flush()
        return location.id


def default_location(engine: Engine) -> uuid.UUID:
    with Session(engine) as session:
        return session.scalar(select(Location.id).where(Location.is_default))


def count(engine: Engine, product_id: uuid.UUID, location_id: uuid.UUID, on_hand: int) -> None:
    """Set the counted stock of a product at a location, with its ledger entry."""
    with Session(engine) as session, session.begin():
        session.execute(pg_insert(Inventory).values(product_id=product_id, location_id=location_id)
                        .on_conflict_do_nothing())  # fmt: skip
        row = session.get(Inventory, (product_id, location_id), with_for_update=True)
        if on_hand != row.on_hand:
            session.execute(*stock_sql.movement(product_id, on_hand - row.on_hand, "count",
                                                location_id=location_id))  # fmt: skip
        row.on_hand = on_hand


def product_at(
    engine: Engine, stock: Mapping[uuid.UUID, int], *, price: str = "12.50"
) -> uuid.UUID:
    """A new product with ``stock`` units at each location (none at the default one
    unless named)."""
    product = new_product(engine, on_hand=0, price=price)
    for location_id, on_hand in stock.items():
        count(engine, product, location_id, on_hand)
    return product


def at(engine: Engine, product_id: uuid.UUID, location_id: uuid.UUID) -> tuple[int, int]:
    """(on hand, reserved) of a product at one location; (0, 0) where it has no row."""
    with Session(engine) as session:
        row = session.get(Inventory, (product_id, location_id))
        return (row.on_hand, row.reserved) if row is not None else (0, 0)


def shipped_from(engine: Engine, product_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Units of a product the ledger says left each location with a shipment."""
    with Session(engine) as session:
        return dict(session.execute(
            select(StockMovement.location_id, -func.sum(StockMovement.delta))
            .where(StockMovement.product_id == product_id, StockMovement.reason == "shipped")
            .group_by(StockMovement.location_id)
        ).all())  # fmt: skip


def stock_violations(engine: Engine) -> list[str]:
    """What ``verify``'s stock check finds wrong, at every location."""
    report = Report()
    with Session(engine) as session:
        check_stock(session, report)
    return report.violations
