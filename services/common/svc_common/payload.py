"""Request bodies: bounded JSON parsing and the field validators the services share.

Every malformed body is a client error (400), never a 500: deeply nested documents
(``RecursionError`` in the parser), integers too long to convert (``ValueError`` from
Python's int limit), ``NaN``/``Infinity`` and integers outside the signed 64-bit range
(what the database columns hold) are all rejected here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import HTTPError

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Longest integer literal accepted by the parser (int64 has 19 digits; longer ones are refused
#: before Python converts them, the conversion of a 100k-digit literal is itself quadratic).
MAX_INT_DIGITS = 40


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:  # + sign
        raise ValueError(f"integer literal longer than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """The body parsed as JSON, or a 400 ``invalid_json`` error."""
    if not body:
        raise HTTPError(400, "request body must be a JSON document", code="invalid_json")
    try:
        return json.loads(body, parse_int=_bounded_int, parse_constant=_no_constants)
    except RecursionError:
        raise HTTPError(400, "invalid JSON: nested too deeply", code="invalid_json") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise HTTPError(400, f"invalid JSON: {exc}", code="invalid_json") from None


def require_int(payload: Mapping[str, Any], name: str, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
    """An integer field within [minimum, maximum] (by default the signed 64-bit range)."""
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise HTTPError(400, f"'{name}' must be an integer", code="validation_error", details={"field": name})
    low = INT64_MIN if minimum is None else minimum
    high = INT64_MAX if maximum is None else maximum
    if value < low:
        raise HTTPError(400, f"'{name}' must be >= {low}", code="validation_error", details={"field": name})
    if value > high:
        raise HTTPError(400, f"'{name}' must be <= {high}", code="validation_error", details={"field": name})
    return value


def require_str(payload: Mapping[str, Any], name: str, *, max_length: int = 255,
                pattern: re.Pattern[str] | None = None) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise HTTPError(400, f"'{name}' must be a non-empty string", code="validation_error",
                        details={"field": name})
    value = value.strip()
    if len(value) > max_length:
        raise HTTPError(400, f"'{name}' must be at most {max_length} characters", code="validation_error",
                        details={"field": name})
    if pattern is not None and not pattern.fullmatch(value):
        raise HTTPError(400, f"'{name}' is not valid", code="validation_error", details={"field": name})
    return value
