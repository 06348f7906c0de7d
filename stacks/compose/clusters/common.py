"""What every cloud's cluster factory shares: node pools from config, the control plane's callback ports."""
from __future__ import annotations

from cnplatform.addons import cert_manager, metrics_server
from cnplatform.cluster.base import NodePoolSpec
from cnplatform.mesh import values as mesh_values
from stacks.config import ClusterConfig, StackConfig


def node_pools(cluster: ClusterConfig) -> list[NodePoolSpec]:
    return [NodePoolSpec(**pool.model_dump()) for pool in cluster.node_pools]


def control_plane_ports(cfg: StackConfig) -> list[int]:
    """Node ports the API server calls back on (webhooks, aggregated APIs) for the layers enabled."""
    ports: set[int] = set()
    if cfg.mesh.enabled:
        ports |= set(mesh_values.CONTROL_PLANE_PORTS)
    if cfg.addons.cert_manager.enabled:
        ports |= set(cert_manager.CONTROL_PLANE_PORTS)
    if cfg.addons.metrics_server:
        ports |= set(metrics_server.CONTROL_PLANE_PORTS)
    return sorted(ports)
