"""Istio on one cluster, from the upstream charts (base, istiod, gateway) pinned at ISTIO_VERSION.

Order on an empty cluster (one ``pulumi up``): namespace -> intermediate CA ``cacerts`` Secret, the
base chart (CRDs) and the CNI node agent (chart ``cni`` in kube-system) -> istiod (plugged-in CA,
validation + injection webhooks, ``cni.enabled``; the chart is done once istiod has patched its
webhooks' ``caBundle``) -> gateways (their pods are injected by istiod) and every Istio custom
resource (after the CRDs and the validation webhook).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from cnplatform import validation as _v
from cnplatform.charts import chart_source, wait_for_ca_bundle
from cnplatform.manifests import custom_resource
from cnplatform.mesh import values as v
from cnplatform.mesh._resources import child_opts, metadata
from cnplatform.mesh.ca import CACERTS_SECRET, HOURS_PER_YEAR, MeshRootCa, MeshRootCaArgs, cacerts_data, intermediate_ca
from cnplatform.mesh.gateways import (  # noqa: F401  (re-exported)
    ACME_CHALLENGE_PREFIX,
    CROSS_NETWORK_GATEWAY_NAME,
    HTTPS_REDIRECT_NAME,
    NETWORKING_API,
    PUBLIC_GATEWAY_NAME,
    PUBLIC_HTTP_GATEWAY_NAME,
    cross_network_gateway,
    gateway_network_policy,
    gateway_selector,
    https_redirect_virtual_service,
    ingress_gateway_principal,
    public_gateway,
    public_gateway_name,
    public_http_gateway,
    self_signed_names,
)
from cnplatform.mesh.istio_spec import (  # noqa: F401  (re-exported)
    DEFAULT_TLS_SECRET,
    READER_TOKEN_SECRET,
    cross_network_custom_resources,
    ingress_custom_resources,
    namespace_labels,
    reader_token_metadata,
    token_of,
    zero_trust_custom_resources,
)
from cnplatform.mesh.service_policy import ServiceMeshObjects, ServiceMeshPolicyArgs, create_service_mesh_policy
from cnplatform.naming import type_token
from cnplatform.netpolicy import create_network_policies, istio_system_policies
from cnplatform.options import as_secret, inherited_depends_on


@dataclass
class IstioMeshArgs:
    """Inputs of :class:`IstioMesh` (flat, plain values; tier policy is decided by the caller)."""

    cluster_name: str
    """Cluster name (``global.multiCluster.clusterName``; also names the intermediate CA)."""
    network: str = ""
    """Istio network of the cluster (``global.network``); defaults to ``network-<cluster_name>``."""
    mesh_id: str = "ecommerce-mesh"
    """Mesh ID shared by every cluster of the mesh."""
    trust_domain: str = "cluster.local"
    """SPIFFE trust domain (the same in every cluster so identities match across clusters)."""
    istiod_replicas: int = 1
    """istiod replicas (HPA minimum when autoscaling); > 1 also renders its PodDisruptionBudget."""
    istiod_autoscale_max: int = 1
    """istiod HPA maximum; autoscaling is on when it exceeds ``istiod_replicas``."""
    istiod_cpu_request: str = "100m"
    """istiod CPU request."""
    istiod_memory_request: str = "256Mi"
    """istiod memory request."""
    istiod_cpu_limit: str = "1"
    """istiod CPU limit."""
    istiod_memory_limit: str = "1Gi"
    """istiod memory limit."""
    proxy_cpu_request: str = "100m"
    """Sidecar (istio-proxy) CPU request."""
    proxy_memory_request: str = "128Mi"
    """Sidecar memory request."""
    proxy_cpu_limit: str = "500m"
    """Sidecar CPU limit."""
    proxy_memory_limit: str = "256Mi"
    """Sidecar memory limit."""
    access_logs: bool = True
    """Envoy access logs to /dev/stdout as JSON."""
    outbound_traffic_policy: str = "ALLOW_ANY"
    """``ALLOW_ANY`` or ``REGISTRY_ONLY`` (egress only to hosts in the registry / ServiceEntries)."""
    hold_application_until_proxy_starts: bool = True
    """Start app containers only once the sidecar is ready."""
    charts_dir: Optional[str] = None
    """Directory of unpacked charts (air-gapped installs): each chart is loaded from
    ``<charts_dir>/istio-<chart>`` (``istiod``: ``<charts_dir>/istiod``) instead of the repository."""
    gateway_replicas: int = 1
    """Ingress (and east-west) gateway replicas / HPA minimum; > 1 also renders a PodDisruptionBudget."""
    gateway_autoscale_max: int = 1
    """Gateway HPA maximum; autoscaling is on when it exceeds ``gateway_replicas``."""
    gateway_cpu_request: str = "50m"
    """Gateway CPU request."""
    gateway_memory_request: str = "64Mi"
    """Gateway memory request."""
    gateway_cpu_limit: str = "1"
    """Gateway CPU limit."""
    gateway_memory_limit: str = "512Mi"
    """Gateway memory limit."""
    cni_cpu_request: str = "100m"
    """CPU request of each Istio CNI node agent pod (the chart default)."""
    cni_memory_request: str = "100Mi"
    """Memory request of each Istio CNI node agent pod (the chart default)."""
    cni_cpu_limit: Optional[str] = None
    """CPU limit of each CNI node agent pod (None: no limit, the chart default)."""
    cni_memory_limit: Optional[str] = None
    """Memory limit of each CNI node agent pod (None: no limit, the chart default)."""
    gateway_service_type: str = "NodePort"
    """``NodePort`` (kind) or ``LoadBalancer`` (cloud)."""
    http_node_port: Optional[int] = None
    """Fixed NodePort of HTTP (kind maps it to a host port)."""
    https_node_port: Optional[int] = None
    """Fixed NodePort of HTTPS."""
    load_balancer_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations of LoadBalancer gateway Services (explicit per cloud)."""
    spread_zones: bool = False
    """Spread istiod and gateway replicas over zones."""
    ingress_gateway: bool = True
    """Install the public ingress gateway and its ``public-gateway`` Istio Gateway."""
    ingress_hosts: list[str] = field(default_factory=lambda: ["*"])
    """Hosts the public gateway serves."""
    tls_secret_name: str = DEFAULT_TLS_SECRET
    """kubernetes.io/tls Secret in istio-system with the public certificate."""
    self_signed_tls: bool = False
    """Create ``tls_secret_name`` with a self-signed certificate (local clusters without cert-manager)."""
    east_west_gateway: bool = False
    """Install the east-west gateway (multi-primary, multi-network) and its cross-network Gateway."""
    east_west_source_ranges: Optional[pulumi.Input[list[str]]] = None
    """CIDRs the public east-west load balancer admits (the peer clusters' egress): required for a
    LoadBalancer that is not internal, never empty."""
    remote_access: bool = False
    """Create a token for istio-reader-service-account so other clusters' istiods can read this one."""
    app_namespaces: list[str] = field(default_factory=list)
    """Application namespaces: each gets a default allow-nothing AuthorizationPolicy."""
    services: list[ServiceMeshPolicyArgs] = field(default_factory=list)
    """Per-service traffic and authorization policies, registered as children of the mesh after its CRDs
    and istiod (``ServiceMeshPolicy`` makes one on its own). Routes bind to ``public_gateway_name()``;
    exposed services admit ``ingress_gateway_principal(trust_domain)``."""
    pod_security: str = "restricted"
    """Pod Security Standards level enforced on istio-system (istiod and gateways run as non-root)."""
    cni: bool = True
    """Install the Istio CNI node agent (kube-system): injected pods then need no privileged ``istio-init``."""
    platform: str = ""
    """Platform profile of the CNI chart: ``gke`` on GKE, empty on kind and EKS."""
    dns_capture: bool = True
    """Sidecars answer DNS (``ISTIO_META_DNS_CAPTURE``): TCP ServiceEntries resolved by DNS get their own address."""
    priority_class_name: Optional[str] = None
    """PriorityClass of istiod and the gateways (it must exist; none: no class); the CNI agent keeps its own."""
    acme_http01: bool = False
    """The gateway certificate is issued by ACME HTTP-01: HTTP serves ``/.well-known/acme-challenge/`` and
    redirects the rest."""
    root_cert_pem: Optional[pulumi.Input[str]] = None
    """Root CA certificate shared by the clusters of the mesh (None: a root for this mesh alone)."""
    root_key_pem: Optional[pulumi.Input[str]] = None
    """Root CA private key (secret)."""
    intermediate_validity_hours: int = 3 * HOURS_PER_YEAR
    """Lifetime of this cluster's intermediate CA."""
    intermediate_early_renewal_hours: int = 30 * 24
    """Re-issue the intermediate this long before it expires."""

    def __post_init__(self) -> None:
        if not self.network:
            self.network = f"network-{self.cluster_name}"
        _v.check_args(self, {
            "cluster_name": _v.dns_label, "mesh_id": _v.dns_label, "istiod_replicas": _v.positive,
            "istiod_cpu_request": _v.quantity, "istiod_memory_request": _v.quantity,
            "istiod_cpu_limit": _v.quantity, "istiod_memory_limit": _v.quantity,
            "proxy_cpu_request": _v.quantity, "proxy_memory_request": _v.quantity,
            "proxy_cpu_limit": _v.quantity, "proxy_memory_limit": _v.quantity,
            "outbound_traffic_policy": _v.one_of("ALLOW_ANY", "REGISTRY_ONLY"), "gateway_replicas": _v.positive,
            "gateway_cpu_request": _v.quantity, "gateway_memory_request": _v.quantity,
            "gateway_cpu_limit": _v.quantity, "gateway_memory_limit": _v.quantity,
            "cni_cpu_request": _v.quantity, "cni_memory_request": _v.quantity,
            "cni_cpu_limit": _v.quantity, "cni_memory_limit": _v.quantity,
            "gateway_service_type": _v.one_of("ClusterIP", "NodePort", "LoadBalancer"),
            "http_node_port": _v.in_range(30000, 32767), "https_node_port": _v.in_range(30000, 32767),
            "ingress_hosts": _v.hostname, "tls_secret_name": _v.dns_label, "app_namespaces": _v.dns_label,
        }, checks=[_v.requests_within_limits(*[(f"{p}_{r}_request", f"{p}_{r}_limit") for r in ("cpu", "memory")
                                               for p in ("istiod", "proxy", "gateway", "cni")]),
                   _v.not_above("istiod_replicas", "istiod_autoscale_max"),
                   _v.not_above("gateway_replicas", "gateway_autoscale_max")])


