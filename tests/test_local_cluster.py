"""The local (kind) cluster, the common cluster interface and the cluster baseline."""

import pytest
import yaml

from cnplatform.cluster.local import INGRESS_NODE_PORT_HTTP, INGRESS_NODE_PORT_HTTPS, LocalClusterArgs, kind_config
from cnplatform.testing import Secret
from tests.helpers import capture_raw, capture_stack, objects

DEV = {"tier": "dev", "clusters": [{"name": "dev", "cloud": "local"}]}


def test_kind_config_pins_image_and_maps_ingress_ports():
    cfg = kind_config(LocalClusterArgs(workers=2, http_port=80, https_port=443))
    nodes = cfg["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    assert all("@sha256:" in n["image"] for n in nodes)
    mappings = {(m["containerPort"], m["hostPort"]) for m in nodes[0]["extraPortMappings"]}
    assert mappings == {(INGRESS_NODE_PORT_HTTP, 80), (INGRESS_NODE_PORT_HTTPS, 443)}


def test_kind_cluster_created_and_deleted_with_command():
    cap = capture_raw(DEV)
    kind = next(r for r in cap.by_type("command:local:Command") if r.name == "dev-kind")
    assert kind.inputs["create"].startswith("kind create cluster --name dev")
    assert kind.inputs["delete"] == "kind delete cluster --name dev"
    assert yaml.safe_load(kind.inputs["stdin"])["kind"] == "Cluster"
    read = next(r for r in cap.by_type("command:local:Command") if r.name == "dev-kubeconfig")
    assert kind.urn in read.depends_on


def command(cap, name: str):
    return next(r for r in cap.by_type("command:local:Command") if r.name == name)


def test_kind_config_change_deletes_the_old_cluster_first_and_rereads_the_kubeconfig():
    # kind cannot create `dev` while `dev` exists: a replacement must delete before it creates.
    cap = capture_raw(DEV)
    assert command(cap, "dev-kind").delete_before_replace is True
    # The kubeconfig read is replaced with the cluster (a new id each create): new CA, new certificates.
    read = next(r for r in cap.by_type("command:local:Command") if r.name == "dev-kubeconfig")
    kind = next(r for r in cap.by_type("command:local:Command") if r.name == "dev-kind")
    assert read.inputs["triggers"] == [kind.id]


@pytest.mark.parametrize("raw", [DEV, {**DEV, "clusters": [
    {"name": "dev", "cloud": "local", "local": {"existing_context": "kind-dev"}}]}], ids=["kind", "existing"])
def test_kubeconfig_is_never_logged_and_secret_in_state(raw):
    cap = capture_raw(raw)
    read = next(r for r in cap.by_type("command:local:Command") if r.name == "dev-kubeconfig")
    assert read.inputs["logging"] == "none"
    assert {"stdout", "stderr"} <= set(command(cap, "dev-kubeconfig").additional_secret_outputs)


def test_only_a_kind_cluster_drops_unreachable_objects():
    cap = capture_raw(DEV)
    (provider,) = cap.by_type("pulumi:providers:kubernetes")
    assert isinstance(provider.inputs["kubeconfig"], Secret)
    assert provider.inputs["deleteUnreachable"] in (True, "true")
    assert isinstance(cap.outputs["kubeconfigs"], Secret)
    existing = capture_raw({**DEV, "clusters": [{"name": "dev", "cloud": "local",
                                                 "local": {"existing_context": "ctx"}}]})
    (provider,) = existing.by_type("pulumi:providers:kubernetes")
    assert provider.inputs.get("deleteUnreachable") in (None, False, "false")


def test_kubeconfig_path_home_is_expanded(monkeypatch):
    monkeypatch.setenv("HOME", "/home/dev")
    raw = {**DEV, "clusters": [{"name": "dev", "cloud": "local",
                                "local": {"existing_context": "ctx", "kubeconfig_path": "~/.kube/other"}}]}
    (read,) = capture_raw(raw).by_type("command:local:Command")
    assert read.inputs["environment"] == {"KUBECONFIG": "/home/dev/.kube/other"}


def test_existing_context_reads_kubeconfig_instead_of_creating_kind():
    raw = {**DEV, "clusters": [{"name": "dev", "cloud": "local", "local": {"existing_context": "docker-desktop"}}]}
    cap = capture_raw(raw)
    names = [r.name for r in cap.by_type("command:local:Command")]
    assert names == ["dev-kubeconfig"]
    assert "--context docker-desktop" in cap.by_type("command:local:Command")[0].inputs["create"]


def test_cluster_interface_outputs():
    out = capture_raw(DEV).outputs["clusters"]["dev"]
    assert out["cloud"] == "local" and out["region"] == "local" and out["zones"] == ["local"]
    assert out["endpoint"].startswith("https://")


def test_baseline_namespaces_restricted_with_default_deny():
    raw = {**DEV, "namespaces": [{"name": "shop"}, {"name": "tools", "pod_security": "baseline"}],
           "mesh": {"enabled": False}}
    cap = capture_raw(raw)
    namespaces = {n["metadata"]["name"]: n["metadata"]["labels"] for n in objects(cap, "Namespace")}
    assert namespaces["shop"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["tools"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert "istio-injection" not in namespaces["shop"]
    deny = {p["metadata"]["namespace"]: p["spec"] for p in objects(cap, "NetworkPolicy")
            if p["metadata"]["name"] == "default-deny-all"}
    # The baseline's app namespaces, plus every platform namespace (cnplatform.netpolicy).
    assert set(deny) == {"shop", "tools", "monitoring", "node-exporter", "cert-manager", "jenkins",
                         "jenkins-agents", "jenkins-deploy"}
    assert all(s == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]} for s in deny.values())


def test_mesh_labels_app_namespaces_for_injection():
    cap = capture_stack("dev")
    shop = next(n for n in objects(cap, "Namespace") if n["metadata"]["name"] == "shop")
    assert shop["metadata"]["labels"]["istio-injection"] == "enabled"
