"""`python -m stacks.diff` over real renders (real composition under mocks + the real render)."""
from __future__ import annotations

import asyncio
import copy
import json
import re

import pytest
import yaml

from stacks import diff
from stacks.render import render
from tests.helpers import capture_raw, capture_stack, with_changes


def _render(capture, path):
    render(capture, path)
    return path


def _capture(raw, stack):
    asyncio.set_event_loop(asyncio.new_event_loop())
    return capture_raw(raw, stack=stack, secure={})


def _set_user_replicas(raw):
    next(s for s in raw["services"] if s["name"] == "user")["replicas"] = 2


def _add_service(raw):
    raw["services"].append({"name": "cart", "image": "registry.example.com/shop/cart:1.0.0",
                            "expose": {"path": "/api/cart"}})


def _add_caller(raw):
    """A new service ``cart`` that calls product and user: one more caller in their policies."""
    raw["services"].append({"name": "cart", "image": "registry.example.com/shop/cart:1.0.0",
                            "calls": ["product", "user"], "expose": {"path": "/api/cart"}})


def _second_cluster(raw):
    second = copy.deepcopy(raw["clusters"][0])
    second["name"] = "dev2"
    second["local"] = {"http_port": 9080, "https_port": 9443}
    raw["clusters"].append(second)


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """base (dev), base again, and the head variants, each rendered once."""
    root = tmp_path_factory.mktemp("diff")
    asyncio.set_event_loop(asyncio.new_event_loop())
    base = capture_stack("dev")
    out = {"base": _render(base, root / "base"), "base-again": _render(base, root / "base-again")}
    for name, change in (("replicas", _set_user_replicas), ("added", _add_service), ("two", _second_cluster),
                           ("caller", _add_caller)):
        out[name] = _render(_capture(with_changes("dev", change), "dev"), root / name)
    return out


def run(capsys, base, head, *extra) -> str:
    assert diff.main([str(base), str(head), *extra]) == 0
    return capsys.readouterr().out


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = re.search(r"\n#{3,4} ", text[start + len(heading):])
    return text[start: start + len(heading) + (nxt.start() if nxt else len(text))]


def entries(base, head):
    return diff.diff_plans(diff.load_plan(base), diff.load_plan(head))[0]


def test_identical_renders_report_no_changes(renders, capsys):
    out = run(capsys, renders["base"], renders["base-again"])
    assert "no changes" in out
    assert out.strip().splitlines()[-1].startswith("Summary: no changes")


def test_replica_change(renders, capsys):
    out = run(capsys, renders["base"], renders["replicas"])
    user = section(out, "#### `microservice:Microservice dev-user`")
    assert re.search(r"`[\w.\[\]]*[rR]eplicas`: 1 -> 2", user), user
    changed = [e for e in entries(renders["base"], renders["replicas"]) if e.component.endswith(" dev-user")]
    assert changed and {e.cluster for e in changed} == {"dev"}
    assert any(p.endswith("eplicas") and (a, b) == (1, 2) for e in changed for p, a, b in e.fields)
    # Nothing of the other services' configuration changed (their images may: the context digest).
    for e in entries(renders["base"], renders["replicas"]):
        if e.component.split()[-1] in ("dev-order", "dev-payment", "dev-product"):
            assert {p for p, _, _ in e.fields} <= {"spec.template.spec.containers[0].image"}, e
    assert re.search(r"^Summary: \d+ to add, \d+ to remove, \d+ to replace, [1-9]\d* to change", out, re.M)


