"""Policy rules that tie Kubernetes objects to their cloud cluster (issue #15 items 1, 3, 5).

Each rule is run both ways: our renders pass, and a crafted bad stack (our render with the one thing
removed that the rule guards, or a small hand-made stack) fails with a message that says what to do.
The rules run here through the real ``pulumi_policy`` objects of the pack, fed as the engine would.
"""
import copy
import json

import pytest
from pulumi_policy import PolicyProviderResource, PolicyResource, PolicyResourceOptions, StackValidationArgs

from policy import cluster_rules as R
from policy import cnplatform_policy as P

PROVIDER = "urn:pulumi:s::p::pulumi:providers:kubernetes::c-k8s"
CLUSTER_RULES = [p for p in P.POLICIES if p.name in R.RULES]


def plan_resources(rendered, stack) -> list[R.Res]:
    plan = json.loads((rendered(stack) / "plan.json").read_text())
    return [R.Res(r["type"], r["inputs"], r["urn"], r["provider"] or "", r["depends_on"]) for r in plan["resources"]]


def run_pack(resources: list[R.Res]) -> list[tuple[str, str]]:
    """The pack's stack policies over ``resources``, through PolicyResource as the analyzer builds them."""
    by_urn = {}
    for r in resources:
        provider = None
        if r.provider:
            provider = PolicyProviderResource(R.K8S_PROVIDER, {}, r.provider, r.provider.rsplit("::", 1)[-1])
        by_urn[r.urn] = PolicyResource(r.type, r.props, r.urn, r.urn.rsplit("::", 1)[-1],
                                       PolicyResourceOptions(False, [], False, [], None, [], ""),
                                       provider, None, [], {})
    for r in resources:
        by_urn[r.urn].dependencies = [by_urn[d] for d in r.depends_on if d in by_urn]
    violations = []
    for policy in CLUSTER_RULES:
        policy.validate(StackValidationArgs(list(by_urn.values()), {}),
                        lambda message, urn=None, name=policy.name: violations.append((name, message)))
    return violations


def cluster_provider(resources, cluster_type: str) -> str:
    cluster = next(r for r in resources if r.type == cluster_type)
    return next(r.urn for r in resources if r.type == R.K8S_PROVIDER and cluster.urn in r.depends_on)


def istiod_webhook(provider: str, target_port: int = 15017, n: int = 0, service: str = "istiod") -> list[R.Res]:
    """The objects of the istiod chart the API server calls (its sidecar injector): a webhook on
    Service istio-system/istiod port 443, which forwards to the pods' 15017."""
    svc = R.Res("kubernetes:core/v1:Service", {
        "metadata": {"name": service, "namespace": "istio-system"},
        "spec": {"ports": [{"name": "https-webhook", "port": 443, "targetPort": target_port}]}},
        f"urn:pulumi:s::p::kubernetes:core/v1:Service::istiod-{n}", provider)
    hook = R.Res("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration", {
        "metadata": {"name": f"istio-sidecar-injector-{n}"},
        "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "failurePolicy": "Fail",
                      "clientConfig": {"service": {"name": service, "namespace": "istio-system",
                                                   "path": "/inject", "port": 443}}}]},
        f"urn:pulumi:s::p::kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration::inj-{n}",
        provider)
    return [svc, hook]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_our_renders_pass_the_cluster_rules(rendered, stack):
    resources = plan_resources(rendered, stack)
    if stack != "dev":  # the istiod chart's webhook as it will be on every GKE cluster
        for i, cluster in enumerate(r for r in resources if r.type == R.GKE_CLUSTER):
            provider = next(p.urn for p in resources if p.type == R.K8S_PROVIDER and cluster.urn in p.depends_on)
            resources += istiod_webhook(provider, n=i)
    assert run_pack(resources) == []
    # Not vacuous: Kubernetes objects are attributed to their cloud clusters.
    index = R.Stack(resources)
    clusters = {index.cluster_of(r).type for r in resources if r.kind and index.cluster_of(r)}
    assert clusters == {"dev": set(), "staging": {R.GKE_CLUSTER}, "prod": {R.GKE_CLUSTER, R.EKS_CLUSTER}}[stack]


def test_private_gke_webhook_without_firewall_rule_is_caught(rendered):
    resources = plan_resources(rendered, "staging")
    resources += istiod_webhook(cluster_provider(resources, R.GKE_CLUSTER))
    without_rule = [r for r in resources if not (r.type == R.GCP_FIREWALL and "webhooks" in r.urn)]
    [(name, message)] = run_pack(without_rule)
    assert name == "private-gke-webhook-ports"
    assert "istio-system/istiod on target port 15017" in message and "firewall rule" in message
    # GKE's own rule covers 10250 (cert-manager's webhook, metrics-server): no finding there.
    fine = [r for r in resources if r.type != R.GCP_FIREWALL]
    fine += istiod_webhook(cluster_provider(resources, R.GKE_CLUSTER), target_port=10250, n=1, service="other")
    assert [n for n, _ in run_pack(fine)] == ["private-gke-webhook-ports"]  # only the 15017 one


