"""Karpenter on EKS: controller (IRSA), interruption queue + EventBridge rules, node role, NodePool/EC2NodeClass.

Node autoscaling is part of the cluster on both clouds: GKE's lives in the cluster resource
(``cluster_autoscaling``), EKS's is this component, created with the cluster by ``stacks.compose.clusters.aws``.
Imported only for AWS clusters (the dev path never loads ``pulumi_aws``).
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
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.cluster import iam
from cnplatform.manifests import custom_resource
from cnplatform.naming import MANAGED_BY, type_token

CHART = "oci://public.ecr.aws/karpenter/karpenter"
CHART_VERSION = "1.14.1"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
NODE_POOL_API = "karpenter.sh/v1"
NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_CLASS_NAME = "default"
NODE_POOL_NAME = "default"
#: The node role's AWS managed policies (as upstream's getting-started, minus SSM: no shell on nodes).
NODE_MANAGED_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly")
#: Controller requests/limits (it runs on the system node group, outside the workload capacity).
CONTROLLER_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


@dataclass
class KarpenterArgs:
    """Inputs of :class:`Karpenter`."""

    cluster_name: str
    """EKS cluster name (also the ``karpenter.sh/discovery`` tag value of subnets and security groups)."""
    eks_cluster_name: pulumi.Input[str]
    """The same name as an Output of the EKS cluster resource (``EksCluster.eks_cluster_name``): the
    resources that name the cluster to AWS (the nodes' access entry) take it, so they wait for the cluster."""
    region: str
    """AWS region of the cluster."""
    account_id: str
    """AWS account id."""
    cluster_endpoint: pulumi.Input[str]
    """API server URL."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider (IRSA)."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL."""
    partition: str = "aws"
    """AWS partition."""
    system_node_selector: dict[str, str] = field(default_factory=dict)
    """Node labels of the (tainted CriticalAddonsOnly) system node group the controller runs on."""
    chart_version: str = CHART_VERSION
    """Pinned Karpenter chart version."""
    replicas: int = 2
    """Controller replicas (spread over zones)."""
    instance_categories: list[str] = field(default_factory=lambda: ["c", "m", "r"])
    """EC2 instance categories the default NodePool may launch."""
    capacity_types: list[str] = field(default_factory=lambda: ["spot", "on-demand"])
    """Capacity types the default NodePool may launch."""
    cpu_limit: int = 200
    """Total vCPUs the default NodePool may provision."""
    memory_limit: str = "800Gi"
    """Total memory the default NodePool may provision."""
    consolidation: str = "WhenEmptyOrUnderutilized"
    """Consolidation policy of the default NodePool."""
    consolidate_after: str = "1m"
    """How long a node stays empty/underutilized before Karpenter consolidates it (tier default)."""
    disruption_budget: str = "10%"
    """Nodes Karpenter may disrupt at once (tier default)."""
    node_volume_gb: int = 50
    """Root volume of Karpenter nodes (GiB, encrypted gp3)."""
    ami_alias: str = "al2023@latest"
    """EC2NodeClass AMI alias (``<family>@latest`` or ``<family>@v<YYYYMMDD>``)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "cluster_name": _v.dns_label, "region": _v.aws_region, "account_id": _v.aws_account_id,
            "replicas": _v.in_range(1, 10), "instance_categories": _v.one_of(*INSTANCE_CATEGORIES),
            "capacity_types": _v.one_of("spot", "on-demand", "reserved"), "cpu_limit": _v.in_range(1),
            "memory_limit": _v.quantity, "consolidation": _v.one_of("WhenEmptyOrUnderutilized", "WhenEmpty"),
            "consolidate_after": _v.duration, "disruption_budget": _v.disruption_budget,
            "node_volume_gb": _v.in_range(20, 16384), "ami_alias": _v.ami_alias,
        })


#: EC2 instance categories (the letter families of ``karpenter.k8s.aws/instance-category``).
INSTANCE_CATEGORIES = ("a", "c", "d", "f", "g", "h", "i", "im", "inf", "is", "m", "p", "r", "t", "trn", "u",
                       "vt", "x", "z")


def node_role_name(cluster: str) -> str:
    return f"{cluster}-karpenter-node"


def queue_name(cluster: str) -> str:
    return f"{cluster}-karpenter"


def chart_values(args: KarpenterArgs, *, role_arn: pulumi.Input[str], queue: pulumi.Input[str]) -> dict:
    """Helm values of the controller (every key exists in the chart's values.yaml)."""
    return {
        "replicas": args.replicas,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT,
                           "annotations": {"eks.amazonaws.com/role-arn": role_arn}},
        "settings": {
            "clusterName": args.cluster_name,
            "clusterEndpoint": args.cluster_endpoint,
            "interruptionQueue": queue,
        },
        "nodeSelector": {"kubernetes.io/os": "linux", **args.system_node_selector},
        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}],
        "controller": {
            "resources": CONTROLLER_RESOURCES,
            # Pods cannot reach IMDS (hop limit 1), so the region comes from the environment.
            "env": [{"name": "AWS_REGION", "value": args.region}],
        },
        "logLevel": "info",
    }


