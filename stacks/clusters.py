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


def create_cluster(cfg: StackConfig, cluster: ClusterConfig) -> Cluster:
    module = importlib.import_module(_FACTORIES[cluster.cloud])
    opts = pulumi.ResourceOptions(protect=cfg.protect) if cluster.cloud != "local" else None
    return module.create(cfg, cluster, opts)


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
