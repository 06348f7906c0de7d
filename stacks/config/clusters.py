"""Clusters: cloud, region and zones, node pools, the per-cloud options."""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from cnplatform import validation as v
from cnplatform.validation import dns_label, quantity
from cnplatform.versions import ISTIO_KUBERNETES_RANGE, KUBERNETES_SUPPORTED
from stacks.config.base import Cidr, Cloud, DigestImage, Strict, _doc

RoleArn = Annotated[str, AfterValidator(_doc(v.iam_role_arn, "An IAM role ARN (arn:aws:iam::<account>:role/<name>)."))]


class NodePoolConfig(Strict):
    name: str = "workload"
    machine_type: str = "m6i.large"
    min_size: int = Field(1, ge=0)
    max_size: int = Field(3, ge=1)
    desired_size: Optional[int] = Field(None, ge=0)
    spot: bool = False
    #: Allocatable capacity of ONE node; when unset it is looked up from the machine type.
    cpu: Optional[str] = None
    memory: Optional[str] = None
    disk_gb: int = Field(50, ge=20)
    labels: dict[str, str] = {}

    _name = field_validator("name")(lambda cls, v: dns_label(v))

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else quantity(v)

    @model_validator(mode="after")
    def _sizes(self) -> "NodePoolConfig":
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is greater than max_size ({self.max_size})")
        if self.desired_size is not None and not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("desired_size must lie between min_size and max_size")
        return self


class LocalClusterOptions(Strict):
    #: Pinned kind node image (the kind v0.31.0 release image for Kubernetes 1.35; docs/versions.md).
    node_image: DigestImage = (
        "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"
    )
    workers: int = Field(0, ge=0, le=5)
    http_port: int = Field(8080, ge=1, le=65535)
    https_port: int = Field(8443, ge=1, le=65535)
    #: Use an existing kubeconfig context instead of creating a kind cluster.
    existing_context: Optional[str] = None
    kubeconfig_path: str = "~/.kube/config"


class AwsClusterOptions(Strict):
    #: The VPC's range: private (RFC 1918), /16 to /24 (a quarter per zone, and /28 public subnets at least).
    vpc_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 16, 24),
                                                 "A private (RFC 1918) IPv4 range, /16 to /24."))] = "10.0.0.0/16"
    #: CIDRs allowed to reach the public API endpoint (private access is always on). A world-open
    #: entry (0.0.0.0/0) in prod needs ``allow_world_open_control_plane: true`` on the cluster.
    public_access_cidrs: list[Cidr] = Field(["203.0.113.0/24"], min_length=1)
    #: IAM principals (role ARNs) granted cluster-admin through access entries.
    admin_role_arns: list[RoleArn] = []
    #: IAM roles that run `pulumi up` (CI deploy role, workstation role): cluster-admin from the first up.
    #: Required: the cluster creator is never an implicit admin (that would replace the cluster later).
    deployer_role_arns: list[RoleArn] = []
    system_machine_type: str = "t3.large"
    #: The tainted system node group (CoreDNS, Karpenter): 2+ nodes so the controller spreads over zones.
    system_min_size: int = Field(2, ge=1)
    system_max_size: int = Field(3, ge=1)
    #: One NAT gateway per zone (zone-independent egress) or one per VPC; defaults to per zone in prod.
    nat_per_zone: Optional[bool] = None
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653] = 90


class GcpClusterOptions(Strict):
    project: str = "my-gcp-project"
    #: Primary range of the subnet (nodes), pods and services secondary ranges: private, not overlapping.
    network_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 8, 29),
                                                     'A private (RFC 1918) IPv4 range, /8 to /29.'))] = "10.10.0.0/20"
    pods_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 8, 24),
                                                  'A private (RFC 1918) IPv4 range, /8 to /24.'))] = "10.20.0.0/14"
    services_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 8, 27),
                                                      'A private (RFC 1918) IPv4 range, /8 to /27.'))] = "10.24.0.0/20"
    #: The private control plane's range: a private /28 (GKE's rule).
    master_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 28, 28),
                                                    'A private (RFC 1918) IPv4 /28.'))] = "172.16.0.0/28"
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    #: Regional control plane + nodes over the zones; zonal (first zone) when false. Prod is regional.
    regional: Optional[bool] = None
    #: CIDRs allowed to reach the public control-plane endpoint. A world-open entry (0.0.0.0/0) in prod
    #: needs ``allow_world_open_control_plane: true`` on the cluster.
    master_authorized_networks: list[Cidr] = Field(["203.0.113.0/24"], min_length=1)
    autoscaling_profile: Literal["BALANCED", "OPTIMIZE_UTILIZATION"] = "OPTIMIZE_UTILIZATION"
    #: Node auto-provisioning (GKE creates node pools by itself within these limits).
    auto_provisioning: bool = False
    auto_provisioning_max_cpu: int = 64
    auto_provisioning_max_memory_gb: int = 256

    @model_validator(mode="after")
    def _ranges_disjoint(self) -> "GcpClusterOptions":
        """network_cidr, pods_cidr, services_cidr and master_cidr do not overlap."""
        ranges = ("network_cidr", "pods_cidr", "services_cidr", "master_cidr")
        clash = v.overlapping({k: getattr(self, k) for k in ranges})
        if clash:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in clash))
        return self


class ClusterConfig(Strict):
    name: str
    cloud: Cloud
    region: Optional[str] = None
    zones: list[str] = []
    kubernetes_version: str = "1.35"
    node_pools: list[NodePoolConfig] = []
    local: LocalClusterOptions = LocalClusterOptions()
    aws: AwsClusterOptions = AwsClusterOptions()
    gcp: GcpClusterOptions = GcpClusterOptions()
    #: Istio network name for multi-network meshes (defaults to ``network-<name>``).
    mesh_network: Optional[str] = None
    #: Explicit opt-in to a control plane reachable from the whole internet (0.0.0.0/0 in
    #: ``aws.public_access_cidrs`` / ``gcp.master_authorized_networks``), refused in prod without it.
    allow_world_open_control_plane: bool = False

    _name = field_validator("name")(lambda cls, v: dns_label(v))

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not re.match(r"^1\.\d{2}$", str(v)):
            raise ValueError(f"{v!r} is not a Kubernetes minor version like '1.35'")
        if str(v) not in KUBERNETES_SUPPORTED:
            raise ValueError(f"Kubernetes {v} is not supported by the platform (supported: "
                             f"{', '.join(KUBERNETES_SUPPORTED)}; Istio supports {ISTIO_KUBERNETES_RANGE[0]}-"
                             f"{ISTIO_KUBERNETES_RANGE[1]}, see docs/versions.md)")
        return str(v)

    @model_validator(mode="after")
    def _region(self) -> "ClusterConfig":
        if self.cloud != "local" and not self.region:
            raise ValueError(f"region is required for a {self.cloud} cluster")
        if self.region is None:
            self.region = "local"
        return self
