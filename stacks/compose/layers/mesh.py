"""Layer: the Istio service mesh of a cluster, and the mesh policy of every service on it.

Shares ``ctx.parts["mesh"]`` (an ``IstioMesh``): ``gateway_name`` ("istio-system/public-gateway"),
``tls_secret_name``, ``namespace``, ``namespace_resource``, ``charts``, ``crd_dependencies`` (depend
on these for any Istio custom resource) and ``ready`` (meshed workloads wait for these). Stack-wide
(``ctx.shared``): the mesh root CA, and the meshes of the clusters already built (remote secrets are
exchanged pairwise). The services' policies are children of the mesh (``IstioMeshArgs.services``).
"""
from __future__ import annotations

import pulumi

from cnplatform.addons.cert_manager import ISSUER_ACME
from cnplatform.cluster.base import api_allow_list
from cnplatform.cluster.local import INGRESS_NODE_PORT_HTTP, INGRESS_NODE_PORT_HTTPS
from cnplatform.cluster.priority import PLATFORM_CRITICAL
from cnplatform.mesh import values as mesh_values
from cnplatform.mesh.authorization import MONITORING_NAMESPACE, ServiceAuthorizationArgs
from cnplatform.mesh.ca import MeshRootCa, MeshRootCaArgs
from cnplatform.mesh.consul import (
    ConsulCatalogSync,
    ConsulCatalogSyncArgs,
    consul_values,
)
from cnplatform.mesh.istio import (
    DEFAULT_TLS_SECRET,
    IstioMesh,
    IstioMeshArgs,
    ingress_gateway_principal,
    public_gateway_name,
)
from cnplatform.mesh.multicluster import RemoteSecret, RemoteSecretArgs, ca_data_of
from cnplatform.mesh.service_policy import ServiceMeshPolicyArgs
from cnplatform.mesh.traffic import ServiceTrafficPolicyArgs, exposed_service_paths
from cnplatform.naming import service_account_principal
from stacks.compose.context import ClusterContext, MeshMember
from stacks.compose.layers import ingress_certificate
from stacks.compose.layers.addons import issuer_type
from stacks.compose.workloads import Workload
from stacks.config import ClusterConfig, ServiceConfig, StackConfig

LAYER = "mesh"

# ------------------------------------------------------------------------------ config -> args (pure)


def network_of(cluster_cfg: ClusterConfig) -> str:
    return cluster_cfg.mesh_network or f"network-{cluster_cfg.name}"


def outbound_policy(cfg: StackConfig) -> str:
    return cfg.mesh.outbound_traffic_policy or cfg.defaults.outbound_traffic_policy


def east_west_enabled(cfg: StackConfig) -> bool:
    if cfg.mesh.east_west_gateway is not None:
        return cfg.mesh.east_west_gateway
    return len(cfg.clusters) > 1


def tls_secret_name(cfg: StackConfig) -> str:
    return cfg.mesh.ingress.tls_secret_name or DEFAULT_TLS_SECRET


def self_signed_tls(cfg: StackConfig, cluster_cfg: ClusterConfig) -> bool:
    """cert-manager issues the gateway certificate when enabled (layer ingress_certificate); otherwise a
    local cluster gets a self-signed one, and a cloud cluster expects the configured Secret to exist."""
    return cfg.mesh.ingress.enabled and not cfg.addons.cert_manager.enabled and cluster_cfg.cloud == "local"


def acme_http01(cfg: StackConfig, cluster_cfg: ClusterConfig) -> bool:
    """The gateway certificate comes from ACME over HTTP-01 (cloud clusters by default): port 80 must
    answer the challenges instead of redirecting everything to HTTPS."""
    return ingress_certificate.wanted(cfg) and issuer_type(cfg, cluster_cfg) == ISSUER_ACME


def cni_platform(cluster_cfg: ClusterConfig) -> str:
    """Platform profile of the Istio CNI chart: ``gke`` on GKE (CNI binaries live elsewhere there)."""
    return "gke" if cluster_cfg.cloud == "gcp" else ""


