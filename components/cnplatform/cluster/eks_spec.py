"""What an EKS cluster is made of, as plain data: :class:`EksClusterArgs`, the pinned add-on versions and
their configuration, the node pools' labels and taint, and the pure helpers (admins, kubeconfig, ECR host).

No cloud SDK here: the args validate (and the stacks read the pins) without ``pulumi_aws``;
:mod:`cnplatform.cluster.eks` wires the resources.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.cluster.base import NodePoolSpec, exec_kubeconfig

#: At most this many zones (a quarter of the VPC each for private subnets, the last quarter public).
MAX_ZONES = 3
#: The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)

#: Control-plane log types shipped to CloudWatch.
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
#: Managed add-on versions pinned per Kubernetes minor (bump with `aws eks describe-addon-versions
#: --kubernetes-version 1.35 --addon-name <name>`; sources in docs/versions.md).
ADDON_VERSIONS: dict[str, dict[str, str]] = {
    "1.35": {"vpc-cni": "v1.21.1-eksbuild.3", "kube-proxy": "v1.35.0-eksbuild.2",
             "coredns": "v1.13.2-eksbuild.1", "aws-ebs-csi-driver": "v1.57.1-eksbuild.1"},
}
#: Configuration values of the managed add-ons. The VPC CNI enforces NetworkPolicies only with its
#: network policy agent switched on (``enableNetworkPolicy``): without it every policy is ignored.
ADDON_CONFIGURATION: dict[str, dict[str, str]] = {
    "vpc-cni": {"enableNetworkPolicy": "true"},
}
#: Add-ons installed before the node groups (networking), the others after (they need nodes).
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy")
#: SHA-1 of the root CA of the EKS OIDC issuers' TLS chain. IAM no longer uses it for OIDC providers
#: whose certificate chains to a well-known root CA (it trusts its own CA library), but the API still
#: accepts a list, and a fixed value keeps the provider free of a TLS lookup (stable, offline-testable).
EKS_OIDC_THUMBPRINTS = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
#: The EBS CSI driver's controller service account (the managed add-on's default).
EBS_CSI_SERVICE_ACCOUNT = ("kube-system", "ebs-csi-controller-sa")
AMI_TYPE = "AL2023_x86_64_STANDARD"
#: Label every managed node group puts on its nodes (Karpenter's controller selects the system group).
NODE_POOL_LABEL = "cnplatform.io/node-pool"
SYSTEM_POOL = "system"
SYSTEM_TAINT = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}


def storage_reclaim_policy(deletion_protection: bool) -> str:
    """Reclaim policy of the default StorageClass: ``Retain`` where the cluster is protected."""
    return "Retain" if deletion_protection else "Delete"


@dataclass
class EksClusterArgs:
    """Inputs of :class:`EksCluster`."""

    region: str
    """AWS region (e.g. ``us-east-1``)."""
    kubernetes_version: str = "1.35"
    """Pinned Kubernetes minor of the control plane and node groups (see docs/versions.md)."""
    zones: list[str] = field(default_factory=list)
    """Availability zones (at most 3); the region's first 3 available zones when empty."""
    vpc_cidr: str = "10.0.0.0/16"
    """VPC CIDR: a quarter per zone for private subnets, /20-sized public subnets in the last quarter."""
    nat_per_zone: bool = True
    """One NAT gateway per zone (zone-independent egress, prod) or one for the VPC (cheaper, staging)."""
    public_access_cidrs: list[str] = field(default_factory=lambda: ["203.0.113.0/24"])
    """CIDRs of operators allowed to reach the public API endpoint (private endpoint access is always on).
    The cluster's own NAT addresses and ``api_clients`` are added by the component."""
    api_clients: pulumi.Input[list[str]] = field(default_factory=list)
    """More CIDRs that read this API from outside the VPC: other clusters' egress (a multi-cluster
    mesh's istiod, a Jenkins deploying from another cluster)."""
    admin_role_arns: list[str] = field(default_factory=list)
    """IAM role ARNs of people granted cluster-admin via access entries."""
    deployer_role_arns: list[str] = field(default_factory=list)
    """IAM role ARNs that run ``pulumi up`` (the CI deploy role, a workstation role): cluster-admin
    access entries from the first ``up``. The creator is never bootstrapped implicitly: that setting
    cannot change without replacing the cluster, so every admin is declared here from the start."""
    system_machine_type: str = "t3.large"
    """Instance type of the tainted ``system`` node group (CoreDNS, Karpenter)."""
    system_min_size: int = 2
    """Minimum nodes of the system group (2: the Karpenter controller's 2 replicas spread over zones)."""
    system_max_size: int = 3
    """Maximum nodes of the system group."""
    node_pools: list[NodePoolSpec] = field(default_factory=list)
    """Workload managed node groups."""
    log_retention_days: int = 90
    """Retention of the control-plane log group."""
    deletion_protection: bool = False
    """EKS deletion protection (AWS-side guard, in addition to Pulumi ``protect``)."""
    addon_versions: dict[str, str] = field(default_factory=dict)
    """Overrides of the pinned managed add-on versions (by add-on name)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Extra tags on every AWS resource."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "region": _v.aws_region, "kubernetes_version": _v.one_of(*sorted(ADDON_VERSIONS)),
            "vpc_cidr": lambda x: _v.private_cidr(x, 16, 24), "public_access_cidrs": _v.cidr,
            "api_clients": _v.cidr, "admin_role_arns": _v.iam_role_arn, "deployer_role_arns": _v.iam_role_arn,
            "system_min_size": _v.in_range(1, 100), "system_max_size": _v.in_range(1, 100),
            "log_retention_days": _v.one_of(*LOG_RETENTION_DAYS),
            "addon_versions": _v.keys(_v.one_of(*sorted({a for v in ADDON_VERSIONS.values() for a in v}))),
        }, checks=[_v.zones_in_region("aws"), _v.not_above("system_min_size", "system_max_size"), _zone_count])


def _zone_count(args: EksClusterArgs) -> list[tuple[str, str]]:
    if len(args.zones) > MAX_ZONES:
        return [("zones", f"{len(args.zones)} zones given: an EKS VPC spans at most {MAX_ZONES}")]
    return []


def addon_versions(kubernetes_version: str, overrides: Optional[dict[str, str]] = None) -> dict[str, str]:
    if kubernetes_version not in ADDON_VERSIONS:
        raise ValueError(f"no pinned EKS add-on versions for Kubernetes {kubernetes_version}: "
                         f"add them to ADDON_VERSIONS (known: {', '.join(sorted(ADDON_VERSIONS))})")
    return {**ADDON_VERSIONS[kubernetes_version], **(overrides or {})}


def admin_principals(args: EksClusterArgs) -> list[str]:
    """Every principal with cluster-admin: deployers first (their entries never move), then people."""
    return list(dict.fromkeys([*args.deployer_role_arns, *args.admin_role_arns]))


def eks_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """Stable kubeconfig: ``aws eks get-token`` (exec plugin) mints the token on every use."""
    return exec_kubeconfig(cluster_name, endpoint, ca_data, {
        "command": "aws",
        "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
    })


def ecr_registry_url(account_id: str, region: str) -> str:
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"
