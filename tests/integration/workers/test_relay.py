"""The outbox relay on a real Redis: each committed row reaches its queue once, and rows
written while the broker is down are delivered later."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import psycopg
import pytest
import redis
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.embedded import free_port
from fulfillment.models import OutboxMessage
from fulfillment.outbox import OUTBOX_CHANNEL, outbox_insert
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


def _notifications_after(engine: Engine, statement: str) -> list[str]:
    """The channels notified by one committed ``statement``, as a listener sees them."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
        return [n.channel for n in listener.notifies(timeout=0.5)]


def test_a_statement_that_inserts_no_outbox_row_wakes_no_listener(engine):
    # Given the webhook intake's shape: a CTE whose outbox INSERT may select no row
    statement = """
        WITH message AS (
            INSERT INTO outbox (queue_name, actor_name, kwargs)
            SELECT 'q', 'a', '{}'::jsonb WHERE %s
        ) SELECT 1
    """
    # When it inserts nothing, then when it inserts a row
    silent = _notifications_after(engine, statement % "false")
    woken = _notifications_after(engine, statement % "true")
    # Then only the second wakes the relay (every NOTIFY wakes every listening backend
    # of the database, each wake a transaction of its own)
    assert silent == []
    assert woken == [OUTBOX_CHANNEL]
