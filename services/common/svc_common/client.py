"""JSON-over-HTTP client for calling other services (stdlib urllib, with timeouts)."""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .config import ConfigError
from .context import current_request_id
from .metrics import Metrics

log = logging.getLogger("svc_common.client")

# Service-to-service calls go direct: ignore HTTP(S)_PROXY from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class UpstreamError(Exception):
    """The upstream could not be reached or answered garbage."""

    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream = upstream


class UpstreamTimeout(UpstreamError):
    pass


@dataclass
class UpstreamResponse:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ServiceClient:
    def __init__(self, name: str, base_url: str, timeout: float, metrics: Metrics | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}: base URL must start with http:// or https://, got {base_url!r}")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.metrics = metrics

    def get(self, path: str) -> UpstreamResponse:
        return self.request("GET", path)

    def post(self, path: str, payload: Any) -> UpstreamResponse:
        return self.request("POST", path, payload)

    def request(self, method: str, path: str, payload: Any = None) -> UpstreamResponse:
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        request_id = current_request_id()
        if request_id:
            headers["X-Request-ID"] = request_id
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        start = time.perf_counter()
        outcome = "error"
        try:
            try:
                with _OPENER.open(req, timeout=self.timeout) as resp:
                    status, raw = resp.status, resp.read()
            except urllib.error.HTTPError as exc:  # a real HTTP response with status >= 400
                with exc:
                    status, raw = exc.code, exc.read()
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    outcome = "timeout"
                    raise UpstreamTimeout(self.name, f"timed out after {self.timeout}s") from exc
                raise UpstreamError(self.name, f"unreachable: {exc.reason}") from exc
            except TimeoutError as exc:
                outcome = "timeout"
                raise UpstreamTimeout(self.name, f"timed out after {self.timeout}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise UpstreamError(self.name, f"request failed: {exc}") from exc
            outcome = str(status)
            try:
                body = json.loads(raw) if raw else None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UpstreamError(self.name, f"invalid JSON in HTTP {status} response") from exc
            return UpstreamResponse(status, body)
        finally:
            elapsed = time.perf_counter() - start
            if self.metrics is not None:
                self.metrics.observe_upstream(self.name, method, outcome, elapsed)
            log.debug("upstream call", extra={"upstream": self.name, "method": method, "path": path,
                                              "outcome": outcome, "duration_ms": round(elapsed * 1000, 3)})
