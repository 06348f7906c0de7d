"""The CrossGuard pack (policy/): good renders pass, crafted bad resources are caught.

Three levels: the pure checks, the real ``pulumi_policy`` objects the pack serves (fed the render's
resources as the engine would), and the pack process itself over gRPC (as ``pulumi preview
--policy-pack policy/`` runs it).
"""
import copy
import json
import subprocess
import sys

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import cnplatform_policy as P
from tests.helpers import ROOT, STACKS

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


# ------------------------------------------------------------------------------------ fixtures


def pod(**container_overrides):
    container = {
        "name": "app", "image": "app@sha256:" + "0" * 64,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                            "privileged": False},
        "env": [{"name": "PORT", "value": "8080"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
    }
    container.update(container_overrides)
    return {"securityContext": {"runAsNonRoot": True}, "containers": [container]}


def deployment(name="app", ns="shop", replicas=3, labels=None, **container_overrides):
    labels = labels or {"app.kubernetes.io/name": name, "version": "stable"}
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod(**container_overrides)}}}


def pdb(selector, ns="shop", name="app"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"maxUnavailable": 1, "selector": selector}}


def urn(stack, type_, name):
    return f"urn:pulumi:{stack}::proj::{type_}::{name}"


def plan_of(rendered, stack):
    return json.loads((rendered(stack) / "plan.json").read_text())


# ------------------------------------------------------------------ the real pack objects, offline


RESOURCE_POLICIES = [p for p in P.POLICIES if isinstance(p, ResourceValidationPolicy)]
STACK_POLICIES = [p for p in P.POLICIES if isinstance(p, StackValidationPolicy)]


def run_resource_policies(type_, props, *, stack="dev", protect=False, name="r", config=None):
    violations = []
    opts = PolicyResourceOptions(protect, [], False, [], None, [], "")
    args = ResourceValidationArgs(type_, props, urn(stack, type_, name), name, opts, None, config or {})
    for policy in RESOURCE_POLICIES:
        policy.validate(args, lambda message, _urn=None, policy=policy: violations.append((policy.name, message)))
    return violations


def run_stack_policies(resources, *, stack="prod", config=None):
    """``resources``: (type, name, props, protect)."""
    violations = []
    items = [PolicyResource(t, props, urn(stack, t, n), n, PolicyResourceOptions(protect, [], False, [], None, [], ""),
                            None, None, [], {}) for t, n, props, protect in resources]
    for policy in STACK_POLICIES:
        policy.validate(StackValidationArgs(items, config or {}),
                        lambda message, u=None, policy=policy: violations.append((policy.name, message, u)))
    return violations


def test_pack_declares_every_guarantee():
    assert [p.name for p in P.POLICIES] == [
        "no-privileged-containers", "container-resources", "no-literal-secrets-in-env",
        "load-balancer-needs-annotation", "prod-protected-stateful-resources", "prod-deployment-availability",
        "private-gke-webhook-ports", "eks-network-policy-enforced", "image-from-reachable-registry",
        "namespace-default-deny", "rds-mysql-requires-tls", "cloudsql-requires-tls",
        "ci-untrusted-namespace-has-no-credentials", "eastwest-gateway-exposure",
        "kubernetes-object-size"]
    assert all(p.description for p in P.POLICIES)


# --------------------------------------------------------------------------------- good renders


@pytest.mark.parametrize("stack", STACKS)
def test_renders_pass_every_policy(rendered, stack):
    plan = plan_of(rendered, stack)
    violations = []
    for r in plan["resources"]:
        violations += run_resource_policies(r["type"], r["inputs"], stack=stack, protect=r["protect"], name=r["name"])
    violations += run_stack_policies([(r["type"], r["name"], r["inputs"], r["protect"]) for r in plan["resources"]],
                                     stack=stack)
    assert not violations, "\n".join(map(str, violations))
    # Not vacuous: the checks saw workloads (and, in the cloud stacks, protected stateful resources).
    kinds = {P.kind_of(r["type"]) for r in plan["resources"]}
    assert {"Deployment", "Service", "NetworkPolicy"} <= kinds
    if stack != "dev":
        assert any(r["type"] in P.PROTECTED_TYPES for r in plan["resources"])


def test_prod_render_is_checked_for_availability(rendered):
    plan = plan_of(rendered, "prod")
    objects = P.k8s_objects((r["urn"], r["type"], r["inputs"]) for r in plan["resources"])
    deployments = [o for o in objects if o.kind == "Deployment" and o.template_labels.get("version") != "canary"]
    assert deployments and P.is_prod("prod")
    hpas = [o for o in objects if o.kind == "HorizontalPodAutoscaler"]
    assert all(P.effective_replicas(d, hpas) >= 3 for d in deployments)
    # Removing the PDBs from the good render is caught.
    without_pdb = [(r["type"], r["name"], r["inputs"], r["protect"]) for r in plan["resources"]
                   if P.kind_of(r["type"]) != "PodDisruptionBudget"]
    caught = run_stack_policies(without_pdb, stack="prod")
    assert len(caught) == len(deployments) and all("PodDisruptionBudget" in m for _, m, _ in caught)


