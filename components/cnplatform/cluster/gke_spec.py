"""What a GKE cluster is made of, as plain data: :class:`GkeClusterArgs`, the node identity's roles, the
ranges and labels, and the pure builders of the cluster's, subnet's and node pools' settings.

No cloud SDK here: the args validate (and tests call the builders) without ``pulumi_gcp``;
:mod:`cnplatform.cluster.gke` wires the resources.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

from cnplatform import validation as _v
from cnplatform.cluster.base import NodePoolSpec, exec_kubeconfig

if TYPE_CHECKING:  # pragma: no cover
    from pulumi_gcp.container import (
        ClusterClusterAutoscalingArgsDict,
        ClusterMasterAuthorizedNetworksConfigCidrBlockArgsDict,
        ClusterNodeConfigArgsDict,
        ClusterNodeConfigShieldedInstanceConfigArgsDict,
    )

#: The only project roles the node service account gets (logs, metrics, metadata, image pulls).
NODE_SA_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
KMS_ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
#: Nodes use IAM (the service account's roles), not access scopes, to limit what they may do.
NODE_OAUTH_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
#: Secrets key rotation: 90 days.
KEY_ROTATION_PERIOD = "7776000s"
PODS_RANGE = "pods"
SERVICES_RANGE = "services"
#: Artifact Registry repository the platform pushes to (``<region>-docker.pkg.dev/<project>/<repo>``).
REGISTRY_REPOSITORY = "platform"
NODE_POOL_LABEL = "cnplatform.io/node-pool"
SHIELDED: ClusterNodeConfigShieldedInstanceConfigArgsDict = {"enable_secure_boot": True,
                                                              "enable_integrity_monitoring": True}


@dataclass
class GkeClusterArgs:
    """Inputs of :class:`GkeCluster`."""

    project: str
    """GCP project id."""
    region: str
    """GCP region (e.g. ``europe-west1``)."""
    zones: list[str] = field(default_factory=list)
    """Zones of the nodes; the region's zones (first 3) when empty."""
    regional: bool = True
    """Regional control plane and nodes over ``zones`` (prod); zonal in the first zone when false."""
    kubernetes_version: str = "1.35"
    """Minimum control-plane minor; patch versions follow the release channel."""
    release_channel: str = "REGULAR"
    """GKE release channel (``RAPID``, ``REGULAR``, ``STABLE``)."""
    network_cidr: str = "10.10.0.0/20"
    """Primary range of the node subnet."""
    pods_cidr: str = "10.20.0.0/14"
    """Secondary range for pod IPs."""
    services_cidr: str = "10.24.0.0/20"
    """Secondary range for Service IPs."""
    master_cidr: str = "172.16.0.0/28"
    """/28 peered to the control plane (private nodes)."""
    master_authorized_networks: list[str] = field(default_factory=lambda: ["203.0.113.0/24"])
    """CIDRs of operators allowed to reach the public control-plane endpoint; the cluster's own Cloud NAT
    addresses and ``api_clients`` are added by the component."""
    api_clients: pulumi.Input[list[str]] = field(default_factory=list)
    """More CIDRs that read this API from outside the VPC: other clusters' egress."""
    nat_addresses: int = 1
    """Static external addresses of Cloud NAT (allow-listed by peers, so they must not change)."""
    node_pools: list[NodePoolSpec] = field(default_factory=list)
    """Node pools (min/max are totals over the zones)."""
    autoscaling_profile: str = "OPTIMIZE_UTILIZATION"
    """Cluster autoscaler profile (``BALANCED`` or ``OPTIMIZE_UTILIZATION``)."""
    auto_provisioning: bool = False
    """Node auto-provisioning: GKE creates node pools itself within the limits below."""
    auto_provisioning_max_cpu: int = 64
    """Auto-provisioning limit: total vCPUs."""
    auto_provisioning_max_memory_gb: int = 256
    """Auto-provisioning limit: total memory (GB)."""
    deletion_protection: bool = False
    """GKE deletion protection (GCP-side guard, in addition to Pulumi ``protect``)."""
    registry_repository: str = REGISTRY_REPOSITORY
    """Artifact Registry repository name in ``registry_url``."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra resource labels."""
    control_plane_ports: list[int] = field(default_factory=list)
    """Node TCP ports the control plane must reach: the target ports of the admission webhooks and
    aggregated APIs installed on the cluster (GKE itself opens only 443 and 10250 to private nodes)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "zones": _v.dns_label, "network_cidr": _v.cidr, "pods_cidr": _v.cidr, "services_cidr": _v.cidr,
            "master_cidr": lambda x: _v.private_cidr(x, 28, 28), "master_authorized_networks": _v.cidr,
            "release_channel": _v.one_of("RAPID", "REGULAR", "STABLE"), "api_clients": _v.cidr,
            "nat_addresses": _v.in_range(1, 16), "registry_repository": _v.dns_label,
            "control_plane_ports": _v.port,
        }, checks=[_v.zones_in_region("gcp")])


def node_service_account_id(cluster: str) -> str:
    """A valid service account id (6-30 chars, ``[a-z][-a-z0-9]*[a-z0-9]``) for the cluster's nodes."""
    base = re.sub(r"[^a-z0-9-]", "-", cluster.lower())[:24].strip("-") or "gke"
    account = f"{base}-nodes"
    return account if len(account) >= 6 else f"{account}-sa"


