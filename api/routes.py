"""Every route, declared once with what it takes and returns. ``setup_routes`` registers
them and ``/v1/openapi.json`` is generated from the same list, so the description can
never name a route that does not exist, or miss one that does."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from api.catalog import views as products
from api.catalog.views import ProductQuery
from api.desk import actions as desk_actions
from api.desk import dead_letters as admin
from api.desk import views as desk
from api.desk.schemas import (
    DeadLetterPage,
    DeadLetterQuery,
    DeadLetterReplayed,
    DeskOrderDetail,
    DeskOrderPage,
    DeskOrderQuery,
)
from api.intake import providers as webhooks
from api.intake import sendgrid as sendgrid_webhook
from api.merchant_webhooks import views as webhook_endpoints
from api.merchant_webhooks.schemas import (
    AttemptPage,
    EndpointCreate,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    Redelivered,
    RedeliverRequest,
)
from api.orders import addresses, cancel
from api.orders import views as orders
from api.refunds import views as refunds
from api.returns import views as returns
from api.returns.schemas import ReturnCreate, ReturnList, ReturnOut, ReturnReceive
from api.shared import docs, health
from api.shared.access import Access, guarded
from api.shared.paging import PageQuery
from api.shared.schemas import (
    Address,
    Health,
    LoginRequest,
    OrderCreate,
    OrderEventList,
    OrderOut,
    OrderPage,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
    Readiness,
    RefreshRequest,
    RefundCreate,
    RefundOut,
    RegisterRequest,
    StockSet,
    TokenOut,
    UpdateMeRequest,
    UserOut,
    WebhookAck,
)
from api.users import auth, password_reset
from api.users import views as users


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    #: Who may call it, enforced by ``api.shared.access`` before the handler runs.
    auth: Access = "public"
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    content_type: str = "application/json"
    idempotent_key: bool = False
    #: Error statuses of this route beyond those its auth, body and parameters imply
    #: (``api.shared.openapi``), each with the error body unless paired with a model of its own.
    errors: tuple[int | tuple[int, type[BaseModel]], ...] = ()
    #: Answers without PostgreSQL or Redis, so never ``503 service_unavailable``.
    standalone: bool = False


R = Route
ROUTES: tuple[Route, ...] = (
    R(
        "POST",
        "/v1/users",
        users.register,
        "Register a customer",
        "users",
        request=RegisterRequest,
        response=UserOut,
        status=201,
        errors=(409, 429),
    ),
    R(
        "GET",
        "/v1/users/me",
        users.get_me,
        "The caller's profile",
        "users",
        "user",
        response=UserOut,
    ),
    R(
        "PATCH",
        "/v1/users/me",
        users.update_me,
        "Change the caller's name or password (a new password ends every session, this one too)",
        "users",
        "user",
        request=UpdateMeRequest,
        response=UserOut,
        errors=(429,),
    ),
    R(
        "POST",
        "/v1/auth/login",
        auth.login,
        "Log in: an access and a refresh token",
        "auth",
        request=LoginRequest,
        response=TokenOut,
        errors=(401, 429),
    ),
    R(
        "POST",
        "/v1/auth/refresh",
        auth.refresh,
        "Rotate a refresh token",
        "auth",
        request=RefreshRequest,
        response=TokenOut,
        errors=(401, 429),
    ),
    R(
        "POST",
        "/v1/auth/logout",
        auth.logout,
        "Revoke the session of a refresh token",
        "auth",
        request=RefreshRequest,
        status=204,
        errors=(429,),
    ),
    R(
        "POST",
        "/v1/auth/password-reset",
        password_reset.request_reset,
        "Mail a password reset link (the same answer whether or not the account exists)",
        "auth",
        request=PasswordResetRequest,
        response=PasswordResetAccepted,
        status=202,
        errors=(429,),
    ),
    R(
        "POST",
        "/v1/auth/password-reset/confirm",
        password_reset.confirm_reset,
        "Set a new password with a reset token; ends every session",
        "auth",
        request=PasswordResetConfirm,
        status=204,
        errors=(400, 429),
    ),
    R(
        "GET",
        "/v1/products",
        products.list_products,
        "Browse the catalogue",
        "products",
        query=ProductQuery,
        response=ProductPage,
    ),
    R(
        "POST",
        "/v1/products",
        products.create_product,
        "Add a product",
        "products",
        "admin",
        request=ProductCreate,
        response=ProductOut,
        status=201,
        errors=(409,),
    ),
    R(
        "GET",
        "/v1/products/{product_id}",
        products.get_product,
        "One product",
        "products",
        response=ProductOut,
    ),
    R(
        "PATCH",
        "/v1/products/{product_id}",
        products.update_product,
        "Change a product",
        "products",
        "admin",
        request=ProductUpdate,
        response=ProductOut,
    ),
    R(
        "PUT",
        "/v1/products/{product_id}/stock",
        products.set_stock,
        "Set counted stock",
        "products",
        "admin",
        request=StockSet,
        response=ProductOut,
        errors=(409,),
    ),
    R(
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
        errors=(409, 429),
    ),
    R(
        "GET",
        "/v1/orders",
        orders.list_orders,
        "The caller's orders, newest first",
        "orders",
        "user",
        query=PageQuery,
        response=OrderPage,
    ),
    R(
        "GET",
        "/v1/orders/{order_id}",
        orders.get_order,
        "One order",
        "orders",
        "user",
        response=OrderOut,
    ),
    R(
        "GET",
        "/v1/orders/{order_id}/events",
        orders.list_order_events,
        "An order's timeline",
        "orders",
        "user",
        response=OrderEventList,
    ),
    R(
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
    R(
        "GET",
        "/v1/orders/{order_id}/returns",
        returns.list_returns,
        "An order's returns",
        "orders",
        "user",
        response=ReturnList,
    ),
    R(
        "POST",
        "/v1/orders/{order_id}/cancel",
        cancel.cancel_order,
        "Cancel an order that has not shipped",
        "orders",
        "user",
        response=OrderOut,
        errors=(409,),
    ),
    R(
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
    R(
        "POST",
        "/v1/addresses/verify",
        addresses.verify_address,
        "Ask the carrier whether it can deliver to an address (200 with the verdict: "
        "deliverable and corrected, or the problems by field)",
        "orders",
        "user",
        request=Address,
        response=addresses.AddressVerdict,
        errors=(429,),
    ),
    R(
        "POST",
        "/v1/admin/orders/{order_id}/address-override",
        addresses.override_address,
        "Ship an address_invalid order to its address as it is (recorded with the operator)",
        "admin",
        "admin",
        response=OrderOut,
        errors=(409,),
    ),
    R(
        "POST",
        "/v1/webhooks/stripe",
        webhooks.stripe_webhook,
        "Stripe events (signed with Stripe-Signature)",
        "webhooks",
        response=WebhookAck,
        errors=(400, 413),
    ),
    R(
        "POST",
        "/v1/webhooks/easypost",
        webhooks.easypost_webhook,
        "EasyPost events (signed with X-Hmac-Signature)",
        "webhooks",
        response=WebhookAck,
        errors=(400, 413),
    ),
    R(
        "POST",
        "/v1/webhooks/sendgrid",
        sendgrid_webhook.sendgrid_webhook,
        "SendGrid delivery events (signed with X-Twilio-Email-Event-Webhook-Signature)",
        "webhooks",
        response=WebhookAck,
        errors=(400, 413),
    ),
    R(
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
    R(
        "POST",
        "/v1/admin/dead-letters/{letter_id}/replay",
        admin.replay_dead_letter,
        "Redrive one dead letter",
        "admin",
        "admin",
        response=DeadLetterReplayed,
        errors=(501,),
    ),
    R(
        "POST",
        "/v1/admin/orders/{order_id}/refunds",
        refunds.create_refund,
        "Refund an order, by lines or by amount, never more than was captured",
        "admin",
        "admin",
        request=RefundCreate,
        response=RefundOut,
        status=201,
        idempotent_key=True,
        errors=(404, 409),
    ),
    R(
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
    R(
        "GET",
        "/v1/admin/orders",
        desk.list_orders,
        "Every order, newest first, filtered (status, dates, customer, product, stalled)",
        "admin",
        "admin",
        query=DeskOrderQuery,
        response=DeskOrderPage,
    ),
    R(
        "GET",
        "/v1/admin/orders/{order_id}",
        desk.get_order,
        "One order with its customer, shipment, e-mails, timeline and dead letters",
        "admin",
        "admin",
        response=DeskOrderDetail,
    ),
    R(
        "POST",
        "/v1/admin/orders/{order_id}/cancel",
        desk_actions.cancel,
        "Cancel an order that has not shipped (stock back, refund or void, e-mail)",
        "admin",
        "admin",
        response=OrderOut,
        idempotent_key=True,
        errors=(400, 409, 422),
    ),
    R(
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
    R(
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
    R(
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
    R(
        "POST",
        "/v1/admin/webhook-endpoints",
        webhook_endpoints.create_endpoint,
        "Register a webhook endpoint (answers its signing secret, once)",
        "webhooks-out",
        "admin",
        request=EndpointCreate,
        response=EndpointWithSecret,
        status=201,
    ),
    R(
        "GET",
        "/v1/admin/webhook-endpoints",
        webhook_endpoints.list_endpoints,
        "Webhook endpoints",
        "webhooks-out",
        "admin",
        query=PageQuery,
        response=EndpointList,
    ),
    R(
        "GET",
        "/v1/admin/webhook-endpoints/{endpoint_id}",
        webhook_endpoints.get_endpoint,
        "One webhook endpoint",
        "webhooks-out",
        "admin",
        response=EndpointOut,
    ),
    R(
        "PATCH",
        "/v1/admin/webhook-endpoints/{endpoint_id}",
        webhook_endpoints.update_endpoint,
        "Change a webhook endpoint's URL or events, disable or enable it",
        "webhooks-out",
        "admin",
        request=EndpointUpdate,
        response=EndpointOut,
    ),
    R(
        "DELETE",
        "/v1/admin/webhook-endpoints/{endpoint_id}",
        webhook_endpoints.delete_endpoint,
        "Delete a webhook endpoint",
        "webhooks-out",
        "admin",
        status=204,
    ),
    R(
        "POST",
        "/v1/admin/webhook-endpoints/{endpoint_id}/rotate-secret",
        webhook_endpoints.rotate_secret,
        "A new signing secret; the old one keeps signing for WEBHOOK_SECRET_GRACE_SECONDS",
        "webhooks-out",
        "admin",
        response=EndpointWithSecret,
    ),
    R(
        "GET",
        "/v1/admin/webhook-endpoints/{endpoint_id}/deliveries",
        webhook_endpoints.list_deliveries,
        "Delivery attempts to the endpoint, newest first",
        "webhooks-out",
        "admin",
        query=PageQuery,
        response=AttemptPage,
    ),
    R(
        "POST",
        "/v1/admin/webhook-endpoints/{endpoint_id}/redeliver",
        webhook_endpoints.redeliver,
        "Send an event again (by id), or every subscribed event of a time range",
        "webhooks-out",
        "admin",
        request=RedeliverRequest,
        response=Redelivered,
        status=202,
        errors=(409,),
    ),
    R(
        "GET",
        "/healthz",
        health.healthz,
        "The process is alive",
        "operations",
        response=Health,
        standalone=True,
    ),
    R(
        "GET",
        "/readyz",
        health.readyz,
        "Database and Redis reachable",
        "operations",
        response=Readiness,
        errors=((503, Readiness),),
        standalone=True,
    ),
    R(
        "GET",
        "/v1/openapi.json",
        docs.openapi_json,
        "This description",
        "operations",
        content_type="application/json",
        standalone=True,
    ),
    R(
        "GET",
        "/docs",
        docs.docs_page,
        "API reference, rendered",
        "operations",
        content_type="text/html",
        standalone=True,
    ),
)


def setup_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, guarded(route.handler, route.auth))
