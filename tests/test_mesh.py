"""The mesh (issue #6): Istio charts and values, ingress, per-service traffic policy, zero trust, one
trust root across clusters, optional Consul; all under mocks (same code path as `pulumi up`)."""
from __future__ import annotations

import base64
from functools import lru_cache

import pytest
import yaml

from cnplatform.cluster.local import INGRESS_NODE_PORT_HTTP, INGRESS_NODE_PORT_HTTPS
from cnplatform.mesh import values as mv
from cnplatform.mesh.authorization import ServiceAuthorizationArgs, authorization_policy
from cnplatform.mesh.ca import CACERTS_KEYS
from cnplatform.mesh.istio import (
    ACME_CHALLENGE_PREFIX,
    HTTPS_REDIRECT_NAME,
    PUBLIC_HTTP_GATEWAY_NAME,
    IstioMesh,
    IstioMeshArgs,
    https_redirect_virtual_service,
    public_gateway,
    public_http_gateway,
)
from cnplatform.mesh.traffic import (
    RETRY_ON,
    ServiceTrafficPolicyArgs,
    destination_rule,
    exposed_service_paths,
    ingress_rewrite,
    ingress_virtual_service,
    resilience,
    virtual_service,
)
from cnplatform.naming import app_labels, selector_labels
from cnplatform.testing import unwrap
from cnplatform.topology import callers_of
from stacks.checks.footprint import workloads as footprint_workloads
from stacks.compose.layers import mesh as layer
from stacks.compose.workloads import Workload
from stacks.render import is_k8s_object, manifest_of
from tests.helpers import (
    ROOT,
    STACKS,
    capture_raw,
    capture_stack,
    config_of,
    objects,
    run_program,
    stack_raw,
    with_changes,
)
from tests.reference_checks import chart_version, unknown_values_keys, validate_custom_resource

CHART = "kubernetes:helm.sh/v4:Chart"
ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/", "telemetry.istio.io/", "extensions.istio.io/")
GATEWAY_SA = "cluster.local/ns/istio-system/sa/gateway"


# ------------------------------------------------------------------------------------------ helpers


def istio_registrations(capture, cluster=None):
    return [r for r in capture.resources if is_k8s_object(r) and manifest_of(r)["apiVersion"].startswith(ISTIO_GROUPS)
            and (cluster is None or capture.cluster_of(r) == cluster)]


def charts(capture, cluster):
    """release name -> Chart registration of one cluster."""
    return {unwrap(r.inputs).get("name"): r for r in capture.by_type(CHART) if capture.cluster_of(r) == cluster}


def find(capture, kind, name, cluster, namespace=None):
    found = [o for o in objects(capture, kind, cluster) if o["metadata"]["name"] == name
             and (namespace is None or o["metadata"].get("namespace") == namespace)]
    return found[0] if found else None


def registration(capture, kind, name, cluster):
    for r in capture.resources:
        if is_k8s_object(r) and r.type.endswith(":" + kind) and capture.cluster_of(r) == cluster \
                and manifest_of(r)["metadata"]["name"] == name:
            return r
    raise AssertionError(f"no {kind} {name} in {cluster}")


def _variant(raw):
    """Two kind clusters, no cert-manager, Consul on, a canary at 20% (order) and one rolled back to 0%
    (product), and a service nobody calls that is not exposed (audit)."""
    dev = raw["clusters"][0]
    raw["clusters"] = [dev, {**dev, "name": "dev-b"}]
    raw["addons"]["cert_manager"]["enabled"] = False
    raw["monitoring"]["enabled"] = False
    raw["cicd"]["enabled"] = False
    raw["mesh"]["consul"] = True
    for svc in raw["services"]:
        if svc["name"] == "order":
            svc["canary"] = {"image": "registry.example.com/order:2.0.0", "weight": 20}
        if svc["name"] == "product":
            svc["canary"] = {"image": "registry.example.com/product:2.0.0", "weight": 0}
    raw["services"].append({"name": "audit", "image": "registry.example.com/audit:1.0.0", "clusters": ["dev"]})


@lru_cache(maxsize=None)
def variant():
    return capture_raw(with_changes("dev", _variant), stack="mesh-variant")


def expected_callers(cfg):
    """service -> the set of principals that may call it, derived from the config alone."""
    callers = callers_of({s.name: s.calls for s in cfg.services})
    return {name: {f"cluster.local/ns/{cfg.service(c).namespace}/sa/{c}" for c in names}
            for name, names in callers.items()}


# ----------------------------------------------------------------------------- CRD schema + ordering


@pytest.mark.parametrize("stack", STACKS)
def test_istio_custom_resources_validate_against_the_crds(stack):
    capture = capture_stack(stack)
    docs = [manifest_of(r) for r in istio_registrations(capture)]
    kinds = {d["kind"] for d in docs}
    assert {"Gateway", "VirtualService", "DestinationRule", "PeerAuthentication", "AuthorizationPolicy"} <= kinds
    errors = [e for d in docs for e in validate_custom_resource(d)]
    assert not errors, "\n".join(errors)


def test_variant_custom_resources_validate_against_the_crds():
    errors = [e for r in istio_registrations(variant()) for e in validate_custom_resource(manifest_of(r))]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("stack", STACKS)
def test_every_istio_resource_waits_for_the_crds_and_the_validation_webhook(stack):
    """First `pulumi up` on an empty cluster: CRs after base (CRDs) and istiod (validation webhook)."""
    capture = capture_stack(stack)
    missing = []
    for reg in istio_registrations(capture):
        cluster = capture.cluster_of(reg)
        mine = charts(capture, cluster)
        need = {mine["base"].urn, mine["istiod"].urn}
        if not need <= set(reg.depends_on):
            missing.append(f"{cluster}: {reg.name} depends_on {reg.depends_on}")
    assert not missing, "\n".join(missing)


