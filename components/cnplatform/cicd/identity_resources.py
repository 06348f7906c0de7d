"""The agents' short-lived cloud identities as resources (IRSA roles on EKS, Workload Identity service
accounts on GKE), from the pure documents of :mod:`cnplatform.cicd.identity`.

Each cloud's SDK is imported inside its branch: a kind cluster (dev) imports neither.
"""
from __future__ import annotations

import json
from typing import Any

import pulumi

from cnplatform.cicd.identity import (
    AWS_ROLE_ANNOTATION,
    GCP_SA_ANNOTATION,
    IDENTITIES,
    aws_role_name,
    gcp_account_id,
    trust_policy,
    workload_identity_member,
)


def agent_identities(name: str, cloud: str, cluster: str, workload_identity: Any,
                     parent: pulumi.Resource) -> dict[str, pulumi.Output[dict[str, str]]]:
    """Per identity (``preview``, ``deploy``) the annotations of its ServiceAccount; none on kind."""
    opts = pulumi.ResourceOptions(parent=parent)
    wi = pulumi.Output.from_input(workload_identity or {})
    if cloud == "aws":
        return {k: _aws_identity(name, cluster, k, wi, opts) for k in IDENTITIES}
    if cloud == "gcp":
        return {k: _gcp_identity(name, cluster, k, wi, opts) for k in IDENTITIES}
    return {}


def _aws_identity(name: str, cluster: str, identity: str, wi: pulumi.Output,
                  opts: pulumi.ResourceOptions) -> pulumi.Output[dict[str, str]]:
    import pulumi_aws as aws

    role = aws.iam.Role(
        f"{name}-{identity}-role", name=aws_role_name(cluster, identity),
        description=f"Jenkins {identity} agents of {cluster} (IRSA)", max_session_duration=3600,
        assume_role_policy=wi.apply(lambda w: json.dumps(trust_policy(
            w["oidc_provider_arn"], w["oidc_issuer_url"], identity))),
        opts=opts)
    aws.iam.RolePolicyAttachment(f"{name}-{identity}-policy", role=role.name,
                                 policy_arn=IDENTITIES[identity]["aws_policy_arn"], opts=opts)
    return role.arn.apply(lambda arn: {AWS_ROLE_ANNOTATION: arn})


def _gcp_identity(name: str, cluster: str, identity: str, wi: pulumi.Output,
                  opts: pulumi.ResourceOptions) -> pulumi.Output[dict[str, str]]:
    import pulumi_gcp as gcp

    project = wi.apply(lambda w: w["project"])
    account = gcp.serviceaccount.Account(
        f"{name}-{identity}-gsa", account_id=gcp_account_id(cluster, identity), project=project,
        display_name=f"Jenkins {identity} agents of {cluster} (Workload Identity)", opts=opts)
    for role in IDENTITIES[identity]["gcp_roles"]:
        gcp.projects.IAMMember(f"{name}-{identity}-{role.rsplit('/', 1)[-1]}", project=project, role=role,
                               member=account.email.apply(lambda e: f"serviceAccount:{e}"), opts=opts)
    gcp.serviceaccount.IAMMember(
        f"{name}-{identity}-wi", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
        member=wi.apply(lambda w: workload_identity_member(w["pool"], identity)), opts=opts)
    return account.email.apply(lambda e: {GCP_SA_ANNOTATION: e})
