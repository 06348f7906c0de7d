"""The simulated cluster behaves like a real one where the e2e relies on it.

Each test works in its own namespace of the session's cluster (fixture ``sim_cluster``).
"""
from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from e2e.simcluster import _PKI, ROOT, SimCluster, _marker, _pid_is_ours, missing_tools, versions


def _ns(cluster: SimCluster, name: str) -> str:
    cluster.kubectl("create", "namespace", name)
    return name


def _apply(cluster: SimCluster, *docs: dict, check: bool = True, extra: tuple[str, ...] = ()):
    return cluster.kubectl("apply", "--server-side", "--field-manager=e2e", *extra, "-f", "-",
                           input=yaml.safe_dump_all(docs), check=check)


def _deployment(name: str, ns: str, replicas: int = 2, **spec_overrides) -> dict:
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
            "name": "app", "image": "registry.example/app:1.0",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}},
    }
    spec.update(spec_overrides)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _json(cluster: SimCluster, *args: str) -> dict:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


# ----------------------------------------------------------------------------------------- cluster

def test_versions_and_nodes_like_the_dev_kind_node(sim_cluster):
    v = versions()
    server = _json(sim_cluster, "version")["serverVersion"]
    assert server["gitVersion"] == v["KUBERNETES_VERSION"]
    assert (server["major"], server["minor"]) == ("1", v["KUBERNETES_VERSION"].split(".")[1])

    nodes = _json(sim_cluster, "get", "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["e2e-control-plane"]
    node = nodes[0]
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["topology.kubernetes.io/zone"] == "dev-a"
    assert "node-role.kubernetes.io/control-plane" in labels
    alloc = node["status"]["allocatable"]
    assert (alloc["cpu"], alloc["memory"], alloc["pods"]) == ("4", "8Gi", "110")
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    assert node["spec"]["podCIDR"].startswith("10.244.")
    assert not node["spec"].get("taints")
    # kwok keeps the node's Lease renewed, as a kubelet does
    lease = _json(sim_cluster, "-n", "kube-node-lease", "get", "lease", "e2e-control-plane")
    assert lease["spec"]["renewTime"] and lease["spec"]["leaseDurationSeconds"] == 40


def test_deployment_becomes_available_on_the_kwok_node(sim_cluster):
    ns = _ns(sim_cluster, "t-deploy")
    _apply(sim_cluster, _deployment("web", ns))
    sim_cluster.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    dep = _json(sim_cluster, "-n", ns, "get", "deployment", "web")
    assert {c["type"]: c["status"] for c in dep["status"]["conditions"]}["Available"] == "True"
    assert dep["status"]["readyReplicas"] == 2
    pods = _json(sim_cluster, "-n", ns, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == "e2e-control-plane"  # bound by kube-scheduler
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"].startswith("10.244.")
        # the token controller and the ServiceAccount admission plugin did their part
        assert any(v.get("projected") for v in pod["spec"]["volumes"])
    # the garbage collector removes the ReplicaSet and pods with their Deployment
    sim_cluster.kubectl("-n", ns, "delete", "deployment", "web", "--wait=true", "--cascade=foreground",
                        "--timeout=60s")
    deadline = time.monotonic() + 30
    while _json(sim_cluster, "-n", ns, "get", "pods")["items"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _json(sim_cluster, "-n", ns, "get", "pods")["items"] == []


def test_requests_beyond_the_node_leave_pods_pending(sim_cluster):
    ns = _ns(sim_cluster, "t-capacity")
    big = _deployment("big", ns, replicas=1)
    big["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "5"
    _apply(sim_cluster, big)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pods = _json(sim_cluster, "-n", ns, "get", "pods")["items"]
        conds = {c["type"]: c for c in (pods[0]["status"].get("conditions") or [])} if pods else {}
        if "PodScheduled" in conds:
            break
        time.sleep(0.5)
    assert conds["PodScheduled"]["status"] == "False"
    assert "Insufficient cpu" in conds["PodScheduled"]["message"]


def test_statefulset_with_a_volume_claim_becomes_ready(sim_cluster):
    ns = _ns(sim_cluster, "t-sts")
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns}, "spec": {
        "serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{
            "name": "db", "image": "mysql:8.4", "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    _apply(sim_cluster, sts)
    sim_cluster.kubectl("-n", ns, "rollout", "status", "statefulset/db", "--timeout=60s")
    pvc = _json(sim_cluster, "-n", ns, "get", "pvc", "data-db-0")
    assert pvc["spec"]["storageClassName"] == "standard"  # the DefaultStorageClass admission plugin
    assert pvc["status"]["phase"] == "Bound"


def test_job_completes(sim_cluster):
    ns = _ns(sim_cluster, "t-job")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": ns}, "spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}
    _apply(sim_cluster, job)
    sim_cluster.kubectl("-n", ns, "wait", "job/once", "--for=condition=Complete", "--timeout=60s")


# ---------------------------------------------------------------------------- the API server rejects

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.e2e.cnplatform.dev"},
    "spec": {"group": "e2e.cnplatform.dev", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {
                     "type": "object", "required": ["size"],
                     "properties": {"size": {"type": "integer", "minimum": 1},
                                    "max": {"type": "integer"}},
                     "x-kubernetes-validations": [{"rule": "!has(self.max) || self.size <= self.max",
                                                   "message": "size must not exceed max"}]}}}}}]},
}


