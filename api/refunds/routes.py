"""The refunds' route: an operator refunds an order by lines or by amount."""

from __future__ import annotations

from api.refunds import views as refunds
from api.refunds.schemas import RefundCreate
from api.shared.routing import Route
from fulfillment.order_view import RefundOut

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/refunds",
        refunds.create_refund,
        "Refund an order, by lines or by amount and its shipping, never more than was captured",
        "admin",
        "admin",
        request=RefundCreate,
        response=RefundOut,
        status=201,
        idempotent_key=True,
        errors=(404, 409, 422),
    ),
)
