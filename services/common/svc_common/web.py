"""A very small JSON web framework: routing by path template, JSON helpers,
built-in health/readiness/metrics endpoints, access logs and RED metrics.

``App.handle`` is a pure function of (method, target, headers, body) so
handlers can be unit-tested without sockets; ``svc_common.server`` adapts it to
``http.server``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .context import request_id_var
from .errors import HTTPError, ServiceUnavailable, default_code
from .metrics import Metrics
from .payload import parse_json, require_int, require_str
from .readiness import DEFAULT_TIMEOUT_SECONDS, Readiness

JSON_CONTENT_TYPE = "application/json"
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_POSITIVE_INT = re.compile(r"^[1-9][0-9]{0,17}$")
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

__all__ = ["App", "HTTPError", "Request", "Response", "Router", "ServiceUnavailable", "default_code",
           "error_response", "json_response", "require_int", "require_str"]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, default=_json_default, separators=(",", ":")).encode()
    return Response(status=status, body=body, headers=dict(headers or {}))


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text + "Z" if getattr(value, "tzinfo", None) is None and "T" in text else text
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error_response(err: HTTPError, request_id: str | None = None) -> Response:
    payload: dict[str, Any] = {"error": {"code": err.code, "message": err.message}}
    if err.details:
        payload["error"]["details"] = err.details
    if request_id:
        payload["request_id"] = request_id
    return json_response(payload, err.status, err.headers)


@dataclass
class Request:
    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    request_id: str

    def json(self) -> Any:
        """The body parsed as JSON, or a 400 error (also for nesting and integer bombs)."""
        return parse_json(self.body)

    def json_object(self) -> dict[str, Any]:
        payload = self.json()
        if not isinstance(payload, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return payload

    def int_param(self, name: str) -> int:
        """A positive integer path parameter; anything else is a 404 (no such resource)."""
        raw = self.params[name]
        if not _POSITIVE_INT.fullmatch(raw):
            raise HTTPError(404, f"{name} {raw!r} not found")
        return int(raw)


Handler = Callable[[Request], "Response | Any"]


@dataclass
class _Route:
    template: str
    pattern: re.Pattern[str]
    handlers: dict[str, Handler] = field(default_factory=dict)


class Router:
    """Maps ``(method, path)`` to a handler via templates like ``/users/{id}``."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    @staticmethod
    def compile(template: str) -> re.Pattern[str]:
        if not template.startswith("/"):
            raise ValueError(f"route template must start with '/': {template!r}")
        parts, pos = [], 0
        for m in _PARAM.finditer(template):
            parts.append(re.escape(template[pos:m.start()]))
            parts.append(f"(?P<{m.group(1)}>[^/]+)")
            pos = m.end()
        parts.append(re.escape(template[pos:]))
        return re.compile("^" + "".join(parts) + "$")

    def add(self, method: str, template: str, handler: Handler) -> None:
        method = method.upper()
        for route in self._routes:
            if route.template == template:
                if method in route.handlers:
                    raise ValueError(f"duplicate route {method} {template}")
                route.handlers[method] = handler
                return
        self._routes.append(_Route(template, self.compile(template), {method: handler}))

    def match(self, method: str, path: str) -> tuple[str | None, Handler | None, dict[str, str], list[str]]:
        """Return (template, handler, params, allowed_methods); template is None if no path matched."""
        for route in self._routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            handler = route.handlers.get(method)
            if handler is None and method == "HEAD":
                handler = route.handlers.get("GET")
            allowed = sorted(route.handlers)
            return route.template, handler, m.groupdict(), allowed
        return None, None, {}, []

    @property
    def templates(self) -> list[str]:
        return [r.template for r in self._routes]


