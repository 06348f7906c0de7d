"""Add-ons (issue #11 parts 1, 3, 4): metrics-server, cert-manager with the cluster's ClusterIssuer, the
ingress gateway's certificate, and their footprint.

Checked against the pinned upstream data in tests/reference (chart values.yaml / values.schema.json,
cert-manager CRDs), under mocks (the exact code path of ``pulumi up``) and in the offline render.
Stacks whose cloud cluster code has not landed yet are skipped; local-cluster variants of the dev
config cover the staging and prod tiers, and the ACME issuer, meanwhile.
"""
import copy
import json
from functools import lru_cache

import jsonschema
import pytest
import yaml

from cnplatform.addons import cert_manager as cm
from cnplatform.addons import metrics_server as ms
from cnplatform.addons.certificate import TlsCertificateArgs, certificate_manifest, dns_names_for
from cnplatform.testing import unwrap
from stacks.checks import check_config
from stacks.compose.layers import addons as layer
from stacks.compose.layers import ingress_certificate as ingress
from stacks.compose.workloads import Workload
from stacks.config import ConfigError
from stacks.render import HELM_CHART_TYPES, is_k8s_object, manifest_of
from tests.helpers import REFERENCE, STACKS, capture_raw, capture_stack, config_of, manifests, with_changes
from tests.reference_checks import chart_version, unknown_values_keys, validate_custom_resource

CHARTS = {
    "metrics-server": (ms.CHART_VERSION, ms.REPOSITORY, "kube-system"),
    "cert-manager": (cm.CHART_VERSION, cm.REPOSITORY, "cert-manager"),
}
CERT_MANAGER_GROUPS = ("cert-manager.io", "acme.cert-manager.io")


# ------------------------------------------------------------------------------------------ captures


def _big_local_node(raw: dict) -> None:
    """Room for higher-tier replica counts of every layer (the capacity check is another test's business)."""
    raw["clusters"][0]["node_pools"][0].update({"cpu": "32", "memory": "64Gi", "max_size": 1})


def _staging(raw: dict) -> None:
    raw["tier"] = "staging"
    _big_local_node(raw)


def _prod(raw: dict) -> None:
    raw["tier"] = "prod"
    _big_local_node(raw)


def _acme(raw: dict) -> None:
    _staging(raw)
    raw["addons"]["cert_manager"].update({"issuer": "acme", "acme_email": "ops@shop.example.com",
                                          "acme_server": "https://acme-staging-v02.api.letsencrypt.org/directory"})
    raw["mesh"]["ingress"] = {"hosts": ["*", "shop.example.com", "*.shop.example.com", "api.shop.example.com"],
                              "tls_secret_name": "shop-tls"}


#: Local-cluster variants of the dev stack: every tier, and the ACME issuer, without cloud code.
VARIANTS = {"staging-local": _staging, "prod-local": _prod, "acme-local": _acme}
CAPTURES = ["dev", *VARIANTS]


@lru_cache(maxsize=None)
def _variant(name: str):
    return capture_raw(with_changes("dev", VARIANTS[name]), stack=name)


def capture_of(name: str):
    if name in VARIANTS:
        return _variant(name)
    return capture_stack(name)


def charts(capture) -> dict[tuple[str, str], dict]:
    """(cluster, chart) -> chart inputs."""
    out = {}
    for reg in capture.resources:
        if reg.type in HELM_CHART_TYPES:
            inputs = unwrap(reg.inputs)
            out[(capture.cluster_of(reg), inputs["chart"])] = {**inputs, "_urn": reg.urn}
    return out


def cert_manager_regs(capture):
    return [r for r in capture.resources if is_k8s_object(r)
            and r.type.split(":")[1].rsplit("/", 1)[0] in CERT_MANAGER_GROUPS]


def by_name(capture, kind: str) -> dict[str, dict]:
    return {manifest_of(r)["metadata"]["name"]: manifest_of(r) for r in cert_manager_regs(capture)
            if r.type.endswith(":" + kind)}


def helm_merge(defaults, overrides):
    """Helm's coalescing of user values over chart defaults: maps merge, null deletes, the rest replaces."""
    if not isinstance(defaults, dict) or not isinstance(overrides, dict):
        return copy.deepcopy(overrides)
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ------------------------------------------------------------------------------------ chart pins


