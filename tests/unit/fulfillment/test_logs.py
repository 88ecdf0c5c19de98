"""How ``fulfillment.logs`` processes a log call."""

from __future__ import annotations

import logging

import structlog

from fulfillment.logs import configure_logging


def test_a_call_below_the_level_is_dropped_before_any_processor_works_on_it():
    # Given the process's logging at WARNING, and a spy on every processor's input
    root_level = logging.getLogger().level
    configure_logging("WARNING", json_output=True)
    seen: list[str] = []
    try:
        processors = structlog.get_config()["processors"]

        def spy(_, __, event_dict):
            seen.append(event_dict["event"])
            return event_dict

        structlog.configure(processors=[processors[0], spy, *processors[1:]])
        log = structlog.get_logger("fulfillment.test_logs")

        # When a step logs below the level, and at it
        log.info("below")
        log.warning("at")

        # Then only the call at the level went past the first processor
        assert seen == ["at"]
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(root_level)
        structlog.reset_defaults()
