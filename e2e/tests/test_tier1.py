"""Tier 1 can fail: each harness self-test feeds e2e.tier1.run a deliberately broken set of objects against
the real API server of the simulated cluster (fixture ``sim_cluster``, skipped when the tools are not
built) and expects the failure a real ``pulumi up`` would hit."""
from __future__ import annotations

import copy
import uuid

import pytest

pytest.importorskip("helm_python", reason="helm-python-sdk not installed (pip install -r e2e/requirements.txt)")
pytest.importorskip("cryptography", reason="cryptography not installed (pip install -r e2e/requirements.txt)")

from e2e import helm, tier1  # noqa: E402


def _suffix() -> str:
    return uuid.uuid4().hex[:6]


def _crd(group: str, kind: str = "Widget", rule: str | None = None) -> dict:
    props = {"size": {"type": "integer"}, "max": {"type": "integer"}}
    schema: dict = {"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}
    if rule:
        schema["properties"]["spec"]["x-kubernetes-validations"] = [
            {"rule": rule, "message": "size must not exceed max"}]
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def _ns(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _deployment(ns: str, name: str, app: str) -> dict:
    container = {"name": "c", "image": "registry.example/c:1",
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [container]}}}}


def _errors(res: dict) -> str:
    return "\n".join(r["error"] for r in res["rejected"])


def test_custom_resource_before_its_crd_is_rejected(sim_cluster, tmp_path):
    group, ns = f"e2e{_suffix()}.example.com", f"t1-order-{_suffix()}"
    cr = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
          "spec": {"size": 1}}
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=20, objects=[[_ns(ns), cr], [_crd(group)]])
    assert res["ok"] is False
    assert [r["object"] for r in res["rejected"]] == [f"Widget.{group} {ns}/w"]
    assert 'no matches for kind "Widget"' in _errors(res)
    # the same objects in the right order pass: the failure was the order, nothing else
    ok = tier1.run(sim_cluster, tmp_path / "again", wave_timeout=20, objects=[[_crd(group)], [_ns(ns), cr]])
    assert ok["rejected"] == [] and ok["ok"], ok


def test_field_breaking_a_crd_cel_rule_is_rejected(sim_cluster, tmp_path):
    group, ns = f"e2e{_suffix()}.example.com", f"t1-cel-{_suffix()}"
    bad = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
           "spec": {"size": 5, "max": 3}}
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=20,
                    objects=[[_crd(group, rule="self.size <= self.max"), _ns(ns)], [bad]])
    assert res["ok"] is False
    assert "size must not exceed max" in _errors(res)


def test_real_istio_crd_cel_rule_is_enforced(sim_cluster, tmp_path):
    """The CEL rules of the pinned Istio CRDs (istio-base chart) run in the API server."""
    base = next(p for (name, _), p in helm.chart_index().items() if name == "base")
    rel = helm.Release("base", "base", "x", "istio-system", {}, base)
    crds = [o for o in helm.render_release(rel, kube_version="v1.35.4", api_versions=[],
                                           is_namespaced=helm.static_is_namespaced()).objects
            if o["kind"] == "CustomResourceDefinition"]
    ns = f"t1-istio-cel-{_suffix()}"
    bad = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
           "metadata": {"name": "wild", "namespace": ns},
           "spec": {"selector": {"matchLabels": {"app": "web*"}}, "action": "ALLOW"}}
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=20, objects=[crds + [_ns(ns)], [bad]])
    assert "wildcard not allowed in label value match" in _errors(res), res["rejected"]


def test_immutable_field_change_is_rejected(sim_cluster, tmp_path):
    ns = f"t1-immutable-{_suffix()}"
    v1 = _deployment(ns, "web", "web")
    v2 = copy.deepcopy(v1)
    v2["spec"]["selector"]["matchLabels"] = {"app": "web2"}
    v2["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=60, objects=[[_ns(ns)], [v1], [v2]])
    assert res["ok"] is False
    assert "field is immutable" in _errors(res)


def test_workload_that_never_becomes_available_is_reported(sim_cluster, tmp_path):
    ns = f"t1-unsched-{_suffix()}"
    big = _deployment(ns, "huge", "huge")
    big["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "64"  # node has 4
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=15, objects=[[_ns(ns)], [big]])
    assert res["ok"] is False
    assert [u["object"] for u in res["unavailable"]] == [f"Deployment.apps {ns}/huge"]


def test_admission_server_denies_an_invalid_istio_object(sim_cluster, tmp_path):
    """istiod's validating webhook (the istio-base chart's, as rendered) answered by the harness: an
    AuthorizationPolicy that passes the CRD schema but uses an unknown condition key is denied."""
    base = next(p for (name, _), p in helm.chart_index().items() if name == "base")
    rel = helm.Release("base", "base", "x", "istio-system", {"defaultRevision": "default"}, base)
    objs = helm.render_release(rel, kube_version="v1.35.4", api_versions=[],
                               is_namespaced=helm.static_is_namespaced()).objects
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    vwc = [o for o in objs if o["kind"] == "ValidatingWebhookConfiguration"]
    assert vwc, "istio-base renders istiod-default-validator"
    istiod = _deployment("istio-system", "istiod", "istiod")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istiod", "namespace": "istio-system"},
           "spec": {"selector": {"app": "istiod"},
                    "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017}]}}
    ns = f"t1-deny-{_suffix()}"
    bad = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
           "metadata": {"name": "bad", "namespace": ns},
           "spec": {"action": "ALLOW", "rules": [{"when": [{"key": "request.bogus", "values": ["x"]}]}]}}
    good = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "good", "namespace": ns},
            "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": [ns]}}]}]}}
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=60,
                    objects=[crds + [_ns("istio-system"), _ns(ns)], [istiod, svc], vwc, [bad, good]])
    rejected = {r["object"]: r["error"] for r in res["rejected"]}
    assert list(rejected) == [f"AuthorizationPolicy.security.istio.io {ns}/bad"], res["rejected"]
    assert 'admission webhook "validation.istio.io" denied the request' in rejected[list(rejected)[0]]
    assert "unknown attribute 'request.bogus'" in rejected[list(rejected)[0]]
    assert res["webhook_calls"] >= 2  # the valid one went through the webhook too, and was allowed


def test_unknown_field_is_rejected_by_strict_field_validation(sim_cluster, tmp_path):
    """A typo in a manifest is an error (as for a typed Pulumi resource), not silently dropped."""
    ns = f"t1-strict-{_suffix()}"
    typo = _deployment(ns, "typo", "typo")
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    res = tier1.run(sim_cluster, tmp_path, wave_timeout=20, objects=[[_ns(ns)], [typo]])
    assert res["ok"] is False
    assert 'imagePullPolicyy: field not declared in schema' in _errors(res)
