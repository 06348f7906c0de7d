"""Cluster factory: config -> a cluster component. Cloud SDKs are imported only for their cloud."""
from __future__ import annotations

import importlib

import pulumi

from cnplatform.cluster.base import Cluster, NodePoolSpec
from stacks.config import ClusterConfig, StackConfig

#: cloud -> (module, component factory in stacks/) ; imported lazily so dev never loads pulumi_aws/pulumi_gcp.
_FACTORIES = {
    "local": "stacks.clusters_local",
    "aws": "stacks.clusters_aws",
    "gcp": "stacks.clusters_gcp",
}


def node_pools(cluster: ClusterConfig) -> list[NodePoolSpec]:
    return [NodePoolSpec(**pool.model_dump()) for pool in cluster.node_pools]


def create_cluster(cfg: StackConfig, cluster: ClusterConfig,
                   api_clients: pulumi.Input[list[str]] = ()) -> Cluster:
    """``api_clients``: egress CIDRs of the other clusters that read this cluster's API (see
    :func:`api_client_clusters`); cloud clusters add them to their control-plane allow-list."""
    module = importlib.import_module(_FACTORIES[cluster.cloud])
    if cluster.cloud == "local":
        return module.create(cfg, cluster, None)
    return module.create(cfg, cluster, pulumi.ResourceOptions(protect=cfg.protect), api_clients)


def api_client_clusters(cfg: StackConfig, cluster: str) -> list[str]:
    """The other clusters of the stack whose pods call ``cluster``'s API server from outside its network:
    every peer of a multi-cluster mesh (istiod reads the remote API for endpoint discovery), and the
    cluster running Jenkins when it deploys the stack (its deploy pods run `pulumi up` on every cluster)."""
    from stacks.layers.cicd import deploy_plan, jenkins_cluster

    peers = [c.name for c in cfg.clusters if c.name != cluster]
    clients = set(peers) if cfg.mesh.enabled and len(cfg.clusters) > 1 else set()
    if cfg.cicd.enabled and deploy_plan(cfg, pulumi.get_stack())[0] and jenkins_cluster(cfg) in peers:
        clients.add(jenkins_cluster(cfg))
    return sorted(clients)


def control_plane_ports(cfg: StackConfig) -> list[int]:
    """Node ports the API server calls back on (webhooks, aggregated APIs) for the layers enabled."""
    from cnplatform.addons import cert_manager, metrics_server
    from cnplatform.mesh import values as mesh_values

    ports: set[int] = set()
    if cfg.mesh.enabled:
        ports |= set(mesh_values.CONTROL_PLANE_PORTS)
    if cfg.addons.cert_manager.enabled:
        ports |= set(cert_manager.CONTROL_PLANE_PORTS)
    if cfg.addons.metrics_server:
        ports |= set(metrics_server.CONTROL_PLANE_PORTS)
    return sorted(ports)
