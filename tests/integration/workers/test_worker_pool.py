"""A worker process keeps the connections its busiest moment uses. A step may hold two at
once (a label's purchase lock while the carrier's ledger writes), so the pool keeps two
per thread: a connection opened past the pool is closed when given back, and the next
one is a new PostgreSQL server process, which plans every statement afresh."""

from __future__ import annotations

from fulfillment.settings import Settings
from workers.wiring import WORKER_POOL_OVERFLOW, build_deps

THREADS = 4


def test_a_peak_of_two_connections_a_thread_comes_back_to_the_same_server_processes(
    settings: Settings, db
) -> None:
    deps = build_deps(settings.model_copy(update={"worker_threads": THREADS}))
    engine = deps.sessions.kw["bind"]
    try:

        def peak() -> set[int]:
            held = [engine.connect() for _ in range(2 * THREADS)]
            try:
                return {c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in held}
            finally:
                for connection in held:
                    connection.close()

        first = peak()
        assert len(first) == 2 * THREADS
        assert peak() == first  # none closed and opened anew
        # the most a process may hold is what it was: 2 x (threads + 2)
        assert engine.pool.size() + engine.pool._max_overflow == 2 * THREADS + WORKER_POOL_OVERFLOW
    finally:
        if deps.sent_mail is not None:
            deps.sent_mail.close()
        engine.dispose()
