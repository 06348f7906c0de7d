"""CI identities (issue #19 item 3): untrusted builds in a namespace without credentials, short-lived
cloud identities (IRSA / Workload Identity) for the preview and deploy pods, no static cloud key.

Rendered-object assertions on the three stacks, the pure helpers, and the policy rule both ways
(our renders pass, crafted bad stacks fail).
"""
from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from cnplatform.cicd import identity as ident
from cnplatform.netpolicy import is_default_deny
from policy import cicd_rules as C
from tests.helpers import ROOT

JENKINSFILE = (ROOT / "Jenkinsfile").read_text()
SA = "kubernetes:core/v1:ServiceAccount"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
GSA = "gcp:serviceaccount/account:Account"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
SA_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
#: (stack, cluster Jenkins runs in, its cloud)
JENKINS = {"dev": ("dev", "local"), "staging": ("staging-gke", "gcp"), "prod": ("prod-eks", "aws")}


def plan(rendered, stack) -> list[dict]:
    return json.loads((rendered(stack) / "plan.json").read_text())["resources"]


def by_type(resources, type_) -> list[dict]:
    return [r for r in resources if r["type"] == type_]


def k8s(resources, kind, namespace=None) -> list[dict]:
    return [r["inputs"] for r in resources if r["type"].startswith("kubernetes:") and r["type"].endswith(":" + kind)
            and (namespace is None or r["inputs"].get("metadata", {}).get("namespace") == namespace)]


def _res(resources: list[dict]) -> list:
    return [C.Res(r["type"], r["inputs"], r["urn"], r["provider"] or "", r["depends_on"]) for r in resources]


def values(rendered, stack) -> dict:
    """The jenkins chart's values as rendered (helm/<cluster>/jenkins.yaml)."""
    return yaml.safe_load((rendered(stack) / "helm" / JENKINS[stack][0] / "jenkins.yaml").read_text())


def jcasc_env(rendered, stack) -> dict[str, str]:
    env = yaml.safe_load(values(rendered, stack)["controller"]["JCasC"]["configScripts"]["env"])
    return {e["key"]: e["value"] for e in env["jenkins"]["globalNodeProperties"][0]["envVars"]["env"]}


