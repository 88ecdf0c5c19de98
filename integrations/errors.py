"""Provider failures, classified in one place (DESIGN.md, correctness rule 6).

Every exception an SDK raises ends up as one of two kinds:

- ``TransientProviderError``: timeouts, connection errors, 429 and 5xx. Worth retrying
  later; ``retry.call_provider`` retries it briefly, then Dramatiq's Retries middleware
  takes over.
- ``PermanentProviderError``: card declines, invalid addresses, any other 4xx. Retrying
  cannot help; the pipeline takes the compensation path at once (put it in ``throws=``).
  One kind is told apart by its class: ``ServiceNotOffered``, the carrier no longer
  offering the service a customer paid for (an operator decides, nothing is refunded).

``classify`` is a pure function of the exception, so it is unit-tested without I/O.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import easypost.errors as easypost_errors
import requests
import stripe
import urllib3
from python_http_client.exceptions import HTTPError as SendGridHTTPError

#: HTTP statuses below 500 that still mean "try again later".
TRANSIENT_STATUSES = frozenset({408, 425, 429})


class ProviderError(Exception):
    """A call to Stripe, SendGrid or EasyPost failed; ``code`` is the provider's own."""

    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        operation: str,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.operation = operation
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after
        self.details = dict(details or {})

    def __str__(self) -> str:
        where = f"{self.provider} {self.operation}"
        extra = ", ".join(
            f"{name}={value}"
            for name, value in (("code", self.code), ("status", self.http_status))
            if value is not None
        )
        return f"{where}: {self.message}" + (f" ({extra})" if extra else "")


class TransientProviderError(ProviderError):
    """Worth retrying: the provider was slow, unreachable, overloaded or rate-limiting."""

    transient = True


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the request itself was refused (decline, bad address, 4xx)."""


class ServiceNotOffered(PermanentProviderError):
    """The carrier's rates for the parcel lack the service the customer paid for, so no
    label was bought: neither the address's fault nor, by itself, a reason to refund.
    The message names the service and what is offered instead."""

    def __init__(
        self, carrier: str, service: str, *, offered: list[str], provider: str, operation: str
    ) -> None:
        instead = ", ".join(offered) or "nothing"
        super().__init__(f"{carrier} {service} is no longer offered for this parcel "
                         f"(offered: {instead})", provider=provider, operation=operation,
                         code="SERVICE_NOT_OFFERED",
                         details={"carrier": carrier, "service": service, "offered": offered})  # fmt: skip
        self.carrier = carrier
        self.service = service


class InvalidSignature(Exception):
    """A webhook whose signature is missing, forged, or too old."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What a classifier learned from one SDK exception."""

    transient: bool
    message: str
    code: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def is_transient_status(status: int | None) -> bool:
    return status is not None and (status >= 500 or status in TRANSIENT_STATUSES)


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def header(headers: object, name: str) -> str | None:
    """A header from any mapping the SDKs hand back, looked up case-insensitively."""
    if not headers or not hasattr(headers, "items"):
        return None
    getter = getattr(headers, "get", None)
    if getter is not None and (value := getter(name)) is not None:
        return str(value)
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def classify(exc: BaseException, *, provider: str, operation: str) -> ProviderError | None:
    """The classified error for ``exc``, or None when it is not a provider failure
    (a bug, which should surface unchanged)."""
    if isinstance(exc, ProviderError):
        return exc
    classifier = _CLASSIFIERS.get(provider)
    failure = (classifier(exc) if classifier else None) or network_failure(exc)
    if failure is None:
        return None
    kind = TransientProviderError if failure.transient else PermanentProviderError
    return kind(
        failure.message,
        provider=provider,
        operation=operation,
        code=failure.code,
        http_status=failure.http_status,
        retry_after=failure.retry_after,
        details=failure.details,
    )


def network_failure(exc: BaseException) -> Failure | None:
    """Timeouts and broken connections, whichever HTTP library raised them."""
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):  # refused too: nothing sent
        return Failure(True, f"connection failed: {exc}", code="connection_error")
    if isinstance(
        exc, requests.exceptions.Timeout | TimeoutError | urllib3.exceptions.TimeoutError
    ):
        return Failure(True, f"timed out: {exc}", code="timeout")
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | ConnectionError
        | urllib.error.URLError
        | http.client.HTTPException
        | urllib3.exceptions.HTTPError,
    ):
        return Failure(True, f"connection failed: {exc}", code="connection_error")
    return None


