"""The returns' routes: the customer asks for and lists returns (``ROUTES``); the
warehouse receives one (``RECEIPT_ROUTES``)."""

from __future__ import annotations

from api.returns import views as returns
from api.returns.schemas import ReturnCreate, ReturnList, ReturnOut, ReturnReceive
from api.shared.routing import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/orders/{order_id}/returns",
        returns.create_return,
        "Return some of a delivered order's units, within the return window (a prepaid "
        "label is e-mailed; the refund follows the warehouse's receipt)",
        "orders",
        "user",
        request=ReturnCreate,
        response=ReturnOut,
        status=201,
        idempotent_key=True,
        errors=(409,),
    ),
    Route(
        "GET",
        "/v1/orders/{order_id}/returns",
        returns.list_returns,
        "An order's returns",
        "orders",
        "user",
        response=ReturnList,
    ),
)

RECEIPT_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/admin/returns/{return_id}/receive",
        returns.receive_return,
        "Receive a return, once: restocked or damaged units, then a refund of the received lines",
        "admin",
        "admin",
        request=ReturnReceive,
        response=ReturnOut,
        errors=(404, 409),
    ),
)
