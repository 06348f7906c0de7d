"""GKE cluster: VPC-native private nodes behind Cloud NAT, Workload Identity, Dataplane V2, CMEK Secrets.

Imported only by ``stacks.compose.clusters.gcp`` (the dev path never loads ``pulumi_gcp``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import pulumi

from cnplatform.extras import missing_extra

try:
    import pulumi_gcp as gcp
except ModuleNotFoundError as exc:
    raise missing_extra(exc, __name__) from None

from cnplatform.cluster.base import Cluster, ClusterNetwork, api_allow_list, pools_capacity
from cnplatform.cluster.gke_spec import (  # noqa: F401  (re-exported)
    GKE_OPEN_CONTROL_PLANE_PORTS,
    KEY_ROTATION_PERIOD,
    KMS_ENCRYPTER_DECRYPTER,
    NAT_SETTINGS,
    NODE_OAUTH_SCOPES,
    NODE_POOL_LABEL,
    NODE_SA_ROLES,
    PODS_RANGE,
    REGISTRY_REPOSITORY,
    SERVICES_RANGE,
    SHIELDED,
    GkeClusterArgs,
    authorized_networks,
    cluster_autoscaling,
    cluster_settings,
    gke_kubeconfig,
    gke_service_agent,
    initial_nodes_per_zone,
    location_of,
    node_config_common,
    node_pool_settings,
    node_service_account_id,
    registry_url,
    subnet_settings,
    webhook_firewall_ports,
    workload_pool,
)
from cnplatform.naming import MANAGED_BY, type_token


class _Network(NamedTuple):
    network: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    nat_ips: list[pulumi.Output[str]]


class _Place(NamedTuple):
    zones: list[str]
    location: str
    project_number: str


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
        # An explicit provider per cluster: project and region never come from ambient gcloud config.
        self.gcp_provider = gcp.Provider(f"{name}-gcp", project=args.project, region=args.region,
                                         opts=pulumi.ResourceOptions(parent=self))
        self.cloud_provider = self.gcp_provider
        self._child = pulumi.ResourceOptions(parent=self, provider=self.gcp_provider)
        self._labels = {"cnplatform-cluster": name, "managed-by": MANAGED_BY, **args.labels}
        place = self._look_up(args)
        net = self._network(name, args)
        node_sa = self._node_identity(name, args, net.network)
        key, agent_on_key = self._secrets_key(name, args, place.project_number)
        self.workload_pool = workload_pool(args.project)
        common = node_config_common(node_sa.email)
        cluster = self._control_plane(name, args, place, net, node_sa, key, common, agent_on_key)
        pools = self._node_pools(name, args, place, cluster, common)
        kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate
                                       ).apply(lambda a: gke_kubeconfig(a[0], a[1], a[2]))
        self.ready = [*pools] if pools else [cluster]
        self.provider = self._make_provider(name, pulumi.Output.secret(kubeconfig), depends_on=[cluster, *pools])
        self._publish(name, args, place, net, node_sa, key, cluster, kubeconfig)

    def _look_up(self, args: GkeClusterArgs) -> _Place:
        """Zones (the region's first 3 when none are given; the first only when zonal), the location,
        a control plane of the pinned minor there, the project number."""
        project, region = args.project, args.region
        invoke = pulumi.InvokeOptions(parent=self, provider=self.gcp_provider)
        zones = list(args.zones) or list(
            gcp.compute.get_zones(project=project, region=region, opts=invoke).names[:3])
        if not args.regional:
            zones = zones[:1]
        location = location_of(region, zones, args.regional)
        versions = gcp.container.get_engine_versions(project=project, location=location,
                                                     version_prefix=f"{args.kubernetes_version}.", opts=invoke)
        if not versions.valid_master_versions:
            raise ValueError(f"GKE offers no {args.kubernetes_version}.x control plane in {location}")
        project_number = gcp.organizations.get_project(project_id=project, opts=invoke).number
        return _Place(zones, location, project_number)

    def _network(self, name: str, args: GkeClusterArgs) -> _Network:
        """VPC, node subnet, router and Cloud NAT on static addresses."""
        project, region, child = args.project, args.region, self._child
        network = gcp.compute.Network(f"{name}-vpc", name=f"{name}-vpc", project=project,
                                      auto_create_subnetworks=False, routing_mode="REGIONAL", opts=child)
        subnet = gcp.compute.Subnetwork(f"{name}-nodes", name=f"{name}-nodes", project=project, region=region,
                                        network=network.id, **subnet_settings(args), opts=child)
        router = gcp.compute.Router(f"{name}-router", name=f"{name}-router", project=project, region=region,
                                    network=network.id, opts=child)
        # Static NAT addresses: the egress of every pod (Jenkins' `pulumi up` reaching this API by its
        # public endpoint, istiod reading a peer cluster's API) is a known, allow-listed source.
        nat_addresses = [gcp.compute.Address(f"{name}-nat-{i}", name=f"{name}-nat-{i}", project=project,
                                             region=region, address_type="EXTERNAL", opts=child)
                         for i in range(max(1, args.nat_addresses))]
        nat_ips = [a.address.apply(lambda ip: f"{ip}/32") for a in nat_addresses]
        gcp.compute.RouterNat(f"{name}-nat", name=f"{name}-nat", project=project, region=region,
                              router=router.name, nat_ips=[a.self_link for a in nat_addresses], **NAT_SETTINGS,
                              opts=child)
        return _Network(network, subnet, nat_ips)

    def _node_identity(self, name: str, args: GkeClusterArgs,
                       network: gcp.compute.Network) -> gcp.serviceaccount.Account:
        """The nodes' least-privilege service account, and the firewall rule to their webhook ports."""
        project, child = args.project, self._child
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
        return node_sa

    def _secrets_key(self, name: str, args: GkeClusterArgs,
                     project_number: str) -> tuple[gcp.kms.CryptoKey, gcp.kms.CryptoKeyIAMMember]:
        """The Cloud KMS key encrypting Secrets (rotated), usable by GKE's service agent."""
        child = self._child
        ring = gcp.kms.KeyRing(f"{name}-keyring", name=f"{name}-keyring", project=args.project,
                               location=args.region, opts=child)
        key = gcp.kms.CryptoKey(f"{name}-secrets", name=f"{name}-secrets", key_ring=ring.id,
                                purpose="ENCRYPT_DECRYPT", rotation_period=KEY_ROTATION_PERIOD,
                                labels=self._labels, opts=child)
        agent_on_key = gcp.kms.CryptoKeyIAMMember(
            f"{name}-secrets-gke-agent", crypto_key_id=key.id, role=KMS_ENCRYPTER_DECRYPTER,
            member=gke_service_agent(project_number), opts=child)
        return key, agent_on_key

    def _control_plane(self, name: str, args: GkeClusterArgs, place: _Place, net: _Network,
                       node_sa: gcp.serviceaccount.Account, key: gcp.kms.CryptoKey,
                       common: gcp.container.ClusterNodeConfigArgsDict,
                       agent_on_key: gcp.kms.CryptoKeyIAMMember) -> gcp.container.Cluster:
        allowed = api_allow_list(list(args.master_authorized_networks), net.nat_ips, args.api_clients)
        return gcp.container.Cluster(
            name, name=name, project=args.project, **cluster_settings(args, place.zones, place.location),
            network=net.network.id, subnetwork=net.subnet.id,
            master_authorized_networks_config={"cidr_blocks": allowed.apply(authorized_networks)},
            database_encryption={"state": "ENCRYPTED", "key_name": key.id},
            cluster_autoscaling=cluster_autoscaling(args, node_sa.email),
            node_config=common, resource_labels=self._labels,
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=[agent_on_key])),
        )

    def _node_pools(self, name: str, args: GkeClusterArgs, place: _Place, cluster: gcp.container.Cluster,
                    common: gcp.container.ClusterNodeConfigArgsDict) -> list[gcp.container.NodePool]:
        # The autoscaler owns the node count after creation.
        opts = pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(ignore_changes=["initialNodeCount"]))
        self.node_pools = {}
        for pool in args.node_pools:
            self.node_pools[pool.name] = gcp.container.NodePool(
                f"{name}-{pool.name}", name=pool.name, project=args.project, location=place.location,
                cluster=cluster.name, **node_pool_settings(pool, len(place.zones), common, self._labels), opts=opts)
        return list(self.node_pools.values())

    def _publish(self, name: str, args: GkeClusterArgs, place: _Place, net: _Network,
                 node_sa: gcp.serviceaccount.Account, key: gcp.kms.CryptoKey, cluster: gcp.container.Cluster,
                 kubeconfig: pulumi.Output[str]) -> None:
        """The attributes other GCP components build on, then the cluster interface's outputs."""
        project, region = args.project, args.region
        self.project = project
        self.location = place.location
        self.registry_repository = args.registry_repository
        self.network_id = net.network.id
        self.network_self_link = net.network.self_link
        self.network = ClusterNetwork(cloud="gcp", network_id=self.network_id, network_self_link=self.network_self_link)
        self.subnet_id = net.subnet.id
        self.subnet_self_link = net.subnet.self_link
        self.subnet = net.subnet.self_link
        self.node_service_account_email = node_sa.email
        self.kms_key_id = key.id
        self.gke_cluster_id = cluster.id
        self._finish(
            name=name, cloud="gcp", region=region, zones=place.zones,
            endpoint=cluster.endpoint.apply(lambda ip: f"https://{ip}"), kubeconfig=kubeconfig,
            registry_url=registry_url(region, project, args.registry_repository),
            workload_identity={"type": "workload-identity", "pool": self.workload_pool, "project": project},
            capacity=pools_capacity(args.node_pools), egress_cidrs=pulumi.Output.all(*net.nat_ips),
            extra_outputs={
                "network_id": self.network_id, "network_self_link": self.network_self_link,
                "subnet_id": self.subnet_id, "subnet_self_link": self.subnet_self_link, "project": project,
                "workload_pool": self.workload_pool, "node_service_account_email": self.node_service_account_email,
                "kms_key_id": self.kms_key_id, "gke_cluster_id": self.gke_cluster_id,
            },
        )
