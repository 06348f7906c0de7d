"""Pinned charts and the Helm values of the mesh (pure functions: the component and the footprint use them).

Every values dict here is exactly what goes to the chart; ``footprint`` reads replicas and requests from
the same dicts, so what the capacity check counts is what the charts deploy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import pulumi

if TYPE_CHECKING:  # pragma: no cover
    from cnplatform.mesh.istio import IstioMeshArgs

# ------------------------------------------------------------------------------------- pinned charts

ISTIO_VERSION = "1.29.6"
ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
#: Release images (the in-repo chart defaults are gcr.io/istio-testing:latest; the release stamps these).
ISTIO_HUB = "docker.io/istio"
CONSUL_VERSION = "2.0.3"
CONSUL_REPO = "https://helm.releases.hashicorp.com"

ISTIO_NAMESPACE = "istio-system"
CONSUL_NAMESPACE = "consul"

#: Helm release names (= chart names for the three Istio charts; the render names values files by chart).
BASE_RELEASE = "base"
#: Istio's config validation webhooks fail closed from the first render (see istiod_values).
VALIDATION_FAILURE_POLICY = "Fail"
ISTIOD_RELEASE = "istiod"
#: Node ports the API server calls on istiod pods: the injection and validation webhooks (Service
#: port 443 -> 15017). A private GKE control plane reaches nodes only on 443/10250 unless opened.
CONTROL_PLANE_PORTS = (15017,)
INGRESS_GATEWAY_RELEASE = "gateway"
EASTWEST_GATEWAY_RELEASE = "istio-eastwestgateway"
CONSUL_RELEASE = "consul"

#: The Istio CNI node agent (chart ``cni``, release ``istio-cni``): it sets up each injected pod's traffic
#: redirection from the node, so pods need no privileged ``istio-init`` container. Its DaemonSet is
#: privileged by nature (hostPath CNI dirs, NET_ADMIN/SYS_ADMIN as root): it lives in ``kube-system``,
#: which Pod Security does not enforce and where ``system-node-critical`` pods are always admitted.
CNI_CHART = "cni"
CNI_RELEASE = "istio-cni"
CNI_NAMESPACE = "kube-system"
#: Where GKE nodes keep CNI binaries (the chart only guesses it from the API server's version string).
GKE_CNI_BIN_DIR = "/home/kubernetes/bin"

#: Pod labels of the ingress gateway: what AuthorizationPolicies, the public Gateway and the services'
#: NetworkPolicies select (namespace istio-system + ``istio=ingressgateway``).
INGRESS_GATEWAY_LABELS = {"istio": "ingressgateway"}
#: The gateway chart names its ServiceAccount after the release (``gateway.serviceAccountName``).
INGRESS_GATEWAY_SERVICE_ACCOUNT = INGRESS_GATEWAY_RELEASE
#: Selector label value the chart derives for the east-west release (name without ``istio-``).
EASTWEST_GATEWAY_LABELS = {"istio": "eastwestgateway"}
#: Ports the gateways' pods accept traffic on (Envoy listeners, health 15021, Envoy metrics 15090).
INGRESS_GATEWAY_PORTS = [80, 443, 15021, 15090]
#: The east-west gateway's pods accept cross-network mTLS 15443, health and metrics only (15021 for the
#: kubelet's probes, 15090 for Prometheus). Every cluster here is a primary with its own istiod
#: (multi-primary): no peer's proxy dials istiod (15012) or a webhook (15017) through the gateway;
#: exposing istiod is for primary-remote only.
EASTWEST_GATEWAY_PORTS = [15443, 15021, 15090]
#: What the east-west load balancer publishes: cross-network mTLS only. No cloud health check needs the
#: status port: an AWS NLB checks TCP on the traffic port (its node port), a GCP passthrough NLB checks
#: kube-proxy's healthz (10256) of each node (``externalTrafficPolicy: Cluster``), and both clouds admit
#: their health checkers apart from ``loadBalancerSourceRanges``.
EASTWEST_SERVICE_PORTS = [{"name": "tls", "port": 15443, "protocol": "TCP", "targetPort": 15443}]
#: Label istiod finds each network's gateway by (on the Service; the pods carry it too).
NETWORK_LABEL = "topology.istio.io/network"
#: Env of the east-west gateway's proxy: which network's endpoints it routes to (its own).
REQUESTED_NETWORK_VIEW = "ISTIO_META_REQUESTED_NETWORK_VIEW"

#: ServiceAccount the base chart creates for remote secrets (multi-cluster endpoint discovery).
READER_SERVICE_ACCOUNT = "istio-reader-service-account"

#: Lets Envoy (uid 1337) bind 80/443 without NET_BIND_SERVICE; a "safe" sysctl under Pod Security.
UNPRIVILEGED_PORTS_SYSCTL = {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}


def resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str) -> dict:
    return {"requests": {"cpu": cpu_request, "memory": memory_request},
            "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def priority_class(args: "IstioMeshArgs") -> dict:
    """``priorityClassName`` of istiod (``global.``) and the gateways (top level) when one is set."""
    return {"priorityClassName": args.priority_class_name} if args.priority_class_name else {}


def zone_spread(labels: dict[str, str]) -> list[dict]:
    """Spread replicas over zones (soft: a zone outage must not block scheduling elsewhere)."""
    return [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": dict(labels)}}]


# ----------------------------------------------------------------------------------------------- Istio


def base_values(args: "IstioMeshArgs") -> dict:
    """istio/base: CRDs (as templates, so upgrades update them), the default-revision validator, reader SA."""
    # The default-revision validator has the same fresh-install flip-flop as istiod's (istiod_values).
    return {"global": {"istioNamespace": ISTIO_NAMESPACE}, "defaultRevision": "default",
            "base": {"validationFailurePolicy": VALIDATION_FAILURE_POLICY}}


def proxy_metadata(args: "IstioMeshArgs") -> dict[str, str]:
    """Environment of every sidecar's istio-agent (``meshConfig.defaultConfig.proxyMetadata``).

    ``ISTIO_META_DNS_CAPTURE``: the agent answers the pod's DNS queries. Needed for TCP ServiceEntries
    resolved by DNS without ``addresses`` (an RDS endpoint on 3306): istiod allocates each one a
    virtual IP (IP auto-allocation, on by default since Istio 1.25) and only the agent's DNS hands it
    out; without it every such entry on one port shares the 0.0.0.0:3306 listener and one of them
    wins, i.e. a service could be sent to another service's database.
    """
    return {"ISTIO_META_DNS_CAPTURE": "true"} if args.dns_capture else {}


def mesh_config(args: "IstioMeshArgs") -> dict:
    """meshConfig (istio.mesh.v1alpha1.MeshConfig): access logs, egress policy, proxy start order."""
    default_config: dict[str, Any] = {"holdApplicationUntilProxyStarts": args.hold_application_until_proxy_starts}
    if proxy_metadata(args):
        default_config["proxyMetadata"] = proxy_metadata(args)
    return {
        "accessLogFile": "/dev/stdout" if args.access_logs else "",
        "accessLogEncoding": "JSON",
        "outboundTrafficPolicy": {"mode": args.outbound_traffic_policy},
        "defaultConfig": default_config,
        # Off: Prometheus scrapes the app port through the sidecar (mTLS, authorised) and Envoy on
        # 15090; merged metrics on :15020 would bypass mTLS and authorization, and nothing scrapes them.
        "enablePrometheusMerge": False,
        "trustDomain": args.trust_domain,
        **service_settings(args),
    }


def cluster_local_hosts(args: "IstioMeshArgs") -> list[str]:
    """Hosts of the services marked ``cluster_local`` (each cluster keeps its own data): requests to
    them never leave the caller's cluster."""
    from cnplatform.mesh.traffic import service_host

    return sorted({service_host(s.traffic.service, s.traffic.namespace, s.traffic.cluster_domain)
                   for s in args.services if s.traffic.cluster_local})