def mesh_args(cfg: StackConfig, cluster_cfg: ClusterConfig) -> IstioMeshArgs:
    """Everything the mesh of one cluster needs, decided from config (tier, cloud, cluster count),
    including the policies of the services on the cluster."""
    local, sidecar = cluster_cfg.cloud == "local", cfg.defaults.sidecar_resources
    args = IstioMeshArgs(
        cluster_name=cluster_cfg.name,
        charts_dir=cfg.charts_dir,
        network=network_of(cluster_cfg),
        mesh_id=cfg.mesh.mesh_id,
        **cfg.defaults.mesh_sizing, priority_class_name=PLATFORM_CRITICAL,
        proxy_cpu_request=sidecar["requests"]["cpu"], proxy_memory_request=sidecar["requests"]["memory"],
        proxy_cpu_limit=sidecar["limits"]["cpu"], proxy_memory_limit=sidecar["limits"]["memory"],
        access_logs=cfg.mesh.access_logs,
        outbound_traffic_policy=outbound_policy(cfg),
        hold_application_until_proxy_starts=True,
        gateway_service_type="NodePort" if local else "LoadBalancer",
        http_node_port=INGRESS_NODE_PORT_HTTP if local else None,
        https_node_port=INGRESS_NODE_PORT_HTTPS if local else None,
        load_balancer_annotations=mesh_values.load_balancer_annotations(cluster_cfg.cloud),
        spread_zones=cfg.defaults.strict_zone_spread and not local,
        ingress_gateway=cfg.mesh.ingress.enabled,
        ingress_hosts=list(cfg.mesh.ingress.hosts),
        tls_secret_name=tls_secret_name(cfg),
        self_signed_tls=self_signed_tls(cfg, cluster_cfg),
        east_west_gateway=east_west_enabled(cfg),
        remote_access=east_west_enabled(cfg) and len(cfg.clusters) > 1,
        app_namespaces=[ns.name for ns in cfg.namespaces],
        pod_security="restricted",
        # App namespaces enforce Pod Security restricted: no istio-init (root, NET_ADMIN) in their pods.
        cni=True,
        platform=cni_platform(cluster_cfg),
        dns_capture=True,
        acme_http01=acme_http01(cfg, cluster_cfg),
    )
    args.services = service_policies(cfg, cluster_cfg, args.trust_domain)
    return args


def service_policies(cfg: StackConfig, cluster_cfg: ClusterConfig, trust_domain: str) -> list[ServiceMeshPolicyArgs]:
    """Traffic and authorization policy of every service on the cluster."""
    gateway, gateway_principal = public_gateway_name(), ingress_gateway_principal(trust_domain)
    return [ServiceMeshPolicyArgs(traffic=traffic_args(cfg, svc, gateway),
                                  authorization=authorization_args(cfg, svc, gateway_principal))
            for svc in cfg.services_on(cluster_cfg.name)]


def caller_principals(cfg: StackConfig, service: str) -> list[str]:
    """Principals of the services that call ``service`` (over the whole stack: a caller in another
    cluster of the mesh has the same identity)."""
    internal = [(cfg.service(c).namespace, c) for c in cfg.callers.get(service, [])]
    external = [(c.namespace, c.name) for c in cfg.service(service).external_callers]
    return sorted(service_account_principal(ns, name) for ns, name in internal + external)


def exposed_hosts(cfg: StackConfig, svc: ServiceConfig) -> list[str]:
    if svc.expose is None:
        return []
    return [svc.expose.host] if svc.expose.host != "*" else list(cfg.mesh.ingress.hosts)


def is_exposed(cfg: StackConfig, svc: ServiceConfig) -> bool:
    return svc.expose is not None and cfg.mesh.ingress.enabled


def clusters_running(cfg: StackConfig, svc: ServiceConfig) -> list[str]:
    return [c.name for c in cfg.clusters if svc in cfg.services_on(c.name)]


def cluster_local(cfg: StackConfig, svc: ServiceConfig) -> bool:
    """The topology of stateful services (docs/decisions.md): a service with a database that runs on
    several clusters has one unreplicated database per cluster, so a request failed over to a peer
    would reach a database without the caller's data: its traffic stays in the caller's cluster.
    Stateless services, and a database service that runs on one cluster only (the single writer the
    others call), are load-balanced and fail over across the mesh."""
    return svc.database is not None and len(clusters_running(cfg, svc)) > 1


def traffic_args(cfg: StackConfig, svc: ServiceConfig, gateway: str) -> ServiceTrafficPolicyArgs:
    t = svc.traffic
    return ServiceTrafficPolicyArgs(
        service=svc.name, namespace=svc.namespace, port=svc.port,
        timeout=t.timeout, retries=t.retries, per_try_timeout=t.per_try_timeout,
        max_connections=t.max_connections, max_pending_requests=t.max_pending_requests,
        max_requests_per_connection=t.max_requests_per_connection,
        consecutive_5xx_errors=t.consecutive_5xx_errors, ejection_interval=t.ejection_interval,
        base_ejection_time=t.base_ejection_time, max_ejection_percent=t.max_ejection_percent,
        canary=svc.canary is not None,
        canary_weight=svc.canary.weight if svc.canary else 0,
        exposed_path=svc.expose.path if is_exposed(cfg, svc) else None,
        exposed_hosts=exposed_hosts(cfg, svc) or ["*"],
        gateway=gateway,
        cluster_local=cluster_local(cfg, svc),
    )


def authorization_args(cfg: StackConfig, svc: ServiceConfig, gateway_principal: str) -> ServiceAuthorizationArgs:
    exposed = is_exposed(cfg, svc)
    return ServiceAuthorizationArgs(
        service=svc.name, namespace=svc.namespace, port=svc.port,
        caller_principals=caller_principals(cfg, svc.name),
        gateway_principal=gateway_principal if exposed else None,
        gateway_paths=exposed_service_paths(svc.expose.path) if exposed and svc.expose else [],
        metrics_namespaces=[MONITORING_NAMESPACE],
    )


