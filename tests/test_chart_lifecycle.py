"""helm.v4.Chart renders every `pulumi up` as a fresh install (issue #15 item 12): `.Release.IsUpgrade`
is false, `.Release.IsInstall` true, Helm hooks are not run as hooks, `lookup` reads the live cluster.

Every template of the pinned charts (e2e/charts) that depends on Helm's lifecycle is listed here with
why our values make it harmless, and the values are checked. A chart bump that adds one fails here
until someone reads it.
"""
import re

import pytest

from cnplatform.testing import unwrap
from tests.helpers import ROOT, capture_stack

CHARTS = ROOT / "e2e" / "charts"
LIFECYCLE = re.compile(r"\.Release\.IsUpgrade|\.Release\.IsInstall|\blookup\s+\"|helm\.sh/hook")


def release_values(stack: str) -> dict[str, dict]:
    return {unwrap(r.inputs)["chart"]: unwrap(r.inputs).get("values") or {}
            for r in capture_stack(stack).by_type("kubernetes:helm.sh/v4:Chart")}


def get(values: dict, path: str):
    for key in path.split("."):
        values = (values or {}).get(key) if isinstance(values, dict) else None
    return values


#: template (under e2e/charts) -> (chart release, why harmless, check of our values).
AUDIT = {
    "istio-base/templates/defaultrevision-validatingwebhookconfiguration.yaml": (
        "base", "IsUpgrade would pick Ignore: base.validationFailurePolicy is set",
        lambda v: get(v, "base.validationFailurePolicy") == "Fail"),
    "istiod/templates/validatingwebhookconfiguration.yaml": (
        "istiod", "same, for istiod's validator", lambda v: get(v, "base.validationFailurePolicy") == "Fail"),
    "jenkins/templates/_helpers.tpl": (
        "jenkins", "lookup of a generated admin password: the admin comes from our Secret",
        lambda v: bool(get(v, "controller.admin.existingSecret"))),
    "jenkins/templates/tests/jenkins-test.yaml": ("jenkins", "helm test hook: never used", lambda v: True),
    "jenkins/templates/tests/test-config.yaml": ("jenkins", "helm test hook: never used", lambda v: True),
    "kube-prometheus-stack/charts/grafana/templates/_helpers.tpl": (
        "kube-prometheus-stack", "lookup of a generated admin password: the admin comes from our Secret",
        lambda v: bool(get(v, "grafana.admin.existingSecret"))),
    "kube-prometheus-stack/charts/grafana/templates/pvc.yaml": (
        "kube-prometheus-stack", "lookupVolumeName: off", lambda v: not get(v, "grafana.persistence.lookupVolumeName")),
    "metrics-server/templates/apiservice.yaml": (
        "metrics-server", "lookup keeps a helm-generated certificate: metrics-server makes its own",
        lambda v: get(v, "tls.type") in (None, "metrics-server")),
}
#: Whole directories only rendered when a value we keep off turns them on.
AUDIT_DIRS = {
    "kube-prometheus-stack/charts/crds/templates/upgrade/": (
        "kube-prometheus-stack", "CRD upgrade hook Job and its RBAC: off (the CRDs are applied as objects)",
        lambda v: not get(v, "crds.upgradeJob.enabled")),
    "kube-prometheus-stack/templates/prometheus-operator/admission-webhooks/": (
        "kube-prometheus-stack", "IsInstall-dependent failurePolicy and hook Jobs: the admission webhooks are off",
        lambda v: get(v, "prometheusOperator.admissionWebhooks.enabled") is False),
}


def lifecycle_templates() -> list[str]:
    found = []
    for path in sorted(CHARTS.rglob("*")):
        rel = path.relative_to(CHARTS).as_posix()
        if "/templates/" in rel and path.is_file() and LIFECYCLE.search(path.read_text(errors="replace")):
            if not rel.startswith(tuple(f"{c}/templates/crd-" for c in ("cert-manager",))):  # CRD text only
                found.append(rel)
    return found


def test_every_lifecycle_dependent_template_is_audited():
    unaudited = [t for t in lifecycle_templates()
                 if t not in AUDIT and not any(t.startswith(d) for d in AUDIT_DIRS)]
    assert not unaudited, f"templates that assume Helm's install/upgrade lifecycle: {unaudited}"
    assert len(lifecycle_templates()) >= 10  # the scan sees the charts


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_our_values_make_each_audited_template_harmless(stack):
    releases = release_values(stack)
    for template, (chart, why, ok) in [*AUDIT.items(), *AUDIT_DIRS.items()]:
        if chart in releases:
            assert ok(releases[chart]), f"{stack}: {template}: {why}"
