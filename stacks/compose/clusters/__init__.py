"""Cluster factory: config -> a cluster component. A cloud's SDK is imported only when a cluster uses it."""
from __future__ import annotations

import pulumi

from cnplatform.cluster.base import Cluster
from stacks.compose.layers.cicd import deploy_plan, jenkins_cluster
from stacks.config import ClusterConfig, StackConfig


def create_cluster(cfg: StackConfig, cluster: ClusterConfig,
                   api_clients: pulumi.Input[list[str]] = ()) -> Cluster:
    """``api_clients``: egress CIDRs of the other clusters that read this cluster's API (see
    :func:`api_client_clusters`); cloud clusters add them to their control-plane allow-list."""
    if cluster.cloud == "local":
        from stacks.compose.clusters import local

        return local.create(cfg, cluster, None)
    opts = pulumi.ResourceOptions(protect=cfg.protect)
    if cluster.cloud == "aws":
        from stacks.compose.clusters import aws

        return aws.create(cfg, cluster, opts, api_clients)
    from stacks.compose.clusters import gcp

    return gcp.create(cfg, cluster, opts, api_clients)


def api_client_clusters(cfg: StackConfig, cluster: str) -> list[str]:
    """The other clusters of the stack whose pods call ``cluster``'s API server from outside its network:
    every peer of a multi-cluster mesh (istiod reads the remote API for endpoint discovery), and the
    cluster running Jenkins when it deploys the stack (its deploy pods run `pulumi up` on every cluster)."""
    peers = [c.name for c in cfg.clusters if c.name != cluster]
    clients = set(peers) if cfg.mesh.enabled and len(cfg.clusters) > 1 else set()
    if cfg.cicd.enabled and deploy_plan(cfg, pulumi.get_stack())[0] and jenkins_cluster(cfg) in peers:
        clients.add(jenkins_cluster(cfg))
    return sorted(clients)
