"""config -> EksCluster (+ Karpenter when ``addons.karpenter.enabled``). Imported only for AWS clusters."""
from __future__ import annotations

from typing import Optional

import pulumi

from cnplatform.cluster.eks import (
    NODE_POOL_LABEL,
    SYSTEM_POOL,
    EksCluster,
    EksClusterArgs,
)
from stacks.compose.clusters.common import node_pools
from stacks.config import ClusterConfig, StackConfig


def eks_args(cfg: StackConfig, cluster: ClusterConfig, api_clients=()) -> EksClusterArgs:
    aws = cluster.aws
    return EksClusterArgs(
        region=cluster.region, kubernetes_version=cluster.kubernetes_version, zones=list(cluster.zones),
        vpc_cidr=aws.vpc_cidr,
        nat_per_zone=aws.nat_per_zone if aws.nat_per_zone is not None else cfg.defaults.aws_nat_per_zone,
        public_access_cidrs=list(aws.public_access_cidrs), admin_role_arns=list(aws.admin_role_arns),
        deployer_role_arns=list(aws.deployer_role_arns), api_clients=api_clients,
        system_machine_type=aws.system_machine_type, system_min_size=aws.system_min_size,
        system_max_size=max(aws.system_max_size, aws.system_min_size), node_pools=node_pools(cluster),
        log_retention_days=aws.log_retention_days, deletion_protection=cfg.protect,
        tags={"cnplatform.io/tier": cfg.tier},
    )


def create(cfg: StackConfig, cluster: ClusterConfig, opts: Optional[pulumi.ResourceOptions],
           api_clients=()) -> EksCluster:
    eks = EksCluster(cluster.name, eks_args(cfg, cluster, api_clients), opts)
    karpenter = cfg.addons.karpenter
    for message in karpenter_warnings(cfg):
        pulumi.log.warn(f"[{cluster.name}] {message}")
    if karpenter.enabled:
        from cnplatform.cluster.karpenter import Karpenter, KarpenterArgs

        eks.karpenter = Karpenter(f"{cluster.name}-karpenter", KarpenterArgs(
            cluster_name=cluster.name, eks_cluster_name=eks.eks_cluster_name, region=cluster.region,
            account_id=eks.account_id, partition=eks.partition,
            cluster_endpoint=eks.endpoint, oidc_provider_arn=eks.oidc_provider_arn,
            oidc_issuer_url=eks.oidc_provider_url, system_node_selector={NODE_POOL_LABEL: SYSTEM_POOL},
            instance_categories=list(karpenter.instance_categories), capacity_types=list(karpenter.capacity_types),
            cpu_limit=karpenter.cpu_limit, memory_limit=karpenter.memory_limit,
            consolidation=karpenter.consolidation, ami_alias=karpenter.ami_alias,
            consolidate_after=karpenter.consolidate_after or cfg.defaults.karpenter_consolidate_after,
            disruption_budget=karpenter.disruption_budget or cfg.defaults.karpenter_disruption_budget,
        ), opts=pulumi.ResourceOptions(parent=eks, providers={"aws": eks.aws_provider, "kubernetes": eks.provider}))
    return eks


def grant_ci_access(eks: EksCluster, name: str, identities: dict[str, pulumi.Output[dict[str, str]]]) -> None:
    """An access entry on ``eks`` (cluster ``name``) for each CI identity that carries an IRSA role
    (its ServiceAccount's annotation), with that identity's EKS access policy (``IDENTITIES``: deploy
    cluster admin, preview view-only). The principal is the role's ARN Output: the entry waits for
    the role and the cluster."""
    from cnplatform.cicd.identity import AWS_ROLE_ANNOTATION, IDENTITIES

    for identity, sa_annotations in identities.items():
        eks.grant_access(f"{name}-jenkins-{identity}", sa_annotations.apply(lambda a: a[AWS_ROLE_ANNOTATION]),
                         IDENTITIES[identity]["eks_access_policy"])


def karpenter_warnings(cfg: StackConfig) -> list[str]:
    """Karpenter settings that deploy but should not in prod (printed with ``pulumi.log.warn``)."""
    karpenter = cfg.addons.karpenter
    if cfg.defaults.karpenter_pinned_ami and karpenter.enabled and karpenter.ami_alias.endswith("@latest"):
        return [f"addons.karpenter.ami_alias is {karpenter.ami_alias!r}: pin an AMI release in prod "
                "(al2023@vYYYYMMDD, one that has the cluster's Kubernetes minor), or every node rolls to "
                "each new AMI untested"]
    return []
