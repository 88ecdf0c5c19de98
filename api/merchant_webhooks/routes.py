"""The merchant webhook endpoints' routes: create, list, read, change, delete, rotate a
secret, list deliveries and redeliver."""

from __future__ import annotations

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
from api.shared.paging import PageQuery
from api.shared.routing import Route

ROUTES: tuple[Route, ...] = (
    Route(
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
    Route(
        "GET",
        "/v1/admin/webhook-endpoints",
        webhook_endpoints.list_endpoints,
        "Webhook endpoints",
        "webhooks-out",
        "admin",
        query=PageQuery,
        response=EndpointList,
    ),
    Route(
        "GET",
        "/v1/admin/webhook-endpoints/{endpoint_id}",
        webhook_endpoints.get_endpoint,
        "One webhook endpoint",
        "webhooks-out",
        "admin",
        response=EndpointOut,
    ),
    Route(
        "PATCH",
        "/v1/admin/webhook-endpoints/{endpoint_id}",
        webhook_endpoints.update_endpoint,
        "Change a webhook endpoint's URL or events, disable or enable it",
        "webhooks-out",
        "admin",
        request=EndpointUpdate,
        response=EndpointOut,
    ),
    Route(
        "DELETE",
        "/v1/admin/webhook-endpoints/{endpoint_id}",
        webhook_endpoints.delete_endpoint,
        "Delete a webhook endpoint",
        "webhooks-out",
        "admin",
        status=204,
    ),
    Route(
        "POST",
        "/v1/admin/webhook-endpoints/{endpoint_id}/rotate-secret",
        webhook_endpoints.rotate_secret,
        "A new signing secret; the old one keeps signing for WEBHOOK_SECRET_GRACE_SECONDS",
        "webhooks-out",
        "admin",
        response=EndpointWithSecret,
    ),
    Route(
        "GET",
        "/v1/admin/webhook-endpoints/{endpoint_id}/deliveries",
        webhook_endpoints.list_deliveries,
        "Delivery attempts to the endpoint, newest first",
        "webhooks-out",
        "admin",
        query=PageQuery,
        response=AttemptPage,
    ),
    Route(
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
)
