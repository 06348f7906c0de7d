"""The error type handlers raise; ``App`` turns it into a JSON error response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_CODES = {400: "bad_request", 402: "payment_required", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 411: "length_required", 413: "payload_too_large", 414: "uri_too_long",
          422: "unprocessable_entity", 431: "headers_too_large", 500: "internal_error", 501: "not_implemented",
          502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout", 505: "http_version_not_supported"}

#: Seconds a client should wait before retrying a 503 (``Retry-After``).
RETRY_AFTER_SECONDS = 1


class HTTPError(Exception):
    """Raise from a handler to return a JSON error response."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or default_code(status)
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def default_code(status: int) -> str:
    return _CODES.get(status, "error")


class ServiceUnavailable(HTTPError):
    """503 with ``Retry-After``: a dependency (the database, an upstream) is down for now."""

    def __init__(self, message: str, *, code: str = "unavailable", details: Mapping[str, Any] | None = None,
                 retry_after: int | str = RETRY_AFTER_SECONDS) -> None:
        super().__init__(503, message, code=code, details=details, headers={"Retry-After": str(retry_after)})