def workload_pool(project: str) -> str:
    return f"{project}.svc.id.goog"


def gke_service_agent(project_number: str) -> str:
    return f"serviceAccount:service-{project_number}@container-engine-robot.iam.gserviceaccount.com"


def registry_url(region: str, project: str, repository: str = REGISTRY_REPOSITORY) -> str:
    return f"{region}-docker.pkg.dev/{project}/{repository}"


#: Ports a private GKE control plane reaches on the nodes without any rule of ours.
GKE_OPEN_CONTROL_PLANE_PORTS = (443, 10250)


def webhook_firewall_ports(ports: list[int]) -> list[str]:
    """The ports the control-plane firewall rule must add (GKE's own rule opens 443 and 10250)."""
    return [str(p) for p in sorted(set(ports) - set(GKE_OPEN_CONTROL_PLANE_PORTS))]


def location_of(region: str, zones: list[str], regional: bool) -> str:
    return region if regional else zones[0]


def initial_nodes_per_zone(pool: NodePoolSpec, zones: int) -> int:
    """``initial_node_count`` is per zone; config sizes are totals."""
    total = pool.desired_size if pool.desired_size is not None else pool.min_size
    return max(1, math.ceil(total / zones))


def cluster_autoscaling(args: GkeClusterArgs,
                        service_account: pulumi.Input[str]) -> ClusterClusterAutoscalingArgsDict:
    """Autoscaler profile always; node auto-provisioning with CPU/memory limits when enabled."""
    config: ClusterClusterAutoscalingArgsDict = {"enabled": args.auto_provisioning,
                                                 "autoscaling_profile": args.autoscaling_profile}
    if args.auto_provisioning:
        config["resource_limits"] = [
            {"resource_type": "cpu", "minimum": 0, "maximum": args.auto_provisioning_max_cpu},
            {"resource_type": "memory", "minimum": 0, "maximum": args.auto_provisioning_max_memory_gb},
        ]
        config["auto_provisioning_defaults"] = {
            "service_account": service_account, "oauth_scopes": NODE_OAUTH_SCOPES, "disk_type": "pd-balanced",
            "shielded_instance_config": SHIELDED, "management": {"auto_repair": True, "auto_upgrade": True},
        }
    return config


def gke_kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """Stable kubeconfig: ``gke-gcloud-auth-plugin`` (exec plugin) gets the token on every use."""
    return exec_kubeconfig(cluster_name, f"https://{endpoint}", ca_data, {
        "command": "gke-gcloud-auth-plugin",
        "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
        "provideClusterInfo": True,
    })


