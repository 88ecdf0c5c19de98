"""Group commit: the requests that arrive while a batch is in the database form the next
batch, written in one transaction, each answered on its own once that commit is done.
An idle API writes a lone order at once, with no added wait; webhook intake waits a
few milliseconds for company, which a provider waiting seconds for its answer never
notices. Order placement and
webhook intake (the API's two hot writes) both run on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from api.shared.errors import ApiError, ErrorCode

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Waiting:
    """One request waiting for its batch; ``settle`` answers it."""

    answer: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future(), kw_only=True
    )

    def settle(self, result: Any) -> None:
        if self.answer.done():  # the client went away; what it sent stands all the same
            return
        if isinstance(result, BaseException):
            self.answer.set_exception(result)
        else:
            self.answer.set_result(result)


W = TypeVar("W", bound=Waiting)


class GroupCommit(ABC, Generic[W]):
    """``writers`` tasks each take every request waiting (up to ``max_batch``), after
    ``gather`` seconds more where waiting costs nobody anything, and hand them to
    ``write``, which settles each of them."""

    def __init__(self, *, writers: int = 2, max_batch: int = 64, gather: float = 0.0) -> None:
        self._max_batch = max_batch
        self._gather = gather
        self._waiting: asyncio.Queue[W] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(writers)]

    async def submit(self, item: W) -> Any:
        """What ``write`` settled ``item`` with, once its batch has committed."""
        if not self._tasks:
            raise shutting_down()
        self._waiting.put_nowait(item)
        return await item.answer

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._waiting.empty():
            self._waiting.get_nowait().settle(shutting_down())

    @abstractmethod
    async def write(self, batch: list[W]) -> None:
        """Write the batch in one transaction and settle every item of it."""

    async def _run(self) -> None:
        while True:
            batch = [await self._waiting.get()]
            if self._gather:  # let what arrives in the next moment share this commit
                await asyncio.sleep(self._gather)
            while len(batch) < self._max_batch and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            try:
                await self.write(batch)
            except asyncio.CancelledError:
                for item in batch:  # cancelled mid-write: nothing was committed
                    item.settle(shutting_down())
                raise
            except Exception as exc:
                log.exception("%s batch failed", type(self).__name__)
                for item in batch:
                    item.settle(exc)


def shutting_down() -> ApiError:
    return ApiError(503, ErrorCode.SHUTTING_DOWN, "the API is shutting down; retry")