def test_prod_render_unprotected_database_is_caught(rendered):
    plan = plan_of(rendered, "prod")
    db = next(r for r in plan["resources"] if r["type"] == "aws:rds/instance:Instance")
    assert db["protect"] is True
    caught = run_resource_policies(db["type"], db["inputs"], stack="prod", protect=False, name=db["name"])
    assert [name for name, _ in caught] == ["prod-protected-stateful-resources"]


# ---------------------------------------------------------------------------- bad: containers


@pytest.mark.parametrize("overrides, expected", [
    ({"securityContext": {"privileged": True, "allowPrivilegeEscalation": False, "runAsNonRoot": True}},
     "is privileged"),
    ({"securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False}}, "runs as root"),
    ({"securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": False}}, "may run as root"),
    ({"securityContext": {"runAsNonRoot": True}}, "may escalate privileges"),
])
def test_insecure_containers_are_caught(overrides, expected):
    props = deployment(**overrides)
    if "runAsNonRoot" in overrides["securityContext"] and overrides["securityContext"]["runAsNonRoot"] is False:
        props["spec"]["template"]["spec"]["securityContext"] = {}
    messages = P.check_container_security(DEPLOYMENT, props)
    assert any(expected in m for m in messages), messages
    assert ("no-privileged-containers", messages[0]) in run_resource_policies(DEPLOYMENT, props)


def test_pod_level_non_root_applies_and_init_containers_and_cronjobs_are_checked():
    good = deployment(securityContext={"allowPrivilegeEscalation": False})  # runAsNonRoot from the pod
    assert P.check_container_security(DEPLOYMENT, good) == []
    bad = deployment()
    bad["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "securityContext": {"runAsUser": 0}}]
    assert any("init container 'init' runs as root" in m for m in P.check_container_security(DEPLOYMENT, bad))
    cron = {"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "job", "resources": {}}]}}}}}}
    assert P.check_container_security("kubernetes:batch/v1:CronJob", cron)
    assert P.check_container_resources("kubernetes:batch/v1:CronJob", cron)
    raw_pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "x"}]}}
    assert len(run_resource_policies("kubernetes:core/v1:Pod", raw_pod)) == 3  # root?, escalation, resources


def test_missing_requests_or_limits_are_caught():
    props = deployment(resources={"requests": {"cpu": "100m"}})
    [message] = P.check_container_resources(DEPLOYMENT, props)
    assert "requests.memory, limits.cpu, limits.memory" in message
    assert [n for n, _ in run_resource_policies(DEPLOYMENT, props)] == ["container-resources"]
    assert P.check_container_resources(DEPLOYMENT, deployment()) == []


# ------------------------------------------------------------------------------ bad: secrets


@pytest.mark.parametrize("name, secret_like", [
    ("DB_PASSWORD", True), ("MYSQL_PASSWORD", True), ("API_KEY", True), ("STRIPE_SECRET_KEY", True),
    ("GITHUB_TOKEN", True), ("AWS_SECRET_ACCESS_KEY", True), ("CLIENT_SECRET", True), ("SIGNING_KEY", True),
    ("AWS_ACCESS_KEY_ID", True), ("PASSPHRASE", True),
    ("MYSQL_PASSWORD_FILE", False), ("TOKEN_PATH", False), ("DB_SECRET_NAME", False), ("PORT", False),
    ("KEYCLOAK_URL", False), ("CACHE_KEY_PREFIX", False), ("PRODUCT_SERVICE_URL", False), ("MONKEY", False),
])
def test_secret_like_names(name, secret_like):
    assert P.is_secret_like(name) is secret_like


def test_literal_secrets_in_env_are_caught():
    props = deployment(env=[{"name": "DB_PASSWORD", "value": "hunter2"},
                            {"name": "API_KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                            {"name": "MYSQL_PASSWORD_FILE", "value": "/run/secrets/mysql/password"},
                            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}}])
    messages = P.check_secret_env(DEPLOYMENT, props)
    assert len(messages) == 2
    assert "DB_PASSWORD is a literal value" in messages[0] and "API_KEY is not a Secret" in messages[1]
    assert [n for n, _ in run_resource_policies(DEPLOYMENT, props)] == ["no-literal-secrets-in-env"] * 2


# ------------------------------------------------------------------------- bad: load balancers


