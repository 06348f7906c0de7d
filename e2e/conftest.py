"""Fixtures of the e2e harness: one simulated cluster per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e.simcluster import BIN_DIR, SimCluster, missing_tools


@pytest.fixture(scope="session")
def sim_cluster(tmp_path_factory) -> SimCluster:
    """A running :class:`e2e.simcluster.SimCluster` (one node, 4 CPU / 8 GiB, zone dev-a), shared by the
    session and stopped at its end. Skips when the tools are not built. ``E2E_SIMCLUSTER_DIR`` sets its
    work directory (logs, kubeconfig), else a pytest temporary directory."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"e2e tools not built ({', '.join(missing)} missing in {BIN_DIR}): "
                    "run `bash e2e/tools/build_kube.sh`")
    workdir = Path(os.environ.get("E2E_SIMCLUSTER_DIR") or tmp_path_factory.mktemp("simcluster"))
    cluster = SimCluster(workdir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
