"""The plan's dependency graph as the real engine orders it (issue #15 item 2).

Pulumi creates a resource as soon as the resources it depends on (``depends_on`` plus the resources
whose Outputs feed its inputs) exist. A resource that names a cluster with a plain string has no such
edge: the engine may create it while the cluster does not exist yet (the first ``pulumi up`` fails).
"""
import json

import pytest

from tests.helpers import transitive_waits

CLUSTER_TYPES = {"aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster"}
#: Input keys by which an AWS / GCP resource names the cluster it belongs to.
CLUSTER_KEYS = ("clusterName", "cluster")


def plan_of(rendered, stack):
    return json.loads((rendered(stack) / "plan.json").read_text())


def ancestors(plan: dict) -> dict[str, set[str]]:
    """urn -> every urn it (transitively) waits for."""
    return transitive_waits({r["urn"]: set(r["depends_on"]) for r in plan["resources"]})


def naming_a_cluster(plan: dict):
    """(resource, cluster) pairs: a cloud resource whose inputs name a cluster of the plan."""
    clusters = {r["inputs"].get("name"): r for r in plan["resources"] if r["type"] in CLUSTER_TYPES}
    for r in plan["resources"]:
        if r["type"] in CLUSTER_TYPES or not r["type"].startswith(("aws:", "gcp:")):
            continue
        for key in CLUSTER_KEYS:
            cluster = clusters.get(r["inputs"].get(key))
            if cluster is not None:
                yield r, cluster


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_no_cloud_resource_naming_a_cluster_is_created_before_it(rendered, stack):
    plan = plan_of(rendered, stack)
    waits_for = ancestors(plan)
    pairs = list(naming_a_cluster(plan))
    # Not vacuous: node pools, node groups, add-ons and access entries name their cluster.
    assert len(pairs) >= (4 if stack == "prod" else 1)
    early = [f"{r['type']} {r['name']} names cluster {c['name']} without waiting for it"
             for r, c in pairs if c["urn"] not in waits_for[r["urn"]]]
    assert not early, "\n".join(early)


def test_karpenter_node_access_entry_waits_for_the_eks_cluster(rendered):
    plan = plan_of(rendered, "prod")
    waits_for = ancestors(plan)
    entries = [r for r in plan["resources"]
               if r["type"] == "aws:eks/accessEntry:AccessEntry" and "karpenter" in r["name"]]
    cluster = next(r for r in plan["resources"] if r["type"] == "aws:eks/cluster:Cluster")
    assert entries and all(cluster["urn"] in waits_for[e["urn"]] for e in entries)
