"""The one cluster interface every implementation (local kind, EKS, GKE) provides.

Everything above the cluster (baseline, services, mesh, monitoring, CI) only talks to this
interface, so a stack moves between clouds by changing ``cloud:`` in config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from cnplatform.cluster.capacity import NodeCapacity


@dataclass
class NodePoolSpec:
    """One node pool (kind: the nodes of the kind cluster)."""

    name: str
    """Pool name (DNS-1123)."""
    machine_type: str = "m6i.large"
    """Instance / machine type."""
    min_size: int = 1
    """Minimum nodes (autoscaling lower bound)."""
    max_size: int = 3
    """Maximum nodes (autoscaling upper bound)."""
    desired_size: Optional[int] = None
    """Initial node count (defaults to ``min_size``)."""
    spot: bool = False
    """Use spot / preemptible capacity."""
    cpu: Optional[str] = None
    """Allocatable CPU of one node (quantity); looked up from ``machine_type`` when unset."""
    memory: Optional[str] = None
    """Allocatable memory of one node (quantity); looked up from ``machine_type`` when unset."""
    disk_gb: int = 50
    """Root volume size in GB."""
    labels: dict[str, str] = field(default_factory=dict)
    """Kubernetes node labels."""


@dataclass(frozen=True)
class ClusterNetwork:
    """The cloud network a cluster runs in: where the resources beside it (databases) are placed."""

    cloud: str
    """``aws`` or ``gcp``."""
    vpc_id: Optional[pulumi.Output[str]] = None
    """AWS: the VPC."""
    private_subnet_ids: Optional[pulumi.Output[list[str]]] = None
    """AWS: the private subnets (one per zone)."""
    vpc_cidr: Optional[str] = None
    """AWS: the VPC's CIDR (what a database in it admits)."""
    network_id: Optional[pulumi.Output[str]] = None
    """GCP: the VPC network's id (private services access)."""
    network_self_link: Optional[pulumi.Output[str]] = None
    """GCP: the VPC network's self link (a Cloud SQL instance's private network)."""


