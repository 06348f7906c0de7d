"""Tests of the shared package: routing, JSON helpers, metrics, logging, config, client."""

from __future__ import annotations

import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from svc_common import (
    App,
    ConfigError,
    DBConfig,
    HTTPError,
    JsonFormatter,
    ServerConfig,
    ServiceClient,
    UpstreamError,
    UpstreamTimeout,
    configure_logging,
    env_bool,
    env_int,
    env_secret,
)
from svc_common.context import request_id_var
from svc_common.web import UNMATCHED_ROUTE, Router

from services.tests.helpers import call, free_port


def sample(name: str, labels: dict[str, str], app: App) -> float | None:
    return app.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def app() -> App:
    app = App("demo")

    @app.route("GET", "/things/{id}")
    def get_thing(req):
        if req.params["id"] == "boom":
            raise RuntimeError("handler bug")
        return {"id": req.params["id"], "q": req.query.get("q", [None])[0]}

    @app.route("POST", "/things")
    def create_thing(req):
        return {"echo": req.json_object()}

    return app


class TestRouter:
    def test_template_matching_and_params(self):
        router = Router()
        router.add("GET", "/users/{id}/orders/{order_id}", lambda r: None)
        template, handler, params, allowed = router.match("GET", "/users/7/orders/abc")
        assert template == "/users/{id}/orders/{order_id}"
        assert params == {"id": "7", "order_id": "abc"}
        assert allowed == ["GET"] and handler is not None

    def test_params_do_not_cross_segments_or_regex(self):
        router = Router()
        router.add("GET", "/a.b/{id}", lambda r: None)
        assert router.match("GET", "/a.b/1/2")[0] is None
        assert router.match("GET", "/aXb/1")[0] is None

    def test_duplicate_route_rejected(self):
        router = Router()
        router.add("GET", "/x", lambda r: None)
        with pytest.raises(ValueError):
            router.add("GET", "/x", lambda r: None)


class TestAppHandle:
    def test_ok_with_query_and_request_id_header(self, app):
        status, body, resp = call(app, "GET", "/things/42?q=hello", headers={"X-Request-ID": "abc-123"})
        assert status == 200
        assert body == {"id": "42", "q": "hello"}
        assert resp.headers["X-Request-ID"] == "abc-123"

    def test_invalid_request_id_is_replaced(self, app):
        _, _, resp = call(app, "GET", "/healthz", headers={"X-Request-ID": "bad id\r\nx"})
        assert len(resp.headers["X-Request-ID"]) == 32

    def test_404_405_and_error_body(self, app):
        status, body, _ = call(app, "GET", "/nope")
        assert status == 404 and body["error"]["code"] == "not_found" and body["request_id"]
        status, body, resp = call(app, "DELETE", "/things/1")
        assert status == 405 and resp.headers["Allow"] == "GET"

    def test_invalid_json_is_400(self, app):
        status, body, _ = call(app, "POST", "/things", body=b"{not json")
        assert status == 400 and "invalid JSON" in body["error"]["message"]
        status, body, _ = call(app, "POST", "/things", body=[1, 2])
        assert status == 400 and "JSON object" in body["error"]["message"]
        status, _, _ = call(app, "POST", "/things")
        assert status == 400

    def test_handler_exception_is_500_not_crash(self, app, caplog):
        with caplog.at_level(logging.ERROR):
            status, body, _ = call(app, "GET", "/things/boom")
        assert status == 500 and body["error"]["code"] == "internal_error"
        assert any(r.msg == "unhandled error" for r in caplog.records)

    def test_head_has_no_body(self, app):
        status, _, resp = call(app, "HEAD", "/healthz")
        assert status == 200 and resp.body == b"" and int(resp.headers["Content-Length"]) > 0

    def test_healthz(self, app):
        assert call(app, "GET", "/healthz")[:2] == (200, {"status": "ok", "service": "demo"})


class TestReadiness:
    def test_ready_without_checks(self, app):
        status, body, _ = call(app, "GET", "/readyz")
        assert status == 200 and body["status"] == "ready"

    def test_failing_check_is_503_with_reason(self, app):
        app.add_readiness_check("ok", lambda: None)
        app.add_readiness_check("database", lambda: (_ for _ in ()).throw(RuntimeError("db down")))
        status, body, _ = call(app, "GET", "/readyz")
        assert status == 503
        assert body["checks"] == {"ok": "ok", "database": "error: db down"}

    def test_draining_is_503(self, app):
        app.draining.set()
        status, body, _ = call(app, "GET", "/readyz")
        assert status == 503 and body["status"] == "draining"
        assert call(app, "GET", "/healthz")[0] == 200  # still alive


