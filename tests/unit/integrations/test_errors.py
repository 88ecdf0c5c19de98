"""Failure classification (DESIGN.md rule 6), from SDK exceptions built in memory."""

from __future__ import annotations

import json
import urllib.error
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import easypost.errors as ep
import pytest
import requests
import stripe
import urllib3
from python_http_client import exceptions as sg

from integrations.errors import (
    PermanentProviderError,
    TransientProviderError,
    classify,
    is_transient_status,
    parse_retry_after,
)


def stripe_error(cls, status, *, body=None, headers=None, code=None, **kwargs):
    json_body = {"error": body or {}}
    if cls in (stripe.CardError, stripe.InvalidRequestError):
        return cls("msg", None, code, json.dumps(json_body), status, json_body, headers)
    return cls("msg", json.dumps(json_body), status, json_body, headers, code, **kwargs)


def sendgrid_error(cls, status, errors=(), headers=None):
    return cls(status, "reason", json.dumps({"errors": list(errors)}).encode(), headers or {})


def easypost_error(cls, status, code, *, headers=None):
    body = json.dumps({"error": {"code": code, "message": "nope", "errors": []}})
    error = cls(message="nope", http_status=status, http_body=body)
    if headers is not None:
        error.response_headers = headers
    return error


def kind_and_code(provider: str, exc: BaseException):
    error = classify(exc, provider=provider, operation="op")
    return type(error), error.code


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            stripe_error(
                stripe.CardError,
                402,
                code="card_declined",
                body={
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                },
            ),
            (PermanentProviderError, "insufficient_funds"),
        ),
        (
            stripe_error(stripe.InvalidRequestError, 404, code="resource_missing"),
            (PermanentProviderError, "resource_missing"),
        ),
        (
            stripe_error(stripe.IdempotencyError, 400, body={"type": "idempotency_error"}),
            (PermanentProviderError, "idempotency_error"),
        ),
        (stripe_error(stripe.AuthenticationError, 401), (PermanentProviderError, None)),
        (
            stripe_error(stripe.RateLimitError, 429, body={"code": "rate_limit"}),
            (TransientProviderError, "rate_limit"),
        ),
        (
            stripe_error(stripe.APIError, 503, body={"type": "api_error"}),
            (TransientProviderError, "api_error"),
        ),
        (
            stripe_error(stripe.APIError, 409, body={"code": "lock_timeout"}),
            (TransientProviderError, "lock_timeout"),
        ),
        (
            stripe_error(stripe.APIError, 500, headers={"Stripe-Should-Retry": "false"}),
            (PermanentProviderError, None),
        ),
        (
            stripe.APIConnectionError("down", should_retry=True),
            (TransientProviderError, "connection_error"),
        ),
    ],
)
def test_stripe_failures(exc, expected):
    assert kind_and_code("stripe", exc) == expected


def test_a_stripe_timeout_is_told_apart_from_a_refused_connection():
    try:
        try:
            raise requests.exceptions.ReadTimeout("read timed out")
        except requests.exceptions.ReadTimeout as cause:
            raise stripe.APIConnectionError("timed out", should_retry=True) from cause
    except stripe.APIConnectionError as exc:
        assert kind_and_code("stripe", exc) == (TransientProviderError, "timeout")


def test_a_decline_keeps_the_payment_intent_it_failed():
    body = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "payment_intent": {"id": "pi_1", "status": "requires_payment_method"},
    }
    error = classify(
        stripe_error(stripe.CardError, 402, body=body),
        provider="stripe",
        operation="create_payment_intent",
    )
    assert error.details["payment_intent"] == "pi_1"
    assert (error.provider, error.operation, error.http_status) == (
        "stripe",
        "create_payment_intent",
        402,
    )


