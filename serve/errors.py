"""One exception hierarchy, mapped to OpenAI error bodies in one place (`error_body`).

Every error a caller can see is a `GatewayError`. Anything else is an internal error:
it is logged with the request id and answered as a generic 500 that leaks nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ConfigError(Exception):
    """The platform config is invalid; the message names the file and field."""


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Survive pickling across Ray handles with keyword-only fields intact.
        return (_rebuild, (type(self), self.message, self.param, self.code, self.headers))

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def _rebuild(
    cls: type[GatewayError],
    message: str,
    param: str | None,
    code: str | None,
    headers: dict[str, str],
) -> GatewayError:
    return cls(message, param=param, code=code, headers=headers)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    default_code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"


class Overloaded(GatewayError):
    status = 503
    type = "server_error"
    default_code = "overloaded"


class UpstreamError(GatewayError):
    """A backend failed or answered something unusable."""

    status = 502
    type = "server_error"
    default_code = "upstream_error"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "server_error"
    default_code = "upstream_timeout"


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    default_code = "internal_error"