def service_settings(args: "IstioMeshArgs") -> dict:
    """``meshConfig.serviceSettings``: ``clusterLocal`` hosts get endpoints of the proxy's own cluster
    only (no cross-cluster load balancing, no failover to a peer). Istio's documented way to keep a
    service in-cluster; a DestinationRule's locality settings only prefer local endpoints."""
    hosts = cluster_local_hosts(args)
    return {"serviceSettings": [{"settings": {"clusterLocal": True}, "hosts": hosts}]} if hosts else {}


def istiod_values(args: "IstioMeshArgs") -> dict:
    """istio/istiod: control plane sized per tier, plugged-in CA (``cacerts``), multi-cluster identity."""
    ha = args.istiod_replicas > 1
    autoscale = args.istiod_autoscale_max > args.istiod_replicas
    values: dict[str, Any] = {
        "global": {
            "hub": ISTIO_HUB,
            "tag": ISTIO_VERSION,
            "istioNamespace": ISTIO_NAMESPACE,
            "meshID": args.mesh_id,
            "network": args.network,
            "multiCluster": {"clusterName": args.cluster_name},
            "logAsJson": True,
            # Not the chart's NetworkPolicy (it opens all egress and 15010/15011/8080 from anywhere):
            # istio-system's policies are ours (cnplatform.netpolicy.istio_system_policies).
            "networkPolicy": {"enabled": False},
            # The chart renders the PDB only with > 1 replica (kubernetes#93476); enabled for HA tiers.
            "defaultPodDisruptionBudget": {"enabled": ha}, **priority_class(args),
            "proxy": {
                "resources": resources(args.proxy_cpu_request, args.proxy_memory_request,
                                       args.proxy_cpu_limit, args.proxy_memory_limit),
                "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
            },
        },
        "replicaCount": args.istiod_replicas, "autoscaleEnabled": autoscale, "autoscaleMin": args.istiod_replicas,
        "autoscaleMax": max(args.istiod_autoscale_max, args.istiod_replicas),
        "resources": resources(args.istiod_cpu_request, args.istiod_memory_request,
                               args.istiod_cpu_limit, args.istiod_memory_limit),
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP), "pdb": {"minAvailable": 1},
        "meshConfig": mesh_config(args),
        # The injector adds the unprivileged ``istio-validation`` init container instead of ``istio-init``
        # (root + NET_ADMIN/NET_RAW, which Pod Security baseline/restricted reject): the CNI node agent
        # sets up the redirection. Top-level key of the chart (``pilot.cni`` is the legacy alias).
        "cni": {"enabled": args.cni},
        # helm.v4.Chart renders every update as a fresh install (``.Release.IsUpgrade`` false), so the
        # chart's default would reset the validation webhook to Ignore on each `pulumi up` (istiod flips
        # it back to Fail once ready): the flip-flop the chart documents for server-side-apply tools.
        "base": {"validationFailurePolicy": VALIDATION_FAILURE_POLICY},
    }
    if args.spread_zones:
        values["topologySpreadConstraints"] = zone_spread({"app": "istiod"})
    return values