def test_stripe_retry_after_is_read_from_the_headers():
    error = classify(
        stripe_error(stripe.RateLimitError, 429, headers={"Retry-After": "3"}),
        provider="stripe",
        operation="op",
    )
    assert error.retry_after == 3.0


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            sendgrid_error(
                sg.BadRequestsError,
                400,
                [
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                    }
                ],
            ),
            (PermanentProviderError, "personalizations.0.to.0.email"),
        ),
        (sendgrid_error(sg.UnauthorizedError, 401), (PermanentProviderError, "http_401")),
        (sendgrid_error(sg.PayloadTooLargeError, 413), (PermanentProviderError, "http_413")),
        (sendgrid_error(sg.TooManyRequestsError, 429), (TransientProviderError, "http_429")),
        (sendgrid_error(sg.InternalServerError, 500), (TransientProviderError, "http_500")),
        (sendgrid_error(sg.ServiceUnavailableError, 503), (TransientProviderError, "http_503")),
        (
            urllib.error.URLError(ConnectionRefusedError(111, "refused")),
            (TransientProviderError, "connection_error"),
        ),
        (TimeoutError("timed out"), (TransientProviderError, "timeout")),
        # the kept-alive opener's (urllib3): a refused or timed-out connect sent nothing
        (
            urllib3.exceptions.ReadTimeoutError(None, "/v3/mail/send", "read timed out"),
            (TransientProviderError, "timeout"),
        ),
        (
            urllib3.exceptions.NewConnectionError(None, "refused"),
            (TransientProviderError, "connection_error"),
        ),
        (
            urllib3.exceptions.ConnectTimeoutError(None, "connect timed out"),
            (TransientProviderError, "connection_error"),
        ),
        (
            urllib3.exceptions.ProtocolError("Connection aborted."),
            (TransientProviderError, "connection_error"),
        ),
    ],
)
def test_sendgrid_failures(exc, expected):
    assert kind_and_code("sendgrid", exc) == expected


def test_sendgrid_retry_after_and_messages():
    exc = sendgrid_error(
        sg.TooManyRequestsError,
        429,
        [{"message": "too many requests"}],
        headers={"Retry-After": "5"},
    )
    error = classify(exc, provider="sendgrid", operation="send_mail")
    assert (error.retry_after, error.message) == (5.0, "too many requests")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            easypost_error(ep.InvalidRequestError, 422, "ADDRESS.VERIFY.FAILURE"),
            (PermanentProviderError, "ADDRESS.VERIFY.FAILURE"),
        ),
        (easypost_error(ep.NotFoundError, 404, "NOT_FOUND"), (PermanentProviderError, "NOT_FOUND")),
        (
            easypost_error(ep.PaymentError, 402, "BILLING.INSUFFICIENT_FUNDS"),
            (PermanentProviderError, "BILLING.INSUFFICIENT_FUNDS"),
        ),
        (
            easypost_error(ep.RateLimitError, 429, "RATE_LIMITED"),
            (TransientProviderError, "RATE_LIMITED"),
        ),
        (
            easypost_error(ep.ServiceUnavailableError, 503, "SERVICE.UNAVAILABLE"),
            (TransientProviderError, "SERVICE.UNAVAILABLE"),
        ),
        (ep.TimeoutError("Request timed out."), (TransientProviderError, "timeout")),
        (
            ep.HttpError("Unexpected error communicating with EasyPost"),
            (TransientProviderError, "connection_error"),
        ),
        (ep.FilteringError("No rates found."), (PermanentProviderError, "NO_RATES")),
    ],
)
def test_easypost_failures(exc, expected):
    assert kind_and_code("easypost", exc) == expected


def test_easypost_retry_after_comes_from_the_headers_the_gateway_kept():
    exc = easypost_error(ep.RateLimitError, 429, "RATE_LIMITED", headers={"retry-after": "2"})
    assert classify(exc, provider="easypost", operation="op").retry_after == 2.0


def test_bugs_are_not_provider_failures():
    assert classify(KeyError("id"), provider="stripe", operation="op") is None
    assert classify(ValueError("x"), provider="easypost", operation="op") is None


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (None, False),
        (400, False),
        (401, False),
        (404, False),
        (408, True),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_which_statuses_are_transient(status, transient):
    assert is_transient_status(status) is transient


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(later, now=now.timestamp()) == 30.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
