"""Cross-resource rules that tie Kubernetes objects to the cloud cluster they run on.

A Kubernetes object belongs to the cluster its provider was built from: the provider resource
depends on (or takes its kubeconfig from) an ``aws:eks/cluster:Cluster`` or a
``gcp:container/cluster:Cluster``. The rules are pure functions over :class:`Res` (a resource as a
stack policy sees it: type, props, urn, provider urn, dependency urns), wrapped as
``pulumi_policy`` stack policies at the bottom. Self-contained: only the standard library and
``pulumi_policy``.

``private-gke-webhook-ports``
    On a GKE cluster with private nodes, every admission webhook and aggregated API (APIService)
    served by a Service in the cluster has its target port reachable from the control plane: GKE
    opens 443 and 10250 only, anything else needs an INGRESS firewall rule from the master CIDR on
    the cluster's network. Otherwise the API server cannot call it (``failurePolicy: Fail`` rejects
    every matching request: with Istio, every injected pod). A named ``targetPort`` is resolved as
    the endpoints controller does: the container port of that name in the pods the Service selects
    (Deployments, StatefulSets, DaemonSets... of the stack in its namespace). A target port the pack
    cannot know (the Service, or the workload defining the port name, is not in the stack: a Helm
    release or another stack it cannot see into) is reported as unverifiable, like a database
    parameter group managed elsewhere, instead of passing silently.
``eks-network-policy-enforced``
    NetworkPolicy objects on an EKS cluster are enforced: its ``vpc-cni`` managed add-on sets
    ``enableNetworkPolicy: "true"`` (without it the VPC CNI ignores every policy). A cluster without a
    managed vpc-cni add-on that still bootstraps the default (unmanaged) CNI is reported too.
``image-from-reachable-registry``
    A workload on an EKS cluster does not run an image from Artifact Registry / GCR, and one on a
    GKE cluster does not run an image from ECR: the nodes have no credentials for another cloud's
    private registry (the pod stays in ImagePullBackOff).
``namespace-default-deny``
    Every Namespace the stack creates has a default-deny (ingress and egress) NetworkPolicy.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

EKS_CLUSTER = "aws:eks/cluster:Cluster"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
CLUSTER_CLOUDS = {EKS_CLUSTER: "aws", GKE_CLUSTER: "gcp"}
EKS_ADDON = "aws:eks/addon:Addon"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
GCP_NETWORK = "gcp:compute/network:Network"
K8S_PROVIDER = "pulumi:providers:kubernetes"
#: Ports a private GKE control plane reaches on nodes without any firewall rule of the user's.
GKE_OPEN_PORTS = (443, 10250)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
WORKLOAD_POD_PATHS = {
    "Pod": ("spec",), "Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: Private registries by cloud: an image there is pullable by that cloud's nodes only.
PRIVATE_REGISTRIES = {
    "aws": re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"),
    "gcp": re.compile(r"^([a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io)/"),
}


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> Sequence:
    return value if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else ()


class ObjectMeta:
    """``name`` / ``namespace`` of a Kubernetes object from its ``props`` (shared with the pack's K8sObject)."""

    props: Mapping

    @property
    def name(self) -> str:
        return str(_map(self.props.get("metadata")).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(_map(self.props.get("metadata")).get("namespace") or "default")


@dataclass
class Res(ObjectMeta):
    """A resource of the stack: what the rules need of a ``pulumi_policy.PolicyResource``."""

    type: str
    props: Mapping
    urn: str = ""
    provider: str = ""
    depends_on: list[str] = field(default_factory=list)

    @property
    def kind(self) -> Optional[str]:
        parts = self.type.split(":")
        if len(parts) == 3 and parts[0] == "kubernetes" and not parts[1].startswith(("helm.sh", "yaml")):
            return parts[2]
        return None

    def where(self) -> str:
        ns = _map(self.props.get("metadata")).get("namespace")
        return f"{self.kind} {(ns + '/') if ns else ''}{self.name}"


class Stack:
    """Index of a stack's resources with the cluster of each Kubernetes object."""

    def __init__(self, resources: Iterable[Res]):
        self.resources = list(resources)
        self.by_urn = {r.urn: r for r in self.resources if r.urn}

    def cluster_of(self, res: Res) -> Optional[Res]:
        """The EKS/GKE cluster resource a Kubernetes object's provider was made from (None: unknown)."""
        provider = self.by_urn.get(res.provider)
        if provider is None:
            return None
        for urn in provider.depends_on:
            dep = self.by_urn.get(urn)
            if dep is not None and dep.type in CLUSTER_CLOUDS:
                return dep
        return None

    def on_cluster(self, cluster: Res, kinds: Iterable[str]) -> list[Res]:
        wanted = set(kinds)
        return [r for r in self.resources if r.kind in wanted and (c := self.cluster_of(r)) is not None
                and c.urn == cluster.urn]

    def clusters(self, type_: str) -> list[Res]:
        return [r for r in self.resources if r.type == type_]


# --------------------------------------------------------------------------- private GKE webhooks


def _port_allowed(port: int, allows: Sequence) -> bool:
    for allow in allows:
        allow = _map(allow)
        if str(allow.get("protocol", "")).lower() not in ("tcp", "all"):
            continue
        ports = list(_seq(allow.get("ports")))
        if not ports:
            return True
        for spec in ports:
            low, _, high = str(spec).partition("-")
            if low.isdigit() and int(low) <= port <= int(high or low):
                return True
    return False


def open_ports_check(stack: Stack, cluster: Res, port: int) -> bool:
    """Is ``port`` reachable from the cluster's control plane (GKE's own rule or a firewall of the stack)?"""
    if port in GKE_OPEN_PORTS:
        return True
    master = str(_map(cluster.props.get("privateClusterConfig")).get("masterIpv4CidrBlock", ""))
    networks = {u for u in cluster.depends_on if stack.by_urn.get(u, Res("", {})).type == GCP_NETWORK}
    for fw in stack.clusters(GCP_FIREWALL):
        props = fw.props
        same_network = bool(networks & set(fw.depends_on)) or (
            props.get("network") is not None and props.get("network") == cluster.props.get("network"))
        sources = set(map(str, _seq(props.get("sourceRanges"))))
        if (same_network and str(props.get("direction", "INGRESS")).upper() == "INGRESS"
                and (master in sources or "0.0.0.0/0" in sources) and _port_allowed(port, _seq(props.get("allows")))):
            return True
    return False


def _service(stack: Stack, cluster: Res, namespace: str, name: str) -> Optional[Res]:
    return next((s for s in stack.on_cluster(cluster, ["Service"]) if s.name == name and s.namespace == namespace),
                None)


def _pod_labels(obj: Res) -> Mapping:
    """The labels of the pods a workload makes (a Pod's own labels)."""
    return _map(_map(_pod_template(obj).get("metadata")).get("labels"))


def _named_port(stack: Stack, cluster: Res, svc: Res, port_name: str) -> set[int]:
    """The container ports named ``port_name`` in the pods the Service selects (as the endpoints
    controller resolves a named targetPort): workloads of the stack on that cluster, in its namespace."""
    selector = _map(_map(svc.props.get("spec")).get("selector"))
    if not selector:  # no selector: endpoints are managed by hand, nothing to resolve against
        return set()
    ports = set()
    for obj in stack.on_cluster(cluster, WORKLOAD_POD_PATHS):
        labels = _pod_labels(obj)
        if obj.namespace != svc.namespace or any(labels.get(k) != v for k, v in selector.items()):
            continue
        pod = _pod(obj)
        for c in [*_seq(pod.get("initContainers")), *_seq(pod.get("containers"))]:
            for cp in _seq(_map(c).get("ports")):
                cp = _map(cp)
                if cp.get("name") == port_name and str(cp.get("containerPort", "")).isdigit():
                    ports.add(int(cp["containerPort"]))
    return ports


def _service_target_ports(stack: Stack, cluster: Res, namespace: str, name: str,
                          port: int) -> tuple[set[int], str]:
    """The node ports behind Service ``namespace/name`` port ``port`` and, when they cannot be known
    (Service or named port not resolvable in the stack), why not."""
    svc = _service(stack, cluster, namespace, name)
    if svc is None:
        return set(), "the Service is not in the stack (made by a Helm release or a stack the pack cannot see)"
    for p in _seq(_map(svc.props.get("spec")).get("ports")):
        p = _map(p)
        if int(p.get("port", 0) or 0) != port:
            continue
        target = p.get("targetPort", port)
        if str(target).isdigit():
            return {int(target)}, ""
        resolved = _named_port(stack, cluster, svc, str(target))
        return resolved, "" if resolved else (
            f"its targetPort {target!r} is a port name that no Deployment/StatefulSet/DaemonSet of the stack "
            "selected by the Service defines (its pods are made by a Helm release or a stack the pack cannot see)")
    return set(), f"the Service has no port {port}"


def _called_services(obj: Res) -> list[tuple[str, str, str, int]]:
    """(what, namespace, name, port) of every Service the API server calls for this object."""
    if obj.kind == "APIService":
        svc = _map(_map(obj.props.get("spec")).get("service"))
        return [(obj.where(), str(svc.get("namespace", "")), str(svc.get("name", "")), int(svc.get("port") or 443))] \
            if svc.get("name") else []
    out = []
    for hook in _seq(obj.props.get("webhooks")):
        svc = _map(_map(_map(hook).get("clientConfig")).get("service"))
        if svc.get("name"):
            out.append((f"{obj.where()} webhook {_map(hook).get('name', '?')}", str(svc.get("namespace", "")),
                        str(svc.get("name")), int(svc.get("port") or 443)))
    return out


def check_private_gke_webhook_ports(stack: Stack) -> list[tuple[str, str]]:
    out = []
    for cluster in stack.clusters(GKE_CLUSTER):
        if not _map(cluster.props.get("privateClusterConfig")).get("enablePrivateNodes"):
            continue
        for obj in stack.on_cluster(cluster, [*WEBHOOK_KINDS, "APIService"]):
            for what, ns, name, port in _called_services(obj):
                targets, unknown = _service_target_ports(stack, cluster, ns, name, port)
                if unknown:
                    out.append((obj.urn, f"{what} calls Service {ns}/{name} port {port}, whose target port on the "
                                         f"nodes cannot be verified: {unknown}. Give the Service a numeric targetPort "
                                         "and open it from the master CIDR, or manage the Service and its workload "
                                         "in this stack"))
                for target in sorted(t for t in targets if not open_ports_check(stack, cluster, t)):
                    out.append((obj.urn, f"{what} calls Service {ns}/{name} on target port {target}, which the "
                                         "private GKE control plane cannot reach: add an INGRESS firewall rule "
                                         f"from the master CIDR to the nodes for tcp:{target}"))
    return out


# ------------------------------------------------------------------- EKS NetworkPolicy enforcement


def check_eks_network_policy(stack: Stack) -> list[tuple[str, str]]:
    out = []
    for cluster in stack.clusters(EKS_CLUSTER):
        policies = stack.on_cluster(cluster, ["NetworkPolicy"])
        if not policies:
            continue
        cni = [a for a in stack.clusters(EKS_ADDON)
               if a.props.get("addonName") == "vpc-cni" and cluster.urn in a.depends_on]
        if cni:
            values = str(cni[0].props.get("configurationValues") or "")
            enforced = re.search(r'"enableNetworkPolicy"\s*:\s*"true"', values) is not None
        else:
            enforced = cluster.props.get("bootstrapSelfManagedAddons") is False  # another CNI is installed
        if not enforced:
            out.append((policies[0].urn, f"{len(policies)} NetworkPolicy object(s) on EKS cluster "
                        f"{cluster.props.get('name', cluster.urn)} are not enforced: set "
                        'configuration_values {"enableNetworkPolicy": "true"} on its vpc-cni add-on'))
    return out


# --------------------------------------------------------------------- images and their registry


def _pod_template(obj: Res) -> Mapping:
    """The pod (template) a workload makes, with its ``metadata`` and ``spec`` (a Pod: itself)."""
    node: Any = obj.props
    for key in WORKLOAD_POD_PATHS.get(obj.kind or "", ("-", "-"))[:-1]:
        node = _map(node).get(key)
    return _map(node)


def _pod(obj: Res) -> Mapping:
    return _map(_pod_template(obj).get("spec"))


def check_image_registries(stack: Stack) -> list[tuple[str, str]]:
    out = []
    for cluster_type, cloud in CLUSTER_CLOUDS.items():
        for cluster in stack.clusters(cluster_type):
            for obj in stack.on_cluster(cluster, WORKLOAD_POD_PATHS):
                pod = _pod(obj)
                for section in ("initContainers", "containers"):
                    for c in _seq(pod.get(section)):
                        image = str(_map(c).get("image", ""))
                        other = [o for o, rx in PRIVATE_REGISTRIES.items() if o != cloud and rx.match(image)]
                        if other:
                            out.append((obj.urn, f"{obj.where()} runs {image} on a {cloud} cluster: that is a "
                                                 f"private {other[0]} registry its nodes cannot pull from; push the "
                                                 "image to this cluster's registry and use that reference"))
    return out


# ----------------------------------------------------------------- default-deny per namespace


def _is_default_deny(spec: Mapping) -> bool:
    return (not _map(spec.get("podSelector")) and {"Ingress", "Egress"} <= set(map(str, _seq(spec.get("policyTypes"))))
            and not _seq(spec.get("ingress")) and not _seq(spec.get("egress")))


def check_namespace_default_deny(stack: Stack) -> list[tuple[str, str]]:
    """Every Namespace the stack creates has a NetworkPolicy denying all ingress and egress by default
    (same Kubernetes provider, i.e. the same cluster), so a pod there has only the traffic allowed."""
    denied = {(r.provider, r.namespace) for r in stack.resources
              if r.kind == "NetworkPolicy" and _is_default_deny(_map(r.props.get("spec")))}
    return [(ns.urn, f"Namespace {ns.name} has no default-deny NetworkPolicy (podSelector {{}}, policyTypes "
                     "[Ingress, Egress], no rules): add one and allow exactly what its pods need")
            for ns in stack.resources if ns.kind == "Namespace" and (ns.provider, ns.name) not in denied]


RULES = {
    "private-gke-webhook-ports": (
        "On private GKE, every webhook / aggregated API target port is open from the control plane.",
        check_private_gke_webhook_ports),
    "eks-network-policy-enforced": (
        "NetworkPolicies on EKS are enforced (vpc-cni enableNetworkPolicy).", check_eks_network_policy),
    "image-from-reachable-registry": (
        "Workloads run images from a registry their cluster's nodes can pull from.", check_image_registries),
    "namespace-default-deny": (
        "Every Namespace the stack creates has a default-deny NetworkPolicy.", check_namespace_default_deny),
}


def res_of(resource) -> Res:
    """A ``pulumi_policy.PolicyResource`` -> :class:`Res`."""
    provider = getattr(resource, "provider", None)
    deps = [d.urn for d in (getattr(resource, "dependencies", None) or [])]
    for prop_deps in (getattr(resource, "property_dependencies", None) or {}).values():
        deps += [d.urn for d in prop_deps]
    return Res(resource.resource_type, resource.props, resource.urn, provider.urn if provider else "", deps)


def stack_policies():
    from pulumi_policy import EnforcementLevel, StackValidationPolicy

    def make(name, check):
        def validate(args, report_violation):
            for urn, message in check(Stack(res_of(r) for r in args.resources)):
                report_violation(message, urn)
        return validate

    return [StackValidationPolicy(name=name, description=description, validate=make(name, check),
                                  enforcement_level=EnforcementLevel.MANDATORY)
            for name, (description, check) in RULES.items()]
