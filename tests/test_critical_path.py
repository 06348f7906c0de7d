"""The critical path (issue #21 goal 2): per cluster the longest chain of resources that wait for one another.

Pure graphs first (chain, diamond, ties, cycle), then the SDK's own waits under mocks (a component in
``depends_on`` expands to its resources; a child waits for its component's ``depends_on`` through the
parent's URN; a resource waits for its provider), then real renders, the headline and the plan diff.
"""
from __future__ import annotations

import asyncio
import json
import shutil

import pulumi
import pytest

from stacks import diff
from stacks.checks import critical_path as cp
from stacks.render import render
from tests.helpers import capture_raw, capture_stack, run_program, transitive_waits, with_changes


def node(urn, *waits, step=True, cluster="c1"):
    return cp.Node(urn, "test:index:Thing", urn, step, tuple((w, "depends_on") for w in waits), cluster)


def steps(chain: cp.Chain) -> list[str]:
    return [link.urn for link in chain.steps()]


# ------------------------------------------------------------------------------------- pure graphs


def test_a_chain_counts_every_resource_in_it():
    paths = cp.critical_paths([node("c", "b"), node("a"), node("b", "a")])
    assert paths["c1"].length == 3 and steps(paths["c1"]) == ["a", "b", "c"]


def test_a_diamond_takes_its_longer_side():
    # a -> (b -> b2) -> d and a -> c -> d: the b side has one more resource.
    nodes = [node("a"), node("b", "a"), node("b2", "b"), node("c", "a"), node("d", "b2", "c")]
    chain = cp.critical_paths(nodes)["c1"]
    assert chain.length == 4 and steps(chain) == ["a", "b", "b2", "d"]


def test_components_take_no_time_but_hold_their_children_back():
    # x -> component K (waits for x) -> child y (waits for K as its parent): x, y.
    nodes = [node("x"), node("K", "x", step=False),
             cp.Node("y", "t", "y", True, (("K", "parent"),), "c1")]
    chain = cp.critical_paths(nodes)["c1"]
    assert chain.length == 2 and [link.urn for link in chain.links] == ["x", "K", "y"]
    assert [link.via for link in chain.links] == [None, "depends_on", "parent"]


def test_per_cluster_chains_may_start_at_stack_level_resources_and_ties_are_deterministic():
    nodes = [node("img", cluster=cp.STACK_LEVEL), node("p", "img", cluster="c2"), node("q", "img", cluster="c2"),
             node("solo", cluster="c1")]
    for order in (nodes, list(reversed(nodes))):
        paths = cp.critical_paths(order)
        assert set(paths) == {"c1", "c2"}  # stack-level resources alone are no cluster
        assert steps(paths["c2"]) == ["img", "p"] and paths["c1"].length == 1


def test_a_cycle_is_an_error_naming_it():
    with pytest.raises(ValueError, match="cycle"):
        cp.critical_paths([node("a", "b"), node("b", "a")])


# ------------------------------------------------------------------------- the SDK's waits, under mocks


