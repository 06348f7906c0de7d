"""Karpenter on EKS (issue #11 part 2): the pinned chart on the system node group, its IRSA role and
least-privilege controller policies, the node role + access entry, the SQS interruption queue with its
EventBridge rules, and NodePool / EC2NodeClass from config, valid against the pinned v1.14.1 CRDs.
"""
import json

import pytest

from cnplatform.cluster import iam
from cnplatform.cluster import karpenter as kp
from cnplatform.testing import unwrap
from stacks.render import manifest_of
from tests.helpers import capture_stack, config_of
from tests.reference_checks import chart_version, unknown_values_keys, validate_custom_resource
from tests.test_cloud_clusters import EKS, run_cluster, stack_raw

CLUSTER = "prod-eks"


@pytest.fixture(scope="module")
def prod():
    return capture_stack("prod")


def karpenter_regs(cap, type_: str):
    return [r for r in cap.by_type(type_) if "Karpenter" in r.urn.split("::")[2]]


def chart_of(cap):
    (chart,) = [r for r in cap.by_type("kubernetes:helm.sh/v4:Chart") if unwrap(r.inputs).get("name") == "karpenter"]
    return chart


def custom_resources(cap, kind: str):
    return [r for r in cap.resources if r.type.endswith(f":{kind}") and r.type.startswith("kubernetes:karpenter")]


def sample_args(**kw) -> kp.KarpenterArgs:
    return kp.KarpenterArgs(cluster_name="c1", eks_cluster_name="c1", region="eu-west-1", account_id="123456789012",
                            cluster_endpoint="https://X.gr7.eu-west-1.eks.amazonaws.com",
                            oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/x",
                            oidc_issuer_url="https://x", system_node_selector={"cnplatform.io/node-pool": "system"},
                            **kw)


# ------------------------------------------------------------------------------------------ chart


