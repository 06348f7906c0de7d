"""The HTTP layer over real sockets (issue 22 items 5, 8, 9, 10) and the keep-alive client."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import threading

import pytest
from svc_common import App, ServerConfig, ServiceClient
from svc_common.server import _Server, make_handler

from services.tests.fakes import FakeClient, FakeOrderRepo, FakePaymentRepo, FakeUserRepo
from services.tests.helpers import call


class _CountingWriter(io.RawIOBase):
    def __init__(self, raw):
        self.raw, self.writes = raw, []

    def writable(self):
        return True

    def write(self, data):
        self.writes.append(bytes(data))
        return self.raw.write(data)


def demo_app() -> App:
    app = App("demo")

    @app.route("GET", "/hello")
    def hello(_req):
        return {"hello": "world" * 50}

    return app


@pytest.fixture
def server():
    """The service server on a free port; yields (app, port, seen) where ``seen`` records, per
    connection, the writes of each response and TCP_NODELAY."""
    app = demo_app()
    base = make_handler(app, ServerConfig(request_timeout=5))
    seen: list[dict] = []

    class Recording(base):
        def setup(self):
            super().setup()
            self.record = {"nodelay": self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                           "writer": _CountingWriter(self.wfile)}
            self.wfile = self.record["writer"]
            seen.append(self.record)

    srv = _Server(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield app, srv.server_address[1], seen
    srv.shutdown()
    srv.server_close()


# -- item 5: one write per response, TCP_NODELAY, on a keep-alive connection ----------------------------
def test_keep_alive_responses_are_one_write_each_without_nagle(server):
    app, port, seen = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/hello")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["hello"].startswith("world")
        assert not resp.will_close
    conn.close()
    assert len(seen) == 1  # one connection for the three requests
    record = seen[0]
    assert record["nodelay"] != 0
    assert len(record["writer"].writes) == 3  # status line + headers + body together, once per response
    assert all(w.startswith(b"HTTP/1.1 200") and w.endswith(b"}") for w in record["writer"].writes)


# -- item 10: refused before routing: JSON errors, counted, logged ------------------------------------
def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


REJECTED = [
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long", "OTHER"),
    (b"GET /hello HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431, "headers_too_large", "GET"),
    (b"GET /hello HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431,
     "headers_too_large", "GET"),
    (b"BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented", "OTHER"),
    (b"GET /hello HTTP/9.x\r\n\r\n", 400, "bad_request", "OTHER"),
    (b"POST /hello HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "length_required", "POST"),
    (b"POST /hello HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400, "bad_request", "POST"),
    (b"POST /hello HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, "payload_too_large", "POST"),
]


@pytest.mark.parametrize("data, status, code, method", REJECTED,
                         ids=["414", "431-line", "431-count", "501", "400-version", "411", "400-length", "413"])
def test_rejected_before_routing_is_json_counted_and_logged(server, caplog, data, status, code, method):
    app, port, _ = server
    with caplog.at_level(logging.INFO, logger="demo.access"):
        got, headers, body = raw_exchange(port, data)
    assert got == status and headers["Content-Type"] == "application/json"
    assert body["error"]["code"] == code and body["request_id"] == headers["X-Request-ID"]
    assert headers["Connection"] == "close"
    assert app.metrics.registry.get_sample_value("http_requests_total", {
        "service": "demo", "route": "<unmatched>", "method": method, "status": str(status)}) == 1
    access = [r for r in caplog.records if r.name == "demo.access"]
    assert [(r.status, r.route) for r in access] == [(status, "<unmatched>")]
    assert len(access[0].path) <= 256


# -- item 8: nesting and integer bombs are 400 on every service ---------------------------------------
def four_apps():
    from svc_common import UpstreamResponse

    from services.order.app import Upstreams
    from services.order.app import create_app as order_app
    from services.payment.app import create_app as payment_app
    from services.product.app import Catalog, default_catalog
    from services.product.app import create_app as product_app
    from services.user.app import create_app as user_app

    up = Upstreams(*(FakeClient(n, {("GET", "/users/1"): UpstreamResponse(200, {})}) for n in
                     ("user", "product", "payment")))
    return [(user_app(FakeUserRepo()), "/users"), (product_app(Catalog(default_catalog())), "/products/P-1001/reserve"),
            (payment_app(FakePaymentRepo(), 10_000), "/payments"), (order_app(FakeOrderRepo(), up), "/orders")]


BOMBS = {
    "deep nesting": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep nesting (objects)": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "huge integer": b'{"quantity": 1' + b"0" * 5000 + b"}",
    "long integer": b'{"quantity": ' + b"9" * 60 + b"}",
    "NaN": b'{"quantity": NaN}',
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_malformed_bodies_are_400_everywhere(name):
    for app, path in four_apps():
        status, body, _ = call(app, "POST", path, BOMBS[name])
        assert status == 400, (app.service, name, body)
        assert body["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("service, payload, field", [
    ("payment", {"amount_cents": 2**64}, "amount_cents"),
    ("payment", {"amount_cents": 1, "user_id": 2**63}, "user_id"),
    ("order", {"user_id": 2**64, "product_id": "P-1", "quantity": 1}, "user_id"),
    ("product", {"quantity": 2**64}, "quantity"),
])
def test_integers_beyond_int64_are_validation_errors(service, payload, field):
    """Valid JSON, but beyond the BIGINT columns (they gave a database error, 500)."""
    app, path = next((a, p) for a, p in four_apps() if a.service == service)
    status, body, _ = call(app, "POST", path, payload)
    assert status == 400 and body["error"] == {"code": "validation_error", "message": body["error"]["message"],
                                               "details": {"field": field}}


# -- item 9: /readyz answers within its timeout while a dependency hangs -------------------------------
def test_readyz_answers_in_time_while_a_check_hangs():
    app = App("demo")  # answers within 1 s by default (READINESS_TIMEOUT_SECONDS)
    release = threading.Event()
    started = []

    def hanging():  # a frozen database: nothing comes back for a long time
        started.append(1)
        release.wait(5)

    app.add_readiness_check("database", hanging)
    try:
        for _ in range(2):
            status, body, _ = call(app, "GET", "/readyz")
            assert status == 503 and body["checks"]["database"] == "error: no answer within 1s"
        assert len(started) == 1  # the hanging check is not started again (no thread pile-up)
    finally:
        release.set()


# -- the keep-alive client -----------------------------------------------------------------------------
def test_client_reuses_connections_and_survives_a_closed_one(server):
    app, port, seen = server
    client = ServiceClient("demo", f"http://127.0.0.1:{port}", timeout=2)
    for _ in range(5):
        assert client.get("/hello").status == 200
    assert len(seen) == 1
    for conn, _ in client._idle:  # the server side went away (idle timeout, restart)
        conn.sock.shutdown(socket.SHUT_RDWR)
    assert client.get("/hello").status == 200 and len(seen) == 2
    client.close()
