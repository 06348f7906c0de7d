"""``Idempotency-Key`` on the POSTs that create something.

The client sends ``Idempotency-Key: <key>`` (1-128 visible ASCII characters, optionally
quoted as a structured-field string); the service stores the key with a unique constraint
next to what it created, and a repeat with the same key returns the first result (with
``Idempotent-Replayed: true``) instead of creating a second one. The same key with a
different request body is a client error (422 ``idempotency_key_reused``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .errors import HTTPError

HEADER = "idempotency-key"
REPLAYED = {"Idempotent-Replayed": "true"}
MAX_LENGTH = 128
_KEY = re.compile(r"^[\x21-\x7e]{1,%d}$" % MAX_LENGTH)


def idempotency_key(headers: dict[str, str]) -> str | None:
    """The request's key (``headers`` with lower-cased names), None without one; 400 if malformed."""
    raw = headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY.fullmatch(key):
        raise HTTPError(400, f"Idempotency-Key must be 1-{MAX_LENGTH} visible ASCII characters",
                        code="invalid_idempotency_key", details={"header": "Idempotency-Key"})
    return key


def fingerprint(*parts: Any) -> str:
    """A stable digest of the (validated) request, stored with the key."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def key_digest(key: str, length: int = 24) -> str:
    """A short digest of a key: what a derived key (``order`` -> payment) is built from."""
    return hashlib.sha256(key.encode()).hexdigest()[:length]


def check_same_request(stored: str | None, current: str) -> None:
    if stored is not None and stored != current:
        raise HTTPError(422, "Idempotency-Key was already used with a different request",
                        code="idempotency_key_reused")