def test_eks_network_policies_without_enforcement_are_caught(rendered):
    resources = plan_resources(rendered, "prod")
    bad = copy.deepcopy(resources)
    cni = next(r for r in bad if r.type == R.EKS_ADDON and r.props.get("addonName") == "vpc-cni")
    cni.props.pop("configurationValues")
    [(name, message)] = run_pack(bad)
    assert name == "eks-network-policy-enforced" and "are not enforced" in message
    assert "enableNetworkPolicy" in message


def test_image_from_another_clouds_private_registry_is_caught(rendered):
    resources = copy.deepcopy(plan_resources(rendered, "prod"))
    eks = R.Stack(resources)
    deployment = next(r for r in resources if r.kind == "Deployment" and eks.cluster_of(r) is not None
                      and eks.cluster_of(r).type == R.GKE_CLUSTER and "order" in r.name)
    container = deployment.props["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-eks/order@sha256:" + "0" * 64
    [(name, message)] = run_pack(resources)
    assert name == "image-from-reachable-registry"
    assert "gcp cluster" in message and "private aws registry" in message


@pytest.mark.parametrize("image, cloud, bad", [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b@sha256:1", "gcp", True),
    ("europe-west1-docker.pkg.dev/p/r/b@sha256:1", "aws", True),
    ("eu.gcr.io/p/b:1", "aws", True),
    ("europe-west1-docker.pkg.dev/p/r/b@sha256:1", "gcp", False),
    ("docker.io/istio/proxyv2:1.29.6", "aws", False),
])
def test_registry_clouds(image, cloud, bad):
    other = [o for o, rx in R.PRIVATE_REGISTRIES.items() if o != cloud and rx.match(image)]
    assert bool(other) is bad


def test_port_ranges_in_firewall_rules():
    assert R._port_allowed(15017, [{"protocol": "tcp", "ports": ["15000-16000"]}])
    assert R._port_allowed(15017, [{"protocol": "all"}])
    assert not R._port_allowed(15017, [{"protocol": "udp", "ports": ["15017"]}])
    assert not R._port_allowed(15017, [{"protocol": "tcp", "ports": ["443", "8443"]}])


def chart_objects(render_dir, cluster: str, provider: str) -> list[R.Res]:
    """Every object the cluster's charts produce with our values (as helm.v4.Chart renders them),
    as resources of that cluster's Kubernetes provider: what the engine registers at `pulumi up`."""
    from e2e import helm

    out = []
    for release in helm.load_releases(render_dir, cluster):
        rendered = helm.render_release(release, kube_version="1.35.0", api_versions=[],
                                       is_namespaced=helm.static_is_namespaced())
        for i, obj in enumerate(rendered.objects):
            group, _, version = obj["apiVersion"].rpartition("/")
            token = f"kubernetes:{group or 'core'}/{version}:{obj['kind']}"
            out.append(R.Res(token, obj, f"urn:pulumi:s::p::{token}::{release.name}-{i}", provider))
    return out


def test_the_charts_webhooks_on_private_gke_are_reachable(rendered):
    """With the charts' real webhooks and APIServices (istiod, cert-manager, ...): our render passes;
    without the firewall rule the istiod webhooks (15017) are caught, the 10250 ones are not."""
    import helm_python  # noqa: F401  (requirements-dev.txt: renders the pinned charts offline)

    out = rendered("staging")
    resources = plan_resources(rendered, "staging")
    provider = cluster_provider(resources, R.GKE_CLUSTER)
    charts = chart_objects(out, "staging-gke", provider)
    hooks = [r for r in charts if r.kind in R.WEBHOOK_KINDS]
    assert {h.name for h in hooks} >= {"istio-sidecar-injector", "istio-validator-istio-system",
                                      "cert-manager-webhook"}
    assert run_pack(resources + charts) == []
    without_rule = [r for r in resources if not (r.type == R.GCP_FIREWALL and "webhooks" in r.urn)]
    caught = run_pack(without_rule + charts)
    assert caught and all(name == "private-gke-webhook-ports" for name, _ in caught)
    assert all("istio-system/istiod on target port 15017" in m for _, m in caught)
    assert not any("cert-manager" in m for _, m in caught)  # its webhook listens on 10250
    # ... which the rule knows by resolving the Service's NAMED targetPort through the Deployment.
    index, gke = R.Stack(resources + charts), next(r for r in resources if r.type == R.GKE_CLUSTER)
    svc = R._service(index, gke, "cert-manager", "cert-manager-webhook")
    assert [p["targetPort"] for p in svc.props["spec"]["ports"] if p["port"] == 443] == ["https"]
    assert R._service_target_ports(index, gke, "cert-manager", "cert-manager-webhook", 443) == ({10250}, "")


def _cert_manager_webhook_deployment(objects: list[R.Res]) -> R.Res:
    return next(r for r in objects if r.kind == "Deployment" and r.name == "cert-manager-webhook")


def test_a_named_target_port_on_a_closed_port_is_caught(rendered):
    """The charts' cert-manager webhook, its container port ``https`` moved from 10250 to 8443: the
    Service still says ``targetPort: https``, the API server now dials 8443, which nothing opens."""
    import helm_python  # noqa: F401

    resources = plan_resources(rendered, "staging")
    provider = cluster_provider(resources, R.GKE_CLUSTER)
    charts = copy.deepcopy(chart_objects(rendered("staging"), "staging-gke", provider))
    container = _cert_manager_webhook_deployment(charts).props["spec"]["template"]["spec"]["containers"][0]
    [port] = [p for p in container["ports"] if p["name"] == "https"]
    port["containerPort"] = 8443
    caught = run_pack(resources + charts)
    assert {n for n, _ in caught} == {"private-gke-webhook-ports"}
    assert caught and all("cert-manager/cert-manager-webhook on target port 8443" in m for _, m in caught)
    assert len(caught) == 2  # its mutating and its validating webhook


def test_a_named_target_port_the_pack_cannot_resolve_is_reported(rendered):
    """Without the workload that defines the port name (its pods come from a chart the pack sees as one
    resource, or from another stack), the port is unverifiable: reported, not passed."""
    import helm_python  # noqa: F401

    resources = plan_resources(rendered, "staging")
    charts = chart_objects(rendered("staging"), "staging-gke", cluster_provider(resources, R.GKE_CLUSTER))
    without = [r for r in charts if r.urn != _cert_manager_webhook_deployment(charts).urn]
    caught = run_pack(resources + without)
    assert len(caught) == 2 and {n for n, _ in caught} == {"private-gke-webhook-ports"}
    for _, message in caught:
        assert "Service cert-manager/cert-manager-webhook port 443, whose target port on the nodes cannot be " \
               "verified: its targetPort 'https' is a port name" in message
        assert "numeric targetPort" in message


def named_port_stack(container_port: int, pod_labels: dict, service: str = "hook") -> list[R.Res]:
    """A hand-made private GKE stack: a webhook on Service x/hook 443 -> targetPort ``https``, and a
    Deployment in x whose pods carry ``pod_labels`` and name ``containerPort`` ``https``."""
    net = R.Res(R.GCP_NETWORK, {}, "urn:net")
    gke = R.Res(R.GKE_CLUSTER, {"privateClusterConfig": {"enablePrivateNodes": True,
                                                         "masterIpv4CidrBlock": "172.16.0.0/28"}},
                "urn:gke", "", ["urn:net"])
    prov = R.Res(R.K8S_PROVIDER, {}, "urn:prov", "", ["urn:gke"])
    svc = R.Res("kubernetes:core/v1:Service", {"metadata": {"name": service, "namespace": "x"}, "spec": {
        "selector": {"app": "hook"}, "ports": [{"port": 443, "targetPort": "https"}]}}, "urn:svc", "urn:prov")
    dep = R.Res("kubernetes:apps/v1:Deployment", {"metadata": {"name": "hook", "namespace": "x"}, "spec": {
        "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [{"name": "c", "image": "i", "ports": [
            {"name": "metrics", "containerPort": 9402}, {"name": "https", "containerPort": container_port}]}]}}}},
        "urn:dep", "urn:prov")
    hook = R.Res("kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration", {
        "metadata": {"name": "h"}, "webhooks": [{"name": "h.x", "clientConfig": {
            "service": {"name": "hook", "namespace": "x"}}}]}, "urn:hook", "urn:prov")
    return [net, gke, prov, svc, dep, hook]


