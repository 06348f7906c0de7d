"""MariaDB and the four services as real processes on loopback, and their CPU counters."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from services.tests.mariadb import MariaDB

ROOT = Path(__file__).resolve().parents[2]
STOCK = 10**9
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, name: str, env: dict[str, str], logdir: Path) -> None:
        self.name, self.port = name, free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "services" / "common"), "PORT": str(self.port),
                    "HOST": "127.0.0.1", "PYTHONDONTWRITEBYTECODE": "1", "LOG_LEVEL": "INFO", **env}
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "services" / self.name / "app.py")],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if get(self.port, "/readyz", timeout=2)[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready; see {self.log}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def get(port: int, path: str, timeout: float = 5) -> tuple[int | None, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        conn.close()


def start_stack(db: MariaDB, tmp: Path) -> dict[str, Service]:
    catalog = tmp / "catalog.json"
    catalog.write_text(json.dumps([{"id": "P-1001", "name": "Espresso cup", "price_cents": 1299, "currency": "EUR",
                                    "stock": STOCK}]))
    common = {"MYSQL_CONNECT_BACKOFF_SECONDS": "0.1", "MYSQL_CONNECT_BACKOFF_MAX_SECONDS": "0.5",
              "MYSQL_CONNECT_TIMEOUT_SECONDS": "2"}
    envs = {name: {**common, **db.env(database, user, db.create_database(database, user))}
            for name, database, user in (("user", "users", "user_svc"), ("order", "orders", "order_svc"),
                                         ("payment", "payments", "payment_svc"))}
    svc = {"product": Service("product", {"PRODUCT_CATALOG_FILE": str(catalog)}, tmp),
           "user": Service("user", envs["user"], tmp), "payment": Service("payment", envs["payment"], tmp)}
    svc["order"] = Service("order", {
        **envs["order"], "UPSTREAM_TIMEOUT_SECONDS": "1", "ORDER_PENDING_TIMEOUT_SECONDS": "5",
        "ORDER_RECONCILE_INTERVAL_SECONDS": "0.5",
        **{f"{n.upper()}_SERVICE_URL": f"http://127.0.0.1:{svc[n].port}" for n in ("user", "product", "payment")}},
        tmp)
    for s in svc.values():
        s.wait_ready()
    return svc


def create_users(port: int, n: int) -> list[int]:
    ids = []
    for i in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/users", body=json.dumps({"name": f"u{i}", "email": f"u{i}@example.org"}),
                     headers={"Content-Type": "application/json", "Idempotency-Key": f"user-{i}"})
        ids.append(json.loads(conn.getresponse().read())["id"])
        conn.close()
    return ids


def process_pids(svc: dict[str, Service], db: MariaDB) -> dict[str, int]:
    """Every process that works for an order: the services, MariaDB and this load generator."""
    pids = {name: s.proc.pid for name, s in svc.items() if s.proc is not None}
    if db.proc is not None:
        pids["mariadb"] = db.proc.pid
    pids["client"] = os.getpid()
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc; NaN where there is none."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
