"""Load and fault benchmark of the four e-commerce services (issue 22).

    .venv/bin/python benchmarks/services_load.py [--duration 15]

Starts a throwaway MariaDB and user/product/payment/order on loopback (real processes, JSON logs
to files), then:

1. keep-alive latency: one client, one connection; client p50 against the order service's own
   p50 (its access log's duration_ms for the same requests);
2. load: concurrency 16 and 64 for ``--duration`` seconds each; orders/s and p50/p95/p99;
3. duplicates: the same order (same Idempotency-Key) sent twice in a row, 8 times concurrently,
   and retried after a client timeout (0.5 s) while payment is frozen;
4. faults under load (concurrency 16, every client retries with its key until it gets 201):
   the database stopped and started, the database frozen (and /readyz timed meanwhile),
   payment killed -9 and restarted, payment frozen;
5. malformed requests to every service (nesting and integer bombs, 414/431/501/411/413/400):
   all JSON 4xx/501, and /metrics counts exactly what was sent;
6. after the reconciler settled everything, the databases: confirmed orders vs acknowledged,
   authorised payments vs confirmed orders, duplicates per key, orphan authorisations, stock.

Bounded: about 3 minutes with the default duration. Exit code 1 if a goal is missed.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "common")]

from services.tests.mariadb import MISSING, MariaDB, find_binaries  # noqa: E402

RETRY = {409, 500, 502, 503, 504, None}
STOCK = 10**9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_T0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the stack ----------------------------------------------------------------------------------
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


# -- the load generator ---------------------------------------------------------------------------
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
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", "/orders", body=body, headers=headers)
            resp = self.conn.getresponse()
            data = json.loads(resp.read() or b"{}")
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, data, dict(resp.getheaders())
        except (OSError, http.client.HTTPException, ValueError):
            self.conn.close()
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

    def worker(i: int) -> None:
        client = Client(port, results, timeout)
        while time.monotonic() < stop_at:
            with lock:
                n = next(counter)
            client.place(phase, f"{phase}-{n}", users[n % len(users)])

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
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


# -- phases ---------------------------------------------------------------------------------------
def create_users(port: int, n: int) -> list[int]:
    ids = []
    for i in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/users", body=json.dumps({"name": f"u{i}", "email": f"u{i}@example.org"}),
                     headers={"Content-Type": "application/json", "Idempotency-Key": f"user-{i}"})
        ids.append(json.loads(conn.getresponse().read())["id"])
        conn.close()
    return ids


def latency_phases(svc: dict[str, Service], results: Results, users: list[int], duration: float) -> list[dict]:
    port, rows = svc["order"].port, []
    run_load(port, results, "warmup", 8, 3, users)
    for phase, concurrency, seconds in (("c1", 1, min(duration, 5)), ("c16", 16, duration), ("c64", 64, duration)):
        wall = run_load(port, results, phase, concurrency, seconds, users)
        lat = results.latency.get(phase, [])
        server = server_durations(svc["order"].log, phase)
        rows.append({"phase": phase, "concurrency": concurrency, "orders": len(lat), "orders_per_s": len(lat) / wall,
                     "p50_ms": pct(lat, .5) * 1e3, "p95_ms": pct(lat, .95) * 1e3, "p99_ms": pct(lat, .99) * 1e3,
                     "server_p50_ms": pct(server, .5) * 1e3, "statuses": dict(results.statuses.get(phase, {}))})
        progress(json.dumps(rows[-1]))
    return rows


def duplicate_phases(svc: dict[str, Service], results: Results, users: list[int]) -> None:
    port = svc["order"].port
    for i in range(50):  # the same order twice in a row
        client = Client(port, results)
        client.place("dup-row", f"dup-row-{i}", users[0])
        client.place("dup-row", f"dup-row-{i}", users[0])
    for i in range(25):  # 8 concurrent repeats
        threads = [threading.Thread(target=Client(port, results).place, args=("dup-conc", f"dup-conc-{i}", users[1]))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # retried after a client timeout: payment frozen, the client gives up after 0.5 s and retries
    svc["payment"].signal(signal.SIGSTOP)
    threads = [threading.Thread(target=Client(port, results, timeout=0.5).place,
                                args=("dup-timeout", f"dup-timeout-{i}", users[2])) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(3)
    svc["payment"].signal(signal.SIGCONT)
    for t in threads:
        t.join()
    progress("duplicates: " + json.dumps({p: dict(results.statuses.get(p, {}))
                                          for p in ("dup-row", "dup-conc", "dup-timeout")}))


def fault_phase(svc: dict[str, Service], results: Results, users: list[int], name: str, inject, heal,
                seconds: float = 3) -> dict:
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
    wrong, sent, counted = [], 0, 0
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


# -- verification -----------------------------------------------------------------------------------
def settle(db: MariaDB, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with db.root("orders") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM orders WHERE status IN ('pending', 'cancelling')")
            left = cur.fetchone()["n"]
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def verify(db: MariaDB, svc: dict[str, Service], results: Results) -> dict:
    unsettled = settle(db)
    progress(f"settled ({unsettled} left)")
    digest = {hashlib.sha256(k.encode()).hexdigest()[:24]: k for k in results.keys}
    with db.root() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, reference, payment_id FROM orders.orders WHERE status = 'confirmed'")
        rows = cur.fetchall()
        confirmed = {r["id"]: r["reference"] for r in rows}
        cur.execute("SELECT status, COUNT(*) AS n FROM orders.orders GROUP BY status")
        order_statuses = {r["status"]: r["n"] for r in cur.fetchall()}
        cur.execute("SELECT status, COUNT(*) AS n FROM payments.payments GROUP BY status")
        payment_statuses = {r["status"]: r["n"] for r in cur.fetchall()}
        cur.execute("SELECT id, reference FROM payments.payments WHERE status = 'authorized'")
        authorised_rows = cur.fetchall()
    attached = {r["payment_id"] for r in rows}
    authorised_ids = {r["id"] for r in authorised_rows}
    authorised = [r["reference"] for r in authorised_rows]
    orphans = len(authorised_ids - attached)  # authorised, but no confirmed order points to it
    unpaid = len(attached - authorised_ids)  # confirmed, but its payment is not (or no longer) authorised
    per_key = Counter(digest.get(ref[4:28]) for ref in confirmed.values())
    paid_per_key = Counter(digest.get(ref[4:28]) for ref in authorised)
    lost = [k for k, order_id in results.acked.items() if order_id not in confirmed]
    _, product = get(svc["product"].port, "/products/P-1001")
    return {"acknowledged": len(results.acked), "orders_confirmed": len(confirmed), "order_rows": order_statuses,
            "payments": payment_statuses, "unsettled": unsettled, "lost_acknowledged": len(lost),
            "duplicate_orders": sum(n - 1 for k, n in per_key.items() if n > 1),
            "duplicate_payments": sum(n - 1 for k, n in paid_per_key.items() if n > 1),
            "orphan_authorisations": orphans, "confirmed_without_payment": unpaid,
            "stock_leaked": STOCK - product["stock"] - len(confirmed), "unresolved_clients": results.unresolved[:10],
            "unresolved_count": len(results.unresolved)}


# -- report -------------------------------------------------------------------------------------
def report(load: list[dict], fault_rows: list[dict], bad: dict, check: dict) -> bool:
    print(f"{'phase':<8} {'conc':>4} {'orders':>7} {'orders/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'server p50':>10}")
    for r in load:
        print(f"{r['phase']:<8} {r['concurrency']:>4} {r['orders']:>7} {r['orders_per_s']:>9.1f} {r['p50_ms']:>8.1f} "
              f"{r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['server_p50_ms']:>10.1f}")
    for f in fault_rows:
        print("fault", json.dumps(f))
    print("malformed", json.dumps(bad))
    print("database", json.dumps(check))
    c1 = next(r for r in load if r["phase"] == "c1")
    c64 = next(r for r in load if r["phase"] == "c64")
    frozen = next(f for f in fault_rows if f["fault"] == "db-frozen")
    goals = {
        "c64 >= 250 orders/s": c64["orders_per_s"] >= 250,
        "c64 p99 < 1 s": c64["p99_ms"] < 1000,
        "keep-alive p50 within 2x of the server's": c1["p50_ms"] <= 2 * c1["server_p50_ms"],
        "zero duplicates with a key": check["duplicate_orders"] == 0 and check["duplicate_payments"] == 0,
        "zero orphan authorisations": check["orphan_authorisations"] == 0 and check["confirmed_without_payment"] == 0,
        "zero acknowledged orders lost": check["lost_acknowledged"] == 0,
        "all attempts settled, no stock leaked": check["unsettled"] == 0 and check["stock_leaked"] == 0,
        "/readyz answers within 2 s with the DB frozen": frozen["readyz_status"] == 503 and frozen["readyz_s"] < 2,
        "malformed: JSON 4xx and counted exactly": not bad["wrong"] and bad["counted"] == bad["sent"],
    }
    for goal, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    return all(goals.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds of load at concurrency 16 and 64")
    args = parser.parse_args(argv)
    binaries = find_binaries()
    if binaries is None:
        print(MISSING, file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} CPUs, {sys.version.split()[0]}")
    db = MariaDB(*binaries)
    svc: dict[str, Service] = {}
    with tempfile.TemporaryDirectory(prefix="svc-load-") as tmp:
        try:
            db.start()
            svc = start_stack(db, Path(tmp))
            users = create_users(svc["user"].port, 20)
            results = Results()
            load = latency_phases(svc, results, users, args.duration)
            duplicate_phases(svc, results, users)
            fault_rows = faults(svc, db, results, users)
            bad = malformed_phase(svc)
            progress("malformed: " + json.dumps(bad))
            check = verify(db, svc, results)
            progress("verified")
            total = sum(sum(c.values()) for c in results.statuses.values())
            print(f"order requests sent: {total}")
            ok = report(load, fault_rows, bad, check)
        finally:
            for s in svc.values():
                s.stop()
            db.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
