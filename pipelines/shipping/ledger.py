"""The carrier's ``ShipmentLedger`` in PostgreSQL (``carrier_shipments``): the shipment
made for a reference is kept, in a commit of its own, before it is bought, so a retry
in any process, however late, buys or finds that one (``integrations.easypost_gateway``).

Its statements run as the steps' do (``pipelines.sql``: compiled once, prepared on the
psycopg connection). Its writes run on a connection of their own while the buying step holds the order's
row lock in another: the table has no foreign key, so they never wait on that lock.
Two tries keeping at once (they cannot for one order: the row lock serializes them)
would meet on the primary key: the first commit wins and both answer it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from fulfillment.models import CarrierShipment
from integrations.ports import KeptShipment
from pipelines import sql

_RECALL = select(CarrierShipment.shipment_id, CarrierShipment.request_digest).where(
    CarrierShipment.reference == bindparam("b_reference")
)
_KEEP = (
    insert(CarrierShipment)
    .values(reference=bindparam("b_reference"), shipment_id=bindparam("b_shipment"),
            request_digest=bindparam("b_digest"))
    .on_conflict_do_nothing(index_elements=["reference"])
    .returning(CarrierShipment.shipment_id)
)  # fmt: skip
_REPLACE = (
    update(CarrierShipment)
    .where(CarrierShipment.reference == bindparam("b_reference"),
           CarrierShipment.shipment_id == bindparam("b_old"))
    .values(shipment_id=bindparam("b_shipment"), request_digest=bindparam("b_digest"))
    .returning(CarrierShipment.shipment_id)
)  # fmt: skip


class StoredShipmentLedger:
    """``ShipmentLedger`` on the worker's database sessions."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def recall(self, reference: str) -> KeptShipment | None:
        with self._sessions() as session:
            return _recall(session, reference)

    def keep(self, reference: str, kept: KeptShipment) -> KeptShipment:
        return self._write(_KEEP, reference, kept, old=None)

    def replace(self, reference: str, *, old: str, new: KeptShipment) -> KeptShipment:
        return self._write(_REPLACE, reference, new, old=old)

    def _write(
        self, statement: Any, reference: str, kept: KeptShipment, *, old: str | None
    ) -> KeptShipment:
        params = {"b_reference": reference, "b_shipment": kept.shipment_id,
                  "b_digest": kept.request_digest, "b_old": old}  # fmt: skip
        with self._sessions.begin() as session:
            if sql.one(session, statement, params) is not None:
                return kept
            # another try's won: a new statement sees its commit
            winner = _recall(session, reference)
        return winner if winner is not None else self._write(_KEEP, reference, kept, old=None)


def _recall(session: Session, reference: str) -> KeptShipment | None:
    row = sql.one(session, _RECALL, {"b_reference": reference})
    return None if row is None else KeptShipment(shipment_id=row[0], request_digest=row[1])