def test_added_service(renders, capsys):
    out = run(capsys, renders["base"], renders["added"])
    cart = section(out, "#### `microservice:Microservice dev-cart`")
    assert "`+` add `kubernetes:apps/v1:Deployment` **dev-cart-deployment**" in cart
    assert "`+` add `kubernetes:core/v1:Service` **dev-cart-service**" in cart
    jenkins = section(out, "#### `cicd:Jenkins dev-jenkins`")
    assert "`values.controller.JCasC.configScripts.jobs`" in jenkins and "multibranchPipelineJob('cart')" in jenkins
    found = entries(renders["base"], renders["added"])
    assert not [e for e in found if e.action == "remove"]
    added = [e for e in found if e.action == "add"]
    assert added and all(e.cluster == "dev" for e in added)
    assert "clusters.dev.services.cart" in out  # stack outputs section


def test_removed_cluster(renders, capsys):
    out = run(capsys, renders["two"], renders["base"])
    found = entries(renders["two"], renders["base"])
    removed = [e for e in found if e.action == "remove"]
    base_plan = diff.load_plan(renders["two"])
    index = {r["urn"]: r for r in base_plan["resources"]}
    dev2 = [r for r in base_plan["resources"] if diff.cluster_of(r, index) == "dev2"]
    assert len(dev2) > 20
    assert {e.urn for e in removed if e.cluster == "dev2"} == {r["urn"] for r in dev2}
    # Besides dev2 itself only the remaining cluster's multi-cluster wiring (east-west gateway,
    # remote secrets) and dev2's image builds (stack-level: they need no cluster) go away.
    assert {e.cluster for e in removed} <= {"dev2", "dev", "_stack"}
    assert {e.type for e in removed if e.cluster == "_stack"} == {"cnplatform:registry:ServiceImage",
                                                                   "command:local:Command"}
    assert not [e for e in found if e.cluster == "dev2" and e.action != "remove"]
    # Kubernetes objects are attributed through their provider, others through their ancestors.
    kinds = {e.type for e in removed}
    assert {"pulumi:providers:kubernetes", "cnplatform:cluster:LocalCluster", "kubernetes:helm.sh/v4:Chart",
            "random:index/randomPassword:RandomPassword"} <= kinds
    dev2_section = out[out.index("### Cluster `dev2`"):]
    assert "`cluster:LocalCluster dev2`" in dev2_section and "`+`" not in dev2_section.split("### Stack outputs")[0]
    assert f"{len(removed)} to remove" in out.strip().splitlines()[-1]


def test_replacement_secrets_and_truncation_on_a_real_plan(tmp_path, renders, capsys):
    plan = json.loads((renders["base"] / "plan.json").read_text())
    head = copy.deepcopy(plan)
    by_name = {r["name"]: r for r in head["resources"]}
    by_name["dev-user-deployment"]["inputs"]["metadata"]["name"] = "user-v2"
    by_name["dev-user-deployment"]["inputs"]["spec"]["selector"]["matchLabels"]["tier"] = "x"
    secret = next(r for r in head["resources"] if r["type"] == "kubernetes:core/v1:Secret")
    secret["inputs"]["metadata"]["annotations"] = {"token": "secret::abc", "masked": "[secret]"}
    svc = by_name["dev-user-service"]
    svc["inputs"]["metadata"].setdefault("labels", {})["long"] = "x" * 500
    for side, doc in (("a", plan), ("b", head)):
        (tmp_path / side).mkdir()
        (tmp_path / side / "plan.json").write_text(json.dumps(doc))
    out = run(capsys, tmp_path / "a", tmp_path / "b", "--max-value", "40")
    assert "`-/+` replace `kubernetes:apps/v1:Deployment` **dev-user-deployment**" in out
    assert "replaced because of: `metadata.name`, `spec.selector.matchLabels.tier`" in out
    assert "secret::" not in out and "[secret]" not in out and "(secret)" in out
    long_line = next(line for line in out.splitlines() if "metadata.labels.long" in line)
    assert "…" in long_line and len(long_line) < 140
    assert "1 to replace, 2 to change" in out