def test_istio_webhooks_wait_for_the_ca_bundle_istiod_patches(rendered, monkeypatch):
    """istiod patches its webhooks' caBundle after it starts, and they are failurePolicy Fail from the
    first render (issue #15 item 12): the istiod Chart's registration carries the shared transform,
    which marks its validator and injector (what its pinned chart renders); the custom resources depend
    on that chart (test above). Not the base chart: istiod waits for base, so a base child waiting for
    istiod would never be ready (base's default validator is patched by the same istiod controller)."""
    from cnplatform.charts import CA_BUNDLE_WAIT, wait_for_ca_bundle
    from tests.test_addons import chart_transforms, transformed_chart_objects, waits_for

    transforms = chart_transforms(monkeypatch, "dev")
    assert transforms[("dev", "istiod")] == [wait_for_ca_bundle]
    assert transforms[("dev", "base")] == []
    istiod = transformed_chart_objects(rendered, "dev", "dev", "istiod", transforms[("dev", "istiod")])
    waiting = {(o["kind"], o["metadata"]["name"]) for o in istiod if waits_for(o)}
    assert waiting == {("ValidatingWebhookConfiguration", "istio-validator-istio-system"),
                       ("MutatingWebhookConfiguration", "istio-sidecar-injector")}
    assert {waits_for(o) for o in istiod if waits_for(o)} == {CA_BUNDLE_WAIT}
    # None of them is rendered with a caBundle (istiod owns the field: no apply fights it on updates).
    hooks = [o for o in istiod if o["kind"].endswith("WebhookConfiguration")]
    assert hooks and not any("caBundle" in h["clientConfig"] for o in hooks for h in o["webhooks"])
    base = transformed_chart_objects(rendered, "dev", "dev", "base", transforms[("dev", "base")])
    assert [o["metadata"]["name"] for o in base if o["kind"] == "ValidatingWebhookConfiguration"] == [
        "istiod-default-validator"]
    assert not any(waits_for(o) for o in base)


@pytest.mark.parametrize("stack", STACKS)
def test_install_order_of_the_charts(stack):
    capture = capture_stack(stack)
    for cluster in (c.name for c in capture.config.clusters):
        mine = charts(capture, cluster)
        cacerts = registration(capture, "Secret", "cacerts", cluster)
        namespace = registration(capture, "Namespace", "istio-system", cluster)
        assert namespace.urn in cacerts.depends_on and namespace.urn in mine["base"].depends_on
        # istiod starts with the plugged-in CA (else it would self-sign a root) and after the CRDs.
        assert {mine["base"].urn, cacerts.urn} <= set(mine["istiod"].depends_on)
        # Gateway pods use `image: auto`: istiod's injection webhook must exist first.
        assert mine["istiod"].urn in mine["gateway"].depends_on
        # The CNI node agent is up before istiod injects pods that rely on it (no istio-init).
        assert mine["istio-cni"].urn in mine["istiod"].depends_on


@pytest.mark.parametrize("stack", STACKS)
def test_workloads_wait_for_the_injector_not_for_the_gateways(stack):
    """A pod created before istiod's injector runs has no sidecar; the gateways' rollout is not its business."""
    capture = capture_stack(stack)
    workloads = [r for r in capture.resources if r.type == "kubernetes:apps/v1:Deployment"
                 and r.parent and "cnplatform:microservice:Microservice" in r.parent]
    assert workloads
    for reg in workloads:
        mine = charts(capture, capture.cluster_of(reg))
        assert mine["istiod"].urn in reg.depends_on, reg.name
        gateways = {c.urn for name, c in mine.items() if "gateway" in name}
        assert gateways and not gateways & set(reg.depends_on), reg.name


# --------------------------------------------------------------------------------- values and pins


@pytest.mark.parametrize("stack", STACKS)
def test_validation_webhooks_fail_closed_from_the_first_render(stack):
    """helm.v4 renders each update as a fresh install (.Release.IsUpgrade false): without an explicit
    policy the charts render the validators as Ignore on every `pulumi up`."""
    cap = capture_stack(stack)
    releases = {r.inputs["chart"]: unwrap(r.inputs["values"]) for r in cap.by_type("kubernetes:helm.sh/v4:Chart")}
    for chart in ("base", "istiod"):
        assert releases[chart]["base"]["validationFailurePolicy"] == "Fail", chart


@pytest.mark.parametrize("stack", STACKS)
def test_chart_values_use_only_upstream_keys_and_pinned_versions(stack):
    capture = capture_stack(stack)
    for cluster in (c.name for c in capture.config.clusters):
        mine = charts(capture, cluster)
        assert {"base", "istiod", "gateway"} <= set(mine)
        for release, reg in mine.items():
            inputs = unwrap(reg.inputs)
            chart = inputs["chart"]
            if chart == mv.CNI_CHART:
                continue  # no pinned values.yaml to check against: test_cni_values_keys_* below
            if chart not in ("base", "istiod", "gateway", "consul"):
                continue  # other layers' charts
            assert unknown_values_keys(chart, inputs.get("values") or {}) == [], (cluster, release)
            assert inputs["version"] == chart_version(chart) == mv.ISTIO_VERSION
            assert inputs["repositoryOpts"]["repo"] == mv.ISTIO_REPO and inputs["namespace"] == "istio-system"
        istiod = unwrap(mine["istiod"].inputs)["values"]
        assert istiod["global"]["hub"] == "docker.io/istio" and istiod["global"]["tag"] == "1.29.6"


def test_consul_chart_is_pinned_with_catalog_sync_and_known_keys():
    capture = variant()
    consul = [unwrap(r.inputs) for r in capture.by_type(CHART) if unwrap(r.inputs)["chart"] == "consul"]
    assert len(consul) == 2  # one per cluster
    for inputs in consul:
        assert inputs["version"] == chart_version("consul") == mv.CONSUL_VERSION
        assert inputs["repositoryOpts"]["repo"] == "https://helm.releases.hashicorp.com"
        values = inputs["values"]
        assert unknown_values_keys("consul", values) == []
        assert values["syncCatalog"]["enabled"] is True and values["connectInject"]["enabled"] is False
    assert not [r for r in capture_stack("dev").by_type(CHART) if unwrap(r.inputs)["chart"] == "consul"]


@pytest.mark.parametrize("stack", STACKS)
def test_sidecar_resources_match_what_the_footprint_counts(stack):
    cfg = config_of(stack)
    values = mv.istiod_values(layer.mesh_args(cfg, cfg.clusters[0]))
    assert values["global"]["proxy"]["resources"] == cfg.defaults.sidecar_resources
    sidecars = [w for w in footprint_workloads(cfg, cfg.clusters[0]) if w.layer == "mesh-sidecars"]
    assert sidecars and all(w == Workload.of(w.layer, w.name, w.replicas, cfg.defaults.sidecar_resources)
                            for w in sidecars)


