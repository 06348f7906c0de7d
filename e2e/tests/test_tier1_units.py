"""Tier-1 harness tests that need no cluster: chart rendering as helm.v4 does it, the admission answers,
the apply order taken from the plan. They run wherever the harness' Python deps are installed
(e2e/requirements.txt); without helm-python-sdk / cryptography they skip and say so."""
from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from e2e import helm

REPO = Path(__file__).resolve().parents[2]

helm_python = pytest.importorskip("helm_python",
                                  reason="helm-python-sdk not installed (pip install -r e2e/requirements.txt)")
pytest.importorskip("cryptography", reason="cryptography not installed (pip install -r e2e/requirements.txt)")

from e2e import admission, tier1  # noqa: E402
from stacks.config.tiers import TIERS  # noqa: E402


@pytest.fixture(scope="module")
def render(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "dev"
    subprocess.run([sys.executable, "-m", "stacks.render", "--stack", "dev", "--out", str(out), "-q"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return out


def _release(render: Path, name: str) -> helm.Release:
    return next(r for r in helm.load_releases(render, "dev") if r.name == name)


def _render(rel: helm.Release, api_versions=()) -> helm.Rendered:
    return helm.render_release(rel, kube_version="v1.35.4", api_versions=list(api_versions),
                               is_namespaced=helm.static_is_namespaced())


def test_every_release_maps_to_an_unpacked_chart(render):
    rels = helm.load_releases(render, "dev")
    assert {r.name for r in rels} >= {"base", "istiod", "gateway", "istio-cni", "cert-manager",
                                      "kube-prometheus-stack", "jenkins", "metrics-server"}
    for r in rels:
        assert (r.chart_dir / "Chart.yaml").exists()


def test_cert_manager_renders_with_our_values(render):
    out = _render(_release(render, "cert-manager"))
    kinds = {(o["kind"], o["metadata"]["name"]) for o in out.objects}
    # crds.enabled: the CRDs are templates of this chart
    assert ("CustomResourceDefinition", "certificates.cert-manager.io") in kinds
    assert ("Deployment", "cert-manager-webhook") in kinds
    assert ("ValidatingWebhookConfiguration", "cert-manager-webhook") in kinds
    # startupapicheck disabled in our values (it is a hook Job anyway)
    assert not any(o["kind"] == "Job" for o in out.objects)
    dep = next(o for o in out.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "cert-manager-webhook")
    assert dep["metadata"]["namespace"] == "cert-manager"
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "10m", "memory": "32Mi"}
    cluster_scoped = [o for o in out.objects if o["kind"] in ("ClusterRole", "CustomResourceDefinition")]
    assert all("namespace" not in o["metadata"] for o in cluster_scoped)


def test_crds_directory_is_included_and_honours_subchart_conditions(render):
    rel = _release(render, "kube-prometheus-stack")
    out = _render(rel)
    crds = {o["metadata"]["name"] for o in out.objects if o["kind"] == "CustomResourceDefinition"}
    assert "prometheusrules.monitoring.coreos.com" in crds and out.crds == len(crds) == 10
    off = helm.Release(rel.name, rel.chart, rel.version, rel.namespace, {**rel.values, "crds": {"enabled": False}},
                       rel.chart_dir)
    assert _render(off).crds == 0


def test_hooks_are_dropped_like_helm_v4_chart(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: hooky\nversion: 0.1.0\n")
    (tmp_path / "templates" / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n"
        "data:\n  v: '{{ .Capabilities.KubeVersion.Minor }}'\n"
        "  install: '{{ .Release.IsInstall }}'\n  has: '{{ .Capabilities.APIVersions.Has \"example.com/v1\" }}'\n"
        "---# a comment right after the separator, as charts write it\n"
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: hook\n  annotations:\n    helm.sh/hook: post-install\n"
        "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: x}]\n")
    rel = helm.Release("r", "hooky", "0.1.0", "ns1", {}, tmp_path)
    out = helm.render_release(rel, kube_version="v1.35.4", api_versions=["example.com/v1"],
                              is_namespaced=helm.static_is_namespaced())
    assert [o["metadata"]["name"] for o in out.objects] == ["plain"]
    assert out.hooks_dropped == ["Job/hook (post-install)"]
    cm = out.objects[0]
    assert cm["metadata"]["namespace"] == "ns1"
    assert cm["data"] == {"v": "35", "install": "true", "has": "true"}


def test_istiod_injector_values_feed_the_simulated_injector(render):
    out = _render(_release(render, "istiod"))
    cm = next(o for o in out.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "istio-sidecar-injector")
    cfg = admission.InjectorConfig.from_values(json.loads(cm["data"]["values"]))
    assert cfg.image == "docker.io/istio/proxyv2:1.29.6"
    assert cfg.resources["requests"] == TIERS["dev"].sidecar_resources["requests"]  # the dev stack's sidecar size
    assert cfg.cni is True


def _review(obj, op="CREATE"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": op, "kind": {"kind": obj["kind"]}, "object": obj}}


def test_injector_adds_native_sidecar_with_restricted_security_context():
    pod = {"kind": "Pod", "metadata": {"generateName": "user-7d9-", "labels": {"app": "user", "version": "v1"}},
           "spec": {"containers": [{"name": "user", "image": "registry/user:1"}]}}
    cfg = admission.InjectorConfig(hub="docker.io/istio", tag="1.29.6",
                                   resources={"requests": {"cpu": "100m", "memory": "128Mi"}},
                                   seccomp_profile={"type": "RuntimeDefault"})
    resp = admission.Webhooks(cfg).admit("istiod.istio-system.svc", "/inject", _review(pod))["response"]
    assert resp["allowed"] and resp["patchType"] == "JSONPatch"
    patch = {p["path"]: p["value"] for p in json.loads(base64.b64decode(resp["patch"]))}
    anns, labels = patch["/metadata/annotations"], patch["/metadata/labels"]
    status = json.loads(anns["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-validation", "istio-proxy"]
    assert labels["security.istio.io/tlsMode"] == "istio" and labels["service.istio.io/canonical-name"] == "user"
    assert anns["kubectl.kubernetes.io/default-container"] == "user"
    proxy = patch["/spec/initContainers"][1]
    assert proxy["name"] == "istio-proxy" and proxy["restartPolicy"] == "Always"
    assert proxy["image"] == "docker.io/istio/proxyv2:1.29.6"
    assert proxy["resources"]["requests"]["cpu"] == "100m"
    sc = proxy["securityContext"]
    assert sc["runAsNonRoot"] and sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert [c["name"] for c in patch["/spec/containers"]] == ["user"]


def test_injector_honours_opt_out_and_gateway_template():
    cfg = admission.InjectorConfig(tag="1.29.6")
    opt_out = {"kind": "Pod", "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
               "spec": {"containers": [{"name": "a", "image": "x"}]}}
    assert admission.inject(opt_out, cfg) == []
    gw = {"kind": "Pod", "metadata": {"annotations": {"inject.istio.io/templates": "gateway"}},
          "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]}}
    patch = {p["path"]: p["value"] for p in admission.inject(gw, cfg)}
    assert patch["/spec/containers"][0]["image"] == "docker.io/istio/proxyv2:1.29.6"


@pytest.mark.parametrize("spec, error", [
    ({"action": "PERMIT"}, "unknown action"),
    ({"action": "CUSTOM"}, "CUSTOM action without `provider`"),
    ({"rules": [{"when": [{"key": "request.bogus", "values": ["x"]}]}]}, "unknown attribute"),
    ({"rules": [{"to": [{"operation": {"ports": ["99999"]}}]}]}, "invalid port"),
])
def test_validation_denies_invalid_authorization_policies(spec, error):
    obj = {"kind": "AuthorizationPolicy", "metadata": {"name": "x", "namespace": "shop"}, "spec": spec}
    resp = admission.Webhooks().admit("istiod.istio-system.svc", "/validate", _review(obj))["response"]
    assert resp["allowed"] is False
    assert error in resp["status"]["message"]


def test_validation_allows_the_platforms_own_istio_objects(render):
    own = [o for _, o in helm.load_own_manifests(render, "dev") if o["apiVersion"].split("/")[0].endswith("istio.io")]
    assert len(own) >= 15
    hooks = admission.Webhooks()
    for o in own:
        resp = hooks.admit("istiod.istio-system.svc", "/validate", _review(o))["response"]
        assert resp["allowed"], (helm.obj_key(o), resp)


def test_cert_manager_webhook_allows():
    obj = {"kind": "Certificate", "metadata": {"name": "c"}, "spec": {}}
    for path in ("/validate", "/mutate"):
        resp = admission.Webhooks().admit("cert-manager-webhook.cert-manager.svc", path, _review(obj))["response"]
        assert resp["allowed"] and "patch" not in resp


def test_https_server_answers_by_sni_and_serves_metrics_discovery(tmp_path):
    names = ["istiod.istio-system.svc", "cert-manager-webhook.cert-manager.svc", "metrics-server.kube-system.svc"]
    with admission.AdmissionServer(tmp_path, names) as srv:
        host, port = srv.listen("127.0.0.1", 0)
        ctx = ssl.create_default_context(cafile=str(srv.files["ca"]))

        def call(sni, method, path, body=None):
            conn = http.client.HTTPSConnection(host, port, context=ctx)
            conn.sock = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=sni)
            conn.request(method, path, json.dumps(body) if body else None, {"Content-Type": "application/json"})
            return json.loads(conn.getresponse().read())
        bad = {"kind": "AuthorizationPolicy", "metadata": {"name": "x"}, "spec": {"action": "PERMIT"}}
        assert call("istiod.istio-system.svc", "POST", "/validate", _review(bad))["response"]["allowed"] is False
        assert call("cert-manager-webhook.cert-manager.svc", "POST", "/validate", _review(bad))["response"]["allowed"]
        disc = call("metrics-server.kube-system.svc", "GET", "/apis/metrics.k8s.io/v1beta1")
        assert {r["name"] for r in disc["resources"]} == {"nodes", "pods"}
        assert [e["webhook"] for e in srv.log] == ["istiod/validate", "cert-manager-webhook/validate"]
        assert base64.b64decode(srv.ca_bundle).startswith(b"-----BEGIN CERTIFICATE-----")


def test_apply_order_follows_the_plan(render):
    own = [o for _, o in helm.load_own_manifests(render, "dev")]
    charts = {r.name: _render(r).objects for r in helm.load_releases(render, "dev")}
    nodes = tier1.build_nodes(json.loads((render / "plan.json").read_text()), own, charts)
    wave = {n.label: n.wave for n in nodes}
    assert sum(len(n.objects) for n in nodes) == len(own) + sum(len(v) for v in charts.values())
    # CRDs' chart before the custom resources, istiod (its webhooks) before Istio objects and workloads
    assert wave["chart base"] < wave["chart istiod"] < wave["AuthorizationPolicy.security.istio.io shop/allow-nothing"]
    assert wave["chart istiod"] < wave["Deployment.apps shop/user"]
    assert wave["chart cert-manager"] < wave["ClusterIssuer.cert-manager.io platform-selfsigned"]
    assert wave["chart kube-prometheus-stack"] < wave["PrometheusRule.monitoring.coreos.com monitoring/user-slo"]