def cni_resources(args: "IstioMeshArgs") -> dict:
    """Requests (and the limits that are set) of each CNI node agent pod: the footprint counts this dict.
    The chart's ``istio-cni.resources`` helper renders ``limits`` and ``requests`` as given."""
    out: dict[str, dict[str, str]] = {"requests": {"cpu": args.cni_cpu_request, "memory": args.cni_memory_request}}
    limits = {k: v for k, v in (("cpu", args.cni_cpu_limit), ("memory", args.cni_memory_limit)) if v}
    if limits:
        out["limits"] = limits
    return out


def cni_values(args: "IstioMeshArgs") -> dict:
    """istio/cni release ``istio-cni`` in kube-system: the node agent that replaces ``istio-init``.

    Kept minimal (the chart's values.yaml is not among the pinned references, so no test can check
    these keys yet; docs/mesh.md lists each one and why): images pinned like istiod's, the requests the
    footprint counts, and on GKE the platform profile plus the CNI binary directory of GKE nodes.
    """
    values: dict[str, Any] = {
        "global": {"hub": ISTIO_HUB, "tag": ISTIO_VERSION},
        "resources": cni_resources(args),
    }
    if args.platform == "gke":
        values["global"]["platform"] = "gke"
        values["cniBinDir"] = GKE_CNI_BIN_DIR
    return values


