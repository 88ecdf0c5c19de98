"""The payment operations counted (``fulfillment_payment_operations_total``), each only
once the commit that keeps its outcome has succeeded."""

from __future__ import annotations

from sqlalchemy.orm import Session

from monitoring import metrics
from pipelines.common import after_commit


def count_payment(session: Session, operation: str, outcome: str) -> None:
    """Count a payment operation once the commit that keeps it has succeeded."""
    after_commit(session, metrics.payment_operations_total.labels(operation, outcome).inc)
