"""Latency and throughput phases (with the CPU each process spent per order) and duplicate orders."""
from __future__ import annotations

import json
import signal
import sys
import threading
import time

from services.tests.mariadb import MariaDB

from .load import Client, Results, pct, run_load, server_durations
from .stack import Service, cpu_seconds, process_pids

_T0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_ms_per_order(pids: dict[str, int], before: dict[str, float], orders: int) -> dict[str, float]:
    """CPU milliseconds each process spent per order since ``before``."""
    now = cpu_snapshot(pids)
    return {name: round((now[name] - before[name]) * 1000 / max(orders, 1), 3) for name in pids}


def latency_phases(svc: dict[str, Service], db: MariaDB, results: Results, users: list[int],
                   duration: float) -> list[dict]:
    port, rows = svc["order"].port, []
    run_load(port, results, "warmup", 8, 3, users)
    pids = process_pids(svc, db)
    for phase, concurrency, seconds in (("c1", 1, min(duration, 5)), ("c16", 16, duration), ("c64", 64, duration)):
        before = cpu_snapshot(pids)
        wall = run_load(port, results, phase, concurrency, seconds, users)
        lat = results.latency.get(phase, [])
        server = server_durations(svc["order"].log, phase)
        rows.append({"phase": phase, "concurrency": concurrency, "orders": len(lat),
                     "orders_per_s": len(lat) / wall, "p50_ms": pct(lat, .5) * 1e3, "p95_ms": pct(lat, .95) * 1e3,
                     "p99_ms": pct(lat, .99) * 1e3, "server_p50_ms": pct(server, .5) * 1e3,
                     "cpu_ms_per_order": cpu_ms_per_order(pids, before, len(lat)),
                     "statuses": dict(results.statuses.get(phase, {}))})
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