class TestMetrics:
    def test_labels_use_route_template_and_status(self, app):
        call(app, "GET", "/things/1")
        call(app, "GET", "/things/2")
        call(app, "GET", "/things/boom")
        call(app, "DELETE", "/things/3")
        call(app, "GET", "/does/not/exist")
        base = {"service": "demo", "route": "/things/{id}", "method": "GET"}
        assert sample("http_requests_total", {**base, "status": "200"}, app) == 2
        assert sample("http_requests_total", {**base, "status": "500"}, app) == 1
        assert sample("http_requests_total", {**base, "method": "DELETE", "status": "405"}, app) == 1
        assert sample("http_request_duration_seconds_count", {**base, "status": "200"}, app) == 2
        assert sample("http_requests_total", {"service": "demo", "route": UNMATCHED_ROUTE, "method": "GET",
                                              "status": "404"}, app) == 1
        # raw paths never become label values
        assert sample("http_requests_total", {**base, "route": "/things/1", "status": "200"}, app) is None

    def test_exposition_text(self, app):
        call(app, "GET", "/things/1")
        status, _, resp = call(app, "GET", "/metrics")
        text = resp.body.decode()
        assert status == 200 and resp.content_type.startswith("text/plain")
        assert ('http_requests_total{method="GET",route="/things/{id}",service="demo",status="200"} 1.0'
                in text)
        assert "# TYPE http_request_duration_seconds histogram" in text
        assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/things/{id}"' in text
        assert "process_cpu_seconds_total" in text
        assert "http_requests_created" not in text

    def test_unknown_method_label_is_bounded(self, app):
        call(app, "BREW", "/things/1")
        assert sample("http_requests_total", {"service": "demo", "route": "/things/{id}", "method": "OTHER",
                                              "status": "405"}, app) == 1

    def test_separate_registries_per_app(self, app):
        other = App("other")
        call(app, "GET", "/healthz")
        assert sample("http_requests_total", {"service": "demo", "route": "/healthz", "method": "GET",
                                              "status": "200"}, other) is None


