"""Test helpers: in-process calls, HTTP calls, running services as subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVICES_DIR = Path(__file__).resolve().parent.parent
COMMON_DIR = SERVICES_DIR / "common"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(app, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
    """Call ``App.handle`` in-process; returns (status, parsed JSON body or None, Response)."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    resp = app.handle(method, path, headers or {}, raw)
    parsed = None
    if resp.body and resp.content_type.startswith("application/json"):
        parsed = json.loads(resp.body)
    return resp.status, parsed, resp


def http(method: str, url: str, body: Any = None, timeout: float = 5.0, headers: dict[str, str] | None = None):
    """Real HTTP request (no proxy); returns (status, parsed JSON or text, response headers)."""
    data = None if body is None else json.dumps(body).encode()
    req_headers = {"Content-Type": "application/json"} if data else {}
    req_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=req_headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), exc.headers
    text = raw.decode()
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(text), headers
    return status, text, headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {message} (last error: {last_exc})")


class ServiceProcess:
    """A service started as ``python <script>`` with PORT=0; the port is read from its
    ``listening`` JSON log line."""

    def __init__(self, script: Path | str, env: dict[str, str] | None = None, name: str | None = None):
        self.script = Path(script)
        self.name = name or self.script.parent.name
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "MYSQL_"))}
        full_env.update({"PYTHONPATH": str(COMMON_DIR), "PORT": "0", "HOST": "127.0.0.1",
                         "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
        full_env.update(env or {})
        self.lines: list[str] = []
        self.port: int | None = None
        self._listening = threading.Event()
        self.proc = subprocess.Popen([sys.executable, str(self.script)], env=full_env, cwd=str(SERVICES_DIR),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if self.port is None:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("msg") == "listening":
                    self.port = int(record["port"])
                    self._listening.set()

    def wait_listening(self, timeout: float = 10.0) -> "ServiceProcess":
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start (rc={self.proc.poll()}):\n" + self.output())
        return self

    def wait_ready(self, timeout: float = 15.0) -> "ServiceProcess":
        self.wait_listening(timeout)
        try:
            wait_until(lambda: http("GET", self.url + "/readyz", timeout=2)[0] == 200, timeout,
                       message=f"{self.name} /readyz")
        except TimeoutError:
            raise RuntimeError(f"{self.name} never became ready:\n" + self.output()) from None
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.strip()]

    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        return self.proc.returncode


def service_script(name: str) -> Path:
    return SERVICES_DIR / name / "app.py"
