"""Every route, declared once with what it takes and returns. ``setup_routes`` registers
them and ``/v1/openapi.json`` is generated from the same list, so the description can
never name a route that does not exist, or miss one that does."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from api import (
    admin,
    auth,
    cancel,
    docs,
    health,
    orders,
    password_reset,
    products,
    sendgrid_webhook,
    users,
    webhooks,
)
from api.access import Access, guarded
from api.paging import PageQuery
from api.products import ProductQuery
from api.schemas import (
    DeadLetterPage,
    DeadLetterQuery,
    DeadLetterReplayed,
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
    RegisterRequest,
    StockSet,
    TokenOut,
    UpdateMeRequest,
    UserOut,
    WebhookAck,
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    #: Who may call it, enforced by ``api.access`` before the handler runs.
    auth: Access = "public"
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    content_type: str = "application/json"
    idempotent_key: bool = False
    #: Error statuses of this route beyond those its auth, body and parameters imply
    #: (``api.openapi``), each with the error body unless paired with a model of its own.
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
        "Change the caller's name or password",
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
        "/v1/orders/{order_id}/cancel",
        cancel.cancel_order,
        "Cancel an order that has not shipped",
        "orders",
        "user",
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
