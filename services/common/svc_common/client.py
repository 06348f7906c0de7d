"""JSON-over-HTTP client for calling other services: keep-alive connections, timeouts.

Each ``ServiceClient`` keeps a few idle HTTP/1.1 connections to its upstream and reuses
them (no TCP handshake and no new server thread per call). A request on a *reused*
connection that the server had already closed (idle timeout, restart) is sent once more on
a fresh connection; nothing is resent once a response has started to arrive. Requests go
out in one write (``http.client`` joins headers and a bytes body) with ``TCP_NODELAY``.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .config import ConfigError
from .context import current_request_id
from .metrics import Metrics

log = logging.getLogger("svc_common.client")

#: Idle connections kept per upstream, and how long one may idle before it is dropped
#: (well below the servers' keep-alive timeout, REQUEST_TIMEOUT_SECONDS).
MAX_IDLE_CONNECTIONS = 64
MAX_IDLE_SECONDS = 10.0
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


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
    #: Response headers, names lower-cased.
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ServiceClient:
    def __init__(self, name: str, base_url: str, timeout: float, metrics: Metrics | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}: base URL must start with http:// or https://, got {base_url!r}")
        split = urlsplit(base_url)
        if not split.hostname:
            raise ConfigError(f"{name}: base URL has no host: {base_url!r}")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.metrics = metrics
        self._https = split.scheme == "https"
        self._host = split.hostname
        self._port = split.port
        self._prefix = split.path.rstrip("/")
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, payload: Any, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        return self.request("POST", path, payload, headers=headers)

    # -- connections ----------------------------------------------------------------
    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (reused=True) or a new one."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if now - since < MAX_IDLE_SECONDS:
                    return conn, True
                conn.close()
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def _exchange(self, method: str, path: str, data: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        while True:
            conn, reused = self._connection()
            try:
                conn.request(method, self._prefix + path, body=data, headers=headers)
                resp = conn.getresponse()
            except _STALE:
                conn.close()
                if reused:
                    continue  # the server had closed this idle connection before answering
                raise
            except BaseException:
                conn.close()
                raise
            try:
                raw = resp.read()
            except BaseException:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                self._release(conn)
            return resp.status, raw, {k.lower(): v for k, v in resp.getheaders()}

    # -- requests -------------------------------------------------------------------
    def request(self, method: str, path: str, payload: Any = None,
                headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        hdrs = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload, separators=(",", ":")).encode()
            hdrs["Content-Type"] = "application/json"
        request_id = current_request_id()
        if request_id:
            hdrs["X-Request-ID"] = request_id
        hdrs.update(headers or {})
        start = time.perf_counter()
        outcome = "error"
        try:
            try:
                status, raw, resp_headers = self._exchange(method, path, data, hdrs)
            except TimeoutError as exc:
                outcome = "timeout"
                raise UpstreamTimeout(self.name, f"timed out after {self.timeout}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise UpstreamError(self.name, f"request failed: {exc!r}") from exc
            outcome = str(status)
            try:
                body = json.loads(raw) if raw else None
            except (UnicodeDecodeError, ValueError) as exc:
                raise UpstreamError(self.name, f"invalid JSON in HTTP {status} response") from exc
            return UpstreamResponse(status, body, resp_headers)
        finally:
            elapsed = time.perf_counter() - start
            if self.metrics is not None:
                self.metrics.observe_upstream(self.name, method, outcome, elapsed)
            log.debug("upstream call", extra={"upstream": self.name, "method": method, "path": path,
                                              "outcome": outcome, "duration_ms": round(elapsed * 1000, 3)})
