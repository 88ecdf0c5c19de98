"""The operator desk's routes: dead letters listed and replayed (``DEAD_LETTER_ROUTES``);
orders found, read and acted on (``ROUTES``)."""

from __future__ import annotations

from api.desk import actions as desk_actions
from api.desk import dead_letters as admin
from api.desk import packages as desk_packages
from api.desk import views as desk
from api.desk.schemas import (
    DeadLetterPage,
    DeadLetterQuery,
    DeadLetterReplayed,
    DeskOrderDetail,
    DeskOrderPage,
    DeskOrderQuery,
    PackageMove,
)
from api.shared.routing import Route
from api.shared.schemas import OrderCancel
from fulfillment.order_view import OrderOut

DEAD_LETTER_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/admin/dead-letters",
        admin.list_dead_letters,
        "Dead-lettered messages",
        "admin",
        "admin",
        query=DeadLetterQuery,
        response=DeadLetterPage,
        errors=(501,),
    ),
    Route(
        "POST",
        "/v1/admin/dead-letters/{letter_id}/replay",
        admin.replay_dead_letter,
        "Redrive one dead letter",
        "admin",
        "admin",
        response=DeadLetterReplayed,
        errors=(501,),
    ),
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/admin/orders",
        desk.list_orders,
        "Every order, newest first, filtered (status, dates, customer, product, stalled)",
        "admin",
        "admin",
        query=DeskOrderQuery,
        response=DeskOrderPage,
    ),
    Route(
        "GET",
        "/v1/admin/orders/{order_id}",
        desk.get_order,
        "One order with its customer, shipment, e-mails, timeline and dead letters",
        "admin",
        "admin",
        response=DeskOrderDetail,
    ),
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/cancel",
        desk_actions.cancel,
        "Cancel an order that has not shipped (stock back, refund or void, e-mail), or some "
        "of its units (lines: their stock back, the capture takes less or they are refunded)",
        "admin",
        "admin",
        request=OrderCancel,
        request_optional=True,
        response=OrderOut,
        idempotent_key=True,
        errors=(400, 409, 422),
    ),
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/resume",
        desk_actions.resume,
        "Send a needs_attention order back where it stopped",
        "admin",
        "admin",
        response=OrderOut,
        idempotent_key=True,
        errors=(400, 409, 422),
    ),
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/hold",
        desk_actions.hold,
        "Stop the saga for an order that has not shipped",
        "admin",
        "admin",
        response=OrderOut,
        idempotent_key=True,
        errors=(400, 409, 422),
    ),
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/packages/{package_id}/move",
        desk_packages.move_package,
        "Ship an unshipped package from another location (its stock checked and reserved "
        "there, released at its own, in one transaction)",
        "admin",
        "admin",
        request=PackageMove,
        response=OrderOut,
        errors=(409, 422),
    ),
    Route(
        "POST",
        "/v1/admin/orders/{order_id}/release",
        desk_actions.release,
        "Put a held order back where it was held; its saga goes on",
        "admin",
        "admin",
        response=OrderOut,
        idempotent_key=True,
        errors=(400, 409, 422),
    ),
)
