"""The load generator: closed-loop clients on keep-alive connections that retry with their key."""
from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path

RETRY = {409, 500, 502, 503, 504, None}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}  # phase -> seconds of each 201
        self.statuses: dict[str, Counter] = {}
        self.acked: dict[str, int] = {}  # key -> order id (201)
        self.unresolved: list[str] = []
        self.keys: set[str] = set()

    def record(self, phase: str, status: int | None, seconds: float) -> None:
        with self.lock:
            self.statuses.setdefault(phase, Counter())[status] += 1
            if status == 201:
                self.latency.setdefault(phase, []).append(seconds)


class Client:
    """One keep-alive connection; places an order and retries with the same key until it is settled."""

    def __init__(self, port: int, results: Results, timeout: float = 30) -> None:
        self.port, self.results, self.timeout = port, results, timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int | None, dict, dict]:
        conn = self.conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        self.conn = conn
        try:
            conn.request("POST", "/orders", body=body, headers=headers)
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
            if resp.will_close:
                conn.close()
                self.conn = None
            return resp.status, data, dict(resp.getheaders())
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()
            self.conn = None
            return None, {}, {}

    def place(self, phase: str, key: str, user_id: int, give_up: float = 90) -> None:
        body = json.dumps({"user_id": user_id, "product_id": "P-1001", "quantity": 1}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        with self.results.lock:
            self.results.keys.add(key)
        deadline, n = time.monotonic() + give_up, 0
        while True:
            n += 1
            headers["X-Request-ID"] = f"{phase}-{key}-{n}"
            t0 = time.perf_counter()
            status, data, resp_headers = self.post(body, headers)
            self.results.record(phase, status, time.perf_counter() - t0)
            if status == 201:
                with self.results.lock:
                    previous = self.results.acked.setdefault(key, data["id"])
                    if previous != data["id"]:
                        self.results.unresolved.append(f"{key}: two different orders acknowledged")
                return
            if status not in RETRY or time.monotonic() > deadline:
                with self.results.lock:
                    self.results.unresolved.append(f"{key}: {status} {data.get('error', {}).get('code')}")
                return
            time.sleep(min(float(resp_headers.get("Retry-After", 0.2)), 0.5))


def run_load(port: int, results: Results, phase: str, concurrency: int, seconds: float, users: list[int],
             timeout: float = 30) -> float:
    """Closed loop for ``seconds``; returns the wall time."""
    stop_at = time.monotonic() + seconds
    counter = iter(range(10**9))
    lock = threading.Lock()

    def worker() -> None:
        client = Client(port, results, timeout)
        while time.monotonic() < stop_at:
            with lock:
                n = next(counter)
            client.place(phase, f"{phase}-{n}", users[n % len(users)])

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def server_durations(log: Path, phase: str) -> list[float]:
    """duration_ms of the order service's access log lines of this phase's requests."""
    out = []
    prefix = f"{phase}-"
    with open(log) as fh:
        for line in fh:
            if prefix not in line or '"route":"/orders"' not in line:
                continue
            record = json.loads(line)
            if record.get("msg") == "request" and str(record.get("request_id", "")).startswith(prefix):
                out.append(record["duration_ms"] / 1000)
    return out