class Box(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("test:index:Box", name, None, opts)
        first = pulumi.CustomResource("test:index:Thing", f"{name}-1", {}, pulumi.ResourceOptions(parent=self))
        pulumi.CustomResource("test:index:Thing", f"{name}-2", {"after": first.id}, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def _paths_of(program) -> dict[str, cp.Chain]:
    capture = run_program(lambda: (program(), {})[1], stack="cp")
    nodes = [cp.Node(n.urn, n.type, n.name, n.step, n.waits, "c1") for n in cp.nodes_from_capture(capture)]
    return cp.critical_paths(nodes)


def test_depending_on_a_component_waits_for_every_resource_under_it():
    def program():
        box = Box("box")
        pulumi.CustomResource("test:index:Thing", "after-box", {}, pulumi.ResourceOptions(depends_on=[box]))
    chain = _paths_of(program)["c1"]
    assert [link.name for link in chain.steps()] == ["box-1", "box-2", "after-box"]
    assert [link.via for link in chain.steps()] == [None, "property", "depends_on"]


def test_a_components_depends_on_holds_back_its_children_and_resources_wait_for_their_provider():
    def program():
        gate = pulumi.CustomResource("test:index:Thing", "gate", {})
        provider = pulumi.ProviderResource("test", "prov", {}, pulumi.ResourceOptions(depends_on=[gate]))
        Box("late", pulumi.ResourceOptions(depends_on=[provider]))
        pulumi.CustomResource("test:index:Thing", "uses-prov", {}, pulumi.ResourceOptions(provider=provider))
    chain = _paths_of(program)["c1"]
    # gate -> prov -> (component late: its children wait for its URN) late-1 -> late-2.
    assert [link.name for link in chain.steps()] == ["gate", "prov", "late-1", "late-2"]
    names = {link.name: link.via for link in chain.links}
    assert names["late"] == "depends_on" and names["late-1"] == "parent"


# ------------------------------------------------------------------------------------- real renders


def _plan_waits(plan: dict) -> dict[str, set[str]]:
    return {r["urn"]: {*r["depends_on"], *(r[k] for k in ("parent", "provider") if r.get(k))}
            for r in plan["resources"]}


def _longest(plan: dict, cluster: str) -> int:
    """An independent count: the longest chain of non-component resources ending in ``cluster``."""
    waits, index = _plan_waits(plan), {r["urn"]: r for r in plan["resources"]}
    memo: dict[str, int] = {}

    def depth(urn: str) -> int:
        if urn not in memo:
            before = max((depth(u) for u in waits[urn] if u in index), default=0)
            memo[urn] = before + (0 if index[urn]["type"].startswith("cnplatform:") else 1)
        return memo[urn]
    return max(depth(u) for u, r in index.items() if diff.cluster_of(r, index) == cluster)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_render_writes_each_clusters_critical_path(rendered, stack):
    out = rendered(stack)
    plan = json.loads((out / "plan.json").read_text())
    data = json.loads((out / "critical_path.json").read_text())
    clusters = list(json.loads((out / "footprint.json").read_text())["clusters"])
    assert sorted(data["clusters"]) == sorted(clusters)
    waits = _plan_waits(plan)
    for name in clusters:
        chain = data["clusters"][name]["chain"]
        assert data["clusters"][name]["length"] == sum(k["step"] for k in chain) == _longest(plan, name)
        # Each link really waits for the one before it (in plan.json's terms).
        assert all(prev["urn"] in waits[k["urn"]] for prev, k in zip(chain, chain[1:], strict=False))
    dev = data["clusters"].get("dev")
    if dev is not None:
        # From the kind cluster's creation, through the cluster's provider, to a Kubernetes object.
        assert dev["chain"][0]["type"] == "command:local:Command" and dev["chain"][0]["name"] == "dev-kind"
        assert any(k["type"] == "pulumi:providers:kubernetes" for k in dev["chain"])
        assert dev["chain"][-1]["type"].startswith("kubernetes:") and dev["length"] >= 8


def test_the_headline_shows_each_clusters_critical_path(tmp_path, capsys):
    from stacks import render as render_cli

    assert render_cli.main(["--stack", "prod", "--out", str(tmp_path / "prod")]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "prod" / "critical_path.json").read_text())["clusters"]
    block = out[out.index("critical path"):].splitlines()
    for name, line in zip(["prod-eks", "prod-gke"], block[1:3], strict=True):
        first, last = (data[name]["chain"][i] for i in (0, -1))
        assert line.startswith(f"  {name}") and f"{data[name]['length']}: " in line, line
        assert f"{first['name']} -> " in line and line.endswith(f" {last['name']}") and " … " in line
    assert out.index("critical path") < out.index("footprint prod-eks (aws): allocatable")


# -------------------------------------------------------------------------------------------- diff


def _render_dev(path, change=lambda raw: None):
    asyncio.set_event_loop(asyncio.new_event_loop())
    render(capture_raw(with_changes("dev", change), stack="dev"), path)
    return path


def test_the_plan_diff_shows_a_longer_critical_path(tmp_path, capsys):
    base = _render_dev(tmp_path / "base", lambda raw: raw.__setitem__("monitoring", {"enabled": False}))
    head = _render_dev(tmp_path / "head")
    lengths = [json.loads((d / "critical_path.json").read_text())["clusters"]["dev"]["length"] for d in (base, head)]
    assert lengths[1] > lengths[0]
    assert diff.main([str(base), str(head)]) == 0
    out = capsys.readouterr().out
    assert f"- critical path `dev`: {lengths[0]} -> {lengths[1]} (+{lengths[1] - lengths[0]})" in out
    assert out.index("### Critical path") < out.index("### Cluster `dev`")


def test_a_wait_alone_shows_in_the_diff_even_from_renders_without_critical_path_json(tmp_path, capsys):
    """A new ``depends_on`` changes no input (the resource diff has nothing to say) but lengthens the path;
    renders made before ``critical_path.json`` get theirs from ``plan.json``."""
    base = _render_dev(tmp_path / "base")
    head = tmp_path / "head"
    shutil.copytree(base, head)
    plan = json.loads((head / "plan.json").read_text())
    chain = json.loads((base / "critical_path.json").read_text())["clusters"]["dev"]["chain"]
    last = chain[-1]["urn"]
    waited_for = {u for waits in _plan_waits(plan).values() for u in waits}
    # A NetworkPolicy nothing waits for (a leaf), off the critical path: now it waits for the whole path.
    other = next(r for r in plan["resources"] if r["type"] == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
                 and r["urn"] not in waited_for and r["urn"] not in {k["urn"] for k in chain})
    other["depends_on"] = sorted({*other["depends_on"], last})
    (head / "plan.json").write_text(json.dumps(plan))
    for side in (base, head):
        (side / "critical_path.json").unlink()
    length = sum(k["step"] for k in chain)
    assert diff.main([str(base), str(head)]) == 0
    out = capsys.readouterr().out
    assert "**no changes**" not in out
    assert f"- critical path `dev`: {length} -> {length + 1} (+1)" in out
    assert f"`{other['type'].rsplit(':', 1)[-1]} {other['name']}`" in out.split("### Critical path")[1]


# ------------------------------------------------------------------------------ waits nothing needs


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_an_hpa_does_not_wait_for_the_rollout_of_its_deployment(rendered, stack):
    """The HPA controller retries a scale target that does not exist yet: an HPA after its Deployment's
    rollout only made it the last link of every cluster's critical path."""
    plan = json.loads((rendered(stack) / "plan.json").read_text())
    by_name = {(r["type"], r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"]): r["urn"]
               for r in plan["resources"] if r["type"] == "kubernetes:apps/v1:Deployment"}
    hpas = [r for r in plan["resources"] if r["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"]
    assert hpas
    for hpa in hpas:
        meta, target = hpa["inputs"]["metadata"], hpa["inputs"]["spec"]["scaleTargetRef"]
        deployment = by_name[("kubernetes:apps/v1:Deployment", meta["namespace"], target["name"])]
        assert deployment not in hpa["depends_on"], hpa["name"]
    ends = json.loads((rendered(stack) / "critical_path.json").read_text())["clusters"]
    assert all(c["chain"][-1]["type"] != hpas[0]["type"] for c in ends.values())


def _plan(rendered, stack: str) -> dict:
    return json.loads((rendered(stack) / "plan.json").read_text())


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_dashboards_wait_for_their_namespace_not_for_the_monitoring_chart(rendered, stack):
    """Grafana's sidecar picks up a labelled ConfigMap whenever it appears: no CRD, no chart needed."""
    dashboards = [r for r in _plan(rendered, stack)["resources"]
                  if r["type"] == "kubernetes:core/v1:ConfigMap" and r["name"].endswith("-dashboard")]
    assert dashboards
    for r in dashboards:
        assert r["depends_on"] and all(d.endswith("-monitoring-ns") for d in r["depends_on"]), r["name"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_mesh_waits_for_the_app_namespaces_not_their_policies(rendered, stack):
    plan = _plan(rendered, stack)
    meshes = [r for r in plan["resources"] if r["type"] == "cnplatform:mesh:IstioMesh"]
    assert meshes
    for mesh in meshes:
        assert mesh["depends_on"] and not any("NetworkPolicy" in d for d in mesh["depends_on"]), mesh["name"]
        assert any("Namespace::" in d and "baseline-ns" in d for d in mesh["depends_on"]), mesh["name"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_gcp_registry_and_cloud_sql_peering_do_not_wait_for_the_node_pools(rendered, stack):
    """A registry and a VPC peering need nothing on the cluster: created alongside it, not after it."""
    plan = _plan(rendered, stack)
    types = ("cnplatform:registry:ArtifactRepository", "cnplatform:database:CloudSqlPrivateAccess")
    found = [r for r in plan["resources"] if r["type"] in types]
    assert {r["type"] for r in found} == set(types)
    for r in found:
        assert not any("NodePool" in d or "nodePool" in d for d in r["depends_on"]), (r["name"], r["depends_on"])


def _all_waits(stack: str) -> tuple[dict[str, cp.Node], dict[str, set[str]]]:
    """Every resource of a checked-in stack and everything it waits for, transitively, by every way the
    engine makes it wait (explicit and property dependencies, parent, provider)."""
    nodes = {n.urn: n for n in cp.nodes_from_capture(capture_stack(stack))}
    return nodes, transitive_waits({urn: {w for w, _ in n.waits} for urn, n in nodes.items()})


CLUSTER_NODES = ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool", "pulumi:providers:kubernetes")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_cloud_databases_and_images_are_created_alongside_the_cluster_not_after_its_nodes(stack):
    """RDS / Cloud SQL instances and the image pushes need only their network and registry: waiting for
    the node pools (through the Kubernetes provider in the component's options) added their creation time
    to the cluster's. The database's Secret and CA ConfigMap still wait for the cluster and namespace."""
    nodes, waits = _all_waits(stack)
    early = ("aws:rds/instance:Instance", "gcp:sql/databaseInstance:DatabaseInstance",
             "aws:ecr/repository:Repository", "docker:index/image:Image")
    found = [n for n in nodes.values() if n.type in early]
    assert {n.type for n in found} >= {"docker:index/image:Image"} and len(found) >= 7
    for n in found:
        late = sorted(nodes[w].type for w in waits[n.urn] if w in nodes and nodes[w].type in CLUSTER_NODES)
        assert not late, (n.name, late)
    secrets = [n for n in nodes.values() if n.type == "kubernetes:core/v1:Secret" and n.name.endswith("-db-secret")]
    assert secrets
    for n in secrets:
        types = {nodes[w].type for w in waits[n.urn] if w in nodes}
        assert {"pulumi:providers:kubernetes", "kubernetes:core/v1:Namespace"} <= types, n.name
        assert types & set(CLUSTER_NODES[:2]), n.name


def test_dev_builds_images_while_kind_creates_the_cluster_and_loads_them_after():
    nodes, waits = _all_waits("dev")
    kind = next(urn for urn, n in nodes.items() if n.type == "command:local:Command" and n.name == "dev-kind")
    builds = [n for n in nodes.values() if n.name.endswith("-image-build")]
    loads = [n for n in nodes.values() if n.name.endswith("-image-kind-load")]
    assert len(builds) == len(loads) == 4
    assert all(kind not in waits[n.urn] for n in builds)
    assert all(kind in waits[n.urn] for n in loads)
