"""Cloud SDKs load lazily: the dev stack (kind) never imports pulumi_aws / pulumi_gcp; prod does.

The probe runs in a fresh subprocess (this test process has long imported both SDKs) and reports
``sys.modules`` after the dev render, then after creating the prod stack's clusters.
"""
import ast
import json
import subprocess
import sys

from tests.helpers import ROOT

PROBE = r"""
import json, sys


def sdks():
    tops = {m.split(".")[0] for m in sys.modules}
    return sorted(tops & {"pulumi_aws", "pulumi_gcp", "pulumi_docker"})


from stacks.render import main

out = sys.argv[1]
result = {"dev": {"rc": main(["--stack", "dev", "--out", out, "--quiet"]), "sdks": sdks()}}
# Then, in the same interpreter, what the prod render runs first: its clusters, through the factory.
from stacks.compose.clusters import create_cluster
from tests.helpers import config_of, run_program, stack_raw

cfg = config_of("prod")
run_program(lambda: {c.name: create_cluster(cfg, c).endpoint for c in cfg.clusters}, stack="prod",
            raw=stack_raw("prod")[0], config=cfg)
result["prod"] = {"clouds": sorted(c.cloud for c in cfg.clusters), "sdks": sdks()}
print("RESULT " + json.dumps(result))
"""


def run_probe(out: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, out], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_dev_render_imports_no_cloud_sdk_nor_docker_and_prod_clusters_import_both(tmp_path):
    # One interpreter: the dev render first (must stay clean), then the prod stack's clusters (the
    # first thing its render creates, through the same lazy factory) must load both SDKs. The dev
    # images are plain `docker build`s: no Docker provider either (it cannot be built for the e2e).
    result = run_probe(str(tmp_path / "dev"))
    assert result["dev"] == {"rc": 0, "sdks": []}
    assert result["prod"] == {"clouds": ["aws", "gcp"], "sdks": ["pulumi_aws", "pulumi_gcp"]}
    assert (tmp_path / "dev" / "plan.json").exists()


DEV_PATH_MODULES = ["components/cnplatform/cluster/base.py", "components/cnplatform/cluster/iam.py",
                    "components/cnplatform/cluster/capacity.py", "components/cnplatform/cluster/local.py",
                    "components/cnplatform/testing/mocks.py", "components/cnplatform/testing/runner.py",
                    "stacks/compose/clusters/__init__.py", "stacks/compose/clusters/common.py",
                    "stacks/compose/platform.py", "stacks/offline.py", "stacks/program.py", "stacks/render.py"]
CLOUD = {"pulumi_aws", "pulumi_gcp", "stacks.compose.clusters.aws", "stacks.compose.clusters.gcp",
         "cnplatform.testing.aws", "cnplatform.testing.gcp", "cnplatform.cluster.eks", "cnplatform.cluster.gke",
         "cnplatform.cluster.karpenter"}


def imports(path: str, *, top_level: bool) -> set[str]:
    """Modules ``path`` imports: at top level only, or anywhere (function bodies too)."""
    tree = ast.parse((ROOT / path).read_text())
    names = set()
    for node in (tree.body if top_level else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_modules_on_the_dev_path_do_not_import_cloud_code_at_top_level():
    for path in DEV_PATH_MODULES:
        assert not imports(path, top_level=True) & CLOUD, path
    # The cloud modules are reached only inside the branch of their cloud, by plain imports.
    factory = imports("stacks/compose/clusters/__init__.py", top_level=False)
    assert {"stacks.compose.clusters.aws", "stacks.compose.clusters.gcp", "stacks.compose.clusters.local"} <= factory
    mocks = imports("components/cnplatform/testing/mocks.py", top_level=False)
    assert {"cnplatform.testing.aws", "cnplatform.testing.gcp"} <= mocks


def test_no_module_is_imported_by_a_name_built_at_run_time():
    """``importlib.import_module(f"...")`` hides a dependency from readers and tools (and swallowed import
    errors hid real ones): every import in the library and the stacks is a plain import statement."""
    offenders = []
    for path in [*ROOT.glob("components/cnplatform/**/*.py"), *ROOT.glob("stacks/**/*.py"), ROOT / "__main__.py"]:
        text = path.read_text()
        if "import_module(" in text or "__import__(" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
