"""Karpenter on EKS: controller (IRSA), interruption queue + EventBridge rules, node role, NodePool/EC2NodeClass.

Node autoscaling is part of the cluster on both clouds: GKE's lives in the cluster resource
(``cluster_autoscaling``), EKS's is this component, created with the cluster by ``stacks.compose.clusters.aws``.
Imported only for AWS clusters (the dev path never loads ``pulumi_aws``). The args and the pure builders
are in :mod:`cnplatform.cluster.karpenter_spec`.
"""
from __future__ import annotations

import json
from functools import partial
from typing import Optional

import pulumi

from cnplatform.extras import missing_extra

try:
    import pulumi_aws as aws
except ModuleNotFoundError as exc:
    raise missing_extra(exc, __name__) from None
import pulumi_kubernetes as k8s  # noqa: E402

from cnplatform.cluster import iam  # noqa: E402
from cnplatform.cluster.karpenter_spec import (  # noqa: E402, F401  (re-exported)
    CHART,
    CHART_VERSION,
    CONTROLLER_POLICIES,
    CONTROLLER_RESOURCES,
    INSTANCE_CATEGORIES,
    NAMESPACE,
    NODE_CLASS_API,
    NODE_CLASS_NAME,
    NODE_MANAGED_POLICIES,
    NODE_POOL_API,
    NODE_POOL_NAME,
    SERVICE_ACCOUNT,
    KarpenterArgs,
    chart_values,
    controller_policy_name,
    controller_role_name,
    ec2_node_class,
    event_rule_name,
    node_pool,
    node_role_name,
    queue_name,
)
from cnplatform.manifests import custom_resource  # noqa: E402
from cnplatform.naming import type_token  # noqa: E402


def _policy_json(suffix: str, documents: dict[str, dict]) -> str:
    """One concern's document of :func:`iam.karpenter_controller_policies`, as canonical JSON."""
    return iam.to_json(documents[suffix])


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
        self._child = pulumi.ResourceOptions(parent=self)
        node_role, node_entry = self._node_role(name, args)
        queue = self._interruption_queue(name, args)
        controller_role, attachments = self._controller_role(name, args, node_role, queue)
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

    def _node_role(self, name: str, args: KarpenterArgs) -> tuple[aws.iam.Role, aws.eks.AccessEntry]:
        """The role of the nodes Karpenter launches, and the access entry they join the cluster by."""
        child = self._child
        node_role = aws.iam.Role(f"{name}-node", name=node_role_name(args.cluster_name),
                                 assume_role_policy=iam.to_json(iam.service_trust_policy("ec2.amazonaws.com")),
                                 opts=child)
        for policy in NODE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(f"{name}-node-{policy}", role=node_role.name,
                                         policy_arn=iam.managed_policy_arn(policy, args.partition), opts=child)
        # Nodes Karpenter launches join the cluster through this access entry (instance profiles: Karpenter).
        node_entry = aws.eks.AccessEntry(f"{name}-node", cluster_name=args.eks_cluster_name,
                                         principal_arn=node_role.arn,
                                         type="EC2_LINUX", region=args.region, opts=child)
        return node_role, node_entry

    def _interruption_queue(self, name: str, args: KarpenterArgs) -> aws.sqs.Queue:
        """The SQS queue EventBridge sends spot interruptions, rebalances and state changes to."""
        c, region, child = args.cluster_name, args.region, self._child
        queue = aws.sqs.Queue(f"{name}-queue", name=queue_name(c), message_retention_seconds=300,
                              sqs_managed_sse_enabled=True, region=region, opts=child)
        aws.sqs.QueuePolicy(f"{name}-queue-policy", queue_url=queue.url, region=region,
                            policy=queue.arn.apply(lambda arn: iam.to_json(iam.interruption_queue_policy(arn))),
                            opts=child)
        for rule_name, pattern in iam.INTERRUPTION_EVENT_PATTERNS.items():
            rule = aws.cloudwatch.EventRule(f"{name}-{rule_name}", name=event_rule_name(c, rule_name),
                                            description=f"Karpenter {c}: {pattern['detail-type'][0]}",
                                            event_pattern=json.dumps(pattern, sort_keys=True), region=region,
                                            opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{rule_name}", rule=rule.name, arn=queue.arn,
                                       target_id="KarpenterInterruptionQueueTarget", region=region, opts=child)
        return queue

    def _controller_role(self, name: str, args: KarpenterArgs, node_role: aws.iam.Role,
                         queue: aws.sqs.Queue) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """The controller's IRSA role with one policy per concern (:data:`CONTROLLER_POLICIES`)."""
        c, child = args.cluster_name, self._child
        controller_role = aws.iam.Role(
            f"{name}-controller", name=controller_role_name(c),
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer_url).apply(
                lambda a: iam.to_json(iam.irsa_trust_policy(a[0], a[1], NAMESPACE, SERVICE_ACCOUNT))),
            opts=child)
        documents = pulumi.Output.all(node_role.arn, queue.arn).apply(lambda a: iam.karpenter_controller_policies(
            partition=args.partition, region=args.region, account_id=args.account_id, cluster_name=c,
            node_role_arn=a[0], queue_arn=a[1]))
        attachments = []
        for suffix in CONTROLLER_POLICIES:
            policy = aws.iam.Policy(f"{name}-{suffix}", name=controller_policy_name(c, suffix),
                                    description=f"Karpenter controller of {c}: {suffix}",
                                    policy=documents.apply(partial(_policy_json, suffix)), opts=child)
            attachments.append(aws.iam.RolePolicyAttachment(f"{name}-{suffix}", role=controller_role.name,
                                                            policy_arn=policy.arn, opts=child))
        return controller_role, attachments