# ------------------------------------------------------------------------------------ namespaces


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_untrusted_builds_run_where_there_is_no_credential(rendered, stack):
    resources = plan(rendered, stack)
    [ns] = [n for n in k8s(resources, "Namespace") if n["metadata"]["name"] == ident.AGENT_NAMESPACE]
    assert ns["metadata"]["labels"][ident.UNTRUSTED_LABEL] == "true"
    assert not k8s(resources, "Secret", ident.AGENT_NAMESPACE)
    [sa] = k8s(resources, "ServiceAccount", ident.AGENT_NAMESPACE)
    assert sa["metadata"]["name"] == ident.AGENT_SERVICE_ACCOUNT and sa["automountServiceAccountToken"] is False
    assert not sa["metadata"].get("annotations")
    # No RBAC of ours binds anything in it (the chart's schedule-agents Role is the controller's).
    assert not k8s(resources, "RoleBinding", ident.AGENT_NAMESPACE)
    # The deploy namespace is not untrusted; the trusted identities live there only.
    [deploy_ns] = [n for n in k8s(resources, "Namespace") if n["metadata"]["name"] == ident.DEPLOY_NAMESPACE]
    assert ident.UNTRUSTED_LABEL not in deploy_ns["metadata"]["labels"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_agent_namespace_denies_by_default_and_allows_what_agents_need(rendered, stack):
    resources = plan(rendered, stack)
    for namespace in (ident.AGENT_NAMESPACE, ident.DEPLOY_NAMESPACE):
        specs = {p["metadata"]["name"]: p["spec"] for p in k8s(resources, "NetworkPolicy", namespace)}
        assert is_default_deny(specs["default-deny-all"])
        egress = specs["dns-controller-https"]["egress"]
        controller = next(r for r in egress if r["to"][0].get("namespaceSelector", {}).get("matchLabels", {})
                          .get("kubernetes.io/metadata.name") == "jenkins" and "podSelector" not in r["to"][0])
        assert {p["port"] for p in controller["ports"]} == {8080, 50000}
        assert any({p["port"] for p in r["ports"]} == {53} for r in egress)
        assert any({p["port"] for p in r.get("ports", [])} == {443} for r in egress)
        assert not any("ingress" in spec for spec in specs.values() if not is_default_deny(spec))


def test_controller_admits_the_agent_tunnel_from_the_agent_namespaces(rendered):
    # The chart's controller NetworkPolicy (jenkins-controller-networkpolicy.yaml of 5.9.53) admits the
    # agent port from agent-labelled pods of namespaces carrying networkPolicy.internalAgents.namespaceLabels.
    policy = values(rendered, "prod")["networkPolicy"]
    assert policy["enabled"] is True and policy["internalAgents"] == {
        "allowed": True, "namespaceLabels": {ident.AGENT_NAMESPACE_LABEL: ident.AGENT_NAMESPACE_LABEL_VALUE}}
    # The template writes `{{ $k }}: {{ $v }}` unquoted: the value must read back as a string ("true"
    # became a boolean and an invalid NetworkPolicy).
    for value in policy["internalAgents"]["namespaceLabels"].values():
        assert isinstance(yaml.safe_load(f"k: {value}")["k"], str)
    assert values(rendered, "prod")["agent"]["namespace"] == ident.AGENT_NAMESPACE
    for name in (ident.AGENT_NAMESPACE, ident.DEPLOY_NAMESPACE):
        [ns] = [n for n in k8s(plan(rendered, "prod"), "Namespace") if n["metadata"]["name"] == name]
        assert ns["metadata"]["labels"][ident.AGENT_NAMESPACE_LABEL] == ident.AGENT_NAMESPACE_LABEL_VALUE


# ---------------------------------------------------------------------------- cloud identities


def test_eks_agents_get_irsa_roles_read_only_for_preview(rendered):
    resources = plan(rendered, "prod")
    roles = {r["inputs"]["name"]: r for r in by_type(resources, ROLE) if "-jenkins-" in r["inputs"]["name"]}
    assert set(roles) == {"prod-eks-jenkins-preview", "prod-eks-jenkins-deploy"}
    for kind, role in (("preview", roles["prod-eks-jenkins-preview"]), ("deploy", roles["prod-eks-jenkins-deploy"])):
        trust = json.loads(role["inputs"]["assumeRolePolicy"])
        [statement] = trust["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        subs = [v for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")]
        assert subs == [f"system:serviceaccount:{ident.DEPLOY_NAMESPACE}:jenkins-{kind}"]
    policies = {r["urn"].rsplit("::", 1)[-1]: r["inputs"]["policyArn"] for r in by_type(resources, ATTACHMENT)
                if "-jenkins-preview-" in r["urn"] or "-jenkins-deploy-" in r["urn"]}
    preview = [arn for urn, arn in policies.items() if "-preview-" in urn]
    assert preview == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert not set(preview) & set(ident.WRITE_AWS_POLICIES)
    sas = {s["metadata"]["name"]: s for s in k8s(resources, "ServiceAccount", ident.DEPLOY_NAMESPACE)}
    for kind in ("preview", "deploy"):
        arn = sas[f"jenkins-{kind}"]["metadata"]["annotations"][ident.AWS_ROLE_ANNOTATION]
        assert arn.endswith(f":role/prod-eks-jenkins-{kind}")
    assert (rendered("prod") / "iam" / "prod-eks-jenkins-preview-role-trust.iam.json").is_file()  # parliament


def test_gke_agents_get_workload_identity_viewer_for_preview(rendered):
    resources = plan(rendered, "staging")
    gsas = {r["inputs"]["accountId"]: r for r in by_type(resources, GSA) if "-ci-" in r["inputs"]["accountId"]}
    assert set(gsas) == {"staging-gke-ci-preview", "staging-gke-ci-deploy"}
    email = {k: f"{k}@acme-shop-staging.iam.gserviceaccount.com" for k in gsas}
    roles = {kind: sorted(r["inputs"]["role"] for r in by_type(resources, PROJECT_MEMBER)
                          if r["inputs"]["member"] == f"serviceAccount:{email[f'staging-gke-ci-{kind}']}")
             for kind in ("preview", "deploy")}
    assert roles["preview"] == ["roles/viewer"] and not set(roles["preview"]) & set(ident.WRITE_GCP_ROLES)
    assert "roles/editor" in roles["deploy"] and "roles/owner" not in roles["deploy"]
    # Kubernetes admin through IAM: the charts' ClusterRoles/bindings need bind/escalate (editor has neither).
    assert "roles/container.admin" in roles["deploy"]
    wi = {r["inputs"]["member"]: r["inputs"] for r in by_type(resources, SA_MEMBER)
          if r["inputs"]["role"] == "roles/iam.workloadIdentityUser" and "-ci-" in r["inputs"]["serviceAccountId"]}
    for kind in ("preview", "deploy"):
        member = f"serviceAccount:acme-shop-staging.svc.id.goog[{ident.DEPLOY_NAMESPACE}/jenkins-{kind}]"
        assert wi[member]["serviceAccountId"].endswith(email[f"staging-gke-ci-{kind}"])
    sas = {s["metadata"]["name"]: s for s in k8s(resources, "ServiceAccount", ident.DEPLOY_NAMESPACE)}
    for kind in ("preview", "deploy"):
        assert sas[f"jenkins-{kind}"]["metadata"]["annotations"] == {
            ident.GCP_SA_ANNOTATION: email[f"staging-gke-ci-{kind}"]}