def test_named_target_ports_resolve_through_the_selected_pods():
    assert R.check_private_gke_webhook_ports(R.Stack(named_port_stack(10250, {"app": "hook", "x": "y"}))) == []
    [(urn, message)] = R.check_private_gke_webhook_ports(R.Stack(named_port_stack(8443, {"app": "hook"})))
    assert urn == "urn:hook" and "on target port 8443" in message and "tcp:8443" in message
    # Pods the Service does not select do not resolve its port: unverifiable, reported.
    [(_, message)] = R.check_private_gke_webhook_ports(R.Stack(named_port_stack(10250, {"app": "other"})))
    assert "cannot be verified" in message and "'https'" in message
    # Neither does a Service the stack does not have.
    [(_, message)] = R.check_private_gke_webhook_ports(R.Stack(named_port_stack(10250, {"app": "hook"}, "gone")))
    assert "cannot be verified: the Service is not in the stack" in message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_namespace_without_default_deny_is_caught(rendered, stack):
    resources = plan_resources(rendered, stack)
    denies = [r for r in resources if r.kind == "NetworkPolicy" and r.namespace == "monitoring"
              and R._is_default_deny(r.props.get("spec") or {})]
    assert denies
    found = run_pack([r for r in resources if r.urn != denies[0].urn])
    assert [name for name, _ in found] == ["namespace-default-deny"]
    assert "Namespace monitoring has no default-deny" in found[0][1]
    # An allow-all policy (rules present) is not a default-deny.
    allow = R.Res(denies[0].type, {**denies[0].props, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                                                "egress": [{}]}},
                  denies[0].urn, denies[0].provider, denies[0].depends_on)
    failed = [n for n, _ in run_pack([allow if r.urn == allow.urn else r for r in resources])]
    assert failed == ["namespace-default-deny"]
