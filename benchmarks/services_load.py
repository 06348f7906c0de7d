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

Each load phase also reports the CPU milliseconds every process (the four services, MariaDB and
this load generator) spent per order, from /proc: a figure that, unlike orders/s, does not depend on
how many cores the machine lends the run. The pieces live in ``benchmarks/svcload/``.

Bounded: about 3 minutes with the default duration. Exit code 1 if a goal is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "common")]

from benchmarks.svcload.faults import faults, malformed_phase  # noqa: E402
from benchmarks.svcload.load import Results  # noqa: E402
from benchmarks.svcload.phases import duplicate_phases, latency_phases, progress  # noqa: E402
from benchmarks.svcload.stack import Service, create_users, get, start_stack  # noqa: E402
from benchmarks.svcload.verify import verify  # noqa: E402
from services.tests.mariadb import MISSING, MariaDB, find_binaries  # noqa: E402


def goals(load: list[dict], fault_rows: list[dict], bad: dict, check: dict) -> dict[str, bool]:
    c1 = next(r for r in load if r["phase"] == "c1")
    c64 = next(r for r in load if r["phase"] == "c64")
    frozen = next(f for f in fault_rows if f["fault"] == "db-frozen")
    return {
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


def report(load: list[dict], fault_rows: list[dict], bad: dict, check: dict) -> bool:
    print(f"{'phase':<8} {'conc':>4} {'orders':>7} {'orders/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'server p50':>10} {'CPU ms/order':>12}")
    for r in load:
        print(f"{r['phase']:<8} {r['concurrency']:>4} {r['orders']:>7} {r['orders_per_s']:>9.1f} {r['p50_ms']:>8.1f} "
              f"{r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['server_p50_ms']:>10.1f} "
              f"{sum(r['cpu_ms_per_order'].values()):>12.2f}")
    for r in load:
        print(f"cpu ms/order {r['phase']}", json.dumps(r["cpu_ms_per_order"]))
    for f in fault_rows:
        print("fault", json.dumps(f))
    print("malformed", json.dumps(bad))
    print("database", json.dumps(check))
    verdicts = goals(load, fault_rows, bad, check)
    for goal, ok in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    return all(verdicts.values())


def product_stock(svc: dict[str, Service]) -> int:
    _, product = get(svc["product"].port, "/products/P-1001")
    assert isinstance(product, dict), product
    return int(product["stock"])


def run(db: MariaDB, tmp: Path, duration: float) -> bool:
    svc: dict[str, Service] = {}
    try:
        db.start()
        svc = start_stack(db, tmp)
        users = create_users(svc["user"].port, 20)
        results = Results()
        load = latency_phases(svc, db, results, users, duration)
        duplicate_phases(svc, results, users)
        fault_rows = faults(svc, db, results, users)
        bad = malformed_phase(svc)
        progress("malformed: " + json.dumps(bad))
        check = verify(db, lambda: product_stock(svc), results)
        progress("verified")
        print(f"order requests sent: {sum(sum(c.values()) for c in results.statuses.values())}")
        return report(load, fault_rows, bad, check)
    finally:
        for s in svc.values():
            s.stop()
        db.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds of load at concurrency 16 and 64")
    args = parser.parse_args(argv)
    binaries = find_binaries()
    if binaries is None:
        print(MISSING, file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} CPUs, {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="svc-load-") as tmp:
        ok = run(MariaDB(*binaries), Path(tmp), args.duration)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