def test_dev_sizing_fits_the_kind_node_and_footprint_reads_the_chart_values():
    cfg = config_of("dev")
    args = layer.mesh_args(cfg, cfg.clusters[0])
    istiod, gateway = mv.istiod_values(args), mv.gateway_values(args)
    # Istio's own demo profile (istiod chart files/profile-demo.yaml): pilot 10m/100Mi, gateways 10m/40Mi.
    assert istiod["resources"]["requests"] == {"cpu": "10m", "memory": "100Mi"}
    assert gateway["resources"]["requests"] == {"cpu": "10m", "memory": "40Mi"}
    assert istiod["replicaCount"] == 1 and istiod["autoscaleEnabled"] is False
    assert gateway["replicaCount"] == 1 and gateway["autoscaling"]["enabled"] is False
    assert gateway["podDisruptionBudget"] == {}
    work = {w.name: w for w in layer.footprint(cfg, cfg.clusters[0])}
    assert (work["istiod"].replicas, work["istiod"].cpu_request, work["istiod"].memory_request) == (1, 10, 100)
    assert (work["istio-ingressgateway"].replicas, work["istio-ingressgateway"].cpu_request) == (1, 10)
    assert "istio-eastwestgateway" not in work


@pytest.mark.parametrize("tier", ["staging", "prod"])
def test_ha_values_outside_dev(tier):
    cfg = config_of("prod")
    cfg.tier = tier
    args = layer.mesh_args(cfg, cfg.clusters[0])
    istiod, gateway = mv.istiod_values(args), mv.gateway_values(args)
    assert istiod["replicaCount"] >= 2 and istiod["autoscaleEnabled"] is True and istiod["autoscaleMin"] >= 2
    assert istiod["global"]["defaultPodDisruptionBudget"]["enabled"] is True and istiod["pdb"]["minAvailable"] == 1
    assert mv.istiod_min_replicas(istiod) >= 2 and mv.gateway_min_replicas(gateway) >= 2
    assert gateway["replicaCount"] >= 2 and gateway["autoscaling"]["enabled"] is True
    assert gateway["autoscaling"]["minReplicas"] >= 2 and gateway["podDisruptionBudget"] == {"minAvailable": 1}
    if tier == "prod":  # the platform policy: >= 3 replicas per prod Deployment, zones spread
        assert istiod["autoscaleMin"] >= 3 and gateway["autoscaling"]["minReplicas"] >= 3
        assert istiod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_prod_render_is_ha_with_registry_only_egress():
    capture = capture_stack("prod")
    for cluster in ("prod-eks", "prod-gke"):
        mine = charts(capture, cluster)
        istiod = unwrap(mine["istiod"].inputs)["values"]
        assert mv.istiod_min_replicas(istiod) >= 3
        assert istiod["meshConfig"]["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
        for release in ("gateway", "istio-eastwestgateway"):
            gw = unwrap(mine[release].inputs)["values"]
            assert mv.gateway_min_replicas(gw) >= 3 and gw["podDisruptionBudget"]["minAvailable"] == 1


def test_mesh_config():
    cfg = config_of("dev")
    mesh = mv.istiod_values(layer.mesh_args(cfg, cfg.clusters[0]))["meshConfig"]
    assert mesh["accessLogFile"] == "/dev/stdout" and mesh["accessLogEncoding"] == "JSON"
    assert mesh["outboundTrafficPolicy"] == {"mode": "ALLOW_ANY"}
    assert mesh["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
    cfg.mesh.outbound_traffic_policy = "REGISTRY_ONLY"
    assert layer.outbound_policy(cfg) == "REGISTRY_ONLY"
    prod = config_of("prod")
    assert layer.outbound_policy(prod) == "REGISTRY_ONLY"
    prod.mesh.outbound_traffic_policy = "ALLOW_ANY"
    assert layer.outbound_policy(prod) == "ALLOW_ANY"


# ------------------------------------------------------------------------------------------ ingress


def test_ingress_gateway_service_per_cloud():
    dev = config_of("dev")
    svc = mv.gateway_values(layer.mesh_args(dev, dev.clusters[0]))["service"]
    assert svc["type"] == "NodePort"
    node_ports = {p["name"]: p.get("nodePort") for p in svc["ports"]}
    assert node_ports["http2"] == INGRESS_NODE_PORT_HTTP == 30080
    assert node_ports["https"] == INGRESS_NODE_PORT_HTTPS == 30443
    prod = config_of("prod")
    for cluster in prod.clusters:
        args = layer.mesh_args(prod, cluster)
        args.east_west_source_ranges = ["192.0.2.1/32"]  # the layer gives the peers' egress
        for values in (mv.gateway_values(args), mv.eastwest_gateway_values(args)):
            svc = values["service"]
            assert svc["type"] == "LoadBalancer"
            assert svc["annotations"][mv.PUBLIC_LB_ANNOTATION] == "true"  # policy: public on purpose
            key = ("service.beta.kubernetes.io/aws-load-balancer-type" if cluster.cloud == "aws"
                   else "cloud.google.com/l4-rbs")
            assert key in svc["annotations"]


def test_ingress_gateway_identity_and_labels():
    cfg = config_of("dev")
    values = mv.gateway_values(layer.mesh_args(cfg, cfg.clusters[0]))
    # What NetworkPolicies and AuthorizationPolicies select: istio-system + istio=ingressgateway.
    assert values["labels"]["istio"] == "ingressgateway"
    # The chart names the ServiceAccount after the release unless serviceAccount.name is set.
    assert "serviceAccount" not in values and mv.INGRESS_GATEWAY_RELEASE == "gateway"
    from cnplatform.naming import service_account_principal
    assert service_account_principal("istio-system", mv.INGRESS_GATEWAY_SERVICE_ACCOUNT) == GATEWAY_SA


def test_gateway_pods_meet_pod_security_restricted():
    cfg = config_of("prod")
    args = layer.mesh_args(cfg, cfg.clusters[0])
    for values in (mv.gateway_values(args), mv.eastwest_gateway_pods(args)):
        ctx = values["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert ctx["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
    assert mv.istiod_values(args)["seccompProfile"] == {"type": "RuntimeDefault"}
    ns = find(capture_stack("dev"), "Namespace", "istio-system", "dev")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_public_gateway_https_with_redirect():
    capture = capture_stack("dev")
    gw = find(capture, "Gateway", "public-gateway", "dev", "istio-system")
    http, https = sorted(gw["spec"]["servers"], key=lambda s: s["port"]["number"])
    assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
    assert http["port"]["number"] == 80 and http["tls"] == {"httpsRedirect": True}
    assert https["port"] == {"number": 443, "name": "https", "protocol": "HTTPS"}
    assert https["tls"] == {"mode": "SIMPLE", "credentialName": "ingress-gateway-tls"}


def test_exposed_services_route_from_the_public_gateway():
    capture, cfg = capture_stack("dev"), config_of("dev")
    for svc in cfg.services:
        vs = find(capture, "VirtualService", f"{svc.name}-ingress", "dev", svc.namespace)
        if svc.expose is None:
            assert vs is None
            continue
        http = vs["spec"]["http"][0]
        assert vs["spec"]["gateways"] == ["istio-system/public-gateway"]
        assert http["match"] == [{"uri": {"prefix": svc.expose.path}}]
        assert http["rewrite"] == {"uri": svc.expose.path.removeprefix("/api")}
        assert http["route"][0]["destination"]["host"] == f"{svc.name}.{svc.namespace}.svc.cluster.local"
        assert http["route"][0]["destination"]["port"] == {"number": svc.port}


def test_tls_secret_cert_manager_vs_self_signed():
    dev = capture_stack("dev")  # cert-manager on: the add-ons' Certificate writes the Secret
    assert find(dev, "Secret", "ingress-gateway-tls", "dev") is None
    cert = find(dev, "Certificate", "ingress-gateway-tls", "dev")
    if cert is not None:  # the add-ons engineer's layer (ingress_certificate)
        assert cert["spec"]["secretName"] == "ingress-gateway-tls"
    # Local cluster without cert-manager: self-signed with pulumi-tls.
    secret = find(variant(), "Secret", "ingress-gateway-tls", "dev", "istio-system")
    assert secret["type"] == "kubernetes.io/tls" and set(secret["stringData"]) == {"tls.crt", "tls.key"}
    certs = variant().by_type("tls:index/selfSignedCert:SelfSignedCert")
    assert any(r.name == "dev-mesh-ingress-tls-cert" for r in certs)
    # Cloud cluster without cert-manager: the configured Secret is referenced, not created.
    prod = config_of("prod")
    prod.addons.cert_manager.enabled = False
    assert layer.self_signed_tls(prod, prod.clusters[0]) is False
    prod.mesh.ingress.tls_secret_name = "shop-tls"
    assert layer.mesh_args(prod, prod.clusters[0]).tls_secret_name == "shop-tls"


def test_mesh_component_shares_names_and_charts():
    seen = {}

    def program():
        mesh = IstioMesh("t-mesh", IstioMeshArgs(cluster_name="t"))  # standalone: its own root CA
        seen.update(gateway=mesh.gateway_name, tls=mesh.tls_secret_name, ns=mesh.namespace,
                    charts=[c._name for c in mesh.charts], crds=[c._name for c in mesh.crd_dependencies],
                    namespace_resource=mesh.namespace_resource)
        return {}

    capture = run_program(program, stack="t", raw=stack_raw("dev")[0])
    assert seen["gateway"] == "istio-system/public-gateway" and seen["tls"] == "ingress-gateway-tls"
    assert seen["ns"] == "istio-system" and seen["namespace_resource"] is not None
    assert seen["charts"] == ["t-mesh-base", "t-mesh-istio-cni", "t-mesh-istiod", "t-mesh-gateway"]
    assert seen["crds"] == ["t-mesh-base", "t-mesh-istiod"]
    assert len(capture.by_type("tls:index/selfSignedCert:SelfSignedCert")) == 1


# --------------------------------------------------------------------------------- traffic policy


def test_destination_rules_and_virtual_services_follow_the_traffic_config():
    capture, cfg = capture_stack("dev"), config_of("dev")
    for svc in cfg.services:
        dr = find(capture, "DestinationRule", svc.name, "dev", svc.namespace)["spec"]
        t = svc.traffic
        assert dr["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
        assert dr["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"] == t.max_connections
        assert dr["trafficPolicy"]["connectionPool"]["http"]["http1MaxPendingRequests"] == t.max_pending_requests
        assert dr["trafficPolicy"]["outlierDetection"] == {
            "consecutive5xxErrors": t.consecutive_5xx_errors, "interval": t.ejection_interval,
            "baseEjectionTime": t.base_ejection_time, "maxEjectionPercent": t.max_ejection_percent}
        vs = find(capture, "VirtualService", svc.name, "dev", svc.namespace)["spec"]
        http = vs["http"][0]
        assert vs["hosts"] == [f"{svc.name}.{svc.namespace}.svc.cluster.local"] and http["timeout"] == t.timeout
        if t.retries:
            assert http["retries"] == {"attempts": t.retries, "perTryTimeout": t.per_try_timeout, "retryOn": RETRY_ON}
        else:
            assert http["retries"] == {"attempts": 0}
    # per-service override in Pulumi.dev.yaml
    payment = find(capture, "DestinationRule", "payment", "dev")["spec"]["trafficPolicy"]
    assert payment["outlierDetection"]["consecutive5xxErrors"] == 3
    assert find(capture, "VirtualService", "payment", "dev")["spec"]["http"][0]["timeout"] == "10s"


def _routes(capture, name, cluster="dev"):
    mesh = find(capture, "VirtualService", name, cluster)["spec"]["http"][0]["route"]
    ingress = find(capture, "VirtualService", f"{name}-ingress", cluster)
    return mesh, (ingress["spec"]["http"][0]["route"] if ingress else None)


def _subsets(capture, name, cluster="dev"):
    return {s["name"]: s["labels"] for s in find(capture, "DestinationRule", name, cluster)["spec"]["subsets"]}


def test_canary_weight_splits_traffic_in_the_mesh_and_at_the_gateway():
    capture = variant()
    for route in _routes(capture, "order"):
        assert [(r["destination"]["subset"], r["weight"]) for r in route] == [("stable", 80), ("canary", 20)]
    assert _subsets(capture, "order") == {"stable": {"version": "stable"}, "canary": {"version": "canary"}}


def test_rollback_weight_zero_or_canary_removed_sends_everything_to_stable():
    # weight 0: everything to stable; no canary subset (the microservice deletes the canary Deployment).
    for route in _routes(variant(), "product"):
        assert route == [{"destination": {"host": "product.shop.svc.cluster.local", "port": {"number": 8080},
                                          "subset": "stable"}}]
    assert _subsets(variant(), "product") == {"stable": {"version": "stable"}}
    # canary removed (the checked-in dev config): one stable route, no canary subset.
    for route in _routes(capture_stack("dev"), "order"):
        assert [r["destination"]["subset"] for r in route] == ["stable"] and "weight" not in route[0]
    assert _subsets(capture_stack("dev"), "order") == {"stable": {"version": "stable"}}


def test_subset_labels_are_the_pod_labels_of_the_convention():
    for version in ("stable", "canary"):
        assert app_labels("order", version=version)["version"] == version
    # The microservice component's pods, when present in the capture, carry them.
    deployments = {d["metadata"]["name"]: d for d in objects(variant(), "Deployment", "dev")}
    if "order" not in deployments:
        pytest.skip("no Deployment 'order' in the capture yet (microservice component)")
    assert deployments["order"]["spec"]["template"]["metadata"]["labels"]["version"] == "stable"
    if "order-canary" in deployments:
        assert deployments["order-canary"]["spec"]["template"]["metadata"]["labels"]["version"] == "canary"


def test_pure_traffic_builders():
    args = ServiceTrafficPolicyArgs(service="cart", namespace="shop", port=9000, canary=True, canary_weight=100,
                                    exposed_path="/api/cart", exposed_hosts=["shop.example.com"], retries=0)
    assert [r["weight"] for r in virtual_service(args)["spec"]["http"][0]["route"]] == [0, 100]
    assert resilience(args) == {"timeout": "5s", "retries": {"attempts": 0}}
    assert destination_rule(args)["spec"]["host"] == "cart.shop.svc.cluster.local"
    assert ingress_virtual_service(args)["spec"]["hosts"] == ["shop.example.com"]
    assert ingress_virtual_service(ServiceTrafficPolicyArgs(service="x")) is None
    assert ingress_rewrite("/api/orders") == "/orders" and ingress_rewrite("/shop") is None
    assert exposed_service_paths("/api/orders") == ["/orders", "/orders/*"]
    assert exposed_service_paths("/") == ["/", "/*"]


# ----------------------------------------------------------------------------------------- zero trust


def test_strict_mtls_and_default_deny():
    capture, cfg = capture_stack("dev"), config_of("dev")
    pa = find(capture, "PeerAuthentication", "default", "dev", "istio-system")
    assert pa["spec"] == {"mtls": {"mode": "STRICT"}}
    for ns in cfg.namespaces:
        deny = find(capture, "AuthorizationPolicy", "allow-nothing", "dev", ns.name)
        assert deny["spec"] == {}


def _principals(policy):
    out = set()
    for rule in policy["spec"]["rules"]:
        for peer in rule.get("from", []):
            out |= set(peer["source"].get("principals", []))
    return out


@pytest.mark.parametrize("which", ["dev", "variant"])
def test_authorization_policies_allow_exactly_the_declared_callers(which):
    capture = capture_stack("dev") if which == "dev" else variant()
    cfg = capture.config
    expected = expected_callers(cfg)
    for svc in cfg.services_on("dev"):
        exposed = svc.expose is not None
        allowed = expected[svc.name] | ({GATEWAY_SA} if exposed else set())
        policy = find(capture, "AuthorizationPolicy", svc.name, "dev", svc.namespace)
        if not allowed:
            assert policy is None, f"{svc.name}: nobody calls it and it is not exposed: deny all"
            continue
        assert policy["spec"]["action"] == "ALLOW"
        assert policy["spec"]["selector"] == {"matchLabels": selector_labels(svc.name)}
        assert _principals(policy) == allowed, svc.name  # no more, no less
        for rule in policy["spec"]["rules"]:
            op = rule["to"][0]["operation"]
            assert op["ports"] == [str(svc.port)]
            source = rule["from"][0]["source"]
            if source.get("principals") == [GATEWAY_SA]:
                assert op["paths"] == exposed_service_paths(svc.expose.path)
            elif "namespaces" in source:  # Prometheus: GET /metrics only
                assert source == {"namespaces": ["monitoring"]}
                assert op["paths"] == ["/metrics"] and op["methods"] == ["GET"]
            else:
                assert set(source["principals"]) == expected[svc.name]
    if which == "variant":
        assert authorization_policy(ServiceAuthorizationArgs(service="audit")) is None
        assert find(capture, "AuthorizationPolicy", "audit", "dev") is None


def _network_policy_peers(policy, namespace):
    """(callers as (namespace, name), ingress gateway allowed?) from a service's NetworkPolicy."""
    callers, gateway = set(), False
    for rule in policy["spec"].get("ingress", []):
        for peer in rule.get("from", []):
            pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
            ns_labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            ns = ns_labels.get("kubernetes.io/metadata.name", namespace if "namespaceSelector" not in peer else None)
            if ns == "istio-system" and pods.get("istio") == "ingressgateway":
                gateway = True
            elif "app.kubernetes.io/name" in pods:
                callers.add((ns, pods["app.kubernetes.io/name"]))
    return callers, gateway


def test_network_policies_allow_the_same_callers_as_the_authorization_policies():
    capture, cfg = capture_stack("dev"), config_of("dev")
    callers = callers_of({s.name: s.calls for s in cfg.services})
    checked = 0
    for svc in cfg.services_on("dev"):
        netpol = find(capture, "NetworkPolicy", svc.name, "dev", svc.namespace)
        if netpol is None:
            continue
        got, gateway = _network_policy_peers(netpol, svc.namespace)
        assert got == {(cfg.service(c).namespace, c) for c in callers[svc.name]}, svc.name
        assert gateway == (svc.expose is not None), svc.name
        checked += 1
    if not checked:
        pytest.skip("no NetworkPolicy named after a service in the capture yet (microservice component): "
                    "only the AuthorizationPolicy half of the caller sets is checked")


# ----------------------------------------------------------------------------- trust root, multi-cluster


def test_one_root_ca_per_stack_and_an_intermediate_per_cluster():
    capture = variant()
    roots = capture.by_type("tls:index/selfSignedCert:SelfSignedCert")
    root = [r for r in roots if r.name == "mesh-root-ca-cert"]
    assert len(root) == 1 and unwrap(root[0].inputs)["isCaCertificate"] is True
    root_pem = unwrap(root[0].outputs)["certPem"]
    intermediates = [r for r in capture.by_type("tls:index/locallySignedCert:LocallySignedCert")
                     if "-mesh-" in r.name]  # (the in-cluster databases' server certificates are not CAs)
    assert sorted(r.name for r in intermediates) == ["dev-b-mesh-intermediate-ca-cert", "dev-mesh-intermediate-ca-cert"]
    for reg in intermediates:
        inputs = unwrap(reg.inputs)
        assert inputs["isCaCertificate"] is True and {"cert_signing", "crl_signing"} <= set(inputs["allowedUses"])
        assert inputs["caCertPem"] == root_pem
    for cluster in ("dev", "dev-b"):
        cacerts = find(capture, "Secret", "cacerts", cluster, "istio-system")
        assert set(cacerts["stringData"]) == set(CACERTS_KEYS)
        assert cacerts["stringData"]["root-cert.pem"] == root_pem
        assert cacerts["stringData"]["cert-chain.pem"].endswith(root_pem)
        istiod = unwrap(charts(capture, cluster)["istiod"].inputs)["values"]["global"]
        assert istiod["meshID"] == "ecommerce-mesh" and istiod["multiCluster"] == {"clusterName": cluster}
        assert istiod["network"] == f"network-{cluster}"
    # The CA key never leaves Secrets: it is a secret in the plan.
    secret_inputs = [r for r in capture.resources if r.name == "dev-mesh-cacerts"][0].inputs
    assert type(secret_inputs["stringData"]).__name__ == "Secret"


def test_prod_clusters_share_the_root_across_clouds():
    capture = capture_stack("prod")
    assert len([r for r in capture.by_type("tls:index/selfSignedCert:SelfSignedCert")
                if r.name == "mesh-root-ca-cert"]) == 1
    roots = {find(capture, "Secret", "cacerts", c, "istio-system")["stringData"]["root-cert.pem"]
             for c in ("prod-eks", "prod-gke")}
    assert len(roots) == 1
    root_ca = [r for r in capture.resources if r.type == "cnplatform:mesh:RootCa"]
    assert len(root_ca) == 1 and root_ca[0].protect is True


def test_east_west_gateway_and_remote_secrets_with_more_than_one_cluster():
    capture = variant()
    for cluster, other in (("dev", "dev-b"), ("dev-b", "dev")):
        mine = charts(capture, cluster)
        ew = unwrap(mine["istio-eastwestgateway"].inputs)
        assert ew["chart"] == "gateway" and "networkGateway" not in ew["values"]
        assert ew["values"]["labels"][mv.NETWORK_LABEL] == f"network-{cluster}"
        assert mine["istiod"].urn in mine["istio-eastwestgateway"].depends_on
        gw = find(capture, "Gateway", "cross-network-gateway", cluster, "istio-system")["spec"]
        assert gw["selector"] == {"istio": "eastwestgateway"}
        assert gw["servers"] == [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                                  "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]
        remote = find(capture, "Secret", f"istio-remote-secret-{other}", cluster, "istio-system")
        assert remote["metadata"]["labels"]["istio/multiCluster"] == "true"
        assert remote["metadata"]["annotations"] == {"networking.istio.io/cluster": other}
        kubeconfig = yaml.safe_load(remote["stringData"][other])
        # the OTHER cluster's reader token (filled by the API server; a placeholder under mocks)
        assert kubeconfig["users"][0]["user"]["token"] == f"secret::{other}-mesh-reader-token"
        token = find(capture, "Secret", "istio-reader-service-account-token", cluster, "istio-system")
        assert token["type"] == "kubernetes.io/service-account-token"
        assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == mv.READER_SERVICE_ACCOUNT
    dev = capture_stack("dev")
    assert "istio-eastwestgateway" not in charts(dev, "dev")
    assert find(dev, "Gateway", "cross-network-gateway", "dev") is None


def test_gateway_network_policies_select_the_gateway_pods():
    capture = variant()
    for name, labels in (("gateway", {"app": "gateway", "istio": "ingressgateway"}),
                         ("istio-eastwestgateway", {"app": "istio-eastwestgateway", "istio": "eastwestgateway"})):
        netpol = find(capture, "NetworkPolicy", name, "dev", "istio-system")
        assert netpol["spec"]["podSelector"] == {"matchLabels": labels}
        ports = {p["port"] for p in netpol["spec"]["ingress"][0]["ports"]}
        assert ports == set(mv.INGRESS_GATEWAY_PORTS if name == "gateway" else mv.EASTWEST_GATEWAY_PORTS)


def test_remote_kubeconfig_shape():
    from cnplatform.mesh.multicluster import ca_data_of, remote_kubeconfig
    doc = yaml.safe_load(remote_kubeconfig("a", "https://a.example", "Q0E=", "tok"))
    assert doc["clusters"][0]["cluster"] == {"server": "https://a.example", "certificate-authority-data": "Q0E="}
    assert doc["users"][0]["user"]["token"] == "tok" and doc["current-context"] == "a"
    assert ca_data_of(remote_kubeconfig("a", "s", base64.b64encode(b"x").decode(), "t")) == "eA=="
    assert ca_data_of("not yaml: [") == ""


def test_service_entry_for_registry_only_egress():
    from cnplatform.mesh.egress import ExternalServiceArgs, service_entry
    cidr = service_entry(ExternalServiceArgs(name="order-db", namespace="shop", hosts=["order-db.external"],
                                             port=3306, addresses=["10.0.0.0/16"]))
    dns = service_entry(ExternalServiceArgs(name="psp", namespace="shop", hosts=["api.psp.example"], port=443,
                                            protocol="TLS"))
    assert cidr["spec"]["resolution"] == "NONE" and cidr["spec"]["addresses"] == ["10.0.0.0/16"]
    assert dns["spec"]["resolution"] == "DNS" and dns["spec"]["location"] == "MESH_EXTERNAL"
    assert validate_custom_resource(cidr) == [] and validate_custom_resource(dns) == []


# ------------------------------------------------------------------------------ Istio CNI (no istio-init)

#: Every key path the cni chart gets (docs/mesh.md says why each one). The chart's values.yaml is not in
#: tests/reference, so nothing upstream checks these: the list is the review gate until it is.
CNI_VALUES_KEYS = {"global.hub", "global.tag", "global.platform", "cniBinDir", "resources.requests.cpu",
                   "resources.requests.memory", "resources.limits.cpu", "resources.limits.memory"}


def _key_paths(values, prefix=""):
    out = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        out |= _key_paths(value, path) if isinstance(value, dict) and value else {path}
    return out


def _cni_inputs(capture):
    return {capture.cluster_of(r): unwrap(r.inputs) for r in capture.by_type(CHART)
            if unwrap(r.inputs)["chart"] == mv.CNI_CHART}


@pytest.mark.parametrize("stack", STACKS)
def test_cni_chart_in_kube_system_pinned_with_gke_profile_on_gke_only(stack):
    capture = capture_stack(stack)
    cni = _cni_inputs(capture)
    assert set(cni) == {c.name for c in capture.config.clusters}  # one node agent per cluster
    for cluster_cfg in capture.config.clusters:
        inputs = cni[cluster_cfg.name]
        assert (inputs["name"], inputs["namespace"], inputs["version"]) == ("istio-cni", "kube-system", "1.29.6")
        assert inputs["repositoryOpts"]["repo"] == mv.ISTIO_REPO
        values = inputs["values"]
        assert values["global"]["hub"] == "docker.io/istio" and values["global"]["tag"] == "1.29.6"
        # The same dict the footprint counts: the chart default requests outside dev, dev's with limits.
        assert values["resources"] == mv.cni_resources(layer.mesh_args(capture.config, cluster_cfg))
        assert values["resources"] == ({"requests": {"cpu": "10m", "memory": "40Mi"},
                                        "limits": {"cpu": "200m", "memory": "256Mi"}} if stack == "dev"
                                       else {"requests": {"cpu": "100m", "memory": "100Mi"}})
        gke = cluster_cfg.cloud == "gcp"
        assert (values["global"].get("platform") == "gke") is gke
        assert (values.get("cniBinDir") == "/home/kubernetes/bin") is gke
        istiod = unwrap(charts(capture, cluster_cfg.name)["istiod"].inputs)["values"]
        assert istiod["cni"] == {"enabled": True}


def test_cni_values_keys_are_the_documented_ones():
    for stack in STACKS:
        for cluster, inputs in _cni_inputs(capture_stack(stack)).items():
            assert _key_paths(inputs["values"]) <= CNI_VALUES_KEYS, (stack, cluster)
    documented = (ROOT / "docs" / "mesh.md").read_text()
    assert all(f"`{key}`" in documented for key in CNI_VALUES_KEYS)


def test_cni_values_keys_against_the_upstream_values_yaml():
    """Every key we give the cni chart exists in its pinned values.yaml (tests/reference/helm-values/istio-cni)."""
    assert chart_version(mv.CNI_CHART) == mv.ISTIO_VERSION
    for stack in STACKS:
        for cluster, inputs in _cni_inputs(capture_stack(stack)).items():
            assert unknown_values_keys(mv.CNI_CHART, inputs["values"]) == [], (stack, cluster)


def test_injected_pods_get_no_privileged_init_container():
    """With istiod ``cni.enabled`` the injection template (1.29.6 files/injection-template.yaml) adds
    ``istio-validation`` instead of ``istio-init``: no NET_ADMIN/NET_RAW, drop ALL, runAsNonRoot as
    1337, read-only root FS, privilege escalation = ``global.proxy.privileged`` (false), and the seccomp
    profile of ``global.proxy.seccompProfile``; istio-proxy gets the same securityContext (no added
    capabilities unless TPROXY or capNetBindService). So Pod Security ``restricted`` admits the pods
    as long as those two values stay as below."""
    for stack in STACKS:
        cfg = config_of(stack)
        for cluster_cfg in cfg.clusters:
            istiod = mv.istiod_values(layer.mesh_args(cfg, cluster_cfg))
            assert istiod["cni"]["enabled"] is True
            proxy = istiod["global"]["proxy"]
            assert proxy["seccompProfile"] == {"type": "RuntimeDefault"}
            assert not proxy.get("privileged") and "capNetBindService" not in proxy
            assert "interceptionMode" not in istiod["meshConfig"].get("defaultConfig", {})  # REDIRECT, not TPROXY


def test_footprint_counts_one_cni_pod_per_node():
    from stacks.compose.layers.monitoring import node_count

    for stack in STACKS:
        cfg = config_of(stack)
        for cluster_cfg in cfg.clusters:
            work = {w.name: w for w in layer.footprint(cfg, cluster_cfg)}["istio-cni-node"]
            sized = (10, 40) if stack == "dev" else (100, 100)  # Istio's demo profile / the chart default
            assert work.replicas == node_count(cluster_cfg) and (work.cpu_request, work.memory_request) == sized
    dev = config_of("dev")
    assert {w.name: w for w in layer.footprint(dev, dev.clusters[0])}["istio-cni-node"].replicas == 1  # kind


# ------------------------------------------------------------------------------------ egress, mTLS, DNS


def test_sidecars_answer_dns_so_tcp_service_entries_by_name_get_their_own_address():
    for stack in STACKS:
        cfg = config_of(stack)
        mesh = mv.istiod_values(layer.mesh_args(cfg, cfg.clusters[0]))["meshConfig"]
        assert mesh["defaultConfig"]["proxyMetadata"] == {"ISTIO_META_DNS_CAPTURE": "true"}
    args = layer.mesh_args(config_of("dev"), config_of("dev").clusters[0])
    args.dns_capture = False
    assert "proxyMetadata" not in mv.mesh_config(args)["defaultConfig"]


@pytest.mark.parametrize("stack", STACKS)
def test_destination_rules_only_target_mesh_services(stack):
    """ISTIO_MUTUAL only towards sidecars: no DestinationRule for a database host (the in-cluster MySQL
    runs without a sidecar; RDS / Cloud SQL are MESH_EXTERNAL) nor a wildcard one that would catch them."""
    capture = capture_stack(stack)
    services = {f"{s.name}.{s.namespace}.svc.cluster.local" for s in capture.config.services}
    rules = objects(capture, "DestinationRule")
    assert rules
    for rule in rules:
        host = rule["spec"]["host"]
        assert host in services and "*" not in host, host
        assert not host.endswith(("-mysql." + rule["metadata"]["namespace"] + ".svc.cluster.local",))
    database_hosts = {h for se in objects(capture, "ServiceEntry") for h in se["spec"]["hosts"]}
    assert not database_hosts & {r["spec"]["host"] for r in rules}


# ------------------------------------------------------------------------------ ACME HTTP-01 at the gateway


def _virtual_services_bound_to(capture, cluster, gateway):
    return [vs for vs in objects(capture, "VirtualService", cluster) if gateway in vs["spec"].get("gateways", [])]


def test_acme_clusters_answer_challenges_on_http_and_redirect_the_rest():
    capture, cfg = capture_stack("prod"), config_of("prod")
    hosts = list(cfg.mesh.ingress.hosts)
    for cluster_cfg in cfg.clusters:
        cluster = cluster_cfg.name
        assert layer.acme_http01(cfg, cluster_cfg)  # cloud clusters default to the ACME issuer
        gw = find(capture, "Gateway", "public-gateway", cluster, "istio-system")
        # HTTPS only: whatever binds to public-gateway (services, Grafana) never answers in clear text.
        assert gw["spec"]["servers"] == [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                          "hosts": hosts,
                                          "tls": {"mode": "SIMPLE", "credentialName": "ingress-gateway-tls"}}]
        http = find(capture, "Gateway", PUBLIC_HTTP_GATEWAY_NAME, cluster, "istio-system")
        assert http["spec"]["selector"] == {"istio": "ingressgateway"}
        # No tls.httpsRedirect: Istio would set require_tls on the whole host, challenge path included.
        assert http["spec"]["servers"] == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts}]
        redirect = find(capture, "VirtualService", HTTPS_REDIRECT_NAME, cluster, "istio-system")
        assert redirect["spec"] == {"hosts": hosts, "gateways": [f"istio-system/{PUBLIC_HTTP_GATEWAY_NAME}"],
                                    "http": [{"name": "https-redirect",
                                              "redirect": {"scheme": "https", "redirectCode": 301}}]}
        # Only the redirect is bound to port 80, and it is a catch-all (no match): Istio orders catch-alls
        # after every other route of the host, so the solver Ingress's exact challenge route wins.
        assert _virtual_services_bound_to(capture, cluster, f"istio-system/{PUBLIC_HTTP_GATEWAY_NAME}") == [redirect]
        assert all("match" not in rule for rule in redirect["spec"]["http"])
        for doc in (gw, http, redirect):
            assert validate_custom_resource(doc) == []
        # Exposed services stay on the HTTPS gateway.
        public = _virtual_services_bound_to(capture, cluster, "istio-system/public-gateway")
        assert {vs["metadata"]["name"] for vs in public} >= {f"{s.name}-ingress" for s in cfg.services if s.expose}


def test_redirect_leaves_the_challenge_prefix_to_the_solver():
    vs = https_redirect_virtual_service(["shop.example.com"])
    assert ACME_CHALLENGE_PREFIX == "/.well-known/acme-challenge/"
    for rule in vs["spec"]["http"]:
        assert "route" not in rule  # nothing of ours serves or shadows the challenge path
        for match in rule.get("match", []):
            assert not ACME_CHALLENGE_PREFIX.startswith(match.get("uri", {}).get("prefix", "\0"))
    assert validate_custom_resource(vs) == [] and validate_custom_resource(public_http_gateway(["a.example"])) == []


def test_ca_issuer_keeps_https_redirect_on_the_gateway():
    capture = capture_stack("dev")
    gw = find(capture, "Gateway", "public-gateway", "dev", "istio-system")
    http = next(s for s in gw["spec"]["servers"] if s["port"]["number"] == 80)
    assert http["tls"] == {"httpsRedirect": True}
    assert find(capture, "Gateway", PUBLIC_HTTP_GATEWAY_NAME, "dev") is None
    assert find(capture, "VirtualService", HTTPS_REDIRECT_NAME, "dev") is None
    assert gw == public_gateway(["*"], "ingress-gateway-tls")
    # A cloud cluster told to use the CA issuer keeps the redirect on the gateway too; ACME without
    # cert-manager (certificate brought by hand) has no challenge to answer.
    prod = config_of("prod")
    prod.addons.cert_manager.issuer = "ca"
    assert not any(layer.acme_http01(prod, c) for c in prod.clusters)
    prod = config_of("prod")
    prod.addons.cert_manager.enabled = False
    assert not any(layer.acme_http01(prod, c) for c in prod.clusters)
    prod = config_of("prod")
    assert all(layer.acme_http01(prod, c) for c in prod.clusters)


# ------------------------------------------------------------------------- per-service objects


def test_service_policies_are_children_of_the_mesh_with_no_component_per_service():
    capture = capture_stack("dev")
    assert not capture.by_type("cnplatform:mesh:ServiceMeshPolicy")
    mesh_urns = {r.urn for r in capture.by_type("cnplatform:mesh:IstioMesh")}
    per_service = [r for r in istio_registrations(capture) if manifest_of(r)["kind"] in ("DestinationRule",)]
    assert {manifest_of(r)["metadata"]["name"] for r in per_service} >= {s.name for s in capture.config.services}
    assert all(r.parent in mesh_urns for r in per_service)


def test_standalone_service_mesh_policy_makes_the_same_objects_as_the_mesh():
    """`ServiceMeshPolicy` (a service on its own) and `IstioMesh(services=...)` share one builder."""
    from cnplatform.mesh.service_policy import ServiceMeshPolicy

    cfg = config_of("dev")
    cluster_cfg = cfg.clusters[0]
    svc_args = layer.mesh_args(cfg, cluster_cfg).services[0]
    standalone = run_program(lambda: {"p": ServiceMeshPolicy("alone", svc_args).allowed_principals},
                             stack="test", raw={})
    alone = [manifest_of(r) for r in standalone.resources if r.type.startswith("kubernetes:")]
    key = lambda d: (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))  # noqa: E731
    capture = capture_stack("dev")
    ours = [manifest_of(r) for r in istio_registrations(capture)
            if capture.cluster_of(r) == cluster_cfg.name and key(manifest_of(r)) in {key(d) for d in alone}]
    assert len(alone) >= 3 and sorted(alone, key=key) == sorted(ours, key=key)
    assert standalone.outputs["p"]  # the exposed/called service admits someone
