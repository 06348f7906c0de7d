"""The composition's deferred values (a cluster's API allow-list takes its peers' NAT addresses)."""
import subprocess
import sys

from tests.helpers import ROOT

FAILING_FACTORY = """
import stacks.compose.clusters.gcp as gcp

def fail(*args, **kwargs):
    raise RuntimeError("the GKE factory failed")

gcp.create = fail
from tests.helpers import capture_stack
try:
    capture_stack("prod")
except RuntimeError as exc:
    print("raised:", exc)
"""


def test_a_failing_cluster_fails_the_run_instead_of_hanging():
    # prod-eks is created first and waits for a deferred value that only prod-gke's creation settles:
    # when that creation fails, the run must end with the error (it used to wait forever).
    proc = subprocess.run([sys.executable, "-c", FAILING_FACTORY], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert "raised: the GKE factory failed" in proc.stdout, proc.stderr[-2000:]