@pytest.mark.parametrize("annotations, ok", [
    ({}, False),
    ({"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}, False),  # says nothing about exposure
    ({"cnplatform.io/public-load-balancer": "true"}, True),
    ({"cnplatform.io/public-load-balancer": "false"}, False),
    ({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}, True),
    ({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}, True),
    ({"networking.gke.io/load-balancer-type": "Internal"}, True),
    ({"cloud.google.com/l4-rbs": "enabled"}, False),  # backend-service LB: still the public default
])
def test_load_balancer_needs_an_exposure_annotation(annotations, ok):
    svc = {"metadata": {"name": "gw", "namespace": "istio-system", "annotations": annotations},
           "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}
    violations = run_resource_policies("kubernetes:core/v1:Service", svc)
    assert (violations == []) is ok
    if not ok:
        assert violations[0][0] == "load-balancer-needs-annotation"
    svc["spec"]["type"] = "ClusterIP"
    assert run_resource_policies("kubernetes:core/v1:Service", svc) == []


CHART_LOAD_BALANCERS = {"gateway": ("service", "LoadBalancer")}  # chart -> (values key, default type)


def chart_services(rendered, stack):
    """The Services the gateway charts will create (offline a v4 Chart is one resource; at `pulumi up`
    its children are registered and the pack checks them): as the policy will see them."""
    out = []
    for charts in sorted(rendered(stack).glob("helm/*/charts.json")):
        for release in json.loads(charts.read_text())["releases"]:
            if release["chart"] in CHART_LOAD_BALANCERS:
                key, default = CHART_LOAD_BALANCERS[release["chart"]]
                values = yaml.safe_load((charts.parent / release["valuesFile"]).read_text()) or {}
                svc = values.get(key) or {}
                out.append((f"{charts.parent.name}/{release['name']}", {
                    "metadata": {"name": release["name"], "namespace": release["namespace"],
                                 "annotations": svc.get("annotations") or {}},
                    "spec": {"type": svc.get("type") or default}}))
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_chart_load_balancers_state_their_exposure(rendered, stack):
    services = chart_services(rendered, stack)
    assert services, "the mesh renders an ingress gateway"
    violations = [f"{where}: {m}" for where, props in services
                  for m in P.check_load_balancer("kubernetes:core/v1:Service", props)]
    assert not violations, "\n".join(violations)


# ---------------------------------------------------------------------- bad: protected resources


@pytest.mark.parametrize("type_", P.PROTECTED_TYPES)
def test_unprotected_stateful_resources_are_caught_in_prod_only(type_):
    tls = {"settings": {"ipConfiguration": {"sslMode": "ENCRYPTED_ONLY"}}}  # (cloudsql-requires-tls: its own test)
    assert [n for n, _ in run_resource_policies(type_, tls, stack="prod")] == ["prod-protected-stateful-resources"]
    assert run_resource_policies(type_, tls, stack="prod", protect=True) == []
    assert run_resource_policies(type_, tls, stack="staging") == []
    assert run_resource_policies("aws:s3/bucket:Bucket", {}, stack="prod") == []


@pytest.mark.parametrize("stack, prod", [
    ("prod", True), ("production", True), ("eu-prod", True), ("prod-2", True), ("team-a.prod", True),
    ("dev", False), ("staging", False), ("non-prod", False), ("pre-prod", False), ("product", False),
    ("preprod", False),
])
def test_prod_stack_names(stack, prod):
    assert P.is_prod(stack) is prod


def test_stack_of_urn():
    assert P.stack_of("urn:pulumi:eu-prod::shop::kubernetes:apps/v1:Deployment::x") == "eu-prod"


# ---------------------------------------------------------------------- bad: prod availability


def test_prod_deployments_need_three_replicas_and_a_pdb():
    labels = {"app.kubernetes.io/name": "app", "version": "stable"}
    good = [(DEPLOYMENT, "app", deployment(replicas=3), False),
            ("kubernetes:policy/v1:PodDisruptionBudget", "app-pdb", pdb({"matchLabels": labels}), False)]
    assert run_stack_policies(good) == []
    assert run_stack_policies([(DEPLOYMENT, "app", deployment(replicas=2), False), good[1]])[0][1].endswith(
        "runs 2 replica(s) in prod: at least 3 (spec.replicas or the HorizontalPodAutoscaler's minReplicas)")
    no_pdb = run_stack_policies(good[:1])
    assert [m for _, m, _ in no_pdb] == ["Deployment shop/app has no PodDisruptionBudget selecting its pods in prod"]
    assert no_pdb[0][2] == urn("prod", DEPLOYMENT, "app")
    other = ("kubernetes:policy/v1:PodDisruptionBudget", "x", pdb({"matchLabels": {"app.kubernetes.io/name": "x"}}),
             False)
    elsewhere = ("kubernetes:policy/v1:PodDisruptionBudget", "y", pdb({"matchLabels": labels}, ns="other"), False)
    assert len(run_stack_policies([good[0], other, elsewhere])) == 1
    # Not prod: not checked.
    assert run_stack_policies([(DEPLOYMENT, "app", deployment(replicas=1), False)], stack="dev") == []


def test_hpa_min_replicas_counts_and_canaries_are_exempt():
    dep = deployment(replicas=None)
    del dep["spec"]["replicas"]
    hpa = {"metadata": {"name": "app", "namespace": "shop"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
                    "minReplicas": 2, "maxReplicas": 6}}
    selector = {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["app"]}]}
    resources = [(DEPLOYMENT, "app", dep, False),
                 ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "h", hpa, False),
                 ("kubernetes:policy/v1:PodDisruptionBudget", "p", pdb(selector), False)]
    [(_, message, _)] = run_stack_policies(resources)
    assert "runs 2 replica(s)" in message
    hpa["spec"]["minReplicas"] = 3
    assert run_stack_policies(resources) == []
    canary = deployment(name="app-canary", replicas=1, labels={"app.kubernetes.io/name": "app", "version": "canary"})
    assert run_stack_policies([*resources, (DEPLOYMENT, "app-canary", canary, False)]) == []


