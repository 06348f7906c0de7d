"""What the four services really use at dev scale: peak RSS and mean CPU per process under a light load.

    python benchmarks/service_usage.py [--seconds 30] [--rps 20] [--mysql-port PORT] [--mysqld-arg ARG ...]

Starts user, product, payment and order as processes (``python services/<name>/app.py``, the image's
entrypoint) wired to each other like in the cluster, user/payment/order on a MySQL-compatible server: the one
on ``--mysql-port`` (user ``app``/``MYSQL_PASSWORD``, databases ``users``/``payments``/``orders``), or a throwaway
``mysqld`` started here when the binary exists (server defaults plus ``--mysqld-arg``s, e.g.
``--mysqld-arg=--performance-schema=ON``); without either, they run without a database
(readiness fails, the figures are then of the retry loop, and say so). Load: ``--rps`` requests per
second to each service (its read endpoint, ``/healthz``, ``/readyz``, ``/metrics``; order creates
orders, which call the three others), for ``--seconds``. Prints per process the RSS before the load,
the peak RSS (``VmHWM``) and the mean CPU in millicores over the load: the figures the dev tier's
service requests are set from (docs/footprint.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.tests.helpers import ServiceProcess, free_port, http, service_script  # noqa: E402

PASSWORD = "dev-usage"
#: The services with a database, and its name (as in Pulumi.dev.yaml).
DATABASES = {"user": "users", "payment": "payments", "order": "orders"}


def proc_usage(pid: int) -> tuple[int, int, float]:
    """(RSS MiB, peak RSS MiB, CPU seconds) of a process."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return int(status["VmRSS"].split()[0]) // 1024, int(status["VmHWM"].split()[0]) // 1024, cpu


def start_mysqld(workdir: Path, extra: list[str]) -> tuple[subprocess.Popen, int] | None:
    """A throwaway mysqld (defaults of the server, like the image's) with the two databases."""
    mysqld, install = shutil.which("mysqld"), shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not mysqld or not install or not shutil.which("mysql"):
        return None
    data, sock, port = workdir / "data", workdir / "mysqld.sock", free_port()
    subprocess.run([install, f"--datadir={data}", "--user=root", "--auth-root-authentication-method=normal"],
                   check=True, capture_output=True)
    proc = subprocess.Popen([mysqld, f"--datadir={data}", f"--socket={sock}", f"--port={port}", "--user=root",
                             "--bind-address=127.0.0.1", "--skip-name-resolve", f"--pid-file={workdir / 'pid'}",
                             *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sql = (f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}';"
           + "".join(f"CREATE DATABASE {db}; GRANT ALL ON {db}.* TO 'app'@'%';" for db in DATABASES.values()))
    for _ in range(100):
        if subprocess.run(["mysql", "-uroot", f"--socket={sock}", "-e", sql], capture_output=True).returncode == 0:
            return proc, port
        time.sleep(0.2)
    proc.terminate()
    return None


def start_services(mysql_port: int | None) -> dict[str, ServiceProcess]:
    db = ({"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(mysql_port), "MYSQL_USER": "app", "MYSQL_PASSWORD": PASSWORD}
          if mysql_port else {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(free_port()), "MYSQL_PASSWORD": "unused"})
    svcs = {name: ServiceProcess(service_script(name), {**db, "MYSQL_DATABASE": DATABASES[name]} if name in DATABASES
                                 else {}) for name in ("product", "payment", "user")}
    for s in svcs.values():
        s.wait_listening()
    urls = {f"{n.upper()}_SERVICE_URL": s.url for n, s in svcs.items()}
    svcs["order"] = ServiceProcess(service_script("order"), {**db, "MYSQL_DATABASE": DATABASES["order"], **urls})
    svcs["order"].wait_listening()
    return svcs


def load(svcs: dict[str, ServiceProcess], seconds: float, rps: float) -> tuple[int, int]:
    """``rps`` requests per second to each service, round robin over its paths; returns (requests
    sent to each service, orders created)."""
    status, user, _ = http("POST", svcs["user"].url + "/users", {"name": "dev", "email": "dev@example.com"})
    user_id = user.get("id", 1) if status == 201 and isinstance(user, dict) else 1
    products = http("GET", svcs["product"].url + "/products")[1]
    product_id = products["products"][0]["id"]
    paths = {"user": [("GET", f"/users/{user_id}")], "product": [("GET", "/products")],
             "payment": [("GET", "/payments/1")],
             "order": [("POST", "/orders", {"user_id": user_id, "product_id": product_id, "quantity": 1})]}
    common = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")]
    sent, created, start = 0, 0, time.monotonic()
    while time.monotonic() - start < seconds:
        tick = time.monotonic()
        for name, svc in svcs.items():
            route = (paths[name] + common)[sent % 4]
            try:
                created += http(route[0], svc.url + route[1], *(route[2:]), timeout=2)[0] == 201
            except OSError:
                pass
        sent += 1
        time.sleep(max(0.0, 1 / rps - (time.monotonic() - tick)))
    return sent, created


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rps", type=float, default=20)
    ap.add_argument("--mysql-port", type=int)
    ap.add_argument("--mysqld-arg", action="append", default=[])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        mysqld = None if args.mysql_port else start_mysqld(Path(tmp), args.mysqld_arg)
        port = args.mysql_port or (mysqld[1] if mysqld else None)
        svcs = start_services(port)
        try:
            time.sleep(3)
            procs = {n: s.proc.pid for n, s in svcs.items()} | ({"mysqld": mysqld[0].pid} if mysqld else {})
            before = {n: proc_usage(pid) for n, pid in procs.items()}
            t0 = time.monotonic()
            sent, created = load(svcs, args.seconds, args.rps)
            elapsed = time.monotonic() - t0
            after = {n: proc_usage(pid) for n, pid in procs.items()}
        finally:
            for s in svcs.values():
                s.stop()
            if mysqld:
                mysqld[0].terminate()
                mysqld[0].wait(10)
    print(f"database: {'mysqld on port %d' % port if port else 'none (user/payment/order not ready: retry loop)'}; "
          f"{sent / elapsed:.1f} req/s to each service for {elapsed:.0f} s, {created} orders created")
    print(f"{'process':<8} {'RSS MiB':>8} {'peak MiB':>9} {'CPU m':>7}")
    for name in procs:
        rss0, _, cpu0 = before[name]
        _, peak, cpu1 = after[name]
        print(f"{name:<8} {rss0:>8} {peak:>9} {1000 * (cpu1 - cpu0) / elapsed:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
