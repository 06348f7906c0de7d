"""HTTP server (stdlib ``ThreadingHTTPServer``) with graceful shutdown.

On SIGTERM/SIGINT: /readyz starts failing, new connections stop being accepted
(after the optional ``SHUTDOWN_DELAY_SECONDS``), in-flight requests are allowed
to finish (up to ``SHUTDOWN_TIMEOUT_SECONDS``), shutdown hooks run (e.g. the DB
pool is closed) and ``run`` returns 0.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import headers
from .config import ConfigError, ServerConfig
from .jsonlog import configure_logging
from .web import App, HTTPError, Response


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block exit
    allow_reuse_address = True
    request_queue_size = 128
    logger = logging.getLogger("svc_common.server")

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn) that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), port

    def handle_error(self, request: object, client_address: tuple) -> None:
        # Default prints a traceback to stderr; keep every output line JSON instead.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            self.logger.info("client connection error", extra={"client": client_address[0], "error": repr(exc)})
        else:
            self.logger.exception("error while handling a connection", extra={"client": client_address[0]})


class _Server6(_Server):
    address_family = socket.AF_INET6


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    """Adapts http.server to ``App``; ``make_handler`` binds ``app`` and ``config``."""

    protocol_version = "HTTP/1.1"
    app: App
    config: ServerConfig

    def setup(self) -> None:
        super().setup()
        # Responses go out in one write (see _write), and small writes are never held back
        # waiting for the peer's (delayed) ACK: no 40 ms Nagle stall on keep-alive connections.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (tests may use a socketpair)
            pass

    def version_string(self) -> str:
        return f"{self.app.service}-service"

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header changes once a second: formatting it for every response cost ~5% of a service's CPU.
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return _http_date(int(time.time()))

    def _dispatch(self) -> None:
        with self.app.tracking_in_flight():
            self._write(self._read_and_handle())

    def _write(self, response: Response) -> None:
        """Status line, headers and body in a single write."""
        if self.app.draining.is_set():
            self.close_connection = True
        self.send_response(response.status)
        headers = dict(response.headers)
        headers.setdefault("Content-Length", str(len(response.body)))
        headers["Content-Type"] = response.content_type
        if self.close_connection:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n")
        if response.body and self.command != "HEAD":
            self._headers_buffer.append(response.body)
        self.flush_headers()  # joins the buffer: one write

    def _read_and_handle(self) -> Response:
        start = time.perf_counter()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return self.app.reject(self.command, self.path, HTTPError(
                411, "chunked requests are not supported", code="length_required"), start)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return self.app.reject(self.command, self.path, HTTPError(400, "invalid Content-Length"), start)
        if length > self.config.max_body_bytes:
            self.close_connection = True
            return self.app.reject(self.command, self.path, HTTPError(
                413, f"request body larger than {self.config.max_body_bytes} bytes"), start)
        body = self.rfile.read(length) if length else b""
        return self.app.handle(self.command, self.path, dict(self.headers.items()), body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server raises itself (malformed request line 400, 414, 431, 501 unknown
        method, 505): the services' JSON error, counted and access-logged (not stdlib HTML)."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # always a status line, even for an HTTP/0.9-style line
        method = getattr(self, "command", None) or ""
        response = self.app.reject(method, getattr(self, "path", None) or "", HTTPError(code, message or phrase))
        self._write(response)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        # Access logs are emitted (as JSON) by App.handle; this only sees protocol errors.
        self.app.log.debug("http.server: " + (format % args), extra={"client": self.client_address[0]})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # App.handle / App.reject write the access log line

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002
        self.app.log.warning("http.server: " + (format % args), extra={"client": self.client_address[0]})


def make_handler(app: App, config: ServerConfig) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"app": app, "config": config, "timeout": config.request_timeout})


class ServiceRunner:
    """Owns the listening socket and the shutdown sequence of one ``App``."""

    def __init__(self, app: App, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        server_class = _Server6 if ":" in config.host else _Server
        self.server = server_class((config.host, config.port), make_handler(app, config))
        self.server.logger = app.log
        self._stop_once = threading.RLock()  # re-entrant: a 2nd signal may arrive while inside
        self._stopping = False

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def request_stop(self, reason: str = "requested") -> None:
        """Begin graceful shutdown (safe to call from a signal handler or any thread)."""
        with self._stop_once:
            if self._stopping:
                return
            self._stopping = True
        self.app.draining.set()
        self.app.log.info("shutdown started", extra={"reason": reason,
                                                      "delay_s": self.config.shutdown_delay,
                                                      "in_flight": self.app.in_flight})

        def _stop() -> None:
            if self.config.shutdown_delay:
                threading.Event().wait(self.config.shutdown_delay)
            self.server.shutdown()  # makes serve_forever() return; must not run on its thread

        threading.Thread(target=_stop, name="shutdown", daemon=True).start()

    def install_signal_handlers(self) -> None:
        def _handler(signum: int, _frame: object) -> None:
            self.request_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def serve(self) -> int:
        app = self.app
        app.log.info("listening", extra={"host": self.config.host, "port": self.port})
        try:
            app.startup()
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.server.server_close()  # stop accepting new connections
            drained = app.wait_idle(self.config.shutdown_timeout)
            if not drained:
                app.log.warning("shutdown timeout: requests still in flight",
                                extra={"in_flight": app.in_flight})
            app.shutdown()
            app.log.info("shutdown complete", extra={"drained": drained})
        return 0


def run(app: App, config: ServerConfig) -> int:
    """Serve ``app`` until SIGTERM/SIGINT; returns the process exit code."""
    runner = ServiceRunner(app, config)
    runner.install_signal_handlers()
    return runner.serve()


def run_service(service: str, build_app: Callable[[], App], environ: Mapping[str, str] | None = None) -> int:
    """Entry point shared by all services: JSON logging, config from env, serve.

    ``build_app`` reads its own settings from the environment; a ``ConfigError``
    is logged and turned into exit code 2.
    """
    try:
        config = ServerConfig.from_env(environ)
    except ConfigError as exc:
        configure_logging(service)
        logging.getLogger(service).error("invalid configuration", extra={"error": str(exc)})
        return 2
    configure_logging(service, config.log_level)
    headers.install()
    try:
        app = build_app()
    except ConfigError as exc:
        logging.getLogger(service).error("invalid configuration", extra={"error": str(exc)})
        return 2
    app.readiness.timeout = config.readiness_timeout
    try:
        runner = ServiceRunner(app, config)
    except OSError as exc:  # e.g. port already in use
        app.log.error("cannot listen", extra={"host": config.host, "port": config.port, "error": str(exc)})
        return 1
    runner.install_signal_handlers()
    return runner.serve()
