"""A return's status only moves forward; units asked back by a cancelled return count
no more."""

from __future__ import annotations

import pytest

from fulfillment.models import Return
from fulfillment.returns import (
    IllegalReturnMove,
    ReturnStatus,
    advance,
    may_move,
    returned_quantities,
)

R = ReturnStatus


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (R.REQUESTED, R.LABEL_CREATED, True),
        (R.LABEL_CREATED, R.RECEIVED, True),
        (R.IN_TRANSIT, R.RECEIVED, True),
        (R.RECEIVED, R.REFUNDED, True),
        (R.LABEL_CREATED, R.CANCELLED, True),
        (R.LABEL_CREATED, R.REQUESTED, False),
        (R.REFUNDED, R.RECEIVED, False),
        (R.RECEIVED, R.RECEIVED, False),
        (R.RECEIVED, R.CANCELLED, False),
        (R.CANCELLED, R.LABEL_CREATED, False),
    ],
)
def test_a_return_only_moves_forward(current, target, allowed):
    assert may_move(current.value, target) is allowed
    row = Return(status=current.value)
    if allowed:
        advance(row, target)
        assert row.status == target.value
    else:
        with pytest.raises(IllegalReturnMove):
            advance(row, target)
        assert row.status == current.value


def test_a_cancelled_return_gives_its_units_back_to_the_returnable():
    rows = [
        Return(status="requested", lines=[{"product_id": "a", "quantity": 1}]),
        Return(
            status="refunded",
            lines=[{"product_id": "a", "quantity": 2}, {"product_id": "b", "quantity": 1}],
        ),
        Return(status="cancelled", lines=[{"product_id": "a", "quantity": 5}]),
    ]
    assert returned_quantities(rows) == {"a": 3, "b": 1}