def test_prod_by_label_and_configurable_pattern():
    labeled = deployment(replicas=1, labels={"app.kubernetes.io/name": "a", "cnplatform.io/tier": "prod"})
    assert len(run_stack_policies([(DEPLOYMENT, "a", labeled, False)], stack="team-a")) == 2
    plain = [(DEPLOYMENT, "a", deployment(replicas=1), False)]
    assert run_stack_policies(plain, stack="live") == []
    assert len(run_stack_policies(plain, stack="live", config={"prodStackPattern": "^live$"})) == 2


def test_selector_matching():
    labels = {"a": "1", "b": "2"}
    assert P.selector_matches({}, labels)
    assert P.selector_matches({"matchLabels": {"a": "1"}}, labels)
    assert not P.selector_matches({"matchLabels": {"a": "2"}}, labels)
    assert P.selector_matches({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}, labels)
    assert not P.selector_matches({"matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["2"]}]}, labels)
    assert not P.selector_matches({"matchExpressions": [{"key": "c", "operator": "Exists"}]}, labels)


# ------------------------------------------------------------------- the pack process over gRPC


def _struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def test_pack_process_serves_the_policies(tmp_path):
    """``python policy/`` (what Pulumi runs): analyzer info, and violations for a bad Deployment."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "policy")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), proc.stderr.read().decode() if proc.poll() is not None else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=20)
            bad = deployment(replicas=1, securityContext={"privileged": True},
                             env=[{"name": "API_TOKEN", "value": "abc"}])
            props = _struct(copy.deepcopy(bad))
            resp = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=DEPLOYMENT, properties=props, urn=urn("prod", DEPLOYMENT, "app"), name="app",
                options=analyzer_pb2.AnalyzerResourceOptions(protect=False)), timeout=20)
            stack = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[analyzer_pb2.AnalyzerResource(
                type=DEPLOYMENT, properties=props, urn=urn("prod", DEPLOYMENT, "app"), name="app")]), timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
    assert info.name == P.PACK_NAME
    assert [p.name for p in info.policies] == [p.name for p in P.POLICIES]
    assert {d.policyName for d in resp.diagnostics} == {"no-privileged-containers", "no-literal-secrets-in-env"}
    assert {d.policyName for d in stack.diagnostics} == {"prod-deployment-availability"}
    assert len(stack.diagnostics) == 2


def test_node_agents_are_exempt_from_the_container_rules_by_name_only():
    cni = {"metadata": {"name": "istio-cni-node", "namespace": "kube-system"}, "spec": {"template": {"spec": {
        "containers": [{"name": "install-cni", "securityContext": {"privileged": True, "runAsUser": 0},
                        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}}}}
    daemonset = "kubernetes:apps/v1:DaemonSet"
    assert P.check_container_security(daemonset, cni) and P.check_container_resources(daemonset, cni)
    assert run_resource_policies(daemonset, cni) == []
    # The same pod spec under any other name, namespace or kind is still caught.
    elsewhere = copy.deepcopy(cni)
    elsewhere["metadata"]["namespace"] = "shop"
    assert {n for n, _ in run_resource_policies(daemonset, elsewhere)} == {
        "no-privileged-containers", "container-resources"}
    # More exemptions come from the policy config.
    extra = {"exemptWorkloads": ["shop/DaemonSet/istio-cni-node"]}
    assert run_resource_policies(daemonset, elsewhere, config=extra) == []
