"""What Karpenter on an EKS cluster is made of, as plain data: :class:`KarpenterArgs`, the pins, the
controller's chart values, the ``EC2NodeClass`` and ``NodePool``, the names of its AWS resources.

No cloud SDK here: the args validate (and tests call the builders) without ``pulumi_aws``;
:mod:`cnplatform.cluster.karpenter` wires the resources.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from cnplatform import validation as _v
from cnplatform.naming import MANAGED_BY

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


#: The controller's IAM policies, one per concern (``iam.karpenter_controller_policies`` keys).
CONTROLLER_POLICIES = ("node-lifecycle", "iam-integration", "eks-integration", "interruption", "resource-discovery")


def controller_role_name(cluster: str) -> str:
    return f"{cluster}-karpenter-controller"


def controller_policy_name(cluster: str, concern: str) -> str:
    return f"{cluster}-karpenter-{concern}"


def event_rule_name(cluster: str, rule: str) -> str:
    return f"{cluster}-karpenter-{rule}"