class Cluster(pulumi.ComponentResource):
    """Base class of the cluster components: the common output interface.

    Subclasses set every attribute below, create ``provider`` with :meth:`_make_provider` and call
    ``register_outputs`` last. Only disposable clusters (kind) pass ``delete_unreachable=True``: on a
    cloud cluster an API outage during ``pulumi refresh`` must not drop its objects from the state.
    """

    cluster_name: pulumi.Output[str]
    """The cluster's name as in config."""
    cloud: pulumi.Output[str]
    """``local``, ``aws`` or ``gcp``."""
    region: pulumi.Output[str]
    """Cloud region (``local`` for kind)."""
    zones: pulumi.Output[list[str]]
    """Zones the nodes are spread over."""
    endpoint: pulumi.Output[str]
    """API server URL."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig (secret). Cloud clusters use the exec credential plugin, so it is stable between runs."""
    registry_url: pulumi.Output[str]
    """Prefix of this cluster's image repositories: ``<registry_url>/<service>`` is where its nodes pull a
    service from (ECR ``<host>/<cluster>``, Artifact Registry ``<host>/<project>/<repo>``; empty for kind,
    which has no registry)."""
    workload_identity: pulumi.Output[dict[str, str]]
    """How pods get cloud credentials: {"type": "irsa"|"workload-identity"|"none", ...}."""
    egress_cidrs: pulumi.Output[list[str]]
    """Public source addresses (``/32``) of the cluster's outbound traffic (its NAT gateways): what
    another cluster's API allow-list must admit for pods here to read it (empty for kind)."""
    node_cpu_millicores: pulumi.Output[int]
    """Allocatable CPU of the default node pools at their maximum size."""
    node_memory_mib: pulumi.Output[int]
    """Allocatable memory of the default node pools at their maximum size."""

    #: Kubernetes provider for everything deployed onto this cluster (not an output: a handle).
    provider: k8s.Provider
    #: Plain capacity, known at program time (footprint checks).
    capacity: NodeCapacity
    #: Resources that must exist before workloads (e.g. node groups); Kubernetes children depend on them.
    ready: list[pulumi.Resource]
    #: The explicit cloud provider the cluster was created with (region, project, default tags):
    #: resources placed beside the cluster (images, registries, databases) use it. None for kind.
    cloud_provider: Optional[pulumi.ProviderResource] = None
    #: The cloud network of the cluster (None for kind).
    network: Optional[ClusterNetwork] = None
    #: GKE: the Artifact Registry repository its nodes pull from (None: the cloud has none per cluster).
    registry_repository: Optional[str] = None

    def _finish(self, *, name: str, cloud: str, region: pulumi.Input[str], zones: pulumi.Input[list[str]],
                endpoint: pulumi.Input[str], kubeconfig: pulumi.Input[str], registry_url: pulumi.Input[str],
                workload_identity: pulumi.Input[dict], capacity: NodeCapacity,
                extra_outputs: Optional[dict] = None, egress_cidrs: Optional[pulumi.Input[list[str]]] = None) -> None:
        """Set the interface outputs and register them (called last by subclasses).

        ``extra_outputs``: implementation-specific outputs (already set as attributes) registered too.
        """
        self.capacity = capacity
        self.cluster_name = pulumi.Output.from_input(name)
        self.cloud = pulumi.Output.from_input(cloud)
        self.region = pulumi.Output.from_input(region)
        self.zones = pulumi.Output.from_input(zones)
        self.endpoint = pulumi.Output.from_input(endpoint)
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.registry_url = pulumi.Output.from_input(registry_url)
        self.workload_identity = pulumi.Output.from_input(workload_identity)
        self.egress_cidrs = pulumi.Output.from_input([] if egress_cidrs is None else egress_cidrs)
        self.node_cpu_millicores = pulumi.Output.from_input(capacity.cpu_millicores)
        self.node_memory_mib = pulumi.Output.from_input(capacity.memory_mib)
        self.register_outputs({
            "cluster_name": self.cluster_name, "cloud": self.cloud, "region": self.region,
            "zones": self.zones, "endpoint": self.endpoint, "kubeconfig": self.kubeconfig,
            "registry_url": self.registry_url, "workload_identity": self.workload_identity,
            "egress_cidrs": self.egress_cidrs,
            "node_cpu_millicores": self.node_cpu_millicores, "node_memory_mib": self.node_memory_mib,
            **(extra_outputs or {}),
        })

    def _make_provider(self, name: str, kubeconfig: pulumi.Input[str],
                       depends_on: Optional[list[pulumi.Resource]] = None, **kwargs) -> k8s.Provider:
        return k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
            **kwargs,
        )


def api_allow_list(*cidr_lists: pulumi.Input[Sequence[pulumi.Input[str]]]) -> pulumi.Output[list[str]]:
    """One sorted, de-duplicated CIDR list from plain and Output lists (a control-plane allow-list)."""
    return pulumi.Output.all(*cidr_lists).apply(lambda lists: sorted({c for cidrs in lists for c in (cidrs or [])}))


def pools_capacity(pools: list[NodePoolSpec]) -> NodeCapacity:
    """Total allocatable capacity of pools at their maximum size (any objects with machine_type,
    cpu, memory and max_size: the config's node pools too)."""
    from cnplatform.cluster.capacity import node_capacity

    total = NodeCapacity(0, 0)
    for pool in pools:
        total = total.plus(node_capacity(pool.machine_type, pool.cpu, pool.memory).times(pool.max_size))
    return total


def exec_kubeconfig(cluster_name: str, server: str, ca_data: str, exec_config: dict) -> str:
    """A kubeconfig that holds no credential: the ``exec`` credential plugin mints a short-lived token
    on every use, so the document depends only on server, CA and name (stable between runs: the
    Kubernetes provider is not replaced on every ``pulumi up``)."""
    import yaml

    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", **exec_config, "interactiveMode": "Never"}}}],
    }, sort_keys=False)
