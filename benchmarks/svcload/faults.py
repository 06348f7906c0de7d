"""Faults under load (the database stopped and frozen, payment killed and frozen) and malformed requests."""
from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable

from services.tests.mariadb import MariaDB

from .load import Results, run_load
from .phases import progress
from .stack import Service, get


def fault_phase(svc: dict[str, Service], results: Results, users: list[int], name: str,
                inject: Callable[[], dict | None], heal: Callable[[], None], seconds: float = 3) -> dict:
    """Background load (c=16, retries) while ``inject``; ``heal`` after ``seconds``."""
    load = threading.Thread(target=run_load, args=(svc["order"].port, results, name, 16, seconds + 4, users))
    load.start()
    time.sleep(1)
    info = inject() or {}
    time.sleep(seconds)
    heal()
    load.join()
    row = {"fault": name, **info, "statuses": dict(results.statuses.get(name, {}))}
    progress(json.dumps(row))
    return row


def faults(svc: dict[str, Service], db: MariaDB, results: Results, users: list[int]) -> list[dict]:
    def readyz_while_frozen() -> dict:
        before, _ = get(svc["user"].port, "/readyz", timeout=10)
        db.freeze()
        time.sleep(1.5)  # pooled connections are stuck; the probe must still answer in time
        t0 = time.perf_counter()
        status, _ = get(svc["user"].port, "/readyz", timeout=10)
        return {"readyz_before": before, "readyz_status": status, "readyz_s": round(time.perf_counter() - t0, 3)}

    def restart_payment() -> None:
        assert svc["payment"].proc is not None
        svc["payment"].proc.wait(5)
        svc["payment"].start()
        svc["payment"].wait_ready()

    return [
        fault_phase(svc, results, users, "db-stopped", db.stop_server, db.start_server),
        fault_phase(svc, results, users, "db-frozen", readyz_while_frozen, db.thaw),
        fault_phase(svc, results, users, "payment-killed", lambda: svc["payment"].signal(signal.SIGKILL),
                    restart_payment, seconds=1),
        fault_phase(svc, results, users, "payment-frozen", lambda: svc["payment"].signal(signal.SIGSTOP),
                    lambda: svc["payment"].signal(signal.SIGCONT), seconds=4),
    ]


MALFORMED = [  # (raw request, expected status)
    (b"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{deep}", 400),
    (b"POST {path} HTTP/1.1\r\nContent-Length: {m}\r\n\r\n{huge}", 400),
    (b"POST {path} HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"quantity\": NaN}", 400),
    (b"POST {path} HTTP/1.1\r\nContent-Length: 9\r\n\r\n{not json", 400),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
    (b"BREW /healthz HTTP/1.1\r\n\r\n", 501),
    (b"POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"POST {path} HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
    (b"POST {path} HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n", 413),
]
PATHS = {"user": "/users", "product": "/products/P-1001/reserve", "payment": "/payments", "order": "/orders"}


def raw(port: int, data: bytes) -> tuple[int, bool]:
    """Send ``data`` as is; (status, JSON body?) of the answer (read up to its Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the server answered and closed before reading everything
            pass
        reply = b""
        while b"\r\n\r\n" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    try:
        json.loads(body)
        is_json = b"application/json" in head
    except ValueError:
        is_json = False
    return int(head.split()[1]), is_json


def requests_total(port: int) -> float:
    _, text = get(port, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in str(text).splitlines()
               if line.startswith("http_requests_total{"))


def malformed_phase(svc: dict[str, Service]) -> dict:
    deep = b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    huge = b'{"quantity": 1' + b"0" * 5000 + b"}"
    wrong, sent, counted = [], 0, 0.0
    for name, path in PATHS.items():
        port = svc[name].port
        before = requests_total(port)
        for template, expected in MALFORMED:
            data = (template.replace(b"{path}", path.encode()).replace(b"{n}", str(len(deep)).encode())
                    .replace(b"{deep}", deep).replace(b"{m}", str(len(huge)).encode()).replace(b"{huge}", huge))
            status, is_json = raw(port, data)
            sent += 1
            if status != expected or not is_json:
                wrong.append(f"{name}: {template[:30]!r} -> {status} json={is_json}")
        counted += requests_total(port) - before - 1  # minus the first scrape itself
    return {"sent": sent, "counted": int(counted), "wrong": wrong}