class TestJsonLogging:
    def test_lines_are_json_with_fields(self):
        stream = io.StringIO()
        logger = configure_logging("demo", "DEBUG", stream=stream)
        try:
            token = request_id_var.set("rid-1")
            try:
                logger.info("hello %s", "world", extra={"user_id": 7})
            finally:
                request_id_var.reset(token)
            try:
                raise ValueError("bad")
            except ValueError:
                logger.exception("failed")
        finally:
            logging.getLogger().handlers.clear()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert len(lines) == 2
        first, second = lines
        assert first["msg"] == "hello world" and first["level"] == "info" and first["service"] == "demo"
        assert first["user_id"] == 7 and first["request_id"] == "rid-1" and first["ts"].endswith("Z")
        assert second["level"] == "error" and "ValueError: bad" in second["exc"]
        assert "request_id" not in second

    def test_access_log_record(self, app):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter("demo"))
        access = logging.getLogger("demo.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        try:
            call(app, "GET", "/things/9", headers={"X-Request-ID": "r-9"})
        finally:
            access.removeHandler(handler)
        record = json.loads(stream.getvalue().splitlines()[-1])
        assert record["route"] == "/things/{id}" and record["path"] == "/things/9"
        assert record["status"] == 200 and record["request_id"] == "r-9" and record["duration_ms"] >= 0


class TestConfig:
    def test_server_defaults(self):
        cfg = ServerConfig.from_env({})
        assert cfg.port == 8080 and cfg.host == "0.0.0.0" and cfg.shutdown_timeout == 10.0

    def test_server_from_env(self):
        cfg = ServerConfig.from_env({"PORT": "9000", "LOG_LEVEL": "debug", "SHUTDOWN_TIMEOUT_SECONDS": "2.5"})
        assert (cfg.port, cfg.log_level, cfg.shutdown_timeout) == (9000, "DEBUG", 2.5)

    @pytest.mark.parametrize("env", [{"PORT": "http"}, {"PORT": "70000"}, {"SHUTDOWN_TIMEOUT_SECONDS": "-1"}])
    def test_invalid_values(self, env):
        with pytest.raises(ConfigError):
            ServerConfig.from_env(env)

    def test_db_config_and_secret_not_in_repr(self):
        cfg = DBConfig.from_env(default_database="users", environ={
            "MYSQL_HOST": "db", "MYSQL_PORT": "3307", "MYSQL_USER": "u", "MYSQL_PASSWORD": "s3cret"})
        assert (cfg.host, cfg.port, cfg.user, cfg.database, cfg.password) == ("db", 3307, "u", "users", "s3cret")
        assert "s3cret" not in repr(cfg)
        assert cfg.ssl_ca is None and cfg.connect_retries == 0  # TLS "preferred", retry forever

    def test_db_config_defaults_and_tuning(self):
        cfg = DBConfig.from_env(default_database="orders", default_user="order_svc", environ={
            "MYSQL_POOL_SIZE": "8", "MYSQL_CONNECT_RETRIES": "3", "MYSQL_SSL_CA": "/etc/ca.pem"})
        assert (cfg.host, cfg.port, cfg.user, cfg.database) == ("127.0.0.1", 3306, "order_svc", "orders")
        assert (cfg.pool_size, cfg.connect_retries, cfg.ssl_ca) == (8, 3, "/etc/ca.pem")

    def test_secret_from_file(self, tmp_path):
        secret = tmp_path / "pw"
        secret.write_text("from-file\n")
        assert env_secret("MYSQL_PASSWORD", environ={"MYSQL_PASSWORD_FILE": str(secret),
                                                      "MYSQL_PASSWORD": "ignored"}) == "from-file"

    def test_bool_and_int(self):
        assert env_bool("X", False, environ={"X": "yes"}) is True
        assert env_int("X", 3, environ={"X": ""}) == 3
        with pytest.raises(ConfigError):
            env_bool("X", False, environ={"X": "maybe"})


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/slow":
            threading.Event().wait(1.0)
        body = b'{"ok": true}' if self.path != "/text" else b"not json"
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestServiceClient:
    def test_ok_and_http_error_statuses(self, upstream_url):
        client = ServiceClient("up", upstream_url, timeout=2)
        assert client.get("/fast").body == {"ok": True}
        missing = client.get("/missing")
        assert missing.status == 404 and not missing.ok

    def test_timeout(self, upstream_url):
        client = ServiceClient("up", upstream_url, timeout=0.2)
        with pytest.raises(UpstreamTimeout):
            client.get("/slow")

    def test_unreachable_and_garbage(self, upstream_url):
        with pytest.raises(UpstreamError) as info:
            ServiceClient("up", f"http://127.0.0.1:{free_port()}", timeout=1).get("/x")
        assert not isinstance(info.value, UpstreamTimeout)
        with pytest.raises(UpstreamError, match="invalid JSON"):
            ServiceClient("up", upstream_url, timeout=1).get("/text")

    def test_bad_base_url(self):
        with pytest.raises(ConfigError):
            ServiceClient("up", "user:8080", timeout=1)

    def test_propagates_request_id_and_records_metrics(self, upstream_url):
        app = App("demo")
        client = ServiceClient("up", upstream_url, timeout=2, metrics=app.metrics)
        seen = {}
        orig = _Slow.do_GET

        def spy(handler):
            seen["rid"] = handler.headers.get("X-Request-ID")
            orig(handler)

        _Slow.do_GET = spy
        try:
            token = request_id_var.set("trace-1")
            try:
                client.get("/fast")
            finally:
                request_id_var.reset(token)
        finally:
            _Slow.do_GET = orig
        assert seen["rid"] == "trace-1"
        assert app.metrics.registry.get_sample_value(
            "upstream_requests_total", {"service": "demo", "upstream": "up", "method": "GET", "status": "200"}) == 1


def test_http_error_defaults():
    err = HTTPError(409, "dup")
    assert err.code == "conflict" and err.status == 409


def test_request_id_with_newline_is_rejected(app):
    _, _, resp = call(app, "GET", "/healthz", headers={"X-Request-ID": "abc\n"})
    assert resp.headers["X-Request-ID"] != "abc\n" and "\n" not in resp.headers["X-Request-ID"]
