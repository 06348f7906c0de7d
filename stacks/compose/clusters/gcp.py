"""config -> GkeCluster. Imported only for GCP clusters."""
from __future__ import annotations

from typing import Optional

import pulumi

from cnplatform.cluster.gke import GkeCluster, GkeClusterArgs
from stacks.compose.clusters.common import control_plane_ports, node_pools
from stacks.config import ClusterConfig, StackConfig


def gke_args(cfg: StackConfig, cluster: ClusterConfig, api_clients=()) -> GkeClusterArgs:
    gcp = cluster.gcp
    return GkeClusterArgs(
        project=gcp.project, region=cluster.region, zones=list(cluster.zones),
        regional=gcp.regional if gcp.regional is not None else cfg.defaults.gke_regional,
        kubernetes_version=cluster.kubernetes_version, release_channel=gcp.release_channel,
        network_cidr=gcp.network_cidr, pods_cidr=gcp.pods_cidr, services_cidr=gcp.services_cidr,
        master_cidr=gcp.master_cidr, master_authorized_networks=list(gcp.master_authorized_networks),
        node_pools=node_pools(cluster), autoscaling_profile=gcp.autoscaling_profile,
        auto_provisioning=gcp.auto_provisioning, auto_provisioning_max_cpu=gcp.auto_provisioning_max_cpu,
        auto_provisioning_max_memory_gb=gcp.auto_provisioning_max_memory_gb, deletion_protection=cfg.protect,
        labels={"cnplatform-tier": cfg.tier}, control_plane_ports=control_plane_ports(cfg),
        api_clients=api_clients, nat_addresses=cfg.defaults.gcp_nat_addresses,
    )


def create(cfg: StackConfig, cluster: ClusterConfig, opts: Optional[pulumi.ResourceOptions],
           api_clients=()) -> GkeCluster:
    return GkeCluster(cluster.name, gke_args(cfg, cluster, api_clients), opts)