def _widget(ns: str, **spec) -> dict:
    return {"apiVersion": "e2e.cnplatform.dev/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
            "spec": spec}


def test_custom_resource_before_its_crd_is_rejected_then_schema_and_cel_apply(sim_cluster):
    ns = _ns(sim_cluster, "t-crd")
    before = _apply(sim_cluster, _widget(ns, size=1), check=False)
    assert before.returncode != 0
    assert 'no matches for kind "Widget"' in before.stderr

    _apply(sim_cluster, CRD)
    sim_cluster.kubectl("wait", "crd/widgets.e2e.cnplatform.dev", "--for=condition=Established", "--timeout=30s")
    _apply(sim_cluster, _widget(ns, size=1, max=3))

    cel = _apply(sim_cluster, _widget(ns, size=5, max=3), check=False)  # the CRD's CEL rule
    assert cel.returncode != 0 and "size must not exceed max" in cel.stderr
    schema = _apply(sim_cluster, _widget(ns, size=0), check=False)  # the CRD's OpenAPI schema
    assert schema.returncode != 0 and "should be greater than or equal to 1" in schema.stderr


def test_invalid_objects_are_rejected_by_the_api_server(sim_cluster):
    ns = _ns(sim_cluster, "t-invalid")
    # the selector must match the template's labels (apps/v1 validation, server side)
    bad = _deployment("bad", ns, selector={"matchLabels": {"app": "other"}})
    res = _apply(sim_cluster, bad, check=False)
    assert res.returncode != 0
    assert "`selector` does not match template `labels`" in res.stderr

    # an unknown field is refused by the server (server-side apply's typed patch, as helm v4 applies)
    unknown = _deployment("unknown", ns)
    unknown["spec"]["replicaz"] = 1
    res = _apply(sim_cluster, unknown, check=False)
    assert res.returncode != 0 and ".spec.replicaz: field not declared in schema" in res.stderr

    # a port out of range
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": ns},
           "spec": {"ports": [{"port": 70000}]}}
    res = _apply(sim_cluster, svc, check=False)
    assert res.returncode != 0 and "must be between 1 and 65535" in res.stderr