def consul_args(cfg: StackConfig, cluster_cfg: ClusterConfig) -> ConsulCatalogSyncArgs:
    return ConsulCatalogSyncArgs(datacenter=cluster_cfg.name, server_replicas=cfg.defaults.consul_server_replicas,
                                 app_namespaces=[ns.name for ns in cfg.namespaces])


# ---------------------------------------------------------------------------------------------- deploy


def root_ca(ctx: ClusterContext) -> MeshRootCa:
    """The stack's root CA: created by the first cluster's mesh, reused by the others."""
    if ctx.shared.mesh_root_ca is None:
        ctx.shared.mesh_root_ca = MeshRootCa(
            "mesh-root-ca", MeshRootCaArgs(common_name=f"{ctx.cfg.mesh.mesh_id} root CA"),
            opts=pulumi.ResourceOptions(protect=ctx.cfg.protect))
    return ctx.shared.mesh_root_ca


def deploy(ctx: ClusterContext) -> None:
    cfg = ctx.cfg
    if not cfg.mesh.enabled:
        return
    root = root_ca(ctx)
    args = mesh_args(cfg, ctx.cluster_cfg)
    args.root_cert_pem, args.root_key_pem = root.cert_pem, root.private_key_pem
    if args.east_west_gateway:
        args.east_west_source_ranges = peer_egress(ctx)
    # After the app namespaces (they get their allow-nothing policies here), not the whole baseline:
    # nothing of the mesh needs the namespaces' default-deny NetworkPolicies to exist first.
    app_namespaces = list(ctx.baseline.namespaces.values())
    mesh = IstioMesh(f"{ctx.name}-mesh", args, opts=ctx.k8s_opts(*app_namespaces))
    ctx.mesh = mesh

    if cfg.mesh.consul:
        ctx.consul = ConsulCatalogSync(f"{ctx.name}-consul", consul_args(cfg, ctx.cluster_cfg),
                                                opts=ctx.k8s_opts(*app_namespaces))

    if mesh.reader_token is not None:
        _exchange_remote_secrets(ctx, mesh)

    ctx.outputs["mesh"] = {"istio_version": mesh.istio_version, "network": args.network,
                           "public_gateway": mesh.public_gateway, "tls_secret": mesh.tls_secret}


def peer_egress(ctx: ClusterContext) -> pulumi.Output[list[str]]:
    """The egress CIDRs of the other clusters of the stack: the only sources the east-west load balancer
    admits. Peers are in other clouds (no VPC peering), so they arrive from their NAT addresses over the
    internet; every cluster exists before any layer runs (``build_platform``)."""
    peers = [ctx.shared.egress_cidrs[c.name] for c in ctx.cfg.clusters if c.name != ctx.name]
    return api_allow_list(*peers)


def _exchange_remote_secrets(ctx: ClusterContext, mesh: IstioMesh) -> None:
    """Multi-primary: every istiod reads every other cluster's API server (pairs made as clusters come)."""
    assert mesh.reader_token is not None
    me = MeshMember(ctx=ctx, mesh=mesh, server=ctx.cluster.endpoint, ca=ctx.cluster.kubeconfig.apply(ca_data_of),
                    token=mesh.reader_token)
    for other in ctx.shared.mesh_members:
        for reader, remote in ((me, other), (other, me)):
            RemoteSecret(
                f"{reader.name}-remote-secret-{remote.name}",
                RemoteSecretArgs(remote_cluster=remote.name, server=remote.server, ca_data=remote.ca,
                                 token=remote.token),
                opts=reader.ctx.k8s_opts(reader.mesh.namespace_resource))
    ctx.shared.mesh_members.append(me)


# ------------------------------------------------------------------------------------------- footprint


def footprint(cfg: StackConfig, cluster_cfg: ClusterConfig) -> list[Workload]:
    """istiod, gateways, the CNI node agent (and Consul) requests, from the very values dicts the charts get."""
    from stacks.compose.layers.monitoring import node_count

    if not cfg.mesh.enabled:
        return []
    args = mesh_args(cfg, cluster_cfg)
    istiod = mesh_values.istiod_values(args)
    out = [Workload.of(LAYER, "istiod", mesh_values.istiod_min_replicas(istiod), istiod["resources"])]
    if args.cni:  # a DaemonSet: one pod per node
        cni = mesh_values.cni_values(args)
        out.append(Workload.of(LAYER, "istio-cni-node", node_count(cluster_cfg), cni["resources"]))
    if args.ingress_gateway:
        gw = mesh_values.gateway_values(args)
        out.append(Workload.of(LAYER, "istio-ingressgateway", mesh_values.gateway_min_replicas(gw), gw["resources"]))
    if args.east_west_gateway:
        ew = mesh_values.eastwest_gateway_pods(args)
        out.append(Workload.of(LAYER, "istio-eastwestgateway", mesh_values.gateway_min_replicas(ew), ew["resources"]))
    if cfg.mesh.consul:
        cv = consul_values(consul_args(cfg, cluster_cfg))
        out.append(Workload.of(LAYER, "consul-server", cv["server"]["replicas"], cv["server"]["resources"]))
        out.append(Workload.of(LAYER, "consul-sync-catalog", 1, cv["syncCatalog"]["resources"]))
    return out