def test_replacement_table():
    assert diff.replacement_fields("kubernetes:apps/v1:StatefulSet", ["spec.volumeClaimTemplates[0].spec"]) == [
        "spec.volumeClaimTemplates[0].spec"]
    assert diff.replacement_fields("kubernetes:apps/v1:Deployment", ["spec.replicas", "spec.template"]) == []
    assert diff.replacement_fields("kubernetes:core/v1:Service", ["spec.clusterIP"]) == ["spec.clusterIP"]
    assert diff.replacement_fields("aws:ec2/vpc:Vpc", ["cidrBlock", "tags.Name"]) == ["cidrBlock"]
    assert diff.replacement_fields("random:index/randomPassword:RandomPassword", ["length"]) == ["length"]
    assert diff.replacement_fields("kubernetes:core/v1:ConfigMap", ["metadata.namespace"]) == ["metadata.namespace"]
    assert diff.replacement_fields("kubernetes:core/v1:ConfigMap", ["metadata.namespaceX"]) == []


def test_missing_base_render_counts_as_empty(tmp_path, renders, capsys):
    out = run(capsys, tmp_path / "nothing", renders["base"])
    assert "no plan.json" in out and "0 to remove" in out
    total = len(diff.load_plan(renders["base"])["resources"])
    assert f"{total} to add" in out


# ------------------------------------------------------------- set-like lists, footprint, failed renders


def _changed_fields(base, head, name):
    return [f for e in entries(base, head) if e.name == name for f in e.fields]


def test_one_more_caller_reads_as_a_member_added_not_as_replaced_peers(renders, capsys):
    """Adding ``cart`` as a caller of product and user: `+ cart` in their NetworkPolicy peers and
    `+ <cart's principal>` in their AuthorizationPolicies, not "order -> cart" plus order again."""
    out = run(capsys, renders["base"], renders["caller"])
    for svc in ("product", "user"):
        netpol = section(out, f"#### `microservice:Microservice dev-{svc}`")
        assert f"**dev-{svc}-netpol**\n  - `spec.ingress[0].from`: + `cart`\n" in netpol, netpol
        assert f"- `~` change `kubernetes:security.istio.io/v1:AuthorizationPolicy` **dev-mesh-{svc}-authz**\n" \
               "  - `spec.rules[0].from[0].source.principals`: + `cluster.local/ns/shop/sa/cart`\n" in out
        for name in (f"dev-{svc}-netpol", f"dev-mesh-{svc}-authz"):
            fields = _changed_fields(renders["base"], renders["caller"], name)
            assert len(fields) == 1 and fields[0][0].endswith("[+]"), fields  # one member added, nothing else
    assert '"order" -> "cart"' not in out and "order" not in section(out, "#### `microservice:Microservice dev-user`")
    # The other way round: the member removed.
    back = run(capsys, renders["caller"], renders["base"])
    assert "  - `spec.ingress[0].from`: - `cart`\n" in back
    assert "  - `spec.rules[0].from[0].source.principals`: - `cluster.local/ns/shop/sa/cart`\n" in back