# ---------------------------------------------------------------------------------------- component


class IstioMesh(pulumi.ComponentResource):
    """Istio control plane, ingress (and east-west) gateway, mesh-wide mTLS and default deny."""

    namespace_name: pulumi.Output[str]
    """The mesh namespace (istio-system)."""
    public_gateway: pulumi.Output[str]
    """``<namespace>/<name>`` of the public Istio Gateway, for VirtualServices to bind to."""
    tls_secret: pulumi.Output[str]
    """Name of the public gateway's TLS Secret (in the mesh namespace)."""
    istio_version: pulumi.Output[str]
    """Pinned Istio version."""

    #: Plain handles (known at program time), for other layers.
    namespace: str
    gateway_name: str
    tls_secret_name: str
    ingress_gateway_principal: str
    #: Pod labels of the gateways in ``namespace`` (what NetworkPolicies and AuthorizationPolicies select).
    ingress_gateway_labels: dict[str, str]
    east_west_gateway_labels: dict[str, str]
    #: The istio-system Namespace resource (depend on it to create objects in the mesh namespace).
    namespace_resource: k8s.core.v1.Namespace
    #: The Helm charts, in install order; Istio custom resources must depend on ``crd_dependencies``.
    charts: list[k8s.helm.v4.Chart]
    crd_dependencies: list[pulumi.Resource]
    #: What meshed workloads must wait for: istiod (the sidecar injector), which itself waits for the CRDs,
    #: the CA and the CNI node agent. Depending on these rather than on the whole component keeps the
    #: workloads off the gateways' rollout and each resource's dependency list short.
    ready: list[pulumi.Resource]
    #: Per service (``args.services``): its mesh objects and exported values.
    service_policies: dict[str, ServiceMeshObjects]
    #: Token of istio-reader-service-account (secret; only with ``remote_access``).
    reader_token: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: IstioMeshArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("mesh", "IstioMesh"), name, None, opts)
        deps = inherited_depends_on(opts)
        ns_name = v.ISTIO_NAMESPACE
        self.namespace = ns_name
        self.gateway_name = public_gateway_name(ns_name)
        self.tls_secret_name = args.tls_secret_name
        self._charts_dir = args.charts_dir
        self.ingress_gateway_principal = ingress_gateway_principal(args.trust_domain, ns_name)
        self.ingress_gateway_labels = dict(v.INGRESS_GATEWAY_LABELS)
        self.east_west_gateway_labels = dict(v.EASTWEST_GATEWAY_LABELS)

        namespace = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": ns_name, "labels": namespace_labels(args)},
            opts=child_opts(self, deps))
        self.namespace_resource = namespace
        create_network_policies(name, ns_name, istio_system_policies(multicluster=args.east_west_gateway),
                                child_opts(self, deps, namespace))
        cacerts = self._cacerts(name, args, deps, namespace)
        base, istiod = self._control_plane(name, args, deps, namespace, cacerts)
        cr_opts = child_opts(self, deps, base, istiod)
        if args.ingress_gateway:
            self._ingress(name, args, deps, namespace, istiod, cr_opts)
        # Zero trust: strict mTLS mesh-wide, deny by default in every app namespace.
        for cr_name, doc in zero_trust_custom_resources(name, args, ns_name):
            custom_resource(cr_name, doc, cr_opts)
        self.service_policies = {svc.traffic.service: create_service_mesh_policy(
            f"{name}-{svc.traffic.service}", svc, cr_opts) for svc in args.services}
        if args.east_west_gateway:
            self._east_west(name, args, deps, namespace, istiod, cr_opts)
        self.reader_token = None
        if args.remote_access:
            token = k8s.core.v1.Secret(
                f"{name}-reader-token", metadata=reader_token_metadata(ns_name),
                type="kubernetes.io/service-account-token", opts=child_opts(self, deps, base))
            self.reader_token = as_secret(token.data.apply(token_of))
        self._publish(namespace)

    def _cacerts(self, name: str, args: IstioMeshArgs, deps: list,
                 namespace: k8s.core.v1.Namespace) -> k8s.core.v1.Secret:
        """istiod's plugged-in CA: an intermediate per cluster, signed by the stack's root (or this mesh's own)."""
        root_cert, root_key = args.root_cert_pem, args.root_key_pem
        if root_cert is None or root_key is None:
            root = MeshRootCa(f"{name}-root-ca", MeshRootCaArgs(), opts=pulumi.ResourceOptions(parent=self))
            root_cert, root_key = root.cert_pem, root.private_key_pem
        ca_cert, ca_key = intermediate_ca(self, f"{name}-intermediate-ca", args.cluster_name, root_cert, root_key,
                                          args.intermediate_validity_hours, args.intermediate_early_renewal_hours)
        return k8s.core.v1.Secret(
            f"{name}-cacerts",
            metadata=metadata(CACERTS_SECRET, namespace=v.ISTIO_NAMESPACE),
            type="Opaque",
            string_data=as_secret(
                pulumi.Output.all(ca_cert, ca_key, root_cert).apply(lambda t: cacerts_data(*t))),
            opts=child_opts(self, deps, namespace))

    def _control_plane(self, name: str, args: IstioMeshArgs, deps: list, namespace: k8s.core.v1.Namespace,
                       cacerts: k8s.core.v1.Secret) -> tuple[k8s.helm.v4.Chart, k8s.helm.v4.Chart]:
        """The base chart (CRDs), the CNI node agent, istiod; sets ``charts``, ``crd_dependencies``, ``ready``."""
        base = self._chart(name, v.BASE_RELEASE, "base", v.base_values(args), deps, namespace)
        # The CNI node agent before istiod: once istiod's injector runs with cni.enabled, injected pods
        # rely on the agent for their redirection (and app pods wait for the mesh component).
        cni = [self._chart(name, v.CNI_RELEASE, v.CNI_CHART, v.cni_values(args), deps,
                           namespace_name=v.CNI_NAMESPACE)] if args.cni else []
        # istiod patches its validator's and injector's caBundle once it runs: the chart waits for that
        # (its webhooks are failurePolicy Fail from the first render), so what depends on it is not
        # refused with an x509 error. Not base's default validator: istiod depends on base (a cycle);
        # istiod's one controller patches both validators at start.
        istiod = self._chart(name, v.ISTIOD_RELEASE, "istiod", v.istiod_values(args), deps, base, cacerts, namespace,
                             *cni, transforms=[wait_for_ca_bundle])
        self.charts = [base, *cni, istiod]
        self.crd_dependencies = [base, istiod]
        self.ready = [istiod]
        return base, istiod

    def _ingress(self, name: str, args: IstioMeshArgs, deps: list, namespace: k8s.core.v1.Namespace,
                 istiod: k8s.helm.v4.Chart, cr_opts: pulumi.ResourceOptions) -> None:
        """The ingress gateway chart, its NetworkPolicy, its certificate when self-signed, its Gateways."""
        self.charts.append(self._chart(name, v.INGRESS_GATEWAY_RELEASE, "gateway", v.gateway_values(args),
                                       deps, istiod))
        self._network_policy(name, gateway_network_policy(
            v.INGRESS_GATEWAY_RELEASE, v.INGRESS_GATEWAY_LABELS, v.INGRESS_GATEWAY_PORTS), deps, namespace)
        if args.self_signed_tls:
            self._self_signed_tls(name, args, child_opts(self, deps, namespace))
        for cr_name, doc in ingress_custom_resources(name, args):
            custom_resource(cr_name, doc, cr_opts)

    def _east_west(self, name: str, args: IstioMeshArgs, deps: list, namespace: k8s.core.v1.Namespace,
                   istiod: k8s.helm.v4.Chart, cr_opts: pulumi.ResourceOptions) -> None:
        """Multi-cluster: the east-west gateway chart, its NetworkPolicy, the cross-network Gateway."""
        eastwest = self._chart(name, v.EASTWEST_GATEWAY_RELEASE, "gateway", v.eastwest_gateway_values(args),
                               deps, istiod)
        self.charts.append(eastwest)
        self._network_policy(name, gateway_network_policy(
            v.EASTWEST_GATEWAY_RELEASE, v.EASTWEST_GATEWAY_LABELS, v.EASTWEST_GATEWAY_PORTS), deps, namespace)
        for cr_name, doc in cross_network_custom_resources(name, v.ISTIO_NAMESPACE):
            custom_resource(cr_name, doc, cr_opts)

    def _publish(self, namespace: k8s.core.v1.Namespace) -> None:
        ns_name = self.namespace
        self.namespace_name = namespace.metadata.apply(lambda _: ns_name)
        self.public_gateway = pulumi.Output.from_input(self.gateway_name)
        self.tls_secret = pulumi.Output.from_input(self.tls_secret_name)
        self.istio_version = pulumi.Output.from_input(v.ISTIO_VERSION)
        self.register_outputs({"namespace_name": self.namespace_name, "public_gateway": self.public_gateway,
                               "tls_secret": self.tls_secret, "istio_version": self.istio_version})

    def _chart(self, name: str, release: str, chart: str, values: dict, deps: list,
               *after: pulumi.Resource, namespace_name: str = v.ISTIO_NAMESPACE,
               transforms: Optional[list] = None) -> k8s.helm.v4.Chart:
        return k8s.helm.v4.Chart(
            f"{name}-{release}",
            k8s.helm.v4.ChartArgs(
                **chart_source(chart, v.ISTIO_REPO, self._charts_dir, chart if chart == "istiod" else f"istio-{chart}"),
                name=release, version=v.ISTIO_VERSION, namespace=namespace_name, values=values),
            opts=child_opts(self, deps, *after, **({"transforms": transforms} if transforms else {})))

    def _network_policy(self, name: str, doc: dict, deps: list, namespace: pulumi.Resource) -> None:
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol-{doc['metadata']['name']}", metadata=doc["metadata"],
                                        spec=doc["spec"], opts=child_opts(self, deps, namespace))

    def _self_signed_tls(self, name: str, args: IstioMeshArgs, opts: pulumi.ResourceOptions) -> None:
        child = pulumi.ResourceOptions(parent=self)
        names = self_signed_names(args.ingress_hosts)
        key = tls.PrivateKey(f"{name}-ingress-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        key_pem = as_secret(key.private_key_pem)
        cert = tls.SelfSignedCert(
            f"{name}-ingress-tls-cert",
            private_key_pem=key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=names[0], organization="ecommerce-platform"),
            dns_names=names,
            validity_period_hours=HOURS_PER_YEAR,
            early_renewal_hours=30 * 24,
            allowed_uses=["key_encipherment", "digital_signature", "server_auth"],
            opts=child)
        k8s.core.v1.Secret(
            f"{name}-ingress-tls",
            metadata=metadata(args.tls_secret_name, v.ISTIO_NAMESPACE),
            type="kubernetes.io/tls",
            string_data=as_secret(
                pulumi.Output.all(cert.cert_pem, key_pem).apply(lambda t: {"tls.crt": t[0], "tls.key": t[1]})),
            opts=opts)

