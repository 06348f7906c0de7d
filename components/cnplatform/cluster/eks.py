"""EKS cluster with raw pulumi-aws: VPC over up to 3 zones, private managed node groups, IRSA, KMS, logs.

Why not pulumi-eks / awsx: see docs/decisions.md ("EKS with raw pulumi-aws"). Imported only by
``stacks.compose.clusters.aws`` (the dev path never loads ``pulumi_aws``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Optional

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
    pools_capacity,
)
from cnplatform.cluster.eks_network import (  # noqa: F401
    DISCOVERY_TAG,
    MAX_ZONES,
    EksNetwork,
    eks_network,
    nat_gateway_count,
    subnet_cidrs,
    subnet_tags,
)
from cnplatform.cluster.eks_spec import (  # noqa: F401  (re-exported)
    ADDON_CONFIGURATION,
    ADDON_VERSIONS,
    ADDONS_BEFORE_NODES,
    AMI_TYPE,
    CONTROL_PLANE_LOGS,
    EBS_CSI_SERVICE_ACCOUNT,
    EKS_OIDC_THUMBPRINTS,
    NODE_POOL_LABEL,
    SYSTEM_POOL,
    SYSTEM_TAINT,
    EksClusterArgs,
    addon_versions,
    admin_principals,
    ecr_registry_url,
    eks_kubeconfig,
    storage_reclaim_policy,
)
from cnplatform.naming import MANAGED_BY, type_token


@dataclass
class _Roles:
    """The IAM roles of a cluster: the control plane's (and what it waits for) and the nodes'."""

    cluster: aws.iam.Role
    cluster_deps: list[pulumi.Resource]
    node: aws.iam.Role
    node_attachments: list[aws.iam.RolePolicyAttachment]


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
    _cluster: aws.eks.Cluster
    _region: str
    #: The cluster's Karpenter (``cnplatform.cluster.karpenter.Karpenter``), set by stacks.compose.clusters.aws.
    karpenter: Optional[pulumi.ComponentResource] = None

    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "EksCluster"), name, None, opts)
        region = args.region
        self._tags = {"cnplatform.io/cluster": name, "app.kubernetes.io/managed-by": MANAGED_BY, **args.tags}
        self.aws_provider = aws.Provider(f"{name}-aws", region=region, default_tags={"tags": self._tags},
                                         opts=pulumi.ResourceOptions(parent=self))
        self.cloud_provider = self.aws_provider
        self._child = pulumi.ResourceOptions(parent=self, provider=self.aws_provider)
        zones = self._look_up(args)
        versions = addon_versions(args.kubernetes_version, args.addon_versions)
        self.vpc_cidr = args.vpc_cidr

        net = eks_network(name, args, zones, self._child)
        key = self._secrets_key(name, region)
        roles = self._roles(name, args, key)
        cluster = self._control_plane(name, args, net, roles, key)
        self._cluster, self._region = cluster, region  # what grant_access names
        # Karpenter-launched nodes join the EKS cluster security group too (discovered by this tag).
        cluster_sg_id = cluster.vpc_config.cluster_security_group_id
        aws.ec2.Tag(f"{name}-cluster-sg-discovery", resource_id=cluster_sg_id, key=DISCOVERY_TAG, value=name,
                    region=region, opts=self._child)
        issuer = cluster.identities[0].oidcs[0].issuer
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer, client_id_lists=[iam.STS_AUDIENCE],
                                             thumbprint_lists=EKS_OIDC_THUMBPRINTS, opts=self._child)
        node_entry = self._access_entries(name, args, cluster, roles.node)
        ebs_role, ebs_attachment = self._ebs_csi_role(name, oidc, issuer)
        add = functools.partial(self._addon, name, region, cluster, versions)
        self.addons = {a: add(a) for a in ADDONS_BEFORE_NODES}
        groups = self._node_groups(name, args, cluster, net, roles, cluster_sg_id,
                                   [*roles.node_attachments, node_entry, *self.addons.values()])
        self.addons["coredns"] = add("coredns", *groups)
        self.addons["aws-ebs-csi-driver"] = add("aws-ebs-csi-driver", ebs_attachment, *groups,
                                                service_account_role_arn=ebs_role.arn)

        kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
            lambda a: eks_kubeconfig(a[0], a[1], a[2], region))
        self.ready = [*groups]
        self.provider = self._make_provider(name, pulumi.Output.secret(kubeconfig), depends_on=[cluster, *groups])
        self._default_storage_class(name, args, groups)
        self._publish(name, args, zones, net, cluster, oidc, issuer, roles, key, kubeconfig)

    def _opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=list(depends_on)))

    def _look_up(self, args: EksClusterArgs) -> list[str]:
        """Account, partition and the zones (the region's first available ones when none are given)."""
        invoke = pulumi.InvokeOptions(parent=self, provider=self.aws_provider)
        self.account_id = aws.get_caller_identity(opts=invoke).account_id
        self.partition = aws.get_partition(opts=invoke).partition
        zones = list(args.zones) or list(aws.get_availability_zones(
            state="available", region=args.region, opts=invoke).names)
        return zones[:MAX_ZONES]

    def _secrets_key(self, name: str, region: str) -> aws.kms.Key:
        key = aws.kms.Key(f"{name}-secrets", description=f"EKS {name}: envelope encryption of Secrets",
                          enable_key_rotation=True, deletion_window_in_days=30, region=region, opts=self._child)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/eks/{name}-secrets", target_key_id=key.key_id,
                      region=region, opts=self._child)
        return key

    def _roles(self, name: str, args: EksClusterArgs, key: aws.kms.Key) -> _Roles:
        """The control plane's role (managed policies + use of the Secrets key) and the nodes' role."""
        child = self._child
        log_group = aws.cloudwatch.LogGroup(f"{name}-control-plane-logs", name=f"/aws/eks/{name}/cluster",
                                            retention_in_days=args.log_retention_days, region=args.region,
                                            opts=child)
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
        return _Roles(cluster_role, cluster_deps, node_role, node_attachments)

    def _control_plane(self, name: str, args: EksClusterArgs, net: EksNetwork, roles: _Roles,
                       key: aws.kms.Key) -> aws.eks.Cluster:
        return aws.eks.Cluster(
            name, name=name, version=args.kubernetes_version, role_arn=roles.cluster.arn, region=args.region,
            vpc_config={
                "subnet_ids": [s.id for s in net.private],
                "security_group_ids": [net.control_plane_sg.id],
                "endpoint_private_access": True,
                "endpoint_public_access": bool(args.public_access_cidrs),
                # Pods here reach the public endpoint through the NAT gateways (e.g. Jenkins' `pulumi up`),
                # other clusters through theirs: all are admitted explicitly, nothing else.
                "public_access_cidrs": api_allow_list(list(args.public_access_cidrs), net.nat_ips, args.api_clients),
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
            opts=self._opts(*roles.cluster_deps),
        )

    def _access_entries(self, name: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
                        node_role: aws.iam.Role) -> aws.eks.AccessEntry:
        """Cluster-admin entries for the deployers and admins; the nodes' entry (returned)."""
        for i, arn in enumerate(admin_principals(args)):
            self.grant_access(f"{name}-admin-{i}", arn, iam.EKS_CLUSTER_ADMIN_ACCESS_POLICY)
        return aws.eks.AccessEntry(f"{name}-node", cluster_name=cluster.name, principal_arn=node_role.arn,
                                   type="EC2_LINUX", region=args.region, opts=self._child)

    def grant_access(self, resource_name: str, principal_arn: pulumi.Input[str],
                     policy: str) -> aws.eks.AccessPolicyAssociation:
        """A STANDARD access entry of ``principal_arn`` with the EKS access policy ``policy``
        (e.g. ``AmazonEKSViewPolicy``) over the whole cluster; returns the association.

        The entry names the cluster by its Output (it waits for the cluster), and a principal given as
        an Output of its IAM role waits for the role: EKS refuses an entry for a principal that does
        not exist yet. Used for the admins above and for CI identities (``stacks.compose.clusters.aws``).
        """
        entry = aws.eks.AccessEntry(resource_name, cluster_name=self._cluster.name, principal_arn=principal_arn,
                                    type="STANDARD", region=self._region, opts=self._child)
        return aws.eks.AccessPolicyAssociation(
            resource_name, cluster_name=self._cluster.name, principal_arn=principal_arn,
            policy_arn=iam.eks_access_policy_arn(policy, self.partition),
            access_scope={"type": "cluster"}, region=self._region, opts=self._opts(entry))

    def _ebs_csi_role(self, name: str, oidc: aws.iam.OpenIdConnectProvider,
                      issuer: pulumi.Output[str]) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
        role = aws.iam.Role(
            f"{name}-ebs-csi", name=f"{name}-ebs-csi",
            assume_role_policy=pulumi.Output.all(oidc.arn, issuer).apply(
                lambda a: iam.to_json(iam.irsa_trust_policy(a[0], a[1], *EBS_CSI_SERVICE_ACCOUNT))),
            opts=self._child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-{iam.EBS_CSI_MANAGED_POLICY}", role=role.name,
            policy_arn=iam.managed_policy_arn(iam.EBS_CSI_MANAGED_POLICY, self.partition), opts=self._child)
        return role, attachment

    def _addon(self, name: str, region: str, cluster: aws.eks.Cluster, versions: dict[str, str],
               addon_name: str, *depends_on: pulumi.Resource, **kw: Any) -> aws.eks.Addon:
        configuration = ADDON_CONFIGURATION.get(addon_name)
        return aws.eks.Addon(
            f"{name}-{addon_name}", cluster_name=cluster.name, addon_name=addon_name,
            addon_version=versions[addon_name],
            configuration_values=json.dumps(configuration, sort_keys=True) if configuration else None,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE", region=region, opts=self._opts(*depends_on), **kw)

    def _node_groups(self, name: str, args: EksClusterArgs, cluster: aws.eks.Cluster, net: EksNetwork,
                     roles: _Roles, cluster_sg_id: pulumi.Output[str],
                     depends_on: list[pulumi.Resource]) -> list[aws.eks.NodeGroup]:
        """The tainted system group and the workload groups, each with an IMDSv2-only launch template."""
        system = NodePoolSpec(SYSTEM_POOL, machine_type=args.system_machine_type, min_size=args.system_min_size,
                              max_size=args.system_max_size)
        self.node_groups = {}
        for pool in [system, *args.node_pools]:
            lt = self._launch_template(name, args.region, pool, [cluster_sg_id, net.node_sg.id])
            self.node_groups[pool.name] = aws.eks.NodeGroup(
                f"{name}-{pool.name}", cluster_name=cluster.name, node_group_name=pool.name,
                node_role_arn=roles.node.arn, subnet_ids=[s.id for s in net.private],
                version=args.kubernetes_version, ami_type=AMI_TYPE, instance_types=[pool.machine_type],
                capacity_type="SPOT" if pool.spot else "ON_DEMAND",
                scaling_config={"min_size": pool.min_size, "max_size": pool.max_size,
                                "desired_size": pool.desired_size if pool.desired_size is not None else pool.min_size},
                update_config={"max_unavailable": 1},
                labels={**pool.labels, NODE_POOL_LABEL: pool.name},
                taints=[aws.eks.NodeGroupTaintArgs(**SYSTEM_TAINT)] if pool is system else [],
                launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
                region=args.region, opts=self._opts(*depends_on))
        return list(self.node_groups.values())

    def _launch_template(self, name: str, region: str, pool: NodePoolSpec,
                         security_groups: list[pulumi.Input[str]]) -> aws.ec2.LaunchTemplate:
        return aws.ec2.LaunchTemplate(
            f"{name}-{pool.name}", name=f"{name}-{pool.name}", region=region,
            description=f"EKS {name} node group {pool.name}: IMDSv2 only, encrypted gp3 root volume",
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                              "http_put_response_hop_limit": 1, "instance_metadata_tags": "disabled"},
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "volume_size": pool.disk_gb, "volume_type": "gp3", "encrypted": "true",
                "delete_on_termination": "true"}}],
            vpc_security_group_ids=security_groups,
            tag_specifications=[{"resource_type": kind, "tags": {**self._tags, "Name": f"{name}-{pool.name}"}}
                                for kind in ("instance", "volume", "network-interface")],
            update_default_version=True, opts=self._child)

    def _default_storage_class(self, name: str, args: EksClusterArgs, groups: list[aws.eks.NodeGroup]) -> None:
        """EKS 1.30+ has no default StorageClass: an encrypted gp3 one (EBS CSI) for PVCs without a class.
        With deletion protection (prod) its volumes are retained: a deleted PVC (a mistaken destroy or
        rename of Jenkins or Prometheus) leaves the EBS volume and its PV to rebind."""
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                      "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
            provisioner="ebs.csi.aws.com", volume_binding_mode="WaitForFirstConsumer", allow_volume_expansion=True,
            reclaim_policy=storage_reclaim_policy(args.deletion_protection),
            parameters={"type": "gp3", "encrypted": "true"},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        depends_on=[*groups, self.addons["aws-ebs-csi-driver"]]))

    def _publish(self, name: str, args: EksClusterArgs, zones: list[str], net: EksNetwork,
                 cluster: aws.eks.Cluster, oidc: aws.iam.OpenIdConnectProvider, issuer: pulumi.Output[str],
                 roles: _Roles, key: aws.kms.Key, kubeconfig: pulumi.Output[str]) -> None:
        """The attributes other AWS components build on, then the cluster interface's outputs."""
        self.vpc_id = net.vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in net.private])
        self.network = ClusterNetwork(cloud="aws", vpc_id=self.vpc_id, private_subnet_ids=self.private_subnet_ids,
                                      vpc_cidr=self.vpc_cidr)
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in net.public])
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.node_security_group_id = net.node_sg.id
        self.oidc_provider_arn = oidc.arn
        self.oidc_provider_url = issuer
        self.node_role_arn = roles.node.arn
        self.eks_cluster_name = cluster.name
        self.kms_key_arn = key.arn
        self._finish(
            name=name, cloud="aws", region=args.region, zones=zones, endpoint=cluster.endpoint,
            # The prefix of this cluster's ECR repositories (``<cluster>/<service>``, see ServiceImage).
            kubeconfig=kubeconfig, registry_url=f"{ecr_registry_url(self.account_id, args.region)}/{name}",
            workload_identity={"type": "irsa", "oidc_provider_arn": oidc.arn, "oidc_issuer_url": issuer},
            capacity=pools_capacity(args.node_pools), egress_cidrs=pulumi.Output.all(*net.nat_ips),
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