def _row(text: str, cluster: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| `{cluster}`"))


def test_footprint_change_per_cluster_from_the_renders_footprint_json(renders, capsys):
    out = run(capsys, renders["base"], renders["caller"])
    assert out.index("### Footprint (requests against allocatable)") < out.index("### Cluster `dev`")
    old = json.loads((renders["base"] / "footprint.json").read_text())["clusters"]["dev"]
    new = json.loads((renders["caller"] / "footprint.json").read_text())["clusters"]["dev"]
    assert new["requests"]["cpu_m"] > old["requests"]["cpu_m"]  # cart's requests and its sidecar's
    cap = old["allocatable"]["cpu_m"]
    pct = [f"{100 * fp['requests']['cpu_m'] / cap:.0f}%" for fp in (old, new)]
    row = _row(out, "dev")
    assert f"| {old['requests']['cpu_m']}m -> {new['requests']['cpu_m']}m of {cap}m ({pct[0]} -> {pct[1]}) |" in row
    services = [fp["layers"]["services"]["requests"]["cpu_m"] for fp in (old, new)]
    assert f"services {services[1] - services[0]:+d}m/" in row and "monitoring" not in row
    # A cluster added gets a row of its own.
    two = run(capsys, renders["base"], renders["two"])
    assert _row(two, "dev2").startswith("| `dev2` (new) | ")


def test_no_footprint_table_when_requests_did_not_change(renders, capsys):
    out = run(capsys, renders["base"], renders["base-again"])
    assert "### Footprint" not in out
    assert diff.footprint_lines(diff.load_footprint(renders["base"]), diff.load_footprint(renders["base-again"])) == []


def test_a_failed_head_render_shows_its_errors_instead_of_removing_everything(tmp_path, renders, capsys):
    """A `build:` directory that does not exist: the head render exits 2 and writes nothing; the diff
    shows why (the PR comment), and does not read as "every resource removed"."""
    from stacks import render as render_cli
    from tests.helpers import ROOT

    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["ecommerce-platform:services"].append({"name": "cart", "build": "services/cart"})
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_text(yaml.safe_dump(doc))
    assert render_cli.main(["--stack", "dev", "--config", str(config), "--out", str(tmp_path / "head"), "-q"]) == 2
    errors = tmp_path / "head.errors"
    errors.write_text(capsys.readouterr().err)
    out = run(capsys, renders["base"], tmp_path / "head", "--head-errors", str(errors))
    assert "> :warning: **The head render failed**; its errors:" in out
    assert "> ```\n> stack 'dev': invalid configuration (1 error(s)):\n" in out
    assert "services[4].build: build directory 'services/cart' does not exist in the repository" in out
    assert "to remove" not in out and out.strip().splitlines()[-1] == "Summary: not compared (the head render failed)"
    # Without its errors the missing head still counts as empty, and says so.
    plain = run(capsys, renders["base"], tmp_path / "head")
    assert "head: no plan.json" in plain and "0 to add" in plain


def _resource(type_: str, name: str, **extra) -> dict:
    return {"urn": f"urn:pulumi:s::p::{type_}::{name}", "type": type_, "name": name, "inputs": {}, **extra}


def test_a_components_providers_are_not_a_replacement_its_resources_provider_is():
    """The engine creates no local component: the providers it is given pass to its children only, so a
    component moving its Kubernetes provider to its children (MySqlDatabase) replaces nothing."""
    component, secret = ("cnplatform:database:MySqlDatabase", "db"), ("kubernetes:core/v1:Secret", "db-secret")
    base = {"resources": [_resource(*component, provider="urn:k8s"), _resource(*secret, provider="urn:k8s")]}
    head = {"resources": [_resource(*component, provider=None), _resource(*secret, provider="urn:k8s-2")]}
    entries, unchanged = diff.diff_plans(base, head)
    assert unchanged == 1
    assert [(e.name, e.action, e.replace_fields) for e in entries] == [("db-secret", "replace", ["provider"])]


def test_the_render_records_each_resources_cluster_and_the_diff_reads_it(tmp_path):
    """A component given only its cloud provider belongs to the cluster its in-cluster children use."""
    plan = json.loads((_render(capture_stack("prod"), tmp_path / "prod") / "plan.json").read_text())
    clusters = {r["name"]: r["cluster"] for r in plan["resources"]}
    assert clusters["prod-eks-order-db"] == "prod-eks" and clusters["prod-gke-order-db"] == "prod-gke"
    assert clusters["prod-eks-order-db-secret"] == "prod-eks"
    index = {r["urn"]: r for r in plan["resources"]}
    assert all(diff.cluster_of(r, index) == r["cluster"] for r in plan["resources"])
    legacy = {urn: {k: v for k, v in r.items() if k != "cluster"} for urn, r in index.items()}
    secret = next(r for r in legacy.values() if r["name"] == "prod-gke-order-db-secret")
    assert diff.cluster_of(secret, legacy) == "prod-gke"  # renders without the field: from the provider
