"""Structured JSON logs for every process (structlog over the standard library).

Every line is one JSON object with ``timestamp``, ``level``, ``logger`` and ``event``,
plus whatever context is bound: ``request_id`` in the API (and in the worker steps a
request started), ``message_id``, ``step``, ``queue``, ``attempt`` and ``order_id`` in
the workers. Secrets never reach a line: values under secret-looking keys are replaced,
and token-, key- and card-shaped text is masked wherever it appears, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

#: Keys whose values never reach a log line, whoever passes them.
SECRET_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "access_token",
        "refresh_token",
        "authorization",
        "token",
        "api_key",
        "secret",
        "jwt_secret",
        "payment_method",
        "payment_method_details",
        "card",
        "cookie",
    }
)

#: Text that looks like a credential or card data, masked in every string of a line.
SECRET_PATTERNS = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),  # Authorization header values
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+"),  # Stripe keys
    re.compile(r"\bwhsec_[A-Za-z0-9]+"),  # Stripe webhook secrets
    re.compile(r"\bSG\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?"),  # SendGrid keys
    re.compile(r"\bEZ[AT]K[A-Za-z0-9_]+"),  # EasyPost keys
    re.compile(r"\bpm_[A-Za-z0-9_]+"),  # Stripe PaymentMethod ids (card references)
)
#: A run of 13 to 19 digits, maybe grouped by spaces or dashes: a card number if its
#: Luhn checksum holds.
CARD_NUMBER = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
REDACTED = "[redacted]"

#: Chatty libraries: their INFO lines (one per HTTP call) say less than our own.
QUIET_LOGGERS = ("aiohttp.access", "stripe", "urllib3", "easypost", "python_http_client")


def mask(text: str) -> str:
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return CARD_NUMBER.sub(lambda m: REDACTED if _luhn(m.group()) else m.group(), text)


def _luhn(candidate: str) -> bool:
    digits = [int(c) for c in reversed(candidate) if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: REDACTED if k in SECRET_KEYS else _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(item) for item in value]
    if isinstance(value, int | float | bool | type(None)):
        return value
    return mask(str(value))


def _redact_keys(_, __, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in SECRET_KEYS.intersection(event_dict):
        event_dict[key] = REDACTED
    return event_dict


def _mask_values(_, __, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Runs last, after tracebacks are rendered, so they are masked too."""
    return {key: _masked(value) for key, value in event_dict.items()}


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_keys,
    ]
    renderer = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # a call below the logger's level stops at the first processor: without it every
        # call was stamped, merged and redacted before the stdlib logger dropped it
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask_values,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