@pytest.mark.parametrize("name", CAPTURES + ["staging", "prod"])
def test_charts_pinned_with_known_values_keys(name):
    capture = capture_of(name)
    found = charts(capture)
    ours = {k: v for k, v in found.items() if k[1] in CHARTS}
    assert any(chart == "cert-manager" for _, chart in ours)
    for (cluster, chart), inputs in ours.items():
        version, repo, namespace = CHARTS[chart]
        assert inputs["version"] == version == chart_version(chart), (cluster, chart)
        assert inputs["repositoryOpts"] == {"repo": repo}
        assert inputs["namespace"] == namespace and inputs["name"] == chart
        assert unknown_values_keys(chart, inputs["values"]) == [], (cluster, chart)


@lru_cache(maxsize=None)
def _cert_manager_schema():
    defaults = yaml.safe_load((REFERENCE / "helm-values/cert-manager/values.yaml").read_text())
    schema = json.loads((REFERENCE / "helm-values/cert-manager/values.schema.json").read_text())
    return defaults, jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.parametrize("name", CAPTURES + ["staging", "prod"])
def test_cert_manager_values_valid_against_chart_schema(name):
    defaults, validator = _cert_manager_schema()
    values = [v["values"] for (_, chart), v in charts(capture_of(name)).items() if chart == "cert-manager"]
    assert values
    for ours in values:
        merged = helm_merge(defaults, ours)
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(merged)]
        assert not errors, errors


def test_schema_check_catches_bad_values():
    defaults, validator = _cert_manager_schema()
    bad = helm_merge(defaults, {"crds": {"enabled": "yes"}, "webhook": {"replicas": 2}})
    assert len(list(validator.iter_errors(bad))) == 2
    assert unknown_values_keys("metrics-server", {"replicaCount": 2}) == ["replicaCount"]


def test_values_are_the_same_dicts_the_footprint_reads():
    """Chart values in the capture == the pure functions' output the footprint is computed from."""
    for name in CAPTURES:
        capture = capture_of(name)
        cfg = capture.config
        for cluster_cfg in cfg.clusters:
            found = charts(capture)
            footprint = {w.name: w for w in layer.footprint(cfg, cluster_cfg)}
            values = found[(cluster_cfg.name, "metrics-server")]["values"]
            assert values == ms.metrics_server_values(layer.metrics_server_args(cluster_cfg.cloud, cfg.tier))
            assert footprint["metrics-server"] == Workload.of(
                "addons", "metrics-server", values["replicas"], values["resources"])
            values = found[(cluster_cfg.name, "cert-manager")]["values"]
            args = layer.cert_manager_args(cfg, cluster_cfg)
            assert values == cm.cert_manager_values(args.replicas, args.priority_class_name)
            for deployment, (replicas, resources) in cm.deployment_resources(values).items():
                assert footprint[deployment] == Workload.of("addons", deployment, replicas, resources)
            assert set(footprint) == {"metrics-server", "cert-manager", "cert-manager-webhook",
                                      "cert-manager-cainjector"}


# ---------------------------------------------------------------------------------- metrics-server


def test_kubelet_insecure_tls_only_on_kind():
    assert ms.metrics_server_values(layer.metrics_server_args("local", "dev"))["args"] == ["--kubelet-insecure-tls"]
    for tier in ("dev", "staging", "prod"):
        assert ms.metrics_server_values(layer.metrics_server_args("aws", tier))["args"] == []
    dev = next(v for (_, c), v in charts(capture_of("dev")).items() if c == "metrics-server")
    assert dev["values"]["args"] == ["--kubelet-insecure-tls"]


def test_metrics_server_on_local_and_eks_not_gke():
    cfg = config_of("dev")
    local = cfg.clusters[0]
    eks = local.model_copy(update={"cloud": "aws", "region": "us-east-1"})
    gke = local.model_copy(update={"cloud": "gcp", "region": "europe-west1"})
    assert layer.wants_metrics_server(cfg, local) and layer.wants_metrics_server(cfg, eks)
    assert not layer.wants_metrics_server(cfg, gke) and layer.has_metrics_api(cfg, gke)
    assert "metrics-server" not in {w.name for w in layer.footprint(cfg, gke)}
    off = cfg.model_copy(update={"addons": cfg.addons.model_copy(update={"metrics_server": False})})
    assert not layer.has_metrics_api(off, local) and layer.has_metrics_api(off, gke)