def test_chart_pinned_to_the_reference_version(prod):
    chart = unwrap(chart_of(prod).inputs)
    assert chart["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert chart["version"] == "1.14.1" == kp.CHART_VERSION == chart_version("karpenter")
    assert chart["namespace"] == "kube-system" and chart["name"] == "karpenter"


def test_values_keys_exist_in_the_chart():
    values = kp.chart_values(sample_args(), role_arn="arn:aws:iam::1:role/r", queue="q")
    assert unknown_values_keys("karpenter", values) == []


def test_rendered_values(prod):
    values = unwrap(chart_of(prod).inputs)["values"]
    assert unknown_values_keys("karpenter", values) == []
    controller_role = next(r for r in prod.by_type("aws:iam/role:Role") if r.name == f"{CLUSTER}-karpenter-controller")
    queue = next(r for r in karpenter_regs(prod, "aws:sqs/queue:Queue"))
    assert values["serviceAccount"] == {"create": True, "name": "karpenter", "annotations": {
        "eks.amazonaws.com/role-arn": controller_role.outputs["arn"]}}
    assert values["settings"]["clusterName"] == CLUSTER
    assert values["settings"]["interruptionQueue"] == queue.outputs["name"] == f"{CLUSTER}-karpenter"
    assert values["settings"]["clusterEndpoint"] == prod.outputs["clusters"][CLUSTER]["endpoint"]
    # On the tainted system node group, never on nodes it provisions itself.
    assert values["nodeSelector"] == {"kubernetes.io/os": "linux", "cnplatform.io/node-pool": "system"}
    assert {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    system = next(r for r in prod.by_type("aws:eks/nodeGroup:NodeGroup") if r.name == f"{CLUSTER}-system")
    assert system.inputs["labels"]["cnplatform.io/node-pool"] == "system"
    assert system.inputs["taints"][0]["key"] == "CriticalAddonsOnly"
    assert values["replicas"] == 2 and system.inputs["scalingConfig"]["minSize"] >= 2
    assert values["controller"]["env"] == [{"name": "AWS_REGION", "value": "us-east-1"}]
    assert values["controller"]["resources"]["requests"] and values["controller"]["resources"]["limits"]


# ------------------------------------------------------------------------------------- node config


def test_node_pool_and_node_class_from_config(prod):
    (pool,) = [manifest_of(r) for r in custom_resources(prod, "NodePool")]
    (node_class,) = [manifest_of(r) for r in custom_resources(prod, "EC2NodeClass")]
    cfg = prod.config.addons.karpenter
    assert pool["apiVersion"] == "karpenter.sh/v1" and node_class["apiVersion"] == "karpenter.k8s.aws/v1"
    reqs = {r["key"]: r for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs["karpenter.k8s.aws/instance-category"]["values"] == cfg.instance_categories
    assert reqs["karpenter.sh/capacity-type"]["values"] == cfg.capacity_types
    assert pool["spec"]["limits"] == {"cpu": str(cfg.cpu_limit), "memory": cfg.memory_limit}
    assert pool["spec"]["disruption"]["consolidationPolicy"] == cfg.consolidation
    assert pool["spec"]["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class["metadata"]["name"]}
    spec = node_class["spec"]
    assert spec["role"] == f"{CLUSTER}-karpenter-node"
    assert spec["amiSelectorTerms"] == [{"alias": cfg.ami_alias}] and cfg.ami_alias != "al2023@latest"
    discovery = [{"tags": {"karpenter.sh/discovery": CLUSTER}}]
    assert spec["subnetSelectorTerms"] == discovery and spec["securityGroupSelectorTerms"] == discovery
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["blockDeviceMappings"][0]["ebs"]["encrypted"] is True


def test_custom_resources_validate_against_the_pinned_crds(prod):
    docs = [manifest_of(r) for kind in ("NodePool", "EC2NodeClass") for r in custom_resources(prod, kind)]
    docs += [kp.node_pool(sample_args(capacity_types=["on-demand"], consolidation="WhenEmpty")),
             kp.ec2_node_class(sample_args(), "role-name")]
    assert len(docs) == 4
    for doc in docs:
        assert validate_custom_resource(doc) == [], doc["kind"]


def test_discovery_tags_select_private_subnets_and_node_security_groups(prod):
    eks_regs = [r for r in prod.resources if "EksCluster" in r.urn]
    tagged_subnets = [r for r in eks_regs if r.type == "aws:ec2/subnet:Subnet"
                      and r.inputs["tags"].get("karpenter.sh/discovery") == CLUSTER]
    assert len(tagged_subnets) == 3 and all("internal-elb" in str(r.inputs["tags"]) for r in tagged_subnets)
    node_sg = next(r for r in eks_regs
                   if r.type == "aws:ec2/securityGroup:SecurityGroup" and r.name == f"{CLUSTER}-nodes")
    assert node_sg.inputs["tags"]["karpenter.sh/discovery"] == CLUSTER
    (tag,) = [unwrap(r.inputs) for r in eks_regs if r.type == "aws:ec2/tag:Tag"]
    assert tag["key"] == "karpenter.sh/discovery" and tag["value"] == CLUSTER and tag["resourceId"].startswith("sg-")


def test_custom_resources_depend_on_the_chart_and_use_the_cluster_provider(prod):
    chart = chart_of(prod)
    provider = next(r for r in prod.by_type("pulumi:providers:kubernetes") if r.name == f"{CLUSTER}-k8s")
    for r in [chart, *custom_resources(prod, "NodePool"), *custom_resources(prod, "EC2NodeClass")]:
        assert r.provider_urn == provider.urn
        assert prod.cluster_of(r) == CLUSTER
    for r in [*custom_resources(prod, "NodePool"), *custom_resources(prod, "EC2NodeClass")]:
        assert chart.urn in r.depends_on


# --------------------------------------------------------------------------------------------- IAM


def test_controller_irsa_role_and_policies(prod):
    role = next(r for r in prod.by_type("aws:iam/role:Role") if r.name == f"{CLUSTER}-karpenter-controller")
    (st,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    oidc = next(r for r in prod.by_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider"))
    assert st["Principal"] == {"Federated": oidc.outputs["arn"]}
    issuer = iam.issuer_host_path(unwrap(oidc.inputs)["url"])
    assert st["Condition"]["StringEquals"] == {f"{issuer}:sub": "system:serviceaccount:kube-system:karpenter",
                                               f"{issuer}:aud": "sts.amazonaws.com"}
    policies = {r.name: r for r in karpenter_regs(prod, "aws:iam/policy:Policy")}
    assert set(policies) == {f"{CLUSTER}-karpenter-{s}" for s in ("node-lifecycle", "iam-integration",
                                                                    "eks-integration", "interruption",
                                                                    "resource-discovery")}
    attached = {r.inputs["policyArn"] for r in karpenter_regs(prod, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r.inputs["role"] == role.outputs["name"]}
    assert attached == {p.outputs["arn"] for p in policies.values()}
    node_role = next(r for r in prod.by_type("aws:iam/role:Role") if r.name == f"{CLUSTER}-karpenter-node")
    integration = json.loads(policies[f"{CLUSTER}-karpenter-iam-integration"].inputs["policy"])
    pass_role = next(s for s in integration["Statement"] if s["Action"] == "iam:PassRole")
    assert pass_role["Resource"] == node_role.outputs["arn"]
    queue = next(r for r in karpenter_regs(prod, "aws:sqs/queue:Queue"))
    interruption = json.loads(policies[f"{CLUSTER}-karpenter-interruption"].inputs["policy"])
    assert interruption["Statement"][0]["Resource"] == queue.outputs["arn"]


def test_node_role_instance_profile_left_to_karpenter_and_access_entry(prod):
    node_role = next(r for r in prod.by_type("aws:iam/role:Role") if r.name == f"{CLUSTER}-karpenter-node")
    (st,) = json.loads(node_role.inputs["assumeRolePolicy"])["Statement"]
    assert st["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = sorted(r.inputs["policyArn"].rsplit("/", 1)[1]
                      for r in karpenter_regs(prod, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                      if r.inputs["role"] == node_role.outputs["name"])
    assert attached == sorted(kp.NODE_MANAGED_POLICIES)
    assert not prod.by_type("aws:iam/instanceProfile:InstanceProfile"), "Karpenter manages instance profiles"
    (entry,) = [unwrap(r.inputs) for r in karpenter_regs(prod, "aws:eks/accessEntry:AccessEntry")]
    assert entry == {**entry, "type": "EC2_LINUX", "principalArn": node_role.outputs["arn"], "clusterName": CLUSTER}


# ----------------------------------------------------------------------------------- interruption


def test_interruption_queue_policy_and_rules(prod):
    (queue,) = karpenter_regs(prod, "aws:sqs/queue:Queue")
    assert queue.inputs["sqsManagedSseEnabled"] is True and queue.inputs["messageRetentionSeconds"] == 300
    (policy,) = karpenter_regs(prod, "aws:sqs/queuePolicy:QueuePolicy")
    assert policy.inputs["queueUrl"] == queue.outputs["url"]
    doc = json.loads(policy.inputs["policy"])
    allow = next(s for s in doc["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert allow["Action"] == "sqs:SendMessage" and allow["Resource"] == queue.outputs["arn"]
    deny = next(s for s in doc["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = {r.name: json.loads(r.inputs["eventPattern"])
             for r in karpenter_regs(prod, "aws:cloudwatch/eventRule:EventRule")}
    detail_types = sorted(p["detail-type"][0] for p in rules.values())
    assert detail_types == ["AWS Health Event", "EC2 Instance Rebalance Recommendation",
                            "EC2 Instance State-change Notification", "EC2 Spot Instance Interruption Warning"]
    targets = karpenter_regs(prod, "aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 4 and all(t.inputs["arn"] == queue.outputs["arn"] for t in targets)
    rule_names = {r.outputs["name"] for r in karpenter_regs(prod, "aws:cloudwatch/eventRule:EventRule")}
    assert {t.inputs["rule"] for t in targets} == rule_names


# --------------------------------------------------------------------------------------- toggles


def test_karpenter_config_flows_through_and_can_be_disabled():
    custom = {"enabled": True, "instance_categories": ["m"], "capacity_types": ["on-demand"], "cpu_limit": 16,
              "memory_limit": "64Gi", "consolidation": "WhenEmpty"}
    raw = stack_raw("staging", EKS, addons={"karpenter": custom, "metrics_server": False,
                                            "cert_manager": {"enabled": False}})
    cap, _, cluster = run_cluster(raw)
    (pool,) = [manifest_of(r) for r in custom_resources(cap, "NodePool")]
    reqs = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs["karpenter.k8s.aws/instance-category"] == ["m"]
    assert reqs["karpenter.sh/capacity-type"] == ["on-demand"]
    assert pool["spec"]["limits"] == {"cpu": "16", "memory": "64Gi"}
    assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert cluster.karpenter is not None
    # Disabled (stack_raw's default): no Karpenter resource at all.
    cap, _, cluster = run_cluster(stack_raw("staging", EKS))
    assert cluster.karpenter is None
    assert not [r for r in cap.resources if "karpenter" in r.name.lower()]


def test_no_karpenter_on_gke():
    cap = capture_stack("staging")
    assert not [r for r in cap.resources if "karpenter" in r.type.lower() or "karpenter" in r.name.lower()]
    auto = unwrap(next(r for r in cap.by_type("gcp:container/cluster:Cluster")).inputs)["clusterAutoscaling"]
    assert auto["autoscalingProfile"] == cap.config.clusters[0].gcp.autoscaling_profile


def test_karpenter_limits_count_as_cluster_capacity():
    from cnplatform.cluster.capacity import karpenter_capacity
    from stacks.checks.footprint import cluster_capacity

    cap = karpenter_capacity(200, "800Gi")
    assert cap.cpu_millicores == 200_000 and cap.memory_mib == 800 * 1024
    cfg = config_of("prod")
    eks = next(c for c in cfg.clusters if c.cloud == "aws")
    with_karpenter = cluster_capacity(eks, cfg)
    without = cluster_capacity(eks)
    assert with_karpenter.cpu_millicores - without.cpu_millicores == cfg.addons.karpenter.cpu_limit * 1000
