"""Dead-letter queues on the Redis broker: inspect, redrive, purge.

Dramatiq keeps a queue's dead messages in ``<ns>:<queue>.XQ`` (a sorted set of ids by
time of death) and ``<ns>:<queue>.XQ.msgs`` (the encoded messages). A replay sends
the message again on its queue with a fresh retry budget and ``redrive`` set, which
tells the step to resume a ``needs_attention`` order where it stopped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.common import q_name
from pydantic import BaseModel, ConfigDict, Field

from workers.queues import ALL

#: Options Dramatiq added on the way to the dead-letter queue that a replay drops.
SPENT_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta", "redis_message_id")


class DeadLetter(BaseModel):
    """One dead message, as the command line prints it and the operator API answers it
    (``api.desk.schemas.DeadLetterOut`` is this model under its API name)."""

    model_config = ConfigDict(frozen=True)

    id: str
    queue: str
    actor: str
    kwargs: dict[str, Any]
    died_at: datetime
    retries: int
    error: str = Field(description="the last line of the last traceback")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "queue": self.queue, "actor": self.actor, "kwargs": self.kwargs,
                "died_at": self.died_at.isoformat(), "retries": self.retries, "error": self.error}  # fmt: skip


def _last_line(traceback: str | None) -> str:
    lines = [line for line in (traceback or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class DeadLetters:
    def __init__(self, broker: dramatiq.Broker, *, queues: tuple[str, ...] = ALL) -> None:
        if not hasattr(broker, "client"):
            raise RuntimeError("dead-letter tooling needs the Redis broker (REDIS_URL)")
        self.broker = broker
        self.redis = broker.client
        self.namespace = broker.namespace
        self.queues = queues

    def _keys(self, queue: str) -> tuple[str, str]:
        key = f"{self.namespace}:{queue}.XQ"
        return key, key + ".msgs"

    def counts(self) -> dict[str, int]:
        return {queue: self.redis.zcard(self._keys(queue)[0]) for queue in self.queues}

    def list(self, *, queue: str | None = None) -> list[DeadLetter]:
        letters = []
        for name in [queue] if queue else self.queues:
            zset, messages = self._keys(name)
            for raw_id, score in self.redis.zrange(zset, 0, -1, withscores=True):
                raw = self.redis.hget(messages, raw_id)
                if raw is not None:
                    letters.append(self._decode(name, raw_id.decode(), raw, score))
        return sorted(letters, key=lambda letter: letter.died_at)

    def get(self, letter_id: str) -> DeadLetter | None:
        for queue in self.queues:
            zset, messages = self._keys(queue)
            raw = self.redis.hget(messages, letter_id)
            if raw is not None:
                return self._decode(queue, letter_id, raw, self.redis.zscore(zset, letter_id) or 0)
        return None

    def replay(self, letter_id: str) -> DeadLetter | None:
        """Send the dead message again and remove it from the dead-letter queue."""
        for queue in self.queues:
            zset, messages = self._keys(queue)
            raw = self.redis.hget(messages, letter_id)
            if raw is None:
                continue
            letter = self._decode(queue, letter_id, raw, self.redis.zscore(zset, letter_id) or 0)
            message = dramatiq.Message.decode(raw)
            options = {k: v for k, v in message.options.items() if k not in SPENT_OPTIONS}
            self.broker.declare_queue(queue)
            self.broker.enqueue(
                dramatiq.Message(
                    queue_name=queue, actor_name=message.actor_name, args=message.args,
                    kwargs=message.kwargs, options={**options, "redrive": True},
                )
            )  # fmt: skip
            pipe = self.redis.pipeline()
            pipe.zrem(zset, letter_id)
            pipe.hdel(messages, letter_id)
            pipe.execute()
            return letter
        return None

    def replay_all(self, *, queue: str | None = None) -> list[DeadLetter]:
        return [done for letter in self.list(queue=queue) if (done := self.replay(letter.id))]

    def purge(self, *, queue: str | None = None) -> int:
        removed = 0
        for name in [queue] if queue else self.queues:
            zset, messages = self._keys(name)
            removed += self.redis.zcard(zset)
            self.redis.delete(zset, messages)
        return removed

    @staticmethod
    def _decode(queue: str, letter_id: str, raw: bytes, score: float) -> DeadLetter:
        message = dramatiq.Message.decode(raw)
        return DeadLetter(
            id=letter_id, queue=q_name(queue), actor=message.actor_name, kwargs=dict(message.kwargs),
            died_at=datetime.fromtimestamp(score / 1000, UTC),
            retries=int(message.options.get("retries", 0)),
            error=_last_line(message.options.get("traceback")),
        )  # fmt: skip