class App:
    """A service: routes + health/readiness/metrics + lifecycle hooks."""

    def __init__(self, service: str, *, logger: logging.Logger | None = None,
                 metrics: Metrics | None = None, readiness_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.service = service
        self.log = logger or logging.getLogger(service)
        self.access_log = logging.getLogger(f"{service}.access")
        self.metrics = metrics or Metrics(service)
        self.router = Router()
        #: Set once shutdown has started: /readyz fails, keep-alive is disabled.
        self.draining = threading.Event()
        self.readiness = Readiness(readiness_timeout)
        self._startup: list[Callable[["App"], None]] = []
        self._shutdown: list[Callable[[], None]] = []
        self._in_flight = 0
        self._idle = threading.Condition()
        self.router.add("GET", "/healthz", self._healthz)
        self.router.add("GET", "/readyz", self._readyz)
        self.router.add("GET", "/metrics", self._metrics)

    # -- registration -----------------------------------------------------------------
    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def decorator(fn: Handler) -> Handler:
            self.router.add(method, template, fn)
            return fn
        return decorator

    def add_readiness_check(self, name: str, check: Callable[[], Any]) -> None:
        """``check`` raises (or returns False) when the dependency is not usable; /readyz waits
        at most ``readiness_timeout`` seconds for it (a hanging check reports an error)."""
        self.readiness.add(name, check)

    def on_startup(self, fn: Callable[["App"], None]) -> None:
        self._startup.append(fn)

    def on_shutdown(self, fn: Callable[[], None]) -> None:
        self._shutdown.append(fn)

    # -- lifecycle ---------------------------------------------------------------------
    def startup(self) -> None:
        for fn in self._startup:
            fn(self)

    def shutdown(self) -> None:
        for fn in reversed(self._shutdown):
            try:
                fn()
            except Exception:  # noqa: BLE001 - best effort, keep shutting down
                self.log.exception("shutdown hook failed")

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` expired first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def tracking_in_flight(self) -> Iterator[None]:
        """Count a request as in flight; the server wraps reading, handling *and*
        writing the response in this, so graceful shutdown waits for the bytes to go out."""
        with self._idle:
            self._in_flight += 1
        self.metrics.in_flight.labels(self.service).inc()
        try:
            yield
        finally:
            self.metrics.in_flight.labels(self.service).dec()
            with self._idle:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.notify_all()

    # -- request handling --------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str] | None = None,
               body: bytes = b"") -> Response:
        """Handle one request and return the response (never raises)."""
        start = time.perf_counter()
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        incoming_id = hdrs.get("x-request-id", "")
        request_id = incoming_id if _REQUEST_ID_OK.fullmatch(incoming_id) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        method = method.upper()
        route = UNMATCHED_ROUTE
        path = target
        try:
            try:
                split = urlsplit(target)
                path = split.path or "/"
                template, handler, params, allowed = self.router.match(method, path)
                if template is None:
                    raise HTTPError(404, f"no route for {path}")
                route = template
                if handler is None:
                    raise HTTPError(405, f"method {method} not allowed on {template}",
                                    headers={"Allow": ", ".join(allowed)})
                request = Request(method=method, path=path, route=template, params=params,
                                  query=parse_qs(split.query), headers=hdrs, body=body,
                                  request_id=request_id)
                result = handler(request)
                response = result if isinstance(result, Response) else json_response(result)
            except HTTPError as err:
                response = error_response(err, request_id)
            except Exception:  # noqa: BLE001 - a handler bug must not kill the server
                self.log.exception("unhandled error", extra={"method": method, "path": path, "route": route})
                response = error_response(HTTPError(500, "internal server error"), request_id)
            response.headers.setdefault("X-Request-ID", request_id)
            self._observe(method, path, route, response.status, start)
        finally:
            request_id_var.reset(token)
        if method == "HEAD":
            response.headers.setdefault("Content-Length", str(len(response.body)))
            response.body = b""
        return response

    def reject(self, method: str, target: str, err: HTTPError, start: float | None = None) -> Response:
        """The response to a request refused before routing (bad request line, 411, 413, 414,
        431, 501): a JSON error, counted in the metrics and access-logged like any request."""
        request_id = uuid.uuid4().hex
        response = error_response(err, request_id)
        response.headers["X-Request-ID"] = request_id
        self._observe(method.upper(), target[:256], UNMATCHED_ROUTE, err.status,
                      time.perf_counter() if start is None else start)
        return response

    def _observe(self, method: str, path: str, route: str, status: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        self.metrics.observe_request(route, method if method in KNOWN_METHODS else "OTHER", status, elapsed)
        quiet = route in _QUIET_ROUTES and status < 500
        self.access_log.log(logging.DEBUG if quiet else logging.INFO, "request",
                            extra={"method": method, "path": path, "route": route,
                                   "status": status, "duration_ms": round(elapsed * 1000, 3)})

    # -- built-in endpoints --------------------------------------------------------------
    def _healthz(self, _req: Request) -> Response:
        return json_response({"status": "ok", "service": self.service})

    def _readyz(self, _req: Request) -> Response:
        if self.draining.is_set():
            return json_response({"status": "draining", "service": self.service}, 503)
        ok, checks = self.readiness.run()
        return json_response({"status": "ready" if ok else "not ready", "service": self.service,
                              "checks": checks}, 200 if ok else 503)

    def _metrics(self, req: Request) -> Response:
        body, content_type = self.metrics.render(req.headers.get("accept"))
        return Response(200, body, content_type)


