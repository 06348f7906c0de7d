"""Per-request context shared by the HTTP layer, logging and the upstream client."""

from __future__ import annotations

import contextvars

#: The id of the request being handled by the current thread (``None`` outside a request).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
