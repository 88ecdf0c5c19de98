"""A route, declared once with what it takes and returns: the features' route tables
(``api/<feature>/routes.py``) are lists of these, ``register_routes`` puts them on the
app behind their access guard, and ``api.shared.openapi`` describes the same list, so
the description can never name a route that does not exist, or miss one that does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from api.shared.access import Access, guarded


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
    #: The body may be left out (the OpenAPI document says it is not required).
    request_optional: bool = False
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


def register_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Every route of ``routes`` on ``app``, in their order, behind their access guard."""
    for route in routes:
        app.router.add_route(route.method, route.path, guarded(route.handler, route.auth))