def test_immutable_field_change_is_rejected(sim_cluster):
    ns = _ns(sim_cluster, "t-immutable")
    _apply(sim_cluster, _deployment("app", ns, replicas=1))
    changed = _deployment("app", ns, replicas=1)
    changed["spec"]["selector"] = {"matchLabels": {"app": "app", "tier": "x"}}
    changed["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    res = _apply(sim_cluster, changed, check=False)
    assert res.returncode != 0 and "field is immutable" in res.stderr


def test_rbac_is_enforced(sim_cluster):
    ns = _ns(sim_cluster, "t-rbac")
    sa = f"system:serviceaccount:{ns}:default"
    assert sim_cluster.kubectl("auth", "can-i", "create", "deployments", "-n", ns, "--as", sa,
                               check=False).stdout.strip() == "no"
    res = sim_cluster.kubectl("-n", ns, "create", "configmap", "x", "--as", sa, check=False)
    assert res.returncode != 0 and "configmaps is forbidden" in res.stderr


# ----------------------------------------------------------- webhooks reach a harness server on loopback

def test_loopback_endpoints_are_refused_by_validation(sim_cluster):
    """Why webhooks are routed through loopback ClusterIPs and not through Endpoints."""
    ns = _ns(sim_cluster, "t-endpoints")
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "hook-1", "namespace": ns, "labels": {"kubernetes.io/service-name": "hook"}},
              "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.2"]}], "ports": [{"port": 8443}]}
    res = _apply(sim_cluster, slice_, check=False)
    assert res.returncode != 0 and "may not be in the loopback range" in res.stderr


def test_a_webhook_service_reaches_a_harness_server_through_its_loopback_cluster_ip(sim_cluster, tmp_path):
    ns = _ns(sim_cluster, "t-webhook")
    pki = _PKI(tmp_path / "pki")
    pki.ca("hook-ca", "e2e hook CA")
    pki.leaf("hook", "hook-ca", f"hook.{ns}.svc", server=True, dns=[f"hook.{ns}.svc"])
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(review["request"])
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                "uid": review["request"]["uid"], "allowed": False,
                "status": {"code": 403, "message": "denied by the e2e harness"}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.path("hook.crt")), str(pki.path("hook.key")))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _apply(sim_cluster, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook", "namespace": ns},
                             "spec": {"ports": [{"port": 443, "targetPort": 8443}]}})
        ip, port = sim_cluster.route_service(ns, "hook", server.server_address)
        assert ip.startswith("127.96.") and port == 443
        hook = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "e2e-deny-configmaps"}, "webhooks": [{
                    "name": "deny.e2e.cnplatform.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                    "failurePolicy": "Fail", "timeoutSeconds": 5,
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                    "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                               "resources": ["configmaps"]}],
                    "clientConfig": {"service": {"namespace": ns, "name": "hook", "port": 443},
                                     "caBundle": pki.b64("hook-ca.crt")}}]}
        _apply(sim_cluster, hook)
        try:
            deadline = time.monotonic() + 20  # the API server's webhook informer catches up
            while True:
                res = sim_cluster.kubectl("-n", ns, "create", "configmap", "x", check=False)
                if res.returncode != 0 or time.monotonic() > deadline:
                    break
                sim_cluster.kubectl("-n", ns, "delete", "configmap", "x")
                time.sleep(0.5)
            assert res.returncode != 0 and "denied by the e2e harness" in res.stderr, res.stderr
            assert seen and seen[-1]["kind"]["kind"] == "ConfigMap" and seen[-1]["namespace"] == ns
        finally:
            sim_cluster.kubectl("delete", "validatingwebhookconfiguration", "e2e-deny-configmaps")
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------- the CLI

@pytest.mark.skipif(bool(missing_tools()), reason="e2e tools not built: run `bash e2e/tools/build_kube.sh`")
def test_cli_up_and_down_leave_no_process_behind(tmp_path):
    workdir = tmp_path / "cli"
    up = subprocess.Popen([sys.executable, "-m", "e2e.simcluster", "up", "--dir", str(workdir), "--name", "cli"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = up.stdout.readline().strip()
        assert line == str(workdir.resolve() / "kubeconfig"), up.stderr.read() if up.poll() is not None else line
        kubeconfig = yaml.safe_load(Path(line).read_text())
        assert kubeconfig["current-context"] == "sim-cli"
        pids = json.loads((workdir / "state.json").read_text())["pids"]
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
        assert all(_pid_is_ours(p, _marker(workdir)) for p in pids.values())
        out = subprocess.run([sys.executable, "-m", "e2e.simcluster", "down", "--dir", str(workdir)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith("stopped: "), out
        assert up.wait(timeout=30) == 0
        assert not any(_pid_is_ours(p, _marker(workdir)) for p in pids.values())
        assert not (workdir / "state.json").exists()
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=30)