def _gateway_common(args: "IstioMeshArgs", labels: dict[str, str]) -> dict:
    ha = args.gateway_replicas > 1
    autoscale = args.gateway_autoscale_max > args.gateway_replicas
    values: dict[str, Any] = {
        "replicaCount": args.gateway_replicas,
        "autoscaling": {"enabled": autoscale, "minReplicas": args.gateway_replicas,
                        "maxReplicas": max(args.gateway_autoscale_max, args.gateway_replicas),
                        "targetCPUUtilizationPercentage": 80},
        "resources": resources(args.gateway_cpu_request, args.gateway_memory_request,
                               args.gateway_cpu_limit, args.gateway_memory_limit),
        "podDisruptionBudget": {"minAvailable": 1} if ha else {},
        # Replaces the chart's default pod securityContext (the sysctl alone): keep the sysctl and add
        # RuntimeDefault seccomp so the pods meet Pod Security "restricted" (Envoy runs as uid 1337).
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
            "sysctls": [dict(UNPRIVILEGED_PORTS_SYSCTL)],
        },
        "labels": dict(labels), **priority_class(args),
        # Not the chart's own NetworkPolicy (global.networkPolicy): its template repeats the app/istio
        # labels (duplicate YAML keys); the mesh component renders the gateways' NetworkPolicies.
    }
    if args.spread_zones:
        values["topologySpreadConstraints"] = zone_spread(labels)
    return values


def gateway_service(args: "IstioMeshArgs") -> dict:
    """The ingress Service: NodePort on kind (ports kind maps to the host), LoadBalancer with explicit
    cloud annotations elsewhere."""
    http = {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80}
    https = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}
    if args.gateway_service_type == "NodePort":
        if args.http_node_port:
            http["nodePort"] = args.http_node_port
        if args.https_node_port:
            https["nodePort"] = args.https_node_port
    service: dict[str, Any] = {
        "type": args.gateway_service_type,
        "ports": [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021}, http, https],
    }
    if args.gateway_service_type == "LoadBalancer":
        service["annotations"] = dict(args.load_balancer_annotations)
    return service


def gateway_values(args: "IstioMeshArgs") -> dict:
    """istio/gateway release ``gateway``: the public ingress gateway (pods labelled istio=ingressgateway)."""
    values = _gateway_common(args, INGRESS_GATEWAY_LABELS)
    values["service"] = gateway_service(args)
    return values


def eastwest_gateway_pods(args: "IstioMeshArgs") -> dict:
    """The east-west gateway's pods (what the footprint counts): labelled with the network, their proxy
    limited to this network's endpoints. What the chart's ``networkGateway`` sets, minus its Service
    ports: that mode hard-codes 15021/15443/15012/15017 and ignores ``service.ports``."""
    values = _gateway_common(args, EASTWEST_GATEWAY_LABELS)
    values["labels"] = {**values["labels"], NETWORK_LABEL: args.network}
    values["env"] = {REQUESTED_NETWORK_VIEW: args.network}
    return values


def internal_load_balancer(annotations: dict[str, str]) -> bool:
    """Do the annotations ask the cloud for an internal (VPC-only) load balancer?"""
    return any(str(annotations.get(k, "")).lower() == val for k, val in INTERNAL_LB_ANNOTATIONS.items())


def require_source_ranges(cidrs: Optional[list[str]]) -> list[str]:
    """A public east-west load balancer admits its peers only: an empty list would open it to anyone."""
    if not cidrs:
        raise ValueError("the east-west gateway's public load balancer needs loadBalancerSourceRanges "
                         "(the peer clusters' egress CIDRs): none were given")
    return sorted(set(cidrs))


