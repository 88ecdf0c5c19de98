"""The label void counter starts every outcome at zero in a worker: the first rejected
void must be an increase for LabelVoidsRejected (``increase()`` of a series born at 1 is
0)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from monitoring import metrics


def test_every_label_void_outcome_exists_from_the_start():
    metrics.initialise_label_void_series()
    outcomes = {
        sample.labels["outcome"]
        for family in REGISTRY.collect()
        if family.name == "fulfillment_label_voids"
        for sample in family.samples
        if sample.name == "fulfillment_label_voids_total"
    }
    assert outcomes == set(metrics.LABEL_VOID_OUTCOMES)
