"""What the in-memory provider doubles share: their ids, the failures a test arms for the
next calls, and the provider errors those raise."""

from __future__ import annotations

import itertools
from collections import Counter

from integrations.errors import PermanentProviderError, TransientProviderError

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):06d}"


class _Faults:
    """Faults queued per operation: errors raised before the provider acts
    (``fail_next``), and answers lost after it acted (``lose_next``: the call times
    out, but the effect happened, as when a response is lost on the way back)."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException | None]] = {}
        self._lost: Counter[str] = Counter()

    def fail_next(
        self, operation: str, error: BaseException, *, times: int = 1, after: int = 0
    ) -> None:
        """``error`` for ``times`` calls, once ``after`` more calls have gone through."""
        self._queued.setdefault(operation, []).extend([None] * after + [error] * times)

    def lose_next(self, operation: str, *, times: int = 1) -> None:
        self._lost[operation] += times

    def check(self, operation: str) -> None:
        queued = self._queued.get(operation)
        if queued:
            error = queued.pop(0)
            if error is not None:
                raise error

    def answer_lost(self, operation: str) -> bool:
        if self._lost[operation] <= 0:
            return False
        self._lost[operation] -= 1
        return True


def transient(provider: str, operation: str) -> TransientProviderError:
    return TransientProviderError(
        "service unavailable", provider=provider, operation=operation, http_status=503
    )


def permanent(provider: str, operation: str, code: str) -> PermanentProviderError:
    return PermanentProviderError(
        f"refused: {code}", provider=provider, operation=operation, code=code, http_status=400
    )
