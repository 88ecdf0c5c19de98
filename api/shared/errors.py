"""API errors: one exception type, mapped to ``{"error": {code, message, details}}`` by
the error middleware. Handlers raise; they never build error responses themselves."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
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
    return ApiError(404, "not_found", f"{what} not found")


def unauthorized(message: str = "authentication required", code: str = "unauthorized") -> ApiError:
    return ApiError(401, code, message)


def forbidden(message: str = "this action needs the admin role") -> ApiError:
    return ApiError(403, "forbidden", message)


def validation_failed(errors: list[dict[str, Any]]) -> ApiError:
    """422 from pydantic's error list, naming each offending field by its path."""
    fields = []
    for error in errors:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        fields.append({"field": location, "message": error["msg"], "type": error["type"]})
    return ApiError(422, "validation_error", "the request body is invalid", {"fields": fields})
