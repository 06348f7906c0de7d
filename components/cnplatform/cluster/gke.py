"""GKE cluster: VPC-native private nodes behind Cloud NAT, Workload Identity, Dataplane V2, CMEK Secrets.

Imported only by ``stacks.compose.clusters.gcp`` (the dev path never loads ``pulumi_gcp``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from cnplatform.extras import missing_extra

try:
    import pulumi_gcp as gcp
except ModuleNotFoundError as exc:
    raise missing_extra(exc, __name__) from None

from cnplatform import validation as _v
from cnplatform.cluster.base import (
    Cluster,
    ClusterNetwork,
    NodePoolSpec,
    api_allow_list,
    exec_kubeconfig,
    pools_capacity,
)
from cnplatform.naming import MANAGED_BY, type_token

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
SHIELDED = {"enable_secure_boot": True, "enable_integrity_monitoring": True}


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


def cluster_autoscaling(args: GkeClusterArgs, service_account: pulumi.Input[str]) -> dict:
    """Autoscaler profile always; node auto-provisioning with CPU/memory limits when enabled."""
    config: dict = {"enabled": args.auto_provisioning, "autoscaling_profile": args.autoscaling_profile}
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


class GkeCluster(Cluster):
    """A GKE Standard cluster with private nodes in its own VPC.

    Besides the cluster interface it exposes ``network_id``, ``network_self_link``, ``subnet_id``,
    ``subnet_self_link`` (also ``subnet``), ``project``, ``workload_pool``, ``node_service_account_email``.
    """

    network_id: pulumi.Output[str]
    """VPC network id (``projects/<p>/global/networks/<n>``)."""
    network_self_link: pulumi.Output[str]
    """VPC network self link (Cloud SQL private IP, peering)."""
    subnet_id: pulumi.Output[str]
    """Node subnet id."""
    subnet_self_link: pulumi.Output[str]
    """Node subnet self link."""
    node_service_account_email: pulumi.Output[str]
    """Service account of the nodes."""
    kms_key_id: pulumi.Output[str]
    """Cloud KMS key encrypting Kubernetes Secrets."""
    gke_cluster_id: pulumi.Output[str]
    """The GKE cluster id (``projects/<p>/locations/<l>/clusters/<n>``)."""

    #: Plain values, known at program time.
    project: str
    workload_pool: str
    location: str
    registry_repository: str
    gcp_provider: gcp.Provider
    #: The same provider under the name every cloud cluster uses (databases, registries use it).
    cloud_provider: gcp.Provider
    node_pools: dict[str, gcp.container.NodePool]

    def __init__(self, name: str, args: GkeClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "GkeCluster"), name, None, opts)
        project, region = args.project, args.region
        # An explicit provider per cluster: project and region never come from ambient gcloud config.
        self.gcp_provider = gcp.Provider(f"{name}-gcp", project=project, region=region,
                                         opts=pulumi.ResourceOptions(parent=self))
        self.cloud_provider = self.gcp_provider
        child = pulumi.ResourceOptions(parent=self, provider=self.gcp_provider)
        invoke = pulumi.InvokeOptions(parent=self, provider=self.gcp_provider)
        labels = {"cnplatform-cluster": name, "managed-by": MANAGED_BY, **args.labels}
        zones = list(args.zones) or gcp.compute.get_zones(project=project, region=region, opts=invoke).names[:3]
        if not args.regional:
            zones = zones[:1]
        location = location_of(region, zones, args.regional)
        versions = gcp.container.get_engine_versions(project=project, location=location,
                                                     version_prefix=f"{args.kubernetes_version}.", opts=invoke)
        if not versions.valid_master_versions:
            raise ValueError(f"GKE offers no {args.kubernetes_version}.x control plane in {location}")
        project_number = gcp.organizations.get_project(project_id=project, opts=invoke).number

        # ------------------------------------------------------------------------------ network
        network = gcp.compute.Network(f"{name}-vpc", name=f"{name}-vpc", project=project,
                                      auto_create_subnetworks=False, routing_mode="REGIONAL", opts=child)
        subnet = gcp.compute.Subnetwork(
            f"{name}-nodes", name=f"{name}-nodes", project=project, region=region, network=network.id,
            ip_cidr_range=args.network_cidr, private_ip_google_access=True,
            secondary_ip_ranges=[{"range_name": PODS_RANGE, "ip_cidr_range": args.pods_cidr},
                                 {"range_name": SERVICES_RANGE, "ip_cidr_range": args.services_cidr}],
            log_config={"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.5,
                        "metadata": "INCLUDE_ALL_METADATA"},
            opts=child)
        router = gcp.compute.Router(f"{name}-router", name=f"{name}-router", project=project, region=region,
                                    network=network.id, opts=child)
        # Static NAT addresses: the egress of every pod (Jenkins' `pulumi up` reaching this API by its
        # public endpoint, istiod reading a peer cluster's API) is a known, allow-listed source.
        nat_addresses = [gcp.compute.Address(f"{name}-nat-{i}", name=f"{name}-nat-{i}", project=project,
                                             region=region, address_type="EXTERNAL", opts=child)
                         for i in range(max(1, args.nat_addresses))]
        nat_ips = [a.address.apply(lambda ip: f"{ip}/32") for a in nat_addresses]
        gcp.compute.RouterNat(
            f"{name}-nat", name=f"{name}-nat", project=project, region=region, router=router.name,
            nat_ip_allocate_option="MANUAL_ONLY", nat_ips=[a.self_link for a in nat_addresses],
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config={"enable": True, "filter": "ERRORS_ONLY"}, opts=child)

        # ---------------------------------------------------------------------- node identity
        node_sa = gcp.serviceaccount.Account(
            f"{name}-nodes", account_id=node_service_account_id(name), project=project,
            display_name=f"GKE {name} nodes (least privilege)", opts=child)
        node_member = node_sa.email.apply(lambda email: f"serviceAccount:{email}")
        for role in NODE_SA_ROLES:
            gcp.projects.IAMMember(f"{name}-nodes-{role.split('/')[1]}", project=project, role=role,
                                   member=node_member, opts=child)

        extra_ports = webhook_firewall_ports(args.control_plane_ports)
        if extra_ports:
            # Admission webhooks (istiod: 15017, failurePolicy Fail) run on the nodes: without this rule
            # the control plane cannot call them and every injected pod is rejected.
            gcp.compute.Firewall(
                f"{name}-control-plane-webhooks", name=f"{name}-control-plane-webhooks", project=project,
                network=network.id, direction="INGRESS", priority=1000, source_ranges=[args.master_cidr],
                allows=[{"protocol": "tcp", "ports": extra_ports}], target_service_accounts=[node_sa.email],
                description="GKE control plane to admission webhooks / aggregated APIs on the nodes",
                opts=child)

        # -------------------------------------------------------------------------------- KMS
        ring = gcp.kms.KeyRing(f"{name}-keyring", name=f"{name}-keyring", project=project, location=region,
                               opts=child)
        key = gcp.kms.CryptoKey(f"{name}-secrets", name=f"{name}-secrets", key_ring=ring.id,
                                purpose="ENCRYPT_DECRYPT", rotation_period=KEY_ROTATION_PERIOD,
                                labels=labels, opts=child)
        agent_on_key = gcp.kms.CryptoKeyIAMMember(
            f"{name}-secrets-gke-agent", crypto_key_id=key.id, role=KMS_ENCRYPTER_DECRYPTER,
            member=gke_service_agent(project_number), opts=child)

        # ----------------------------------------------------------------------------- cluster
        self.workload_pool = workload_pool(project)
        node_config_common = {
            "service_account": node_sa.email, "oauth_scopes": NODE_OAUTH_SCOPES,
            "shielded_instance_config": SHIELDED, "workload_metadata_config": {"mode": "GKE_METADATA"},
            "metadata": {"disable-legacy-endpoints": "true"},
        }
        cluster = gcp.container.Cluster(
            name, name=name, project=project, location=location,
            node_locations=zones if args.regional else None,
            network=network.id, subnetwork=subnet.id, networking_mode="VPC_NATIVE",
            ip_allocation_policy={"cluster_secondary_range_name": PODS_RANGE,
                                  "services_secondary_range_name": SERVICES_RANGE},
            private_cluster_config={"enable_private_nodes": True, "enable_private_endpoint": False,
                                    "master_ipv4_cidr_block": args.master_cidr},
            master_authorized_networks_config={"cidr_blocks": api_allow_list(
                list(args.master_authorized_networks), nat_ips, args.api_clients).apply(
                lambda cidrs: [{"cidr_block": c, "display_name": f"authorized-{i}"} for i, c in enumerate(cidrs)])},
            release_channel={"channel": args.release_channel},
            min_master_version=args.kubernetes_version,
            workload_identity_config={"workload_pool": self.workload_pool},
            enable_shielded_nodes=True,
            database_encryption={"state": "ENCRYPTED", "key_name": key.id},
            datapath_provider="ADVANCED_DATAPATH",
            cluster_autoscaling=cluster_autoscaling(args, node_sa.email),
            # The default pool is replaced by the pools below; until then it runs with the same identity.
            remove_default_node_pool=True, initial_node_count=1, node_config=node_config_common,
            addons_config={"http_load_balancing": {"disabled": False},
                           "horizontal_pod_autoscaling": {"disabled": False},
                           "gce_persistent_disk_csi_driver_config": {"enabled": True}},
            logging_config={"enable_components": ["SYSTEM_COMPONENTS", "WORKLOADS"]},
            deletion_protection=args.deletion_protection,
            resource_labels=labels,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[agent_on_key])),
        )

        self.node_pools = {}
        for pool in args.node_pools:
            self.node_pools[pool.name] = gcp.container.NodePool(
                f"{name}-{pool.name}", name=pool.name, project=project, location=location, cluster=cluster.name,
                initial_node_count=initial_nodes_per_zone(pool, len(zones)),
                autoscaling={"total_min_node_count": pool.min_size, "total_max_node_count": pool.max_size,
                             "location_policy": "BALANCED"},
                management={"auto_repair": True, "auto_upgrade": True},
                upgrade_settings={"max_surge": 1, "max_unavailable": 0},
                node_config={**node_config_common, "machine_type": pool.machine_type,
                             "disk_size_gb": pool.disk_gb, "disk_type": "pd-balanced", "spot": pool.spot,
                             "labels": {**pool.labels, NODE_POOL_LABEL: pool.name}, "resource_labels": labels},
                # The autoscaler owns the node count after creation.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["initialNodeCount"])))

        # ------------------------------------------------------------------- kubeconfig, provider
        kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate
                                       ).apply(lambda a: gke_kubeconfig(a[0], a[1], a[2]))
        pools = list(self.node_pools.values())
        self.ready = pools or [cluster]
        self.provider = self._make_provider(name, pulumi.Output.secret(kubeconfig), depends_on=[cluster, *pools])

        # ------------------------------------------------------------------- extra attributes
        self.project = project
        self.location = location
        self.registry_repository = args.registry_repository
        self.network_id = network.id
        self.network_self_link = network.self_link
        self.network = ClusterNetwork(cloud="gcp", network_id=network.id, network_self_link=network.self_link)
        self.subnet_id = subnet.id
        self.subnet_self_link = subnet.self_link
        self.subnet = subnet.self_link
        self.node_service_account_email = node_sa.email
        self.kms_key_id = key.id
        self.gke_cluster_id = cluster.id
        self._finish(
            name=name, cloud="gcp", region=region, zones=zones,
            endpoint=cluster.endpoint.apply(lambda ip: f"https://{ip}"), kubeconfig=kubeconfig,
            registry_url=registry_url(region, project, args.registry_repository),
            workload_identity={"type": "workload-identity", "pool": self.workload_pool, "project": project},
            capacity=pools_capacity(args.node_pools), egress_cidrs=pulumi.Output.all(*nat_ips),
            extra_outputs={
                "network_id": self.network_id, "network_self_link": self.network_self_link,
                "subnet_id": self.subnet_id, "subnet_self_link": self.subnet_self_link, "project": project,
                "workload_pool": self.workload_pool, "node_service_account_email": self.node_service_account_email,
                "kms_key_id": self.kms_key_id, "gke_cluster_id": self.gke_cluster_id,
            },
        )
