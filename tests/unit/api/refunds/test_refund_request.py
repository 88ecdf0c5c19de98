"""What an operator's refund request may say (``api.refunds.schemas.RefundCreate``): lines
or an amount, not both, each with the shipping or without; the shipping alone."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from api.refunds.schemas import RefundCreate

LINE = {"product_id": str(uuid.uuid4()), "quantity": 1}


@pytest.mark.parametrize(
    "body",
    [{"lines": [LINE]}, {"amount": "5.00"}, {"shipping": True},
     {"lines": [LINE], "shipping": True}, {"amount": "1.00", "shipping": True, "reason": "late"}],
)  # fmt: skip
def test_lines_or_an_amount_with_or_without_the_shipping_or_the_shipping_alone(body):
    assert RefundCreate.model_validate(body).shipping == body.get("shipping", False)


@pytest.mark.parametrize(
    "body",
    [{}, {"shipping": False}, {"lines": [LINE], "amount": "5.00"}, {"shipping": "true"},
     {"shipping": 1}, {"amount": "0.00", "shipping": True}],
)  # fmt: skip
def test_nothing_to_refund_both_ways_at_once_or_a_loose_flag_is_refused(body):
    with pytest.raises(ValidationError):
        RefundCreate.model_validate(body)
