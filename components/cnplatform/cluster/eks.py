"""EKS cluster with raw pulumi-aws: VPC over up to 3 zones, private managed node groups, IRSA, KMS, logs.

Why not pulumi-eks / awsx: see docs/decisions.md ("EKS with raw pulumi-aws"). Imported only by
``stacks.compose.clusters.aws`` (the dev path never loads ``pulumi_aws``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from cnplatform.extras import missing_extra

try:
    import pulumi_aws as aws
except ModuleNotFoundError as exc:
    raise missing_extra(exc, __name__) from None
import pulumi_kubernetes as k8s  # noqa: E402

from cnplatform.cluster import iam
from cnplatform.cluster.base import (
    Cluster,
    ClusterNetwork,
    NodePoolSpec,
    api_allow_list,
    exec_kubeconfig,
    pools_capacity,
)
from cnplatform.cluster.eks_network import (  # noqa: F401
    DISCOVERY_TAG,
    MAX_ZONES,
    eks_network,
    nat_gateway_count,
    subnet_cidrs,
    subnet_tags,
)
from cnplatform.naming import MANAGED_BY, type_token

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


class EksCluster(Cluster):
    """An EKS cluster in its own VPC, reachable by Pulumi through the public endpoint (allow-listed CIDRs).

    Besides the cluster interface it exposes what other AWS components (RDS, ECR, Karpenter) build on:
    ``vpc_id``, ``private_subnet_ids``, ``public_subnet_ids``, ``vpc_cidr``, ``cluster_security_group_id``,
    ``node_security_group_id``, ``oidc_provider_arn``, ``oidc_provider_url``, ``node_role_arn``,
    ``eks_cluster_name``, and the handles ``aws_provider`` (= ``cloud_provider``), ``account_id``, ``partition``.
    """

    vpc_id: pulumi.Output[str]
    """VPC id."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets (one per zone): nodes, internal load balancers, databases."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets (one per zone): internet-facing load balancers and the NAT gateways."""
    cluster_security_group_id: pulumi.Output[str]
    """The EKS-managed cluster security group (control plane ENIs and every node)."""
    node_security_group_id: pulumi.Output[str]
    """Security group of every node (managed groups and Karpenter): allow database ports from it."""
    oidc_provider_arn: pulumi.Output[str]
    """IAM OIDC provider of the cluster (IRSA trust policies' Federated principal)."""
    oidc_provider_url: pulumi.Output[str]
    """OIDC issuer URL (``https://oidc.eks.<region>.amazonaws.com/id/<ID>``)."""
    node_role_arn: pulumi.Output[str]
    """IAM role of the managed node groups."""
    eks_cluster_name: pulumi.Output[str]
    """The EKS cluster name (as AWS knows it)."""
    kms_key_arn: pulumi.Output[str]
    """KMS key that envelope-encrypts Kubernetes Secrets."""

    #: Plain values, known at program time.
    vpc_cidr: str
    account_id: str
    partition: str
    aws_provider: aws.Provider
    #: The same provider under the name every cloud cluster uses (databases, registries use it).
    cloud_provider: aws.Provider
    node_groups: dict[str, aws.eks.NodeGroup]
    addons: dict[str, aws.eks.Addon]
    #: The cluster's Karpenter (``cnplatform.cluster.karpenter.Karpenter``), set by stacks.compose.clusters.aws.
    karpenter: Optional[pulumi.ComponentResource] = None

    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "EksCluster"), name, None, opts)
        region = args.region
        tags = {"cnplatform.io/cluster": name, "app.kubernetes.io/managed-by": MANAGED_BY, **args.tags}
        self.aws_provider = aws.Provider(f"{name}-aws", region=region, default_tags={"tags": tags},
                                         opts=pulumi.ResourceOptions(parent=self))
        self.cloud_provider = self.aws_provider
        child = pulumi.ResourceOptions(parent=self, provider=self.aws_provider)
        invoke = pulumi.InvokeOptions(parent=self, provider=self.aws_provider)

        def opts_(*depends_on: pulumi.Resource, **kw) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(depends_on), **kw))

        identity = aws.get_caller_identity(opts=invoke)
        self.account_id = identity.account_id
        self.partition = aws.get_partition(opts=invoke).partition
        zones = list(args.zones) or aws.get_availability_zones(state="available", region=region, opts=invoke).names
        zones = zones[:MAX_ZONES]
        versions = addon_versions(args.kubernetes_version, args.addon_versions)
        self.vpc_cidr = args.vpc_cidr

        net = eks_network(name, args, zones, child)
        vpc, public, private, nat_ips = net.vpc, net.public, net.private, net.nat_ips
        control_plane_sg, node_sg = net.control_plane_sg, net.node_sg

        # ---------------------------------------------------------------------------- KMS, logs
        key = aws.kms.Key(f"{name}-secrets", description=f"EKS {name}: envelope encryption of Secrets",
                          enable_key_rotation=True, deletion_window_in_days=30, region=region, opts=child)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/eks/{name}-secrets", target_key_id=key.key_id,
                      region=region, opts=child)
        log_group = aws.cloudwatch.LogGroup(f"{name}-control-plane-logs", name=f"/aws/eks/{name}/cluster",
                                            retention_in_days=args.log_retention_days, region=region, opts=child)

        # ----------------------------------------------------------------------------------- IAM
        cluster_role = aws.iam.Role(f"{name}-cluster", name=f"{name}-cluster",
                                    assume_role_policy=iam.to_json(iam.service_trust_policy("eks.amazonaws.com")),
                                    opts=child)
        cluster_deps: list[pulumi.Resource] = [log_group]
        for policy in iam.CLUSTER_MANAGED_POLICIES:
            cluster_deps.append(aws.iam.RolePolicyAttachment(
                f"{name}-cluster-{policy}", role=cluster_role.name,
                policy_arn=iam.managed_policy_arn(policy, self.partition), opts=child))
        kms_policy = aws.iam.Policy(
            f"{name}-cluster-secrets-kms", name=f"{name}-cluster-secrets-kms",
            description=f"EKS {name}: use of the Secrets encryption key",
            policy=key.arn.apply(lambda arn: iam.to_json(iam.eks_secrets_encryption_policy(arn))), opts=child)
        cluster_deps.append(aws.iam.RolePolicyAttachment(f"{name}-cluster-secrets-kms", role=cluster_role.name,
                                                         policy_arn=kms_policy.arn, opts=child))
        node_role = aws.iam.Role(f"{name}-node", name=f"{name}-node",
                                 assume_role_policy=iam.to_json(iam.service_trust_policy("ec2.amazonaws.com")),
                                 opts=child)
        node_attachments = [aws.iam.RolePolicyAttachment(
            f"{name}-node-{policy}", role=node_role.name, policy_arn=iam.managed_policy_arn(policy, self.partition),
            opts=child) for policy in iam.NODE_MANAGED_POLICIES]

        # ------------------------------------------------------------------------------- cluster
        cluster = aws.eks.Cluster(
            name, name=name, version=args.kubernetes_version, role_arn=cluster_role.arn, region=region,
            vpc_config={
                "subnet_ids": [s.id for s in private],
                "security_group_ids": [control_plane_sg.id],
                "endpoint_private_access": True,
                "endpoint_public_access": bool(args.public_access_cidrs),
                # Pods here reach the public endpoint through the NAT gateways (e.g. Jenkins' `pulumi up`),
                # other clusters through theirs: all are admitted explicitly, nothing else.
                "public_access_cidrs": api_allow_list(list(args.public_access_cidrs), nat_ips, args.api_clients),
            },
            access_config={
                "authentication_mode": "API",
                # Constant: flipping it replaces the cluster. Admins are access entries (admin + deployer roles).
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            # Networking add-ons come as pinned managed add-ons below, not as unmanaged defaults.
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": "STANDARD"},
            deletion_protection=args.deletion_protection,
            tags={"Name": name},
            opts=opts_(*cluster_deps),
        )
        # Karpenter-launched nodes join the EKS cluster security group too (discovered by this tag).
        cluster_sg_id = cluster.vpc_config.cluster_security_group_id
        aws.ec2.Tag(f"{name}-cluster-sg-discovery", resource_id=cluster_sg_id, key=DISCOVERY_TAG, value=name,
                    region=region, opts=child)

        issuer = cluster.identities[0].oidcs[0].issuer
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer, client_id_lists=[iam.STS_AUDIENCE],
                                             thumbprint_lists=EKS_OIDC_THUMBPRINTS, opts=child)

        # ------------------------------------------------------------------------ access entries
        for i, arn in enumerate(admin_principals(args)):
            entry = aws.eks.AccessEntry(f"{name}-admin-{i}", cluster_name=cluster.name, principal_arn=arn,
                                        type="STANDARD", region=region, opts=child)
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}", cluster_name=cluster.name, principal_arn=arn,
                policy_arn=iam.eks_access_policy_arn(iam.EKS_CLUSTER_ADMIN_ACCESS_POLICY, self.partition),
                access_scope={"type": "cluster"}, region=region, opts=opts_(entry))
        node_entry = aws.eks.AccessEntry(f"{name}-node", cluster_name=cluster.name, principal_arn=node_role.arn,
                                         type="EC2_LINUX", region=region, opts=child)

        # ------------------------------------------------------------------------------- add-ons
        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi", name=f"{name}-ebs-csi",
            assume_role_policy=pulumi.Output.all(oidc.arn, issuer).apply(
                lambda a: iam.to_json(iam.irsa_trust_policy(a[0], a[1], *EBS_CSI_SERVICE_ACCOUNT))),
            opts=child)
        ebs_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-{iam.EBS_CSI_MANAGED_POLICY}", role=ebs_role.name,
            policy_arn=iam.managed_policy_arn(iam.EBS_CSI_MANAGED_POLICY, self.partition), opts=child)

        def addon(addon_name: str, *depends_on: pulumi.Resource, **kw) -> aws.eks.Addon:
            configuration = ADDON_CONFIGURATION.get(addon_name)
            return aws.eks.Addon(
                f"{name}-{addon_name}", cluster_name=cluster.name, addon_name=addon_name,
                addon_version=versions[addon_name],
                configuration_values=json.dumps(configuration, sort_keys=True) if configuration else None,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE", region=region, opts=opts_(*depends_on), **kw)

        self.addons = {a: addon(a) for a in ADDONS_BEFORE_NODES}

        # --------------------------------------------------------------------------- node groups
        system = NodePoolSpec(SYSTEM_POOL, machine_type=args.system_machine_type, min_size=args.system_min_size,
                              max_size=args.system_max_size)
        node_deps = [*node_attachments, node_entry, *self.addons.values()]
        self.node_groups = {}
        for pool in [system, *args.node_pools]:
            lt = aws.ec2.LaunchTemplate(
                f"{name}-{pool.name}", name=f"{name}-{pool.name}", region=region,
                description=f"EKS {name} node group {pool.name}: IMDSv2 only, encrypted gp3 root volume",
                metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                                  "http_put_response_hop_limit": 1, "instance_metadata_tags": "disabled"},
                block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                    "volume_size": pool.disk_gb, "volume_type": "gp3", "encrypted": "true",
                    "delete_on_termination": "true"}}],
                vpc_security_group_ids=[cluster_sg_id, node_sg.id],
                tag_specifications=[{"resource_type": kind, "tags": {**tags, "Name": f"{name}-{pool.name}"}}
                                    for kind in ("instance", "volume", "network-interface")],
                update_default_version=True, opts=child)
            self.node_groups[pool.name] = aws.eks.NodeGroup(
                f"{name}-{pool.name}", cluster_name=cluster.name, node_group_name=pool.name,
                node_role_arn=node_role.arn, subnet_ids=[s.id for s in private], version=args.kubernetes_version,
                ami_type=AMI_TYPE, instance_types=[pool.machine_type],
                capacity_type="SPOT" if pool.spot else "ON_DEMAND",
                scaling_config={"min_size": pool.min_size, "max_size": pool.max_size,
                                "desired_size": pool.desired_size if pool.desired_size is not None else pool.min_size},
                update_config={"max_unavailable": 1},
                labels={**pool.labels, NODE_POOL_LABEL: pool.name},
                taints=[SYSTEM_TAINT] if pool is system else [],
                launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
                region=region, opts=opts_(*node_deps))
        groups = list(self.node_groups.values())
        self.addons["coredns"] = addon("coredns", *groups)
        self.addons["aws-ebs-csi-driver"] = addon("aws-ebs-csi-driver", ebs_attachment, *groups,
                                                  service_account_role_arn=ebs_role.arn)

        # ------------------------------------------------------------------- kubeconfig, provider
        kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
            lambda a: eks_kubeconfig(a[0], a[1], a[2], region))
        self.ready = groups
        self.provider = self._make_provider(name, pulumi.Output.secret(kubeconfig), depends_on=[cluster, *groups])
        # EKS 1.30+ has no default StorageClass: an encrypted gp3 one (EBS CSI) for PVCs without a class.
        # With deletion protection (prod) its volumes are retained: a deleted PVC (a mistaken destroy or
        # rename of Jenkins or Prometheus) leaves the EBS volume and its PV to rebind.
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                      "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
            provisioner="ebs.csi.aws.com", volume_binding_mode="WaitForFirstConsumer", allow_volume_expansion=True,
            reclaim_policy=storage_reclaim_policy(args.deletion_protection), parameters={"type": "gp3", "encrypted": "true"},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        depends_on=[*groups, self.addons["aws-ebs-csi-driver"]]))

        # ------------------------------------------------------------------- extra attributes
        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private])
        self.network = ClusterNetwork(cloud="aws", vpc_id=self.vpc_id, private_subnet_ids=self.private_subnet_ids,
                                      vpc_cidr=self.vpc_cidr)
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self.cluster_security_group_id = cluster_sg_id
        self.node_security_group_id = node_sg.id
        self.oidc_provider_arn = oidc.arn
        self.oidc_provider_url = issuer
        self.node_role_arn = node_role.arn
        self.eks_cluster_name = cluster.name
        self.kms_key_arn = key.arn
        self._finish(
            name=name, cloud="aws", region=region, zones=zones, endpoint=cluster.endpoint,
            # The prefix of this cluster's ECR repositories (``<cluster>/<service>``, see ServiceImage).
            kubeconfig=kubeconfig, registry_url=f"{ecr_registry_url(self.account_id, region)}/{name}",
            workload_identity={"type": "irsa", "oidc_provider_arn": oidc.arn, "oidc_issuer_url": issuer},
            capacity=pools_capacity(args.node_pools), egress_cidrs=pulumi.Output.all(*nat_ips),
            extra_outputs={
                "vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids, "vpc_cidr": self.vpc_cidr,
                "cluster_security_group_id": self.cluster_security_group_id,
                "node_security_group_id": self.node_security_group_id,
                "oidc_provider_arn": self.oidc_provider_arn, "oidc_provider_url": self.oidc_provider_url,
                "node_role_arn": self.node_role_arn, "eks_cluster_name": self.eks_cluster_name,
                "kms_key_arn": self.kms_key_arn,
            },
        )
