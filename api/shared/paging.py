"""Query-string parsing shared by list endpoints."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.shared.jsonio import parse, refuse_unstorable, unstorable_fields

Q = TypeVar("Q", bound=BaseModel)


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=100_000)
    limit: int = Field(default=20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def query_model(request: web.Request, model: type[Q]) -> Q:
    """Parse the query string into ``model``; a bad value is a 422 naming the parameter
    (a NUL, which PostgreSQL cannot store, is one)."""
    query = dict(request.query)
    refuse_unstorable(unstorable_fields(query))
    return parse(model, query)
