"""The operations routes: liveness, readiness and this API's description."""

from __future__ import annotations

from api.shared import docs, health
from api.shared.routing import Route
from api.shared.schemas import Health, Readiness

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/healthz",
        health.healthz,
        "The process is alive",
        "operations",
        response=Health,
        standalone=True,
    ),
    Route(
        "GET",
        "/readyz",
        health.readyz,
        "Database and Redis reachable",
        "operations",
        response=Readiness,
        errors=((503, Readiness),),
        standalone=True,
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        docs.openapi_json,
        "This description",
        "operations",
        content_type="application/json",
        standalone=True,
    ),
    Route(
        "GET",
        "/docs",
        docs.docs_page,
        "API reference, rendered",
        "operations",
        content_type="text/html",
        standalone=True,
    ),
)