def subnet_settings(args: GkeClusterArgs) -> dict:
    """The node subnet: primary range, the pods' and Services' secondary ranges, flow logs."""
    return {
        "ip_cidr_range": args.network_cidr, "private_ip_google_access": True,
        "secondary_ip_ranges": [{"range_name": PODS_RANGE, "ip_cidr_range": args.pods_cidr},
                                {"range_name": SERVICES_RANGE, "ip_cidr_range": args.services_cidr}],
        "log_config": {"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.5,
                       "metadata": "INCLUDE_ALL_METADATA"},
    }


#: Cloud NAT: only the static addresses, every range of every subnet, errors logged.
NAT_SETTINGS: dict[str, Any] = {"nat_ip_allocate_option": "MANUAL_ONLY",
                "source_subnetwork_ip_ranges_to_nat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
                "log_config": {"enable": True, "filter": "ERRORS_ONLY"}}


def authorized_networks(cidrs: list[str]) -> list[ClusterMasterAuthorizedNetworksConfigCidrBlockArgsDict]:
    """``master_authorized_networks_config.cidr_blocks`` of the allow-listed CIDRs, in order."""
    return [{"cidr_block": c, "display_name": f"authorized-{i}"} for i, c in enumerate(cidrs)]


def node_config_common(service_account: pulumi.Input[str]) -> ClusterNodeConfigArgsDict:
    """What every node (default pool and ours) runs with: least-privilege identity, shielded, GKE metadata."""
    return {
        "service_account": service_account, "oauth_scopes": NODE_OAUTH_SCOPES,
        "shielded_instance_config": SHIELDED, "workload_metadata_config": {"mode": "GKE_METADATA"},
        "metadata": {"disable-legacy-endpoints": "true"},
    }


def cluster_settings(args: GkeClusterArgs, zones: list[str], location: str) -> dict:
    """The control plane's settings that need no other resource (network, key, identity come from them)."""
    return {
        "location": location, "node_locations": zones if args.regional else None,
        "networking_mode": "VPC_NATIVE",
        "ip_allocation_policy": {"cluster_secondary_range_name": PODS_RANGE,
                                 "services_secondary_range_name": SERVICES_RANGE},
        "private_cluster_config": {"enable_private_nodes": True, "enable_private_endpoint": False,
                                   "master_ipv4_cidr_block": args.master_cidr},
        "release_channel": {"channel": args.release_channel},
        "min_master_version": args.kubernetes_version,
        "workload_identity_config": {"workload_pool": workload_pool(args.project)},
        "enable_shielded_nodes": True,
        "datapath_provider": "ADVANCED_DATAPATH",
        # The default pool is replaced by the node pools; until then it runs with the same identity.
        "remove_default_node_pool": True, "initial_node_count": 1,
        "addons_config": {"http_load_balancing": {"disabled": False},
                          "horizontal_pod_autoscaling": {"disabled": False},
                          "gce_persistent_disk_csi_driver_config": {"enabled": True}},
        "logging_config": {"enable_components": ["SYSTEM_COMPONENTS", "WORKLOADS"]},
        "deletion_protection": args.deletion_protection,
    }


def node_pool_settings(pool: NodePoolSpec, zones: int, common: ClusterNodeConfigArgsDict,
                       labels: dict[str, str]) -> dict:
    """A node pool over ``zones`` zones: totals as autoscaling bounds, surge upgrades, the pool's label."""
    return {
        "initial_node_count": initial_nodes_per_zone(pool, zones),
        "autoscaling": {"total_min_node_count": pool.min_size, "total_max_node_count": pool.max_size,
                        "location_policy": "BALANCED"},
        "management": {"auto_repair": True, "auto_upgrade": True},
        "upgrade_settings": {"max_surge": 1, "max_unavailable": 0},
        "node_config": {**common, "machine_type": pool.machine_type, "disk_size_gb": pool.disk_gb,
                        "disk_type": "pd-balanced", "spot": pool.spot,
                        "labels": {**pool.labels, NODE_POOL_LABEL: pool.name}, "resource_labels": labels},
    }