def ec2_node_class(args: KarpenterArgs, role: pulumi.Input[str]) -> dict:
    """``EC2NodeClass`` (karpenter.k8s.aws/v1): subnets and security groups discovered by tag."""
    discovery = [{"tags": {"karpenter.sh/discovery": args.cluster_name}}]
    return {
        "apiVersion": NODE_CLASS_API, "kind": "EC2NodeClass",
        "metadata": {"name": NODE_CLASS_NAME, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": {
            "role": role,
            "amiSelectorTerms": [{"alias": args.ami_alias}],
            "subnetSelectorTerms": discovery,
            "securityGroupSelectorTerms": discovery,
            "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                "httpPutResponseHopLimit": 1, "httpTokens": "required"},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                "volumeSize": f"{args.node_volume_gb}Gi", "volumeType": "gp3", "encrypted": True,
                "deleteOnTermination": True}}],
            "tags": {"cnplatform.io/cluster": args.cluster_name, "app.kubernetes.io/managed-by": MANAGED_BY},
        },
    }


def node_pool(args: KarpenterArgs) -> dict:
    """``NodePool`` (karpenter.sh/v1) from config: categories, capacity types, limits, consolidation."""
    return {
        "apiVersion": NODE_POOL_API, "kind": "NodePool",
        "metadata": {"name": NODE_POOL_NAME, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": {
            "template": {
                "metadata": {"labels": {"cnplatform.io/node-pool": "karpenter"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": NODE_CLASS_NAME},
                    "requirements": [
                        {"key": "karpenter.k8s.aws/instance-category", "operator": "In",
                         "values": list(args.instance_categories)},
                        {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["4"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(args.capacity_types)},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    ],
                    "expireAfter": "720h",
                },
            },
            "limits": {"cpu": str(args.cpu_limit), "memory": args.memory_limit},
            "disruption": {"consolidationPolicy": args.consolidation, "consolidateAfter": args.consolidate_after,
                           "budgets": [{"nodes": args.disruption_budget}]},
        },
    }


class Karpenter(pulumi.ComponentResource):
    """Karpenter for one EKS cluster. Give it ``providers={"aws": ..., "kubernetes": ...}`` in ``opts``."""

    controller_role_arn: pulumi.Output[str]
    """IRSA role of the controller."""
    node_role_name: pulumi.Output[str]
    """IAM role of Karpenter-launched nodes (referenced by the EC2NodeClass)."""
    node_role_arn: pulumi.Output[str]
    """ARN of that role."""
    queue_url: pulumi.Output[str]
    """Interruption queue URL."""
    queue_arn: pulumi.Output[str]
    """Interruption queue ARN."""

    chart: k8s.helm.v4.Chart

    def __init__(self, name: str, args: KarpenterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "Karpenter"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        c, region = args.cluster_name, args.region

        # ------------------------------------------------------------------------- node role
        node_role = aws.iam.Role(f"{name}-node", name=node_role_name(c),
                                 assume_role_policy=iam.to_json(iam.service_trust_policy("ec2.amazonaws.com")),
                                 opts=child)
        for policy in NODE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(f"{name}-node-{policy}", role=node_role.name,
                                         policy_arn=iam.managed_policy_arn(policy, args.partition), opts=child)
        # Nodes Karpenter launches join the cluster through this access entry (instance profiles: Karpenter).
        node_entry = aws.eks.AccessEntry(f"{name}-node", cluster_name=args.eks_cluster_name,
                                         principal_arn=node_role.arn,
                                         type="EC2_LINUX", region=region, opts=child)

        # ------------------------------------------------------------- interruption handling
        queue = aws.sqs.Queue(f"{name}-queue", name=queue_name(c), message_retention_seconds=300,
                              sqs_managed_sse_enabled=True, region=region, opts=child)
        aws.sqs.QueuePolicy(f"{name}-queue-policy", queue_url=queue.url, region=region,
                            policy=queue.arn.apply(lambda arn: iam.to_json(iam.interruption_queue_policy(arn))),
                            opts=child)
        for rule_name, pattern in iam.INTERRUPTION_EVENT_PATTERNS.items():
            rule = aws.cloudwatch.EventRule(f"{name}-{rule_name}", name=f"{c}-karpenter-{rule_name}",
                                            description=f"Karpenter {c}: {pattern['detail-type'][0]}",
                                            event_pattern=json.dumps(pattern, sort_keys=True), region=region,
                                            opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{rule_name}", rule=rule.name, arn=queue.arn,
                                       target_id="KarpenterInterruptionQueueTarget", region=region, opts=child)

        # ------------------------------------------------------------------- controller role
        controller_role = aws.iam.Role(
            f"{name}-controller", name=f"{c}-karpenter-controller",
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer_url).apply(
                lambda a: iam.to_json(iam.irsa_trust_policy(a[0], a[1], NAMESPACE, SERVICE_ACCOUNT))),
            opts=child)
        documents = pulumi.Output.all(node_role.arn, queue.arn).apply(lambda a: iam.karpenter_controller_policies(
            partition=args.partition, region=region, account_id=args.account_id, cluster_name=c,
            node_role_arn=a[0], queue_arn=a[1]))
        attachments = []
        for suffix in ("node-lifecycle", "iam-integration", "eks-integration", "interruption", "resource-discovery"):
            policy = aws.iam.Policy(f"{name}-{suffix}", name=f"{c}-karpenter-{suffix}",
                                    description=f"Karpenter controller of {c}: {suffix}",
                                    policy=documents.apply(lambda d, s=suffix: iam.to_json(d[s])), opts=child)
            attachments.append(aws.iam.RolePolicyAttachment(f"{name}-{suffix}", role=controller_role.name,
                                                            policy_arn=policy.arn, opts=child))

        # ------------------------------------------------------------------- chart, CRs
        # The cluster's Kubernetes provider depends on its node groups, so the chart waits for them too.
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart", name="karpenter", chart=CHART, version=args.chart_version, namespace=NAMESPACE,
            values=chart_values(args, role_arn=controller_role.arn, queue=queue.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attachments, node_entry]))
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[self.chart])
        custom_resource(f"{name}-nodeclass", ec2_node_class(args, node_role.name), after_chart)
        custom_resource(f"{name}-nodepool", node_pool(args), after_chart)

        self.controller_role_arn = controller_role.arn
        self.node_role_name = node_role.name
        self.node_role_arn = node_role.arn
        self.queue_url = queue.url
        self.queue_arn = queue.arn
        self.register_outputs({
            "controller_role_arn": self.controller_role_arn, "node_role_name": self.node_role_name,
            "node_role_arn": self.node_role_arn, "queue_url": self.queue_url, "queue_arn": self.queue_arn,
        })

