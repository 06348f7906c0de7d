"""checkov on the dev render: no failed check on the services layer's objects except the listed ones."""
import fnmatch
import json
import os
import subprocess

import pytest
import yaml

from stacks.render import is_k8s_object, manifest_of
from tests.helpers import ROOT, capture_stack

CHECKOV = ROOT / ".tools" / "bin" / "checkov"
SKIP_FILE = ROOT / "tests" / "checkov-skip.yaml"
#: Components whose Kubernetes objects this test holds to zero unexplained findings.
OWNERS = ("cnplatform:microservice:Microservice", "cnplatform:database:MySqlDatabase")


def our_objects(capture) -> set[str]:
    """``Kind.namespace.name`` (checkov's resource id) of every object under an OWNERS component."""
    index = {r.urn: r for r in capture.resources}
    ours = set()
    for reg in capture.resources:
        if not is_k8s_object(reg):
            continue
        node = index.get(reg.parent)
        while node is not None and node.type not in OWNERS:
            node = index.get(node.parent)
        if node is not None:
            doc = manifest_of(reg)
            ours.add(f"{doc['kind']}.{doc['metadata'].get('namespace', 'default')}.{doc['metadata']['name']}")
    return ours


@pytest.fixture(scope="module")
def checkov_report(rendered):
    if not CHECKOV.exists():
        pytest.fail(f"checkov not found at {CHECKOV}: run `make tools` (installs requirements-tools.txt into .tools/)")
    out = rendered("dev") / "manifests"
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(out), "--framework", "kubernetes", "-o", "json", "--quiet", "--compact",
         "--skip-download"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"}, timeout=300)
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    results = {"passed": [], "failed": []}
    for rep in reports:
        results["passed"] += rep["results"].get("passed_checks", [])
        results["failed"] += rep["results"].get("failed_checks", [])
    return results


def skip_list() -> dict:
    return yaml.safe_load(SKIP_FILE.read_text()) or {}


def test_skip_list_is_short_and_explained():
    skips = skip_list()
    assert len(skips) <= 5
    for check, entry in skips.items():
        assert check.startswith("CKV"), check
        assert len(entry.get("reason", "").split()) >= 10, f"{check}: give a real reason"
        assert entry.get("objects"), f"{check}: list the objects it applies to"


def test_no_unexplained_checkov_failure_on_service_workloads(checkov_report):
    ours = our_objects(capture_stack("dev"))
    assert {"Deployment.shop.order", "StatefulSet.shop.order-mysql", "NetworkPolicy.shop.order"} <= ours
    scanned = {r["resource"] for r in checkov_report["passed"] + checkov_report["failed"]}
    assert {"Deployment.shop.order", "StatefulSet.shop.user-mysql"} <= scanned, "checkov did not scan our workloads"

    skips = skip_list()
    used: set[tuple[str, str]] = set()
    unexplained = []
    for failure in checkov_report["failed"]:
        resource, check = failure["resource"], failure["check_id"]
        if resource not in ours:
            continue  # other layers' objects: their owners' business
        patterns = skips.get(check, {}).get("objects", [])
        match = next((p for p in patterns if fnmatch.fnmatchcase(resource, p)), None)
        if match is None:
            unexplained.append(f"{check} {failure['check_name']}: {resource} ({failure['file_path']})")
        else:
            used.add((check, match))
    assert not unexplained, "fix these, or list them with a reason in tests/checkov-skip.yaml:\n" + "\n".join(
        unexplained)
    stale = [f"{c}: {p}" for c, e in skips.items() for p in e["objects"] if (c, p) not in used]
    assert not stale, "checkov-skip.yaml entries that no longer match a failure (remove them):\n" + "\n".join(stale)
