"""Pure builders of every AWS IAM policy document the cluster components create.

Each function returns a plain ``dict`` (the policy document); components ``json.dumps`` it into the
``policy`` / ``assumeRolePolicy`` input, so the offline render writes it to ``iam/<name>.iam.json``
and the tests lint it with parliament. Least privilege: no ``"Action": "*"``; ``"Resource": "*"``
only for actions AWS does not scope to resources (``ec2:Describe*``, ``pricing:GetProducts``), and
then narrowed by a condition. Nothing here imports ``pulumi_aws``.
"""
from __future__ import annotations

import json
from typing import Any

VERSION = "2012-10-17"
#: Audience of the projected service account tokens EKS issues for IRSA.
STS_AUDIENCE = "sts.amazonaws.com"

#: AWS managed policies the cluster attaches (least-privileged AWS-maintained ones).
CLUSTER_MANAGED_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_MANAGED_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly")
EBS_CSI_MANAGED_POLICY = "AmazonEBSCSIDriverPolicy"
#: EKS access policy granting cluster-admin to an access entry.
EKS_CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"


def document(*statements: dict, policy_id: str | None = None) -> dict:
    doc: dict[str, Any] = {"Version": VERSION, "Statement": list(statements)}
    if policy_id:
        doc["Id"] = policy_id
    return doc


def to_json(doc: dict) -> str:
    """Canonical JSON (sorted keys): the same document always renders to the same string."""
    return json.dumps(doc, sort_keys=True)