def test_kind_agents_get_no_cloud_identity(rendered):
    resources = plan(rendered, "dev")
    assert not [r for r in resources if r["type"].startswith(("aws:", "gcp:"))]
    assert all(not s["metadata"].get("annotations") for s in k8s(resources, "ServiceAccount", ident.DEPLOY_NAMESPACE))


def test_identity_names_fit_the_clouds_limits():
    assert ident.gcp_account_id("a-very-long-cluster-name-indeed", "preview") == "a-very-long-cluster-ci-preview"
    for cluster in ("prod-gke", "a-very-long-cluster-name-indeed", "x" * 40):
        for kind in ident.IDENTITIES:
            assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", ident.gcp_account_id(cluster, kind))
            assert len(ident.aws_role_name(cluster * 3, kind)) <= 64


def test_static_keys_only_for_the_cloud_the_jenkins_identity_does_not_reach(rendered):
    assert ident.static_key_clouds("aws", ["aws", "gcp"]) == ["gcp"]
    assert ident.static_key_clouds("gcp", ["gcp"]) == [] and ident.static_key_clouds("local", ["local"]) == []
    assert jcasc_env(rendered, "prod")["STATIC_KEY_CLOUDS"] == "gcp"  # prod-gke, deployed from prod-eks
    assert jcasc_env(rendered, "staging")["STATIC_KEY_CLOUDS"] == ""
    assert jcasc_env(rendered, "dev")["STATIC_KEY_CLOUDS"] == ""


# ------------------------------------------------------------------- access to the EKS clusters

ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
EKS_CLUSTER = "aws:eks/cluster:Cluster"


def pipeline_service_accounts() -> dict[str, str]:
    """ServiceAccount -> what the pipeline runs as it, read from the pod templates and the Jenkinsfile:
    each pod template's ``serviceAccountName`` (the Preview stage runs deploy.yaml as is) and those the
    Jenkinsfile swaps in (the Deploy stage's pod: ``'$1<sa>'``)."""
    pods = {p.stem: yaml.safe_load(p.read_text()) for p in (ROOT / "ci" / "jenkins" / "pods").glob("*.yaml")}
    out = {pod["spec"]["serviceAccountName"]: f"pod template {name}" for name, pod in pods.items()
           if pod["spec"].get("serviceAccountName")}
    swapped = re.findall(r"serviceAccountName: \)[\w-]+\$/, '\$1([\w-]+)'\)", JENKINSFILE)
    assert swapped, "the Jenkinsfile no longer swaps the deploying ServiceAccount in: update this test"
    return {**out, **{sa: "deploy" for sa in swapped}}


