"""The outbox relay on a real Redis: each committed row reaches its queue once, and rows
written while the broker is down are delivered later."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest
import redis
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.embedded import free_port
from fulfillment.models import OutboxMessage
from fulfillment.outbox import outbox_insert
from fulfillment.settings import Settings
from workers.broker import NAMESPACE, create_broker
from workers.relay import OutboxRelay


def flush_namespace(client: redis.Redis) -> None:
    for key in client.scan_iter(f"{NAMESPACE}:*"):
        client.delete(key)


@pytest.fixture
def broker(settings: Settings, redis_client: redis.Redis) -> Iterator[dramatiq.Broker]:
    flush_namespace(redis_client)
    broker = create_broker(settings)
    yield broker
    broker.close()
    flush_namespace(redis_client)


def in_redis(client: redis.Redis, queue: str) -> list[tuple[str, dict]]:
    """(actor, kwargs) of every message waiting on ``queue``, oldest first."""
    ids = client.lrange(f"{NAMESPACE}:{queue}", 0, -1)
    encoded = [client.hget(f"{NAMESPACE}:{queue}.msgs", message_id) for message_id in ids]
    return [(msg.actor_name, msg.kwargs) for msg in map(dramatiq.Message.decode, encoded)]


def write_outbox(engine: Engine, *rows: tuple[tuple[str, str], dict[str, str]]) -> None:
    with engine.begin() as conn:
        for message, kwargs in rows:
            conn.execute(outbox_insert(message, **kwargs))


def undelivered(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(
            select(func.count()).where(OutboxMessage.delivered_at.is_(None))
        )  # fmt: skip


def test_the_relay_delivers_each_outbox_row_once(engine, broker, redis_client):
    # Given five committed outbox rows on three queues
    write_outbox(engine,
                 (m.RESERVE_INVENTORY, {"order_id": "o-1"}), (m.REQUEST_PAYMENT, {"order_id": "o-2"}),
                 (m.SEND_NOTIFICATION, {"notification_id": "7"}),
                 (m.RESERVE_INVENTORY, {"order_id": "o-3"}), (m.REFUND_PAYMENT, {"order_id": "o-4"}))  # fmt: skip
    relay = OutboxRelay(engine, broker, batch_size=2)

    # When the relay runs, and runs again
    delivered = [relay.deliver_pending(), relay.deliver_pending()]

    # Then every row reached its Redis queue once and is marked delivered
    assert delivered == [5, 0]
    assert in_redis(redis_client, "inventory") == [
        ("reserve_inventory", {"order_id": "o-1"}), ("reserve_inventory", {"order_id": "o-3"})]  # fmt: skip
    assert in_redis(redis_client, "payments") == [
        ("request_payment", {"order_id": "o-2"}), ("refund_payment", {"order_id": "o-4"})]  # fmt: skip
    assert in_redis(redis_client, "notifications") == [
        ("send_notification", {"notification_id": "7"})]  # fmt: skip
    assert undelivered(engine) == 0
    with Session(engine) as session:
        assert set(session.scalars(select(OutboxMessage.attempts))) == {1}


def test_rows_written_while_the_broker_is_down_are_delivered_later(
    engine, settings, broker, redis_client
):
    # Given two outbox rows, and a broker that cannot be reached
    write_outbox(engine, (m.RESERVE_INVENTORY, {"order_id": "o-1"}),
                 (m.PROCESS_WEBHOOK, {"event_id": "3"}))  # fmt: skip
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    down = create_broker(unreachable)

    # When the relay runs against it
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            OutboxRelay(engine, down).deliver_pending()
    finally:
        down.close()

    # Then both rows are kept, undelivered
    assert undelivered(engine) == 2

    # When the broker is back and the relay runs again
    assert OutboxRelay(engine, broker).deliver_pending() == 2

    # Then both are delivered, once
    assert in_redis(redis_client, "inventory") == [("reserve_inventory", {"order_id": "o-1"})]
    assert in_redis(redis_client, "webhooks") == [("process_webhook", {"event_id": "3"})]
    assert undelivered(engine) == 0
