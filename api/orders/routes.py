"""The orders' routes: place, list, read and follow an order (``ROUTES``); cancel it and
verify or change its shipping address (``CHANGE_ROUTES``)."""

from __future__ import annotations

from api.orders import addresses, cancel
from api.orders import views as orders
from api.orders.schemas import Address, AddressVerdict, OrderCreate, OrderEventList, OrderPage
from api.shared.paging import PageQuery
from api.shared.routing import Route
from api.shared.schemas import OrderCancel
from fulfillment.order_view import OrderOut

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/orders",
        orders.create_order,
        "Place an order",
        "orders",
        "user",
        request=OrderCreate,
        response=OrderOut,
        status=201,
        idempotent_key=True,
        errors=(404, 409, 410, 429),
    ),
    Route(
        "GET",
        "/v1/orders",
        orders.list_orders,
        "The caller's orders, newest first",
        "orders",
        "user",
        query=PageQuery,
        response=OrderPage,
    ),
    Route(
        "GET",
        "/v1/orders/{order_id}",
        orders.get_order,
        "One order",
        "orders",
        "user",
        response=OrderOut,
    ),
    Route(
        "GET",
        "/v1/orders/{order_id}/events",
        orders.list_order_events,
        "An order's timeline",
        "orders",
        "user",
        response=OrderEventList,
    ),
)

CHANGE_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/orders/{order_id}/cancel",
        cancel.cancel_order,
        "Cancel an order that has not shipped, or some of its units (lines)",
        "orders",
        "user",
        request=OrderCancel,
        request_optional=True,
        response=OrderOut,
        errors=(409, 422),
    ),
    Route(
        "PATCH",
        "/v1/orders/{order_id}/shipping_address",
        addresses.change_shipping_address,
        "Change the shipping address of an order that has not shipped (verified by the "
        "carrier; an address_invalid order ships again)",
        "orders",
        "user",
        request=Address,
        response=OrderOut,
        errors=(409,),
    ),
    Route(
        "POST",
        "/v1/addresses/verify",
        addresses.verify_address,
        "Ask the carrier whether it can deliver to an address (200 with the verdict: "
        "deliverable and corrected, or the problems by field)",
        "orders",
        "user",
        request=Address,
        response=AddressVerdict,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/address-override",
        addresses.override_address,
        "Ship an address_invalid order to its address as it is (recorded with the operator)",
        "admin",
        "admin",
        response=OrderOut,
        errors=(409,),
    ),
)
