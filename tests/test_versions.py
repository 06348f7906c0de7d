"""docs/versions.md states the versions the code pins (issue #15 item 14): one table, no drift."""
import re

import pytest

from cnplatform import versions
from cnplatform.addons import cert_manager, metrics_server
from cnplatform.cicd import jenkins
from cnplatform.cluster import eks, karpenter
from cnplatform.mesh import values as mesh
from cnplatform.monitoring import values as monitoring
from stacks.config import ClusterConfig, GcpClusterOptions, LocalClusterOptions
from tests.helpers import ROOT


def table() -> dict[str, str]:
    """id -> version cell of docs/versions.md."""
    rows = {}
    for line in (ROOT / "docs/versions.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("id", "---"):
            rows[cells[0]] = cells[2]
    return rows


PINNED = {
    "kubernetes": ", ".join(versions.KUBERNETES_SUPPORTED),
    "kind-node": LocalClusterOptions().node_image,
    "eks-vpc-cni": eks.ADDON_VERSIONS["1.35"]["vpc-cni"],
    "eks-kube-proxy": eks.ADDON_VERSIONS["1.35"]["kube-proxy"],
    "eks-coredns": eks.ADDON_VERSIONS["1.35"]["coredns"],
    "eks-ebs-csi": eks.ADDON_VERSIONS["1.35"]["aws-ebs-csi-driver"],
    "gke-channel": GcpClusterOptions().release_channel,
    "istio": mesh.ISTIO_VERSION,
    "kube-prometheus-stack": monitoring.CHART_VERSION,
    "cert-manager": cert_manager.CHART_VERSION,
    "metrics-server": metrics_server.CHART_VERSION,
    "karpenter": karpenter.CHART_VERSION,
    "jenkins": jenkins.CHART_VERSION,
}


@pytest.mark.parametrize("row", sorted(PINNED))
def test_versions_table_matches_the_code(row):
    assert table()[row].split(" /")[0] == PINNED[row]


def test_every_default_is_a_supported_version():
    assert ClusterConfig(name="c", cloud="local").kubernetes_version in versions.KUBERNETES_SUPPORTED
    assert set(eks.ADDON_VERSIONS) == set(versions.KUBERNETES_SUPPORTED)  # add-ons pinned for each
    low, high = versions.ISTIO_KUBERNETES_RANGE
    as_tuple = lambda v: tuple(map(int, v.split(".")))  # noqa: E731
    assert all(as_tuple(low) <= as_tuple(v) <= as_tuple(high) for v in versions.KUBERNETES_SUPPORTED)
    assert re.search(r"kindest/node:v(\d+\.\d+)\.", LocalClusterOptions().node_image).group(1) in \
        versions.KUBERNETES_SUPPORTED
