"""config -> LocalCluster."""
from __future__ import annotations

from typing import Optional

import pulumi

from cnplatform.cluster.local import LocalCluster, LocalClusterArgs
from stacks.config import ClusterConfig, StackConfig


def create(cfg: StackConfig, cluster: ClusterConfig, opts: Optional[pulumi.ResourceOptions]) -> LocalCluster:
    local = cluster.local
    pool = cluster.node_pools[0] if cluster.node_pools else None
    return LocalCluster(cluster.name, LocalClusterArgs(
        node_image=local.node_image, workers=local.workers, http_port=local.http_port,
        https_port=local.https_port, existing_context=local.existing_context,
        kubeconfig_path=local.kubeconfig_path,
        node_cpu=(pool.cpu if pool and pool.cpu else "4"),
        node_memory=(pool.memory if pool and pool.memory else "8Gi"),
    ), opts)
