"""When each object of the sandbox's EasyPost was created (wall time: lists page by it)
and each tracker started (sandbox time: its moves are due from it), kept in the store
beside the objects as ``times`` so that both survive a restart."""

from __future__ import annotations

import time

from sandbox.store import Store


class Times:
    def __init__(self, store: Store) -> None:
        self._store = store
        times = store.load("times")
        self.created: dict[str, float] = {k: t["created"] for k, t in times.items()}
        self.started: dict[str, float] = {
            k: t["started"] for k, t in times.items() if "started" in t
        }

    def created_now(self, object_id: str, *, started: float | None = None) -> None:
        """The object was created now (and, for a tracker, started at ``started``)."""
        self.created[object_id] = time.time()
        if started is not None:
            self.started[object_id] = started
        times = {"created": self.created[object_id]}
        if object_id in self.started:
            times["started"] = self.started[object_id]
        self._store.put("times", object_id, times)
