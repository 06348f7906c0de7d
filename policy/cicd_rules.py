"""CI rules: no credential where untrusted builds run (issue #19 item 3).

``ci-untrusted-namespace-has-no-credentials`` (stack policy)
    A Namespace labelled ``cnplatform.io/untrusted-builds: "true"`` (where CI runs pull-request code:
    cnplatform's ``jenkins-agents``) holds no Secret, and no identity is tied to a ServiceAccount of it:
    no ServiceAccount there carries a cloud identity annotation (``eks.amazonaws.com/role-arn``,
    ``iam.gke.io/gcp-service-account``), no EKS Pod Identity association, IAM role trust policy
    (IRSA ``system:serviceaccount:<ns>:``) or GCP IAM member (Workload Identity ``[<ns>/``) names it.

Pure ``check_*`` function over plain data (tests call it), wrapped as a ``pulumi_policy`` policy at
the bottom. Self-contained: the standard library, ``cluster_rules`` and ``pulumi_policy``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

try:  # the pack runs with policy/ as its working directory; tests import it as ``policy.*``
    from cluster_rules import Res, res_of
except ImportError:  # pragma: no cover - depends on how the module is loaded
    from policy.cluster_rules import Res, res_of

UNTRUSTED_LABEL = "cnplatform.io/untrusted-builds"
IDENTITY_ANNOTATIONS = ("eks.amazonaws.com/role-arn", "iam.gke.io/gcp-service-account")
POD_IDENTITY_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
IAM_ROLE = "aws:iam/role:Role"
#: GCP IAM resources whose ``member`` / ``members`` may name a Workload Identity principal.
GCP_IAM_MEMBER_TYPES = (
    "gcp:serviceaccount/iAMMember:IAMMember", "gcp:serviceaccount/iAMBinding:IAMBinding",
    "gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding",
)


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def untrusted_namespaces(resources: Iterable[Res]) -> set[str]:
    return {r.name for r in resources if r.kind == "Namespace"
            and str(_map(_map(r.props.get("metadata")).get("labels")).get(UNTRUSTED_LABEL, "")).lower() == "true"}


def _identity_of(res: Res, namespaces: set[str]) -> str:
    """The untrusted namespace a resource gives credentials to ('' when none)."""
    meta = _map(res.props.get("metadata"))
    if res.kind == "Secret" and res.namespace in namespaces:
        return res.namespace
    if res.kind == "ServiceAccount" and res.namespace in namespaces:
        annotations = _map(meta.get("annotations"))
        return res.namespace if any(annotations.get(a) for a in IDENTITY_ANNOTATIONS) else ""
    if res.type == POD_IDENTITY_ASSOCIATION:
        return str(res.props.get("namespace", "")) if res.props.get("namespace") in namespaces else ""
    if res.type == IAM_ROLE:
        trust = str(res.props.get("assumeRolePolicy", ""))
        return next((ns for ns in sorted(namespaces) if f"system:serviceaccount:{ns}:" in trust), "")
    if res.type in GCP_IAM_MEMBER_TYPES:
        members = [str(res.props.get("member", "")), *map(str, res.props.get("members") or ())]
        return next((ns for ns in sorted(namespaces) if any(f"[{ns}/" in m for m in members)), "")
    return ""


def check_untrusted_namespaces(resources: Iterable[Res]) -> list[tuple[str, str]]:
    resources = list(resources)
    namespaces = untrusted_namespaces(resources)
    out = []
    for res in resources:
        ns = _identity_of(res, namespaces)
        if ns:
            what = res.where() if res.kind else f"{res.type} {res.urn.rsplit('::', 1)[-1]}"
            out.append((res.urn, f"{what} puts a credential in namespace {ns}, where untrusted builds run "
                                 f"({UNTRUSTED_LABEL}): give it to a ServiceAccount of a trusted namespace "
                                 "(jenkins-deploy) that only the preview/deploy pods use"))
    return out


def policies() -> list:
    from pulumi_policy import EnforcementLevel, StackValidationPolicy

    def validate(args, report_violation) -> None:
        for urn, message in check_untrusted_namespaces(res_of(r) for r in args.resources):
            report_violation(message, urn)

    return [StackValidationPolicy(
        name="ci-untrusted-namespace-has-no-credentials", enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate,
        description="No Secret, cloud identity or workload identity binding in a namespace where CI runs "
                    "untrusted code.")]