def managed_policy_arn(name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def eks_access_policy_arn(name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:eks::aws:cluster-access-policy/{name}"


def issuer_host_path(issuer_url: str) -> str:
    """``https://oidc.eks.<region>.amazonaws.com/id/<ID>`` -> ``oidc.eks.<region>.amazonaws.com/id/<ID>``."""
    return issuer_url.removeprefix("https://").rstrip("/")


# ----------------------------------------------------------------------------------- trust policies


def service_trust_policy(service: str) -> dict:
    """Trust policy letting one AWS service principal (e.g. ``eks.amazonaws.com``) assume the role."""
    return document({
        "Sid": "AllowServiceAssumeRole",
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    })


def irsa_trust_policy(oidc_provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> dict:
    """IRSA trust policy: only ``system:serviceaccount:<namespace>:<service_account>`` of this cluster's
    OIDC issuer, with the STS audience, may assume the role."""
    issuer = issuer_host_path(issuer_url)
    return document({
        "Sid": "AllowServiceAccountAssumeRoleWithWebIdentity",
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{issuer}:aud": STS_AUDIENCE,
        }},
    })


# ----------------------------------------------------------------------------- permission policies


def eks_secrets_encryption_policy(kms_key_arn: str) -> dict:
    """What the EKS cluster role needs on the envelope-encryption key of Secrets (that key only)."""
    return document({
        "Sid": "AllowSecretsEnvelopeEncryption",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"],
        "Resource": kms_key_arn,
    })


def karpenter_controller_policies(*, partition: str, region: str, account_id: str, cluster_name: str,
                                  node_role_arn: str, queue_arn: str) -> dict[str, dict]:
    """The Karpenter 1.x controller permissions, split like the upstream CloudFormation template
    (``KarpenterController{NodeLifecycle,IAMIntegration,EKSIntegration,Interruption,ResourceDiscovery}Policy``):
    EC2 writes scoped to this region and to resources tagged for this cluster, ``iam:PassRole`` only for
    the Karpenter node role, the interruption queue only. Returns ``{suffix: document}``."""
    ec2 = f"arn:{partition}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    request_owned = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
    }
    tagged_kinds = ["fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request"]
    instance_profiles = f"arn:{partition}:iam::{account_id}:instance-profile/*"
    node_lifecycle = document(
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Effect": "Allow",
            "Resource": [f"{ec2}::image/*", f"{ec2}::snapshot/*", f"{ec2}:*:security-group/*",
                         f"{ec2}:*:subnet/*", f"{ec2}:*:capacity-reservation/*"],
            "Action": ["ec2:CreateFleet", "ec2:RunInstances"],
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:launch-template/*",
            "Action": ["ec2:CreateFleet", "ec2:RunInstances"],
            "Condition": {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Resource": [f"{ec2}:*:{kind}/*" for kind in tagged_kinds],
            "Action": ["ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:RunInstances"],
            "Condition": {"StringEquals": request_owned,
                          "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}},
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Resource": [f"{ec2}:*:{kind}/*" for kind in tagged_kinds],
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {**request_owned,
                                 "ec2:CreateAction": ["CreateFleet", "CreateLaunchTemplate", "RunInstances"]},
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:instance/*",
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]},
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Effect": "Allow",
            "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "Action": ["ec2:DeleteLaunchTemplate", "ec2:TerminateInstances"],
            "Condition": {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
        },
    )
    profile_request_tags = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
        "aws:RequestTag/topology.kubernetes.io/region": region,
    }
    profile_resource_tags = {
        f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:ResourceTag/topology.kubernetes.io/region": region,
    }
    iam_integration = document(
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Resource": node_role_arn,
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "AllowScopedInstanceProfileCreationActions",
            "Effect": "Allow",
            "Resource": instance_profiles,
            "Action": "iam:CreateInstanceProfile",
            "Condition": {"StringEquals": profile_request_tags,
                          "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}},
        },
        {
            "Sid": "AllowScopedInstanceProfileTagActions",
            "Effect": "Allow",
            "Resource": instance_profiles,
            "Action": "iam:TagInstanceProfile",
            "Condition": {
                "StringEquals": {**profile_resource_tags, **profile_request_tags},
                "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                               "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileActions",
            "Effect": "Allow",
            "Resource": instance_profiles,
            "Action": ["iam:AddRoleToInstanceProfile", "iam:DeleteInstanceProfile",
                       "iam:RemoveRoleFromInstanceProfile"],
            "Condition": {"StringEquals": profile_resource_tags,
                          "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}},
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Resource": instance_profiles,
            "Action": "iam:GetInstanceProfile",
        },
        {
            # iam:ListInstanceProfiles has no resource-level permission ("*" is its only valid Resource).
            "Sid": "AllowUnscopedInstanceProfileListAction",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "iam:ListInstanceProfiles",
        },
    )
    eks_integration = document({
        "Sid": "AllowAPIServerEndpointDiscovery",
        "Effect": "Allow",
        "Resource": f"arn:{partition}:eks:{region}:{account_id}:cluster/{cluster_name}",
        "Action": "eks:DescribeCluster",
    })
    interruption = document({
        "Sid": "AllowInterruptionQueueActions",
        "Effect": "Allow",
        "Resource": queue_arn,
        "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
    })
    resource_discovery = document(
        {
            # EC2 Describe* and pricing:GetProducts have no resource-level permissions: "*" is the only
            # valid Resource; the region condition keeps the describes to this cluster's region.
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": ["ec2:DescribeAvailabilityZones", "ec2:DescribeCapacityReservations", "ec2:DescribeImages",
                       "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
                       "ec2:DescribeLaunchTemplates", "ec2:DescribeSecurityGroups", "ec2:DescribeSpotPriceHistory",
                       "ec2:DescribeSubnets"],
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            # Public parameters (EKS AMI ids) have an empty account field; "*" matches it.
            "Resource": f"arn:{partition}:ssm:{region}:*:parameter/aws/service/*",
            "Action": "ssm:GetParameter",
        },
        {
            "Sid": "AllowPricingReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "pricing:GetProducts",
        },
    )
    return {
        "node-lifecycle": node_lifecycle,
        "iam-integration": iam_integration,
        "eks-integration": eks_integration,
        "interruption": interruption,
        "resource-discovery": resource_discovery,
    }


def interruption_queue_policy(queue_arn: str) -> dict:
    """Resource policy of Karpenter's interruption queue: EventBridge (and SQS) may send; TLS only."""
    return document(
        {
            "Sid": "AllowEventBridgeToSend",
            "Effect": "Allow",
            "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
        },
        {
            "Sid": "DenyHTTP",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": queue_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        policy_id="EC2InterruptionPolicy",
    )


#: EventBridge rules feeding Karpenter's interruption queue: {rule suffix: event pattern}.
INTERRUPTION_EVENT_PATTERNS: dict[str, dict] = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
}


def wildcard_problems(doc: dict) -> list[str]:
    """Statements granting ``Action: *`` (or ``<service>:*``) or ``Resource: *`` without a condition.

    ``Resource: *`` is accepted only for the actions listed in :data:`RESOURCE_STAR_ONLY` (AWS offers no
    resource-level permission for them). A ``Deny`` statement may use wildcards (it narrows access).
    """
    problems = []
    for i, st in enumerate(doc.get("Statement", [])):
        if st.get("Effect") != "Allow":
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(a == "*" or a.endswith(":*") for a in actions):
            problems.append(f"statement {i} ({st.get('Sid')}): wildcard action")
        if "*" in resources:
            unscoped = [a for a in actions if a not in RESOURCE_STAR_ONLY]
            if unscoped:
                problems.append(f"statement {i} ({st.get('Sid')}): Resource * for scopable actions {unscoped}")
    return problems


#: Actions without resource-level permissions (the IAM service authorization reference lists no
#: resource type for them): ``Resource: "*"`` is the only valid value.
RESOURCE_STAR_ONLY = frozenset({
    "ec2:DescribeAvailabilityZones", "ec2:DescribeCapacityReservations", "ec2:DescribeImages",
    "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplates", "ec2:DescribeSecurityGroups", "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets", "pricing:GetProducts", "iam:ListInstanceProfiles",
})