def eastwest_service(args: "IstioMeshArgs") -> dict:
    """The east-west Service: 15443 only, labelled with the network (gateway auto-discovery).

    A cloud LoadBalancer is public unless its annotations make it internal. Internal is right where the
    clusters' networks are peered; the peers here sit in different clouds (no peering), so the public
    load balancer admits only ``east_west_source_ranges`` (the peers' NAT addresses)."""
    service: dict[str, Any] = {"type": args.gateway_service_type, "ports": [dict(p) for p in EASTWEST_SERVICE_PORTS]}
    if args.gateway_service_type == "LoadBalancer":
        service["annotations"] = dict(args.load_balancer_annotations)
        if not internal_load_balancer(args.load_balancer_annotations):
            ranges = args.east_west_source_ranges
            if ranges is None or isinstance(ranges, (list, tuple)):
                service["loadBalancerSourceRanges"] = require_source_ranges(list(ranges or []))
            else:
                unresolved: pulumi.Output[list[str]] = pulumi.Output.from_input(ranges)
                service["loadBalancerSourceRanges"] = unresolved.apply(require_source_ranges)
    return service


def eastwest_gateway_values(args: "IstioMeshArgs") -> dict:
    """istio/gateway release ``istio-eastwestgateway``: cross-network traffic (15443 mTLS passthrough)."""
    return {**eastwest_gateway_pods(args), "service": eastwest_service(args)}


#: The platform policy (policy/: load-balancer-needs-annotation) accepts a LoadBalancer Service only
#: when it is declared public on purpose (this annotation) or internal.
PUBLIC_LB_ANNOTATION = "cnplatform.io/public-load-balancer"


def load_balancer_annotations(cloud: str) -> dict[str, str]:
    """Explicit annotations of the gateways' public L4 load balancers per cloud (public on purpose:
    the ingress serves the internet; the east-west gateway carries only mTLS between clusters in
    different clouds and admits only their egress addresses, ``eastwest_service``)."""
    public = {PUBLIC_LB_ANNOTATION: "true"}
    if cloud == "aws":
        return {**public,
            # NLB (in-tree controller and AWS Load Balancer Controller both honour "nlb").
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
            "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
        }
    if cloud == "gcp":
        # Backend-service-based external passthrough Network Load Balancer.
        return {**public, "cloud.google.com/l4-rbs": "enabled"}
    return {}


#: Annotation -> value that makes a cloud load balancer internal (VPC-only) rather than public.
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "networking.gke.io/load-balancer-type": "internal",
}


# ---------------------------------------------------------------------------------- workload sizing


def istiod_min_replicas(values: dict) -> int:
    """Pods istiod runs at least (HPA minimum when autoscaling, else replicaCount)."""
    v = {**values, **(values.get("pilot") or {})}
    return int(v["autoscaleMin"] if v.get("autoscaleEnabled") else v.get("replicaCount", 1))


def gateway_min_replicas(values: dict) -> int:
    auto = values.get("autoscaling") or {}
    return int(auto["minReplicas"] if auto.get("enabled") else (values.get("replicaCount") or 1))


# ------------------------------------------------------------------------------------------- Consul


def consul_values(datacenter: str, server_replicas: int, app_namespaces: list[str],
                  server_resources: Optional[dict] = None, sync_resources: Optional[dict] = None) -> dict:
    """hashicorp/consul: servers + catalog sync only. Istio stays the service mesh (no Consul connect
    injection): Kubernetes services are registered in Consul for workloads outside Kubernetes, and
    Consul services (VMs...) appear as Kubernetes services the mesh can route to."""
    return {
        "global": {
            "name": "consul",
            "datacenter": datacenter,
            "logJSON": True,
            # ACL bootstrap runs as an ordinary Job. TLS stays off: the chart's tls-init (CA + server
            # certificates) is a Helm hook, which Chart v4 does not run; enabling it needs those
            # Secrets provided (global.tls.caCert / caKey, server.serverCert) - see docs/mesh.md.
            "acls": {"manageSystemACLs": True},
        },
        "server": {
            "replicas": server_replicas,
            "resources": server_resources or resources("100m", "200Mi", "500m", "400Mi"),
        },
        "connectInject": {"enabled": False},
        "syncCatalog": {
            "enabled": True,
            "toConsul": True,
            "toK8S": True,
            "k8sAllowNamespaces": list(app_namespaces) or ["*"],
            "resources": sync_resources or resources("50m", "64Mi", "100m", "128Mi"),
        },
    }
