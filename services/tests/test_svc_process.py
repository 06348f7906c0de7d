"""The services as real processes: startup, JSON logs on stdout, graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import textwrap
import threading
import time

import pytest

from services.tests.helpers import ServiceProcess, free_port, http, service_script, wait_until

# user/order/payment point at a port where no database listens: they must stay live (not ready)
# while retrying, and still shut down promptly.
DB_SERVICES = ("user", "order", "payment")
NO_DB = {"MYSQL_HOST": "127.0.0.1", "MYSQL_CONNECT_TIMEOUT_SECONDS": "0.5",
         "MYSQL_CONNECT_BACKOFF_SECONDS": "0.1", "MYSQL_PASSWORD": "unused"}


@pytest.mark.parametrize("name", ["user", "product", "order", "payment"])
def test_sigterm_graceful_exit_and_json_logs(name):
    env = {**NO_DB, "MYSQL_PORT": str(free_port())} if name in DB_SERVICES else {}
    svc = ServiceProcess(service_script(name), env)
    try:
        svc.wait_listening()
        assert http("GET", svc.url + "/healthz")[:2] == (200, {"status": "ok", "service": name})
        status, body, _ = http("GET", svc.url + "/readyz")
        if name in DB_SERVICES:
            assert status == 503 and body["checks"]["database"].startswith("error:")
        else:
            assert status == 200
        assert http("GET", svc.url + "/nope")[0] == 404
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.proc.wait(timeout=5) == 0
    finally:
        svc.stop()
    records = svc.json_lines()  # every stdout line must be a JSON object
    assert all(isinstance(r, dict) and r["service"] == name for r in records)
    messages = [r["msg"] for r in records]
    assert "listening" in messages and "shutdown complete" in messages
    access = [r for r in records if r["logger"] == f"{name}.access"]
    assert any(r["path"] == "/nope" and r["status"] == 404 for r in access)


SLOW_SERVICE = textwrap.dedent("""
    import sys, threading
    from svc_common import App, run_service

    def build():
        app = App("slow")

        @app.route("GET", "/slow")
        def slow(req):
            threading.Event().wait(1.0)
            return {"done": True}
        return app

    sys.exit(run_service("slow", build))
""")


def test_in_flight_request_finishes_after_sigterm(tmp_path):
    script = tmp_path / "slow_app.py"
    script.write_text(SLOW_SERVICE)
    svc = ServiceProcess(script, name="slow").wait_listening()
    result = {}

    def client():
        try:
            result["response"] = http("GET", svc.url + "/slow", timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["response"] = exc

    thread = threading.Thread(target=client)
    try:
        thread.start()
        wait_until(lambda: _in_flight(svc), 5, message="request in flight")
        started = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.proc.wait(timeout=5) == 0
        thread.join(5)
    finally:
        svc.stop()
    assert not isinstance(result.get("response"), Exception), result["response"]
    status, body, _ = result["response"]
    assert (status, body) == (200, {"done": True})
    assert time.monotonic() - started < 5
    records = svc.json_lines()
    start = next(r for r in records if r["msg"] == "shutdown started")
    assert start["reason"] == "SIGTERM" and start["in_flight"] >= 1  # the /slow request
    assert next(r for r in records if r["msg"] == "shutdown complete")["drained"] is True


def _in_flight(svc) -> bool:
    text = http("GET", svc.url + "/metrics")[1]
    return 'http_requests_in_flight{service="slow"} 2.0' in text  # /slow + this scrape


def test_readiness_fails_during_shutdown_delay():
    svc = ServiceProcess(service_script("product"), {"SHUTDOWN_DELAY_SECONDS": "1"}).wait_listening()
    try:
        assert http("GET", svc.url + "/readyz")[0] == 200
        svc.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: http("GET", svc.url + "/readyz", timeout=1)[0] == 503, 2, message="draining")
        assert http("GET", svc.url + "/healthz")[0] == 200
        assert svc.proc.wait(timeout=5) == 0
    finally:
        svc.stop()


def test_invalid_config_exits_2_with_json_error():
    svc = ServiceProcess(service_script("payment"), {"PORT": "not-a-port"})
    assert svc.proc.wait(timeout=10) == 2
    svc.stop()
    record = json.loads(svc.lines[-1])
    assert record["level"] == "error" and "PORT" in record["error"]


def test_port_in_use_exits_1_with_json_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        svc = ServiceProcess(service_script("product"), {"PORT": str(busy.getsockname()[1])})
        assert svc.proc.wait(timeout=10) == 1
        svc.stop()
    record = json.loads(svc.lines[-1])
    assert record["msg"] == "cannot listen" and record["level"] == "error"
