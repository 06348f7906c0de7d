"""Agent namespaces and cloud identities of the pipelines: pure names, policies and annotations.

Three trust zones (docs/cicd.md):

* ``jenkins``: the controller and the Secrets only it reads (admin, Pulumi tokens, git token);
  no agent runs there.
* :data:`AGENT_NAMESPACE`: pull-request code (test, image build without push). ServiceAccount
  :data:`AGENT_SERVICE_ACCOUNT` has no cloud identity, no RBAC, no token; the namespace holds no Secret.
* :data:`DEPLOY_NAMESPACE`: the preview and deploy pods, each with its own ServiceAccount bound to a
  short-lived cloud identity (IRSA on EKS, Workload Identity on GKE): :data:`PREVIEW_SERVICE_ACCOUNT`
  read-only, :data:`DEPLOY_SERVICE_ACCOUNT` able to deploy; and the registry push Secret of the
  deploy branch's image build.
"""
from __future__ import annotations

from typing import Any

from cnplatform.cicd.settings import AGENT_PORT, AGENT_SERVICE_ACCOUNT, HTTP_PORT  # noqa: F401
from cnplatform.cluster.iam import irsa_trust_policy
from cnplatform.netpolicy import (
    ANYWHERE,
    DEFAULT_DENY,
    api_server_egress,
    default_deny,
    dns_egress,
    egress_policy,
    ns_selector,
    tcp,
)

AGENT_NAMESPACE = "jenkins-agents"
DEPLOY_NAMESPACE = "jenkins-deploy"
PREVIEW_SERVICE_ACCOUNT = "jenkins-preview"
DEPLOY_SERVICE_ACCOUNT = "jenkins-deploy"
#: Label (and value) of the agent namespaces: the chart's controller NetworkPolicy admits agents from
#: them. The chart writes the value unquoted (``{{ $k }}: {{ $v }}``), so it must stay a YAML string:
#: ``"true"`` would render as a boolean and the policy would be invalid.
AGENT_NAMESPACE_LABEL = "cnplatform.io/jenkins-agents"
AGENT_NAMESPACE_LABEL_VALUE = "enabled"
#: Label of the namespace running pull-request code; the policy pack (policy/cicd_rules.py) keeps every
#: Secret and cloud identity out of a namespace carrying it.
UNTRUSTED_LABEL = "cnplatform.io/untrusted-builds"

#: Annotations that give a ServiceAccount a cloud identity (the policy pack keeps them out of
#: :data:`AGENT_NAMESPACE`).
AWS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
GCP_SA_ANNOTATION = "iam.gke.io/gcp-service-account"
CLOUD_IDENTITY_ANNOTATIONS = (AWS_ROLE_ANNOTATION, GCP_SA_ANNOTATION)

#: Per identity: its ServiceAccount, the AWS managed policy of its role, the EKS access policy of its
#: access entry on every EKS cluster of the stack, the GCP project roles of its service account.
#: Preview can read everything ``pulumi preview`` reads and change nothing; deploy creates the whole
#: platform (VPCs, clusters, IAM roles), hence administrator-level rights.
#:
#: Kubernetes side (docs/clusters.md, "CI access to the clusters"): preview runs a pull request's
#: program, so it gets no Kubernetes write and no Secret read (``AmazonEKSViewPolicy``; on GKE
#: ``roles/viewer``'s ``container.*.get/list``, Secrets excluded). RBAC authorizes a server-side dry-run
#: like the real write, so the provider's dry-run create/patch is Forbidden; pulumi-kubernetes v4 then
#: previews from the inputs (client-side), which is what the pipeline's preview shows. Deploy is
#: cluster admin (``AmazonEKSClusterAdminPolicy``; ``roles/container.admin``: RBAC objects of the
#: charts need ``container.clusterRoles.bind/escalate``, which ``roles/editor``, like
#: ``roles/container.developer`` for Kubernetes objects, does not grant).
IDENTITIES: dict[str, dict[str, Any]] = {
    "preview": {"service_account": PREVIEW_SERVICE_ACCOUNT,
                "aws_policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "eks_access_policy": "AmazonEKSViewPolicy",
                "gcp_roles": ("roles/viewer",)},
    "deploy": {"service_account": DEPLOY_SERVICE_ACCOUNT,
               "aws_policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess",
               "eks_access_policy": "AmazonEKSClusterAdminPolicy",
               "gcp_roles": ("roles/editor", "roles/container.admin", "roles/resourcemanager.projectIamAdmin",
                             "roles/iam.serviceAccountAdmin")},
}

#: Write-capable managed policies and roles: never on the preview identity (tests, docs).
WRITE_AWS_POLICIES = ("arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/PowerUserAccess")
WRITE_GCP_ROLES = ("roles/owner", "roles/editor", "roles/container.admin", "roles/container.developer")
#: EKS access policies that write Kubernetes objects or read Secrets: never on the preview identity.
WRITE_EKS_ACCESS_POLICIES = ("AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy",
                             "AmazonEKSAdminViewPolicy")


def aws_role_name(cluster: str, identity: str) -> str:
    """IAM role of one identity: ``<cluster>-jenkins-<identity>`` (<= 64 characters)."""
    return f"{cluster}-jenkins-{identity}"[:64]


def gcp_account_id(cluster: str, identity: str) -> str:
    """GCP service account id (6-30 characters, starts with a letter): ``<cluster>-ci-<identity>``."""
    suffix = f"-ci-{identity}"
    return f"{cluster[:30 - len(suffix)].rstrip('-')}{suffix}"


def trust_policy(oidc_provider_arn: str, issuer_url: str, identity: str) -> dict:
    """IRSA trust policy: only this identity's ServiceAccount in :data:`DEPLOY_NAMESPACE` assumes the role."""
    return irsa_trust_policy(oidc_provider_arn, issuer_url, DEPLOY_NAMESPACE,
                             IDENTITIES[identity]["service_account"])


def workload_identity_member(pool: str, identity: str) -> str:
    """``roles/iam.workloadIdentityUser`` member: this identity's KSA in :data:`DEPLOY_NAMESPACE`."""
    return f"serviceAccount:{pool}[{DEPLOY_NAMESPACE}/{IDENTITIES[identity]['service_account']}]"


def static_key_clouds(jenkins_cloud: str, target_clouds: list[str]) -> list[str]:
    """Clouds the pipelines deploy to that this Jenkins' short-lived identity does not reach (a cloud
    other than its own cluster's): they still need the static ``<cloud>-deploy``/``<cloud>-preview``
    credentials (docs/decisions.md, cross-cloud gap)."""
    return sorted({c for c in target_clouds if c in ("aws", "gcp")} - {jenkins_cloud})


def agent_namespace_policies(controller_namespace: str, api_server: bool) -> dict[str, dict]:
    """NetworkPolicies of an agent namespace: default deny; DNS; the controller's HTTP and tunnel
    ports; HTTPS out (git, package indexes, registries, cloud and Pulumi APIs, clusters' API
    servers); the in-cluster API server only where ``api_server`` (the deploy pods' kubeconfigs)."""
    rules = [dns_egress(), {"to": [ns_selector(controller_namespace)], "ports": tcp(HTTP_PORT, AGENT_PORT)},
             {"to": ANYWHERE, "ports": tcp(443)}]
    if api_server:
        rules.append(api_server_egress())
    return {DEFAULT_DENY: default_deny(), "dns-controller-https": egress_policy({}, rules)}
