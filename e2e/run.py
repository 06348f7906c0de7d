"""The e2e entry point: ``python -m e2e.run [--tier 1|2|all] [--keep] [--workdir DIR]``.

Builds nothing (``make e2e`` builds or reuses the tools first). For each tier it starts a fresh
simulated cluster (e2e/simcluster.py) in a work directory, runs the tier, and stops the cluster:
tier 2 gets an empty cluster of its own, as a first ``pulumi up`` on a new kind cluster would, and
tier 1's objects (applied outside Pulumi) cannot leak into tier 2's state or its destroy check.

The last line is always ``e2e tier1=ok|fail|skip tier2=ok|fail|blocked|skip up_s=.. preview_s=.. destroy_s=..``;
the exit status is non-zero when a tier that ran failed. ``blocked``: a provider the dev stack needs
cannot be built from the Go module proxy here (named on the ``tier2 blocked`` lines): nothing was
deployed, and nothing is claimed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parent.parent


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, (int, float)) else str(v))


def _with_cluster(name: str, base: Path, fn: Callable[[Any, Path], dict[str, Any]]) -> dict[str, Any]:
    from e2e.simcluster import SimCluster

    workdir = base / name
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    cluster = SimCluster(workdir / "cluster")
    try:
        cluster.start()
        print(f"[e2e] {name}: simulated cluster up in {time.monotonic() - t0:.1f}s ({cluster.server}, "
              f"logs {cluster.logs})", flush=True)
        return fn(cluster, workdir)
    finally:
        cluster.stop()


def run_tier1(base: Path) -> dict[str, Any]:
    from e2e import tier1
    return _with_cluster("tier1", base, tier1.run)


def run_tier2(base: Path) -> Optional[dict[str, Any]]:
    try:
        tier2 = importlib.import_module("e2e.tier2")
    except ImportError as e:
        print(f"[e2e] tier2: e2e.tier2 not importable ({e})", flush=True)
        return None
    return _with_cluster("tier2", base, tier2.run)


def summarize_tier1(res: dict[str, Any]) -> None:
    print(f"[e2e] tier1: {res.get('objects')} objects applied in {res.get('waves')} waves, "
          f"{len(res.get('rejected', []))} rejected, {len(res.get('unavailable', []))} of {res.get('workloads')} "
          f"workloads/services not available, {len(res.get('second_apply_changed', []))} changed by the second apply, "
          f"{res.get('webhook_calls')} webhook calls answered ({len(res.get('webhook_denials', []))} denied); "
          f"apply {_fmt(res.get('apply_s'))}s, second apply {_fmt(res.get('second_apply_s'))}s", flush=True)
    for node, u in (res.get("node_usage") or {}).items():
        print(f"[e2e] tier1: node {node}: requests {u['cpu_req_m']}m / {u['mem_req_mi']}Mi of allocatable "
              f"{u['cpu_alloc_m']}m / {u['mem_alloc_mi']}Mi, {u['pods']} pods (kind's system pods included)",
              flush=True)
    for r in res.get("rejected", []):
        print(f"[e2e]   rejected {r['object']} ({r['from']}): {r['error']}", flush=True)
    for u in res.get("unavailable", []):
        print(f"[e2e]   unavailable {u['object']} ({u['from']}): {u['why']}", flush=True)
        for ev in u.get("events", []):
            print(f"[e2e]     event {ev}", flush=True)
    seen = set()
    for w in res.get("warnings", []):
        if (w["object"], w["warning"]) not in seen:
            seen.add((w["object"], w["warning"]))
            print(f"[e2e]   API warning on {w['object']} ({w['from']}): {w['warning']}", flush=True)
    for c in res.get("second_apply_changed", []):
        print(f"[e2e]   second apply changed {c['object']}: {c['change']}", flush=True)
    for n in res.get("notes", []):
        print(f"[e2e]   note: {n}", flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m e2e.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tier", choices=("1", "2", "all"), default="all")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, renders, results)")
    ap.add_argument("--workdir", type=Path, help="work directory (default: a new temporary directory)")
    args = ap.parse_args(argv)

    from e2e.simcluster import BIN_DIR, missing_tools
    base = (args.workdir or Path(tempfile.mkdtemp(prefix="cnplatform-e2e-"))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    status = {"tier1": "skip", "tier2": "skip"}
    times: dict[str, Any] = {"up_s": None, "preview_s": None, "destroy_s": None}
    missing = missing_tools()
    failed = False
    if missing:
        print(f"[e2e] tools missing in {BIN_DIR}: {', '.join(missing)} (run: make e2e-tools)", flush=True)
        status = {k: ("fail" if args.tier in ("all", k[-1]) else "skip") for k in status}
        failed = True
    else:
        if args.tier in ("1", "all"):
            try:
                res = run_tier1(base)
                summarize_tier1(res)
                status["tier1"] = "ok" if res["ok"] else "fail"
            except Exception:  # noqa: BLE001 - report and carry on with tier 2
                traceback.print_exc()
                status["tier1"] = "fail"
        if args.tier in ("2", "all"):
            try:
                res2 = run_tier2(base)
                if res2 is None:
                    status["tier2"] = "fail"
                else:
                    for p in res2.get("problems", []):
                        print(f"[e2e]   tier2 problem: {p}", flush=True)
                    for b in res2.get("blocked", []):
                        print(f"[e2e]   tier2 blocked: {b}", flush=True)
                    blocked = res2.get("blocked") and not res2.get("problems")
                    status["tier2"] = "ok" if res2.get("ok") else ("blocked" if blocked else "fail")
                    times.update({k: res2.get(k) for k in times})
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                status["tier2"] = "fail"
        failed = "fail" in status.values()
    (base / "e2e-summary.json").write_text(json.dumps({**status, **times}, indent=1))
    if args.keep:
        print(f"[e2e] work directory kept: {base}", flush=True)
    else:
        shutil.rmtree(base, ignore_errors=True)
    print(f"e2e tier1={status['tier1']} tier2={status['tier2']} up_s={_fmt(times['up_s'])} "
          f"preview_s={_fmt(times['preview_s'])} destroy_s={_fmt(times['destroy_s'])}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