def test_every_identity_the_pipeline_runs_as_is_admitted_by_each_eks_cluster(rendered):
    """Issue #15 item 9: the IRSA roles Jenkins' pods run as have an access entry on every EKS cluster
    of the stack they deploy, taking the cluster and the role as Outputs (they wait for both); the
    deploying one is cluster admin, the previewing one (pull-request code) can write nothing."""
    resources = plan(rendered, "prod")
    sas = pipeline_service_accounts()
    principals = {s["metadata"]["name"]: s["metadata"]["annotations"][ident.AWS_ROLE_ANNOTATION]
                  for s in k8s(resources, "ServiceAccount") if s["metadata"]["name"] in sas
                  and (s["metadata"].get("annotations") or {}).get(ident.AWS_ROLE_ANNOTATION)}
    assert set(principals) == {ident.PREVIEW_SERVICE_ACCOUNT, ident.DEPLOY_SERVICE_ACCOUNT}  # not vacuous
    roles = {r["inputs"]["name"]: r["urn"] for r in by_type(resources, ROLE)}
    clusters = {r["inputs"]["name"]: r["urn"] for r in by_type(resources, EKS_CLUSTER)}
    assert clusters
    for cluster, cluster_urn in clusters.items():
        for sa, arn in principals.items():
            role_urn = roles[arn.rsplit(":role/", 1)[1]]
            [entry] = [r for r in by_type(resources, ENTRY) if r["inputs"]["principalArn"] == arn
                       and cluster_urn in r["depends_on"]]
            assert entry["inputs"]["type"] == "STANDARD" and role_urn in entry["depends_on"], (cluster, sa)
            [assoc] = [r for r in by_type(resources, ASSOCIATION) if r["inputs"]["principalArn"] == arn
                       and cluster_urn in r["depends_on"]]
            assert entry["urn"] in assoc["depends_on"] and role_urn in assoc["depends_on"]
            assert assoc["inputs"]["accessScope"] == {"type": "cluster"}
            policy = assoc["inputs"]["policyArn"].rsplit("/", 1)[1]
            if sas[sa] == "deploy":
                assert policy == "AmazonEKSClusterAdminPolicy", (cluster, sa)
            else:  # the Preview stage runs the pull request's program: read-only, Secrets excluded
                assert policy == "AmazonEKSViewPolicy" and policy not in ident.WRITE_EKS_ACCESS_POLICIES
    # The untrusted agents' ServiceAccount has no cloud identity, hence no entry anywhere.
    assert all(ident.AGENT_SERVICE_ACCOUNT not in r["inputs"]["principalArn"] for r in by_type(resources, ENTRY))


def test_no_ci_access_entry_where_jenkins_does_not_run_on_eks(rendered):
    for stack in ("dev", "staging"):
        assert not [r for r in by_type(plan(rendered, stack), ENTRY) if "-jenkins-" in r["urn"]]


def test_a_second_eks_cluster_jenkins_cannot_reach_is_refused():
    from types import SimpleNamespace as NS

    from stacks.compose.layers.cicd import eks_access_clusters

    def cfg(*clouds, deploy_stacks=None):
        return NS(clusters=[NS(name=f"c{i}", cloud=c) for i, c in enumerate(clouds)],
                  cicd=NS(cluster=None, deploy_stacks=deploy_stacks, approval_stacks=[]),
                  defaults=NS(jenkins_deploys_own_stack=True))

    assert eks_access_clusters(cfg("aws", "gcp"), "prod") == ["c0"]
    assert eks_access_clusters(cfg("gcp", "aws"), "prod") == []  # Jenkins on GKE: static AWS keys
    assert eks_access_clusters(cfg("aws"), "prod", ) == ["c0"]
    assert eks_access_clusters(cfg("aws", deploy_stacks=["other"]), "prod") == []
    with pytest.raises(ValueError, match="c1 would not admit its IRSA roles"):
        eks_access_clusters(cfg("aws", "aws"), "prod")


# ----------------------------------------------------------------------------------- Jenkinsfile


def test_jenkinsfile_binds_no_static_cloud_key_outside_the_cross_cloud_gap():
    body = JENKINSFILE[JENKINSFILE.index("def pulumiCredentials"):JENKINSFILE.index("def runPulumi")]
    for cloud, ids in (("aws", ("aws-deploy", "aws-preview")), ("gcp", ("gcp-deploy", "gcp-preview"))):
        guard = body.index(f"clouds.contains('{cloud}')")
        for cred in ids:
            assert JENKINSFILE.count(f"'{cred}'") == 1 and body.index(f"'{cred}'") > guard
    assert "STATIC_KEY_CLOUDS" in body


