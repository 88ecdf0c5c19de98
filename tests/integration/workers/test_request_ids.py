"""Every message about an order carries the id of the request that placed it, whichever
road it takes to a step: the first relay, the stalled-order sweeper's re-drive, a
dead-letter replay, or a message that lost it on the way (the step finds it on the
order). Nothing here waits on time: each road is driven by hand."""

from __future__ import annotations

import uuid
from datetime import timedelta

import dramatiq
import pytest
import structlog
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.models import OutboxMessage
from fulfillment.outbox import outbox_insert
from pipelines.common import begin, lock_order
from tests.support.request_ids import TRACE, placed_order
from workers.broker import create_broker
from workers.dead_letters import DeadLetters
from workers.middleware.log_context import LogContext
from workers.relay import OutboxRelay
from workers.sweeper import sweep


@pytest.fixture
def engine(db, settings):
    engine = create_sync_db_engine(settings, pool_size=2)
    yield engine
    engine.dispose()


def test_the_sweepers_redrive_of_a_stalled_order_carries_the_request_that_placed_it(
    engine, settings
):
    # Given an order placed by request TRACE whose first message was lost, untouched for
    # ten minutes
    order_id = placed_order(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET status_changed_at = now() - interval '10 minutes'"))

    # When the sweeper re-drives it and the relay sends the message
    assert sweep(engine, stall=timedelta(minutes=2))["stalled_orders"] == 1
    broker = StubBroker()
    broker.emit_after("process_boot")
    OutboxRelay(engine, broker).deliver_pending()

    # Then the message names the order and carries TRACE, and the step's log lines do
    (message,) = [dramatiq.Message.decode(raw) for raw in broker.queues[m.INVENTORY].queue]
    assert message.kwargs == {"order_id": order_id}
    assert message.options["request_id"] == TRACE
    LogContext().before_process_message(broker, message)
    assert structlog.contextvars.get_contextvars()["request_id"] == TRACE
    structlog.contextvars.clear_contextvars()


def test_a_replayed_dead_letter_carries_the_request_that_placed_its_order(
    engine, settings, redis_client
):
    # Given an order message sent with TRACE that died in the dead-letter queue
    order_id = placed_order(engine)
    broker = create_broker(settings)
    queue = f"{m.INVENTORY}-{uuid.uuid4().hex[:8]}"  # of this test alone
    broker.declare_queue(queue)
    died = dramatiq.Message(queue_name=queue, actor_name=m.RESERVE_INVENTORY[0], args=(),
                            kwargs={"order_id": order_id},
                            options={"request_id": TRACE, "retries": 12})  # fmt: skip
    keys = f"{broker.namespace}:{queue}"
    broker.client.zadd(f"{keys}.XQ", {died.message_id: 1})
    broker.client.hset(f"{keys}.XQ.msgs", died.message_id, died.encode())

    # When an operator replays it
    assert DeadLetters(broker, queues=(queue,)).replay(died.message_id) is not None

    # Then the message sent again carries TRACE, with a fresh retry budget
    (raw,) = broker.client.hvals(f"{keys}.msgs")
    again = dramatiq.Message.decode(raw)
    assert again.options["request_id"] == TRACE and again.options["redrive"] is True
    assert "retries" not in again.options
    redis_client.delete(f"{keys}.msgs", keys, f"{keys}.XQ", f"{keys}.XQ.msgs")


def test_a_step_whose_message_lost_the_request_id_finds_it_on_the_order(engine, settings):
    # Given a message for an order placed by TRACE that arrived without a request id
    order_id = placed_order(engine)
    structlog.contextvars.clear_contextvars()

    # When a step locks the order and queues a message
    deps = type("Deps", (), {"sessions": sync_session_factory(engine), "now": None})()
    with begin(deps) as session:
        lock_order(session, order_id)
        bound = structlog.contextvars.get_contextvars().get("request_id")
        session.execute(outbox_insert(m.SHIP_ORDER, order_id=order_id))
    structlog.contextvars.clear_contextvars()

    # Then its log lines and the message it queued carry TRACE
    assert bound == TRACE
    with Session(engine) as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.actor_name == "ship_order"))
    assert row.request_id == TRACE
