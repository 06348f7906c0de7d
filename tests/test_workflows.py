"""GitHub Actions workflows: schema-valid (check-jsonschema's vendored schema, offline) and doing what they say."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.helpers import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in doc:  # YAML 1.1 reads the `on:` key as a boolean
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict, job: str) -> list[dict]:
    return doc["jobs"][job]["steps"]


def runs(doc: dict, job: str) -> str:
    return "\n".join(s.get("run", "") for s in steps(doc, job))


def uses(doc: dict, job: str, action: str) -> list[dict]:
    return [s for s in steps(doc, job) if s.get("uses", "").split("@")[0] == action]


def test_workflows_exist():
    assert {p.name for p in FILES} >= {"ci.yml", "preview.yml", "plan-diff.yml"}


def test_workflows_valid_against_github_workflow_schema():
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, FILES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: 3\n")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_pinned_and_no_long_lived_cloud_secrets(path):
    text = path.read_text()
    for ref in re.findall(r"uses:\s*([^\s#]+)", text):
        assert re.search(r"@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$", ref), ref
    # Only the job's own GITHUB_TOKEN; cloud and Pulumi credentials come from OIDC.
    assert set(re.findall(r"secrets\.(\w+)", text)) <= {"GITHUB_TOKEN"}
    assert "aws-access-key-id" not in text and "credentials_json" not in text


def test_ci_tests_and_renders_every_stack():
    doc = load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    job = next(iter(doc["jobs"]))
    python = uses(doc, job, "actions/setup-python")
    assert python and python[0]["with"]["python-version"] == "3.11"
    script = runs(doc, job)
    assert "make test" in script
    assert "prometheus" in script and "mariadb-server" in script  # what .ci/run installs
    assert "for stack in dev staging prod" in script and "python -m stacks.render --stack" in script
    assert "kubernetes-validate" in script and "stacks.diff" in script and "check-jsonschema" in script


def test_preview_per_cloud_stack_with_oidc():
    doc = load("preview.yml")
    assert set(doc["on"]) == {"pull_request"}
    assert doc["permissions"]["id-token"] == "write" and doc["permissions"]["pull-requests"] == "write"
    job = next(iter(doc["jobs"]))
    matrix = doc["jobs"][job]["strategy"]["matrix"]["include"]
    assert [m["stack"] for m in matrix] == ["staging", "prod"]  # dev needs a kind cluster: documented
    pulumi = uses(doc, job, "pulumi/actions")
    assert pulumi and pulumi[0]["uses"].endswith("@v6")
    assert pulumi[0]["with"]["command"] == "preview" and pulumi[0]["with"]["comment-on-pr"] is True
    assert "matrix.stack" in pulumi[0]["with"]["stack-name"]
    aws = uses(doc, job, "aws-actions/configure-aws-credentials")
    assert aws and "role-to-assume" in aws[0]["with"]
    gcp = uses(doc, job, "google-github-actions/auth")
    assert gcp and "workload_identity_provider" in gcp[0]["with"]
    assert uses(doc, job, "pulumi/auth-actions")


def test_plan_diff_renders_base_and_head_without_credentials():
    doc = load("plan-diff.yml")
    assert set(doc["on"]) == {"pull_request"}
    assert "id-token" not in doc["permissions"] and doc["permissions"]["pull-requests"] == "write"
    job = next(iter(doc["jobs"]))
    checkouts = uses(doc, job, "actions/checkout")
    refs = {c["with"]["path"]: c["with"]["ref"] for c in checkouts}
    assert refs == {"head": "${{ github.event.pull_request.head.sha }}",
                    "base": "${{ github.event.pull_request.base.sha }}"}
    script = runs(doc, job)
    assert "-m stacks.render --stack" in script and "for side in base head" in script
    assert re.search(r"-m stacks\.diff \"\.\./render/base/\$stack\" \"\.\./render/head/\$stack\"", script)
    comment = uses(doc, job, "marocchino/sticky-pull-request-comment")
    assert comment and comment[0]["with"]["path"] == "plan-diff.md"
    text = (WORKFLOWS / "plan-diff.yml").read_text()
    assert "aws-actions" not in text and "google-github-actions" not in text and "PULUMI_ACCESS_TOKEN" not in text


def test_make_up_scopes_the_local_backend_and_never_logs_in(tmp_path):
    """`pulumi login file://...` would switch the user's global backend (issue #15 item 10)."""
    import os
    import stat
    import subprocess

    log = tmp_path / "calls.log"
    for tool in ("pulumi", "docker", "kind", "kubectl"):
        script = tmp_path / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $* BACKEND=$PULUMI_BACKEND_URL" >> {log}\n'
                          + ('[ "$1" = version ] && echo "kind v0.31.0 go1.24 linux/amd64"\n' if tool == "kind" else "")
                          + "exit 0\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    env.pop("PULUMI_BACKEND_URL", None)
    proc = subprocess.run(["make", "-o", ".venv/.installed", "up"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [line for line in log.read_text().splitlines() if line.startswith("pulumi ")]
    assert calls and not any(line.startswith("pulumi login") for line in calls)
    assert all(f"BACKEND=file://{ROOT}/.pulumi-state" in line for line in calls), calls


def test_check_tools_reports_every_missing_and_old_tool_in_one_pass(tmp_path):
    import os
    import stat
    import subprocess

    kind = tmp_path / "kind"
    kind.write_text('#!/bin/sh\necho "kind v0.27.0 go1.23 linux/amd64"\n')
    kind.chmod(kind.stat().st_mode | stat.S_IEXEC)
    import shutil
    for tool in ("sed", "sort", "head", "printf"):  # what the recipe uses besides the tools it checks
        if shutil.which(tool):
            (tmp_path / tool).symlink_to(shutil.which(tool))
    make = shutil.which("make")
    env = {**os.environ, "PATH": str(tmp_path)}  # only the old kind: pulumi, docker, kubectl are missing
    proc = subprocess.run([make, "-s", "check-tools"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    out = proc.stdout
    assert "missing: Pulumi CLI" in out and "missing: kubectl" in out
    assert "too old: kind 0.27.0" in out and "make render STACK=dev" in out
