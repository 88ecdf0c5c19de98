"""API errors: one exception type, mapped to ``{"error": {code, message, details}}`` by
the error middleware. Handlers raise; they never build error responses themselves."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from aiohttp import web


class ErrorCode(StrEnum):
    """Every ``error.code`` the API answers, defined once: handlers raise with these, and
    the codes a lower layer gives (``fulfillment.destinations.RefusedUrl``,
    ``fulfillment.refunds``, ``pipelines.payments.refunds.RefundRefused``) are listed here
    too and answered as ``ErrorCode(exc.code)``. The values are the wire format."""

    # --- any route: the request itself
    BAD_REQUEST = "bad_request"
    MALFORMED_JSON = "malformed_json"
    JSON_TOO_DEEP = "json_too_deep"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    #: Not a code of its own: the ``type`` of a field in a ``validation_error``'s details.
    INVALID_CHARACTERS = "invalid_characters"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"
    # --- any route: capacity and outages
    TOO_MANY_REQUESTS = "too_many_requests"
    SERVICE_UNAVAILABLE = "service_unavailable"
    ORDER_OUTCOME_UNKNOWN = "order_outcome_unknown"
    SHUTTING_DOWN = "shutting_down"
    # --- idempotency keys
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    # --- access and accounts
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    INVALID_TOKEN = "invalid_token"
    ACCOUNT_DISABLED = "account_disabled"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    CURRENT_PASSWORD_INVALID = "current_password_invalid"
    EMAIL_TAKEN = "email_taken"
    # --- catalogue and orders
    SKU_TAKEN = "sku_taken"
    STOCK_BELOW_RESERVED = "stock_below_reserved"
    PRODUCT_UNAVAILABLE = "product_unavailable"
    CURRENCY_MISMATCH = "currency_mismatch"
    ORDER_NOT_CANCELLABLE = "order_not_cancellable"
    # --- addresses
    ADDRESS_UNDELIVERABLE = "address_undeliverable"
    CARRIER_UNAVAILABLE = "carrier_unavailable"
    ORDER_NOT_CHANGEABLE = "order_not_changeable"
    ORDER_NOT_ADDRESS_INVALID = "order_not_address_invalid"
    LABEL_BEING_BOUGHT = "label_being_bought"
    # --- refunds (``fulfillment.refunds``, ``pipelines.payments.refunds``)
    NOT_IN_ORDER = "not_in_order"
    REFUND_EXCEEDS_QUANTITY = "refund_exceeds_quantity"
    NOTHING_CAPTURED = "nothing_captured"
    REFUND_EXCEEDS_CAPTURED = "refund_exceeds_captured"
    SHIPPING_ALREADY_REFUNDED = "shipping_already_refunded"
    NO_SHIPPING_CHARGED = "no_shipping_charged"
    # --- returns
    ORDER_NOT_DELIVERED = "order_not_delivered"
    RETURN_WINDOW_CLOSED = "return_window_closed"
    RETURN_EXCEEDS_QUANTITY = "return_exceeds_quantity"
    RETURN_NOT_RECEIVABLE = "return_not_receivable"
    NOT_IN_RETURN = "not_in_return"
    RECEIPT_EXCEEDS_RETURN = "receipt_exceeds_return"
    # --- the operator desk
    ORDER_NOT_HOLDABLE = "order_not_holdable"
    ORDER_NOT_ON_HOLD = "order_not_on_hold"
    ORDER_NOT_NEEDS_ATTENTION = "order_not_needs_attention"
    # --- merchant webhook endpoints (``fulfillment.destinations.RefusedUrl``)
    INVALID_URL = "invalid_url"
    HTTPS_REQUIRED = "https_required"
    UNRESOLVABLE_HOST = "unresolvable_host"
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    ENDPOINT_DISABLED = "endpoint_disabled"
    # --- locations
    LOCATION_NAME_TAKEN = "location_name_taken"
    DEFAULT_LOCATION_INACTIVE = "default_location_inactive"
    UNKNOWN_LOCATION = "unknown_location"
    INSUFFICIENT_STOCK = "insufficient_stock"
    LOCATION_NOT_ELIGIBLE = "location_not_eligible"
    PACKAGE_NOT_MOVABLE = "package_not_movable"
    CANCEL_EXCEEDS_ORDER = "cancel_exceeds_order"
    PAYMENT_IN_PROGRESS = "payment_in_progress"
    # --- checkout
    SHIPPING_UNAVAILABLE = "shipping_unavailable"
    TAX_UNAVAILABLE = "tax_unavailable"
    TAX_LOCATION_INVALID = "tax_location_invalid"
    QUOTE_EXPIRED = "quote_expired"
    QUOTE_MISMATCH = "quote_mismatch"
    QUOTE_REQUIRED = "quote_required"
    # --- provider webhooks
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_EVENT = "invalid_event"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        #: Sent with the error response (``Retry-After`` on a 429).
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def not_found(what: str) -> ApiError:
    return ApiError(404, ErrorCode.NOT_FOUND, f"{what} not found")


def path_uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    """The id in the path's ``{name}``; one that is not a UUID names nothing: 404 ``what``."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise not_found(what) from None


def unauthorized(
    message: str = "authentication required", code: ErrorCode = ErrorCode.UNAUTHORIZED
) -> ApiError:
    return ApiError(401, code, message)


def forbidden(message: str = "this action needs the admin role") -> ApiError:
    return ApiError(403, ErrorCode.FORBIDDEN, message)


def validation_failed(errors: list[dict[str, Any]]) -> ApiError:
    """422 from pydantic's error list, naming each offending field by its path."""
    fields = []
    for error in errors:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        fields.append({"field": location, "message": error["msg"], "type": error["type"]})
    return ApiError(
        422, ErrorCode.VALIDATION_ERROR, "the request body is invalid", {"fields": fields}
    )
