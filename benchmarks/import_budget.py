"""Import budget: what each stack's render loads, and how long the program takes to import.

    python benchmarks/import_budget.py

For each stack, in a fresh process: seconds to import the program (stacks.render + composition
modules), seconds for the whole render, and whether pulumi_aws / pulumi_gcp were loaded. The dev
stack must load neither (checked here and by tests/test_lazy_imports.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, tempfile, time
t0 = time.perf_counter()
import stacks.render, stacks.compose.platform
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    code = stacks.render.main(["--stack", sys.argv[1], "--out", out, "--quiet"])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "render_s": t2 - t0, "code": code,
                  "pulumi_aws": "pulumi_aws" in sys.modules, "pulumi_gcp": "pulumi_gcp" in sys.modules}))
"""


def measure(stack: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, stack], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{stack}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    print(f"{'stack':<8} {'import s':>8} {'render s':>8}  pulumi_aws  pulumi_gcp")
    ok = True
    for stack in ("dev", "staging", "prod"):
        r = measure(stack)
        print(f"{stack:<8} {r['import_s']:>8.2f} {r['render_s']:>8.2f}  {str(r['pulumi_aws']):<10}  {r['pulumi_gcp']}")
        if stack == "dev" and (r["pulumi_aws"] or r["pulumi_gcp"]):
            ok = False
    print("dev loads no cloud SDK: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
