"""What list endpoints share: the page asked for in the query string, and one page of a
table's rows with the count of all that match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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


async def page_of(
    session: AsyncSession,
    model: Any,
    query: PageQuery,
    *,
    where: Sequence[Any] = (),
    order_by: Sequence[Any],
) -> tuple[list[Any], int]:
    """The page ``query`` asks for of ``model``'s rows matching ``where``, in ``order_by``
    (which ends with a unique column, so pages never overlap), and how many rows match."""
    total = await session.scalar(select(func.count()).select_from(model).where(*where))
    rows = await session.scalars(select(model).where(*where).order_by(*order_by)
                                 .offset(query.offset).limit(query.limit))  # fmt: skip
    return list(rows), total or 0
