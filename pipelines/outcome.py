"""What the last step run on this thread returned (success, failed, skipped). Actors
return None, as Dramatiq expects without a results backend; the step metrics middleware
reads the outcome from here, without importing the steps themselves."""

from __future__ import annotations

import threading

#: What a step returns; the step metrics read it.
SUCCESS, FAILED, SKIPPED = "success", "failed", "skipped"

_outcome = threading.local()


class NotYet(Exception):
    """A step that cannot decide yet (what it waits for is not knowable before
    ``retry_in`` seconds): its message is retried then, quietly, not as a failure."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def put_outcome(value: str | None) -> None:
    _outcome.value = value


def take_outcome() -> str | None:
    value = getattr(_outcome, "value", None)
    _outcome.value = None
    return value


def combined(outcomes: list[str]) -> str:
    """One outcome for the steps of one message: failed if any failed, else success if
    any did work, else skipped."""
    if FAILED in outcomes:
        return FAILED
    return SUCCESS if SUCCESS in outcomes else SKIPPED