def test_jenkinsfile_runs_preview_and_deploy_in_the_deploy_namespace():
    build = JENKINSFILE[JENKINSFILE.index("stage('Build & push')"):JENKINSFILE.index("stage('Preview')")]
    test = JENKINSFILE[JENKINSFILE.index("stage('Test')"):JENKINSFILE.index("stage('Build & push')")]
    preview = JENKINSFILE[JENKINSFILE.index("stage('Preview')"):JENKINSFILE.index("stage('Deploy')")]
    deploy = JENKINSFILE[JENKINSFILE.index("stage('Deploy')"):]
    assert "namespace" not in test.split("steps")[0]  # the cloud's default: jenkins-agents
    assert "env.CHANGE_ID || env.BRANCH_NAME != env.DEPLOY_BRANCH ? 'jenkins-agents' : 'jenkins-deploy'" in build
    assert "podTemplate(yaml: previewPod, namespace: 'jenkins-deploy')" in preview
    assert "podTemplate(yaml: deployPod, namespace: 'jenkins-deploy')" in deploy
    # The deploy pod is the trusted branch's copy with the deploying ServiceAccount swapped in.
    assert re.search(r"readTrusted\('ci/jenkins/pods/deploy.yaml'\)\s*\n\s*\.replaceFirst\([^\n]*"
                     r"serviceAccountName: \)jenkins-preview\$/, '\$1jenkins-deploy'\)", JENKINSFILE)
    deploy_pod = yaml.safe_load((ROOT / "ci" / "jenkins" / "pods" / "deploy.yaml").read_text())
    assert deploy_pod["spec"]["serviceAccountName"] == ident.PREVIEW_SERVICE_ACCOUNT


# ----------------------------------------------------------------------------------- policy rule


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_our_renders_pass_the_ci_rule(rendered, stack):
    resources = _res(plan(rendered, stack))
    assert C.untrusted_namespaces(resources) == {ident.AGENT_NAMESPACE}  # not vacuous
    assert C.check_untrusted_namespaces(resources) == []


def _move_to_agents(resources: list[dict], pick) -> list[dict]:
    out = copy.deepcopy(resources)
    for r in out:
        if pick(r):
            text = json.dumps(r["inputs"]).replace(ident.DEPLOY_NAMESPACE, ident.AGENT_NAMESPACE)
            r["inputs"] = json.loads(text)
    return out


@pytest.mark.parametrize("stack, pick", [
    ("prod", lambda r: r["type"] == SA and "jenkins-preview" in r["urn"]),       # annotated SA
    ("prod", lambda r: r["type"] == ROLE and "jenkins-deploy" in r["urn"]),       # IRSA trust
    ("staging", lambda r: r["type"] == SA_MEMBER and "-ci-deploy" in json.dumps(r["inputs"])),  # WI binding
])
def test_a_credential_in_the_untrusted_namespace_is_caught(rendered, stack, pick):
    bad = _move_to_agents(plan(rendered, stack), pick)
    [(urn, message)] = C.check_untrusted_namespaces(_res(bad))
    assert ident.AGENT_NAMESPACE in message and "untrusted" in message


def test_a_secret_or_pod_identity_association_there_is_caught(rendered):
    resources = plan(rendered, "prod")
    secret = {"type": "kubernetes:core/v1:Secret", "urn": "urn:x::push", "provider": "", "depends_on": [],
              "inputs": {"kind": "Secret", "metadata": {"name": "jenkins-registry-push",
                                                        "namespace": ident.AGENT_NAMESPACE}}}
    assoc = {"type": C.POD_IDENTITY_ASSOCIATION, "urn": "urn:x::assoc", "provider": "", "depends_on": [],
             "inputs": {"namespace": ident.AGENT_NAMESPACE, "serviceAccount": "jenkins-agent", "roleArn": "arn"}}
    found = C.check_untrusted_namespaces(_res([*resources, secret, assoc]))
    assert [urn for urn, _ in found] == ["urn:x::push", "urn:x::assoc"]
    elsewhere = copy.deepcopy(assoc)
    elsewhere["inputs"]["namespace"] = ident.DEPLOY_NAMESPACE
    assert C.check_untrusted_namespaces(_res([*resources, elsewhere])) == []


def test_the_pack_serves_and_reports_the_ci_rule(rendered):
    from pulumi_policy import PolicyResource, PolicyResourceOptions, StackValidationArgs

    from policy import cnplatform_policy as P

    [policy] = [p for p in P.POLICIES if p.name == "ci-untrusted-namespace-has-no-credentials"]
    bad = _move_to_agents(plan(rendered, "prod"), lambda r: r["type"] == SA and "jenkins-deploy" in r["urn"])
    opts = PolicyResourceOptions(False, [], False, [], None, [], "")
    res = [PolicyResource(r["type"], r["inputs"], r["urn"], r["name"], opts, None, None, [], {}) for r in bad]
    found = []
    policy.validate(StackValidationArgs(res, {}), lambda message, urn=None: found.append(urn))
    assert len(found) == 1 and "jenkins-deploy-sa" in found[0]
