"""Least-privilege AWS IAM and GCP roles (issue #5, #11): every policy document the program creates is
built by the pure builders of cnplatform.cluster.iam, rendered to iam/*.iam.json, free of wildcards where
AWS can scope, and linted by parliament 1.6.4 (tools venv) with no findings of severity LOW or above,
except the documented parliament limitations below (each narrowly matched and checked otherwise).
"""
import json
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from cnplatform.cicd.identity import IDENTITIES as CI_IDENTITIES
from cnplatform.cluster import iam
from tests.helpers import ROOT, capture_stack

TOOLS_PYTHON = ROOT / ".tools" / "bin" / "python"
ACCOUNT = "123456789012"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABCDEF0123456789"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABCDEF0123456789"

#: Same filter as the shared validator (severity >= LOW, community auditors off).
PARLIAMENT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import parliament
from parliament.cli import is_finding_filtered
out = {}
for name, text in json.load(sys.stdin).items():
    try:
        policy = parliament.analyze_policy_string(text, name, include_community_auditors=False)
        found = []
        for f in policy.findings:
            parliament.enhance_finding(f)
            if not is_finding_filtered(f, "LOW"):
                found.append({"issue": f.issue, "severity": f.severity, "detail": f.detail})
    except Exception as exc:  # noqa: BLE001
        found = [{"issue": "PARLIAMENT_ERROR", "severity": "CRITICAL", "detail": repr(exc)}]
    out[name] = found
