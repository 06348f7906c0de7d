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
    return sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("pulumi_aws", "pulumi_gcp", "pulumi_docker")})


from stacks.render import main

out = sys.argv[1]
result = {"dev": {"rc": main(["--stack", "dev", "--out", out, "--quiet"]), "sdks": sdks()}}
# Then, in the same interpreter, what the prod render runs first: its clusters, through the factory.
from stacks.clusters import create_cluster
from stacks.offline import run_program
from tests.helpers import config_of, stack_raw

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
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_dev_render_imports_no_cloud_sdk_nor_docker_and_prod_clusters_import_both(tmp_path):
    # One interpreter: the dev render first (must stay clean), then the prod stack's clusters (the
    # first thing its render creates, through the same lazy factory) must load both SDKs. The dev
    # images are plain `docker build`s: no Docker provider either (it cannot be built for the e2e).
    result = run_probe(str(tmp_path / "dev"))
    assert result["dev"] == {"rc": 0, "sdks": []}
    assert result["prod"] == {"clouds": ["aws", "gcp"], "sdks": ["pulumi_aws", "pulumi_gcp"]}
    assert (tmp_path / "dev" / "plan.json").exists()


CLOUD_MODULES = ["components/cnplatform/cluster/eks.py", "components/cnplatform/cluster/gke.py", "components/cnplatform/cluster/karpenter.py",
                 "stacks/clusters_aws.py", "stacks/clusters_gcp.py", "stacks/mocks_aws.py", "stacks/mocks_gcp.py"]
DEV_PATH_MODULES = ["components/cnplatform/cluster/base.py", "components/cnplatform/cluster/iam.py", "components/cnplatform/cluster/capacity.py",
                    "components/cnplatform/cluster/local.py", "stacks/clusters.py", "stacks/offline.py", "stacks/render.py",
                    "stacks/platform.py"]


def top_level_imports(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_modules_on_the_dev_path_do_not_import_cloud_code_at_top_level():
    cloud = {"pulumi_aws", "pulumi_gcp", "stacks.clusters_aws", "stacks.clusters_gcp", "stacks.mocks_aws",
             "stacks.mocks_gcp", "cnplatform.cluster.eks", "cnplatform.cluster.gke", "cnplatform.cluster.karpenter"}
    for path in DEV_PATH_MODULES:
        assert not top_level_imports(path) & cloud, path
    # The cloud modules themselves are only reached through stacks.clusters' lazy factory table.
    from stacks.clusters import _FACTORIES

    assert _FACTORIES == {"local": "stacks.clusters_local", "aws": "stacks.clusters_aws", "gcp": "stacks.clusters_gcp"}