def stripe_failure(exc: BaseException) -> Failure | None:
    if not isinstance(exc, stripe.StripeError):
        return None
    if isinstance(exc, stripe.APIConnectionError):
        # The SDK wraps the HTTP library's error; a timeout is worth telling apart.
        cause = network_failure(exc.__cause__) if exc.__cause__ else None
        code = cause.code if cause else "connection_error"
        return Failure(True, exc.user_message or str(exc), code=code)
    body = _stripe_error_body(exc)
    status = exc.http_status
    code = body.get("decline_code") or exc.code or body.get("code") or body.get("type")
    details = {key: body[key] for key in ("type", "param", "decline_code", "code") if body.get(key)}
    if isinstance(body.get("payment_intent"), Mapping):
        details["payment_intent"] = body["payment_intent"].get("id")
    should_retry = header(exc.headers, "Stripe-Should-Retry")
    if should_retry in ("true", "false"):
        transient = should_retry == "true"
    else:
        # Stripe answers 409 to a request racing another with the same idempotency key.
        transient = status == 409 or is_transient_status(status)
        transient = transient or (status is None and type(exc) is stripe.APIError)
    return Failure(
        transient,
        exc.user_message or str(exc),
        code=code,
        http_status=status,
        retry_after=parse_retry_after(header(exc.headers, "Retry-After")),
        details=details,
    )


def sendgrid_failure(exc: BaseException) -> Failure | None:
    if not isinstance(exc, SendGridHTTPError):
        return None
    errors = _sendgrid_errors(exc.body)
    first = errors[0] if errors else {}
    messages = [str(item.get("message")) for item in errors if item.get("message")]
    return Failure(
        is_transient_status(exc.status_code),
        "; ".join(messages) or str(exc.reason),
        code=first.get("field") or f"http_{exc.status_code}",
        http_status=exc.status_code,
        retry_after=parse_retry_after(header(exc.headers, "Retry-After")),
        details={"errors": errors},
    )


def easypost_failure(exc: BaseException) -> Failure | None:
    if isinstance(exc, easypost_errors.TimeoutError):
        return Failure(True, exc.message, code="timeout", http_status=exc.http_status)
    if isinstance(exc, easypost_errors.HttpError):
        return Failure(True, exc.message, code="connection_error")
    if isinstance(exc, easypost_errors.FilteringError):
        return Failure(False, exc.message, code="NO_RATES")
    if isinstance(exc, easypost_errors.ApiError):
        status = exc.http_status
        return Failure(
            status is None or is_transient_status(status),
            exc.message,
            code=exc.code or f"http_{status}",
            http_status=status,
            retry_after=parse_retry_after(
                header(getattr(exc, "response_headers", None), "Retry-After")
            ),
            details={"errors": exc.errors or []},
        )
    if isinstance(exc, easypost_errors.EasyPostError):
        return Failure(False, exc.message, code=type(exc).__name__)
    return None


#: EasyPost's codes for an address it cannot deliver to: the customer must fix the
#: address; refunding the order is not the answer (``pipelines.shipping.addresses``).
ADDRESS_FAILURE_CODES = frozenset({"ADDRESS.VERIFY.FAILURE"})


def is_address_failure(exc: BaseException) -> bool:
    """A permanent refusal of the shipping address itself (not of the parcel, the rate
    or the account): EasyPost's ``ADDRESS.VERIFY.FAILURE`` or a field error code of its
    address verification (``E.ADDRESS.NOT_FOUND``, ``E.HOUSE_NUMBER.MISSING``, …)."""
    if not isinstance(exc, PermanentProviderError) or exc.provider != "easypost":
        return False
    code = str(exc.code or "")
    return code in ADDRESS_FAILURE_CODES or code.startswith(("E.ADDRESS", "E.HOUSE_NUMBER",
                                                             "E.STREET", "E.ZIP"))  # fmt: skip


#: EasyPost's address fields under our names (``api.orders.schemas.Address``).
OUR_ADDRESS_FIELDS: Mapping[str, str] = {"street1": "line1", "street2": "line2",
                                         "zip": "postal_code"}  # fmt: skip


def our_address_field(field: Any) -> str:
    """EasyPost's name of an address field (``street1``, ``to_address.zip``) as ours."""
    name = str(field or "address").removeprefix("to_address.")
    return OUR_ADDRESS_FIELDS.get(name, name)


def address_problems(exc: ProviderError) -> list[dict[str, Any]]:
    """The field errors EasyPost sent with an address refusal, as ``{code, field,
    message}`` with the field under our name; at least one."""
    problems = []
    for error in exc.details.get("errors") or []:
        if isinstance(error, Mapping):
            problems.append({"code": error.get("code") or exc.code,
                             "field": our_address_field(error.get("field")),
                             "message": error.get("message")})  # fmt: skip
        elif error:
            problems.append({"code": exc.code, "field": "address", "message": str(error)})
    return problems or [{"code": exc.code, "field": "address", "message": exc.message}]


def _stripe_error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def _sendgrid_errors(body: object) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body.decode() if isinstance(body, bytes) else str(body))
    except (ValueError, UnicodeDecodeError):
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return [item for item in errors or [] if isinstance(item, dict)]


_CLASSIFIERS: dict[str, Callable[[BaseException], Failure | None]] = {
    "stripe": stripe_failure,
    "sendgrid": sendgrid_failure,
    "easypost": easypost_failure,
}