json.dump(out, sys.stdout, default=str)
"""


def parliament_findings(policies: dict[str, str]) -> dict[str, list[dict]]:
    if not TOOLS_PYTHON.exists():
        pytest.skip("tools venv missing: `make tools` installs parliament")
    proc = subprocess.run([str(TOOLS_PYTHON), "-c", PARLIAMENT], input=json.dumps(policies),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------- parliament limitations


def is_trust_policy(doc: dict) -> bool:
    return all(st.get("Action") in ("sts:AssumeRole", "sts:AssumeRoleWithWebIdentity") and "Resource" not in st
               for st in doc["Statement"])


def known_limitation(doc: dict, finding: dict) -> bool:
    """Findings that are parliament's, not the policy's:

    * A role trust policy has no ``Resource`` (IAM rejects one: "Has prohibited field Resource"), but
      parliament lints every document as an identity policy (MALFORMED), and it only knows SAML/web
      federation sources, not IAM OIDC providers (UNKNOWN_FEDERATION_SOURCE). Trust policies are checked
      by :func:`test_trust_policies_are_scoped` instead.
    * RESOURCE_MISMATCH on a statement that grants an action only for some of its required resource
      types, when the document's statements together cover them all: AWS's own tag-on-create pattern
      (the conditioned and the unconditioned resources of ``ec2:RunInstances`` need separate statements;
      duo-labs/parliament#3, open). :func:`covers_required_resources` checks the union.
    """
    if is_trust_policy(doc):
        return finding["issue"] == "MALFORMED" and "neither Resource nor NotResource" in str(finding["detail"]) or (
            finding["issue"] == "UNKNOWN_FEDERATION_SOURCE" and ":oidc-provider/" in str(finding["detail"]))
    if finding["issue"] == "RESOURCE_MISMATCH":
        return all(covers_required_resources(doc, m["action"], m["required_format"]) for m in finding["detail"])
    return False


def _matches(resource: str, required: str) -> bool:
    """``arn:*:ec2:*:*:instance/*`` (parliament's format) against one of our resources."""
    import fnmatch

    want = required.split(":", 5)
    have = resource.split(":", 5)
    return len(have) == 6 and have[2] == want[2] and fnmatch.fnmatchcase(have[5], want[5])


def covers_required_resources(doc: dict, action: str, required: str) -> bool:
    for st in doc["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        if st["Effect"] == "Allow" and action in actions and any(_matches(r, required) for r in resources):
            return True
    return False


def real_findings(docs: dict[str, dict]) -> dict[str, list]:
    found = parliament_findings({name: json.dumps(doc, indent=2) for name, doc in docs.items()})
    bad = {name: [f for f in fs if not known_limitation(docs[name], f)] for name, fs in found.items()}
    return {name: fs for name, fs in bad.items() if fs}


# ------------------------------------------------------------------------------------ builders


def builder_documents() -> dict[str, dict]:
    docs = {f"karpenter-{k}": v for k, v in iam.karpenter_controller_policies(
        partition="aws", region="us-east-1", account_id=ACCOUNT, cluster_name="c1",
        node_role_arn=f"arn:aws:iam::{ACCOUNT}:role/c1-karpenter-node",
        queue_arn=f"arn:aws:sqs:us-east-1:{ACCOUNT}:c1-karpenter").items()}
    docs["queue"] = iam.interruption_queue_policy(f"arn:aws:sqs:us-east-1:{ACCOUNT}:c1-karpenter")
    docs["secrets-kms"] = iam.eks_secrets_encryption_policy(
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    docs["eks-trust"] = iam.service_trust_policy("eks.amazonaws.com")
    docs["irsa-trust"] = iam.irsa_trust_policy(OIDC, ISSUER, "kube-system", "karpenter")
    return docs


def test_policy_builders_pass_parliament():
    # Two canaries prove parliament runs and the limitation filter does not excuse real problems.
    canaries = {
        "canary-star": iam.document({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}),
        "canary-mismatch": iam.document({"Sid": "A", "Effect": "Allow", "Action": "ec2:RunInstances",
                                         "Resource": "arn:aws:ec2:us-east-1:*:instance/*"}),
    }
    found = real_findings({**builder_documents(), **canaries})
    assert {f["issue"] for f in found.pop("canary-star")} == {"RESOURCE_STAR"}
    assert {f["issue"] for f in found.pop("canary-mismatch")} == {"RESOURCE_MISMATCH"}
    assert found == {}


def test_policy_builders_have_no_unscoped_wildcards():
    for name, doc in builder_documents().items():
        assert iam.wildcard_problems(doc) == [], name
        assert doc["Version"] == "2012-10-17"
        sids = [st.get("Sid") for st in doc["Statement"]]
        assert all(sids) and len(set(sids)) == len(sids), name


def test_wildcard_checker_flags_what_it_should():
    bad = iam.document({"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"},
                       {"Sid": "B", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    problems = iam.wildcard_problems(bad)
    assert len(problems) == 3  # wildcard action, and Resource * for "*" and for s3:GetObject


def test_karpenter_controller_policy_is_scoped_to_region_cluster_and_its_resources():
    docs = iam.karpenter_controller_policies(partition="aws", region="eu-west-1", account_id=ACCOUNT,
                                             cluster_name="c1", node_role_arn="arn:aws:iam::1:role/n",
                                             queue_arn="arn:aws:sqs:eu-west-1:1:q")
    statements = [st for doc in docs.values() for st in doc["Statement"]]
    by_sid = {st["Sid"]: st for st in statements}
    for st in statements:
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for r in resources:
            assert r == "*" or r.startswith(("arn:aws:ec2:eu-west-1:", "arn:aws:ssm:eu-west-1:", "arn:aws:iam::",
                                             "arn:aws:eks:eu-west-1:", "arn:aws:sqs:eu-west-1:")), r
    assert by_sid["AllowPassingInstanceRole"]["Resource"] == "arn:aws:iam::1:role/n"
    assert by_sid["AllowInterruptionQueueActions"]["Resource"] == "arn:aws:sqs:eu-west-1:1:q"
    assert by_sid["AllowRegionalReadActions"]["Condition"] == {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    for sid in ("AllowScopedEC2InstanceActionsWithTags", "AllowScopedResourceCreationTagging"):
        assert by_sid[sid]["Condition"]["StringEquals"]["aws:RequestTag/kubernetes.io/cluster/c1"] == "owned"
    assert by_sid["AllowScopedDeletion"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/c1": "owned"}


# ------------------------------------------------------------------------------------- rendered


@lru_cache(maxsize=None)
def rendered_iam(stack: str, out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "iam").glob("*.iam.json"))} \
        if (out / "iam").exists() else {}


def iam_documents(rendered, stack: str) -> dict[str, dict]:
    """Rendered IAM policy documents (other JSON that the render files under iam/, such as ECR lifecycle
    rules, is not an IAM policy and is skipped here)."""
    docs = rendered_iam(stack, rendered(stack))
    return {name: doc for name, doc in docs.items() if "Statement" in doc}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rendered_policies_pass_parliament(rendered, stack):
    docs = iam_documents(rendered, stack)
    if stack == "prod":
        names = set(docs)
        for expected in ("prod-eks-cluster-trust", "prod-eks-node-trust", "prod-eks-ebs-csi-trust",
                         "prod-eks-cluster-secrets-kms", "prod-eks-karpenter-controller-trust",
                         "prod-eks-karpenter-node-trust", "prod-eks-karpenter-queue-policy",
                         *(f"prod-eks-karpenter-{s}" for s in ("node-lifecycle", "iam-integration",
                                                                "eks-integration", "interruption",
                                                                "resource-discovery"))):
            assert f"{expected}.iam.json" in names, expected
    assert real_findings(docs) == {}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rendered_policies_have_no_unscoped_wildcards(rendered, stack):
    for name, doc in iam_documents(rendered, stack).items():
        assert iam.wildcard_problems(doc) == [], name


def test_every_aws_policy_input_is_json_from_the_builders():
    """No inline dict policies (the render could not file them) and no aws.iam.get_policy_document."""
    cap = capture_stack("prod")
    for reg in cap.resources:
        if not reg.type.startswith("aws:"):
            continue
        for key in ("policy", "assumeRolePolicy"):
            if key in reg.inputs and reg.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
                value = reg.inputs[key]
                assert isinstance(value, str) and json.loads(value)["Version"] == "2012-10-17", reg.name
    assert not [r for r in cap.resources if r.type == "aws:iam/rolePolicy:RolePolicy" and "policy" not in r.inputs]


def test_trust_policies_are_scoped(rendered):
    docs = iam_documents(rendered, "prod")
    trust = {name: doc for name, doc in docs.items() if is_trust_policy(doc)}
    assert len(trust) == 7  # + the Jenkins preview/deploy IRSA roles (cnplatform.cicd.identity)
    for doc in trust.values():
        (st,) = doc["Statement"]
        assert st["Effect"] == "Allow"
        if st["Action"] == "sts:AssumeRole":
            assert set(st["Principal"]) == {"Service"}
            assert st["Principal"]["Service"] in ("eks.amazonaws.com", "ec2.amazonaws.com")
        else:
            assert set(st["Principal"]) == {"Federated"} and ":oidc-provider/" in st["Principal"]["Federated"]
            cond = st["Condition"]["StringEquals"]
            subs = [v for k, v in cond.items() if k.endswith(":sub")]
            auds = [v for k, v in cond.items() if k.endswith(":aud")]
            assert auds == ["sts.amazonaws.com"] and len(subs) == 1
            assert subs[0] in ("system:serviceaccount:kube-system:karpenter",
                               "system:serviceaccount:kube-system:ebs-csi-controller-sa",
                               "system:serviceaccount:jenkins-deploy:jenkins-preview",
                               "system:serviceaccount:jenkins-deploy:jenkins-deploy")


def test_only_least_privileged_aws_managed_policies_are_attached():
    cap = capture_stack("prod")
    allowed = {iam.managed_policy_arn(p) for p in (*iam.CLUSTER_MANAGED_POLICIES, *iam.NODE_MANAGED_POLICIES,
                                                   iam.EBS_CSI_MANAGED_POLICY)}
    # The CI identities: ReadOnlyAccess for previews, AdministratorAccess for the role that deploys the
    # whole platform (VPCs, clusters, IAM); trusted only by their ServiceAccounts (test_cicd_identity.py).
    allowed |= {spec["aws_policy_arn"] for spec in CI_IDENTITIES.values()}
    for reg in cap.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        arn = reg.inputs["policyArn"]
        if arn.startswith("arn:aws:iam::aws:policy/"):
            assert arn in allowed, arn
        else:
            assert arn.startswith(f"arn:aws:iam::{ACCOUNT}:policy/prod-eks-")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_gcp_service_accounts_get_only_the_roles_they_need(stack):
    """GCP grants are visible IAM member resources: the node SA gets its 5 roles, the GKE agent one key."""
    from cnplatform.cluster.gke import KMS_ENCRYPTER_DECRYPTER, NODE_SA_ROLES

    cap = capture_stack(stack)
    project_roles = sorted(r.inputs["role"] for r in cap.by_type("gcp:projects/iAMMember:IAMMember"))
    gke_clusters = [c for c in cap.config.clusters if c.cloud == "gcp"]
    # + the CI identities' roles where Jenkins runs on GKE (staging; prod's runs on EKS).
    ci_roles = [r for spec in CI_IDENTITIES.values() for r in spec["gcp_roles"]] \
        if cap.config.clusters[0].cloud == "gcp" else []
    assert project_roles == sorted(list(NODE_SA_ROLES) * len(gke_clusters) + ci_roles)
    key_roles = [r.inputs["role"] for r in cap.by_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")]
    assert key_roles == [KMS_ENCRYPTER_DECRYPTER] * len(gke_clusters)
    assert not cap.by_type("gcp:projects/iAMBinding:IAMBinding") and not cap.by_type("gcp:projects/iAMPolicy:IAMPolicy")