@pytest.mark.parametrize("tier,replicas", [("dev", 1), ("staging", 1), ("prod", 2)])
def test_ha_in_prod_only(tier, replicas):
    values = ms.metrics_server_values(layer.metrics_server_args("aws", tier))
    assert values["replicas"] == replicas
    pdb = {"enabled": True, "minAvailable": 1} if replicas > 1 else {"enabled": False}
    assert values["podDisruptionBudget"] == pdb
    assert ("topologySpreadConstraints" in values) == (replicas > 1)
    cmv = cm.cert_manager_values(layer.cert_manager_replicas(tier))
    for section in (cmv, cmv["webhook"], cmv["cainjector"]):
        assert section["replicaCount"] == replicas and section["podDisruptionBudget"]["enabled"] == (replicas > 1)
    # Spread constraints select the chart's own pod labels.
    if replicas > 1:
        sel = values["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
        assert sel == {"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/instance": "metrics-server"}


def test_prod_tier_capture_is_ha():
    found = charts(capture_of("prod-local"))
    assert found[("dev", "metrics-server")]["values"]["replicas"] == 2
    assert found[("dev", "cert-manager")]["values"]["webhook"]["replicaCount"] == 2


def _clusters_without_metrics_api(hpa_clusters: set, metrics_server_clusters: set, clouds: dict) -> list[str]:
    return sorted(c for c in hpa_clusters if c not in metrics_server_clusters and clouds.get(c) != "gcp")


@pytest.mark.parametrize("stack", STACKS)
def test_every_cluster_with_an_hpa_has_a_metrics_api(rendered, stack):
    """In the render: a cluster with an HPA has the metrics-server chart, or is GKE (managed metrics API)."""
    out = rendered(stack)
    clusters = json.loads((out / "plan.json").read_text())["outputs"]["clusters"]
    clouds = {name: c["cloud"] for name, c in clusters.items()}
    hpa = {p.relative_to(out / "manifests").parts[0] for p, doc in manifests(out)
           if doc["kind"] == "HorizontalPodAutoscaler"}
    with_ms = {p.parent.name for p in (out / "helm").glob("*/charts.json")
               if any(r["chart"] == "metrics-server" for r in json.loads(p.read_text())["releases"])}
    assert _clusters_without_metrics_api(hpa, with_ms, clouds) == []


@pytest.mark.parametrize("name", CAPTURES)
def test_every_cluster_with_an_hpa_has_a_metrics_api_under_mocks(name):
    capture = capture_of(name)
    clouds = {c.name: c.cloud for c in capture.config.clusters}
    hpa = {capture.cluster_of(r) for r in capture.resources
           if is_k8s_object(r) and r.type.endswith(":HorizontalPodAutoscaler")}
    with_ms = {cluster for cluster, chart in charts(capture) if chart == "metrics-server"}
    assert _clusters_without_metrics_api(hpa, with_ms, clouds) == []


def test_metrics_api_check_is_not_vacuous():
    assert _clusters_without_metrics_api({"a", "b", "c"}, {"a"}, {"a": "local", "b": "aws", "c": "gcp"}) == ["b"]
    capture = capture_raw(with_changes("dev", lambda raw: raw["addons"].update(metrics_server=False)), stack="noms")
    assert ("dev", "metrics-server") not in charts(capture)


# ------------------------------------------------------------------------------------- cert-manager


@pytest.mark.parametrize("name", CAPTURES + ["staging", "prod"])
def test_cert_manager_objects_valid_against_crds(name):
    capture = capture_of(name)
    regs = cert_manager_regs(capture)
    assert regs
    errors = [e for r in regs for e in validate_custom_resource(manifest_of(r))]
    assert not errors, errors


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_cert_manager_manifests_valid_against_crds(rendered, stack):
    docs = [(p, d) for p, d in manifests(rendered(stack))
            if d["apiVersion"].rpartition("/")[0] in CERT_MANAGER_GROUPS]
    assert docs
    errors = [e for _, d in docs for e in validate_custom_resource(d)]
    assert not errors, errors


def test_crd_check_catches_bad_objects():
    good = by_name(capture_of("dev"), "ClusterIssuer")["platform-ca"]
    bad = {**good, "spec": {"ca": {"secret": "platform-ca"}}}
    assert validate_custom_resource(good) == [] and validate_custom_resource(bad)


@pytest.mark.parametrize("name", CAPTURES + ["staging", "prod"])
def test_custom_resources_depend_on_the_cert_manager_chart(name):
    """CRDs and a ready webhook first, so the first `pulumi up` on an empty cluster works in one pass."""
    capture = capture_of(name)
    chart_urns = {cluster: v["_urn"] for (cluster, chart), v in charts(capture).items() if chart == "cert-manager"}
    for reg in cert_manager_regs(capture):
        assert chart_urns[capture.cluster_of(reg)] in reg.depends_on, reg.name


def test_dev_issuer_is_a_self_signed_ca():
    capture = capture_of("dev")
    issuers, certs = by_name(capture, "ClusterIssuer"), by_name(capture, "Certificate")
    assert issuers["platform-selfsigned"]["spec"] == {"selfSigned": {}}
    ca = certs["platform-ca"]
    assert ca["metadata"]["namespace"] == "cert-manager" and ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"] == {"name": "platform-selfsigned", "kind": "ClusterIssuer",
                                       "group": "cert-manager.io"}
    assert issuers["platform-ca"]["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    assert capture.outputs["clusters"]["dev"]["cluster_issuer"] == "platform-ca"
    # The CA ClusterIssuer waits for its CA certificate; the namespace is PSS-restricted.
    regs = {r.name: r for r in cert_manager_regs(capture)}
    ca_urn = regs["dev-cert-manager-certificate-platform-ca"].urn
    assert ca_urn in regs["dev-cert-manager-clusterissuer-platform-ca"].depends_on
    ns = next(r for r in capture.resources if r.name == "dev-cert-manager-ns")
    assert unwrap(ns.inputs)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_acme_issuer_solves_http01_through_the_istio_ingress():
    capture = capture_of("acme-local")
    issuers = by_name(capture, "ClusterIssuer")
    assert set(issuers) == {"letsencrypt"}
    acme = issuers["letsencrypt"]["spec"]["acme"]
    assert acme["email"] == "ops@shop.example.com"
    assert acme["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert acme["privateKeySecretRef"] == {"name": "letsencrypt-account-key"}
    assert acme["solvers"] == [{"http01": {"ingress": {"class": "istio"}}}]
    assert capture.outputs["clusters"]["dev"]["cluster_issuer"] == "letsencrypt"


def test_cloud_clusters_default_to_acme():
    cfg = config_of("dev")
    eks = cfg.clusters[0].model_copy(update={"cloud": "aws", "region": "us-east-1"})
    args = layer.cert_manager_args(cfg, eks)
    assert (args.issuer, args.issuer_name) == ("acme", "letsencrypt")
    assert layer.cert_manager_args(cfg, cfg.clusters[0]).issuer_name == "platform-ca"


def test_cert_manager_config_is_validated():
    def bad(raw):
        raw["addons"]["cert_manager"].update(issuer="vault", acme_email="nobody", acme_server="http://x")
    with pytest.raises(ConfigError) as err:
        check_config(with_changes("dev", bad))
    paths = {p for p, _ in err.value.errors}
    assert paths == {"addons.cert_manager.issuer", "addons.cert_manager.acme_email", "addons.cert_manager.acme_server"}


def test_chart_installs_crds_and_skips_the_startup_hook():
    values = cm.cert_manager_values(1)
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["startupapicheck"] == {"enabled": False}


# ------------------------------------------------------------------------------ gateway certificate


def test_gateway_certificate_on_dev():
    capture = capture_of("dev")
    certs = [r for r in cert_manager_regs(capture) if manifest_of(r)["metadata"].get("namespace") == "istio-system"]
    assert len(certs) == 1
    reg, cert = certs[0], manifest_of(certs[0])
    assert cert["metadata"]["name"] == cert["spec"]["secretName"] == "ingress-gateway-tls"
    assert cert["spec"]["dnsNames"] == ["shop.localtest.me"]
    assert cert["spec"]["issuerRef"] == {"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    issuer = next(r for r in cert_manager_regs(capture) if r.name == "dev-cert-manager-clusterissuer-platform-ca")
    assert issuer.urn in reg.depends_on
    # istio-system comes from the mesh layer (once it has landed): the certificate waits for it.
    istio_system = [r.urn for r in capture.resources if r.type == "kubernetes:core/v1:Namespace"
                    and unwrap(r.inputs)["metadata"]["name"] == "istio-system"]
    assert set(istio_system) <= set(reg.depends_on)


def test_gateway_certificate_with_acme_drops_wildcards_and_uses_the_configured_secret():
    cert = by_name(capture_of("acme-local"), "Certificate")["shop-tls"]
    assert cert["metadata"]["namespace"] == "istio-system" and cert["spec"]["secretName"] == "shop-tls"
    assert cert["spec"]["dnsNames"] == ["shop.example.com", "api.shop.example.com"]
    assert cert["spec"]["issuerRef"]["name"] == "letsencrypt"


@pytest.mark.parametrize("hosts,issuer,expected", [
    (["*"], "ca", ["shop.localtest.me"]),
    (["*"], "acme", []),
    (["*.example.com"], "ca", ["*.example.com"]),
    (["*.example.com", "Shop.Example.com", "shop.example.com"], "acme", ["shop.example.com"]),
    (["shop/www.example.com", "*"], "acme", ["www.example.com"]),
])
def test_dns_names_for(hosts, issuer, expected):
    assert dns_names_for(hosts, issuer, "shop.localtest.me") == expected


def test_acme_without_a_real_host_is_reported():
    raw = with_changes("dev", _acme)
    raw["mesh"]["ingress"]["hosts"] = ["*", "*.example.com"]
    with pytest.raises(ConfigError) as exc:  # rejected with the config, before any resource
        check_config(raw)
    errors = exc.value.errors
    assert len(errors) == 1 and errors[0][0] == "mesh.ingress.hosts" and "'dev'" in errors[0][1]
    assert "wildcard" in errors[0][1]
    assert ingress.config_errors(check_config(with_changes("dev", _acme))) == []


def test_certificate_manifest_rejects_invalid_names():
    for names in ([], ["*"], ["bad_host.example.com"]):
        with pytest.raises(ValueError):
            certificate_manifest(TlsCertificateArgs(namespace="istio-system", secret_name="x", issuer_name="i",
                                                    dns_names=names))


@pytest.mark.parametrize("change,expect_chart,expect_gateway_cert", [
    (lambda raw: raw["addons"]["cert_manager"].update(enabled=False), False, False),
    (lambda raw: raw["mesh"].update(enabled=False), True, False),
    (lambda raw: raw["mesh"].update(ingress={"enabled": False}), True, False),
])
def test_gateway_certificate_only_with_cert_manager_and_ingress(change, expect_chart, expect_gateway_cert):
    capture = capture_raw(with_changes("dev", change), stack="toggles")
    assert (("dev", "cert-manager") in charts(capture)) == expect_chart
    gateway = [r for r in cert_manager_regs(capture) if manifest_of(r)["metadata"].get("namespace") == "istio-system"]
    assert bool(gateway) == expect_gateway_cert
    assert ("cluster_issuer" in capture.outputs["clusters"]["dev"]) == expect_chart


# ----------------------------------------------------------------------------------------- components


def test_components_have_type_tokens_and_inferable_schemas():
    from pulumi.provider.experimental.analyzer import Analyzer

    from cnplatform.addons import CertManager, MetricsServer, TlsCertificate

    types = {r.type for r in capture_of("dev").resources}
    assert {"cnplatform:addons:MetricsServer", "cnplatform:addons:CertManager",
            "cnplatform:addons:TlsCertificate"} <= types
    analyzer = Analyzer("cnplatform")
    for component, inputs, outputs in [
        (MetricsServer, {"replicas", "kubeletInsecureTls", "chartVersion"},
         {"namespace", "releaseName", "chartVersion"}),
        (CertManager, {"replicas", "issuer", "issuerName", "acmeEmail"},
         {"namespace", "clusterIssuer", "chartVersion"}),
        (TlsCertificate, {"namespace", "secretName", "issuerName", "dnsNames"}, {"secretName", "dnsNames"}),
    ]:
        schema = analyzer.analyze_component(component)
        assert inputs <= set(schema.inputs) and set(schema.outputs) == outputs
        assert all(p.description for p in schema.inputs.values())


def test_the_ca_bundle_wait_transform():
    """The one transform both charts use (cnplatform.charts): webhook configurations only, the chart's
    own annotations kept, the input not mutated."""
    import pulumi

    from cnplatform.charts import CA_BUNDLE_WAIT, WEBHOOK_TYPES, wait_for_ca_bundle

    hook = {"metadata": {"name": "cert-manager-webhook", "annotations": {"cert-manager.io/inject-ca-from-secret":
                                                                         "cert-manager/cert-manager-webhook-ca"}},
            "webhooks": [{"name": "webhook.cert-manager.io", "clientConfig": {"service": {"name": "w"}}}]}
    for type_ in WEBHOOK_TYPES:
        args = pulumi.ResourceTransformArgs(custom=True, type_=type_, name="w", props=hook,
                                            opts=pulumi.ResourceOptions())
        result = wait_for_ca_bundle(args)
        annotations = result.props["metadata"]["annotations"]
        assert annotations["pulumi.com/waitFor"] == CA_BUNDLE_WAIT == "jsonpath={.webhooks[0].clientConfig.caBundle}"
        assert "cert-manager.io/inject-ca-from-secret" in annotations  # the chart's own annotations stay
    other = pulumi.ResourceTransformArgs(custom=True, type_="kubernetes:apps/v1:Deployment", name="d",
                                         props={"metadata": {}}, opts=pulumi.ResourceOptions())
    assert wait_for_ca_bundle(other) is None
    assert "pulumi.com/waitFor" not in hook["metadata"]["annotations"]  # the input is not mutated


def chart_transforms(monkeypatch, stack: str) -> dict[tuple[str, str], list]:
    """(cluster, release) -> the transforms each Chart's registration request carries, i.e. what the
    engine runs on the chart's children at `pulumi up` (a fresh run of ``stack`` under mocks)."""
    from pulumi.runtime.mocks import _resolve_callbacks

    from cnplatform.testing.capture import RecordingMonitor

    seen: dict[str, list] = {}
    register = RecordingMonitor.RegisterResource

    def recording(self, request):
        response = register(self, request)
        seen[response.urn] = _resolve_callbacks(request.transforms)
        return response

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", recording)
    capture = capture_stack.__wrapped__(stack)
    return {(capture.cluster_of(r), unwrap(r.inputs)["name"]): seen[r.urn]
            for r in capture.by_type("kubernetes:helm.sh/v4:Chart")}


def transformed_chart_objects(rendered, stack: str, cluster: str, release: str, transforms: list) -> list[dict]:
    """The objects of one release as helm.v4.Chart renders them from the pinned chart with our values,
    each passed through ``transforms`` as the engine does with a chart's children."""
    import helm_python  # noqa: F401  (requirements-dev.txt: renders the pinned charts offline)
    import pulumi

    from e2e import helm

    [rel] = [r for r in helm.load_releases(rendered(stack), cluster) if r.name == release]
    out = []
    for obj in helm.render_release(rel, kube_version="1.35.0", api_versions=[],
                                   is_namespaced=helm.static_is_namespaced()).objects:
        group, _, version = obj["apiVersion"].rpartition("/")
        args = pulumi.ResourceTransformArgs(custom=True, type_=f"kubernetes:{group or 'core'}/{version}:{obj['kind']}",
                                            name=obj["metadata"]["name"], props=obj, opts=pulumi.ResourceOptions())
        for transform in transforms:
            result = transform(args)
            if result is not None:
                args = pulumi.ResourceTransformArgs(custom=True, type_=args.type_, name=args.name,
                                                    props=result.props, opts=result.opts)
        out.append(dict(args.props))
    return out


def waits_for(obj: dict):
    return ((obj.get("metadata") or {}).get("annotations") or {}).get("pulumi.com/waitFor")


def test_cert_manager_webhooks_wait_for_the_injected_ca(rendered, monkeypatch):
    """On a first `pulumi up` the ClusterIssuers must not reach the webhook before cainjector has
    injected its CA (x509 error) (issue #15 item 8): the chart's registration carries the transform,
    which marks exactly the chart's webhook configurations, and the issuers depend on the chart."""
    from cnplatform.charts import CA_BUNDLE_WAIT, wait_for_ca_bundle

    transforms = chart_transforms(monkeypatch, "dev")
    assert transforms[("dev", "cert-manager")] == [wait_for_ca_bundle]
    objs = transformed_chart_objects(rendered, "dev", "dev", "cert-manager", transforms[("dev", "cert-manager")])
    waiting = {(o["kind"], o["metadata"]["name"]) for o in objs if waits_for(o)}
    assert waiting == {("MutatingWebhookConfiguration", "cert-manager-webhook"),
                       ("ValidatingWebhookConfiguration", "cert-manager-webhook")}
    assert {waits_for(o) for o in objs if waits_for(o)} == {CA_BUNDLE_WAIT}
    capture = capture_stack("dev")
    [chart] = [r for r in capture.by_type("kubernetes:helm.sh/v4:Chart") if unwrap(r.inputs)["name"] == "cert-manager"]
    issuers = [r for r in cert_manager_regs(capture) if manifest_of(r)["kind"] == "ClusterIssuer"]
    assert issuers and all(chart.urn in r.depends_on for r in issuers)
