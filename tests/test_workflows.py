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


def test_ci_is_only_calls_of_the_one_entry_point():
    """Issue 20: ci.yml installed its own packages instead of calling .ci/run. Every `run:` step of every
    job is `.ci/run <stages>`; together they run every stage .ci/run has."""
    doc = load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    stages = set()
    for job in doc["jobs"]:
        python = uses(doc, job, "actions/setup-python")
        assert python and python[0]["with"]["python-version"] == "3.11"
        for step in steps(doc, job):
            if "run" in step:
                words = step["run"].split()
                assert words[0] == ".ci/run", step["run"]
                stages |= set(words[1:])
    assert stages == set(CI_STAGES)
    scripts = "\n".join(runs(doc, job) for job in doc["jobs"])
    assert "apt-get" not in scripts and "make" not in scripts
    go = uses(doc, "e2e", "actions/setup-go")
    assert go and uses(doc, "e2e", "actions/cache")[0]["with"]["path"] == "~/.cache/cnplatform-e2e"


CI_RUN = ROOT / ".ci" / "run"
CI_STAGES = ("tools", "test", "renders", "e2e")


def test_ci_run_has_the_stages_it_documents_and_what_ci_yml_used_to_do():
    text = CI_RUN.read_text()
    assert re.search(r"^#\s+\.ci/run \[tools\] \[test\] \[renders\] \[e2e\]", text, re.M)
    for stage in CI_STAGES:
        assert f"stage_{stage}() {{" in text and re.search(rf"^#   {stage}\s", text, re.M), stage
    # The system tools: promtool, amtool (issue 20: the amtool tests were skipped), MariaDB.
    for package in ("prometheus", "prometheus-alertmanager", "mariadb-server"):
        assert f"need+=({package})" in text
    assert "make test" in text and "check_skips.py" in text and "make e2e" in text
    assert "for stack in dev staging prod" in text and "-m stacks.render --stack" in text
    assert "kubernetes-validate" in text and "stacks.diff" in text and "check-jsonschema" in text
    assert subprocess.run(["bash", "-n", str(CI_RUN)]).returncode == 0


def test_ci_run_rejects_an_unknown_stage():
    proc = subprocess.run([str(CI_RUN), "nope"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown stage 'nope'" in proc.stderr


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


def _fake(tmp_path, name: str, script: str) -> None:
    import stat

    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _check_tools(tmp_path) -> subprocess.CompletedProcess:
    """`make check-tools` with only the fakes in ``tmp_path`` (and what the recipe itself uses) on PATH."""
    import os
    import shutil

    for tool in ("sed", "sort", "head", "printf"):
        if shutil.which(tool) and not (tmp_path / tool).exists():
            (tmp_path / tool).symlink_to(shutil.which(tool))
    return subprocess.run([shutil.which("make"), "-s", "check-tools"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": str(tmp_path)}, timeout=60)


def test_check_tools_reports_every_missing_and_old_tool_in_one_pass(tmp_path):
    """Issue 20: Docker was checked after the others and kind's version never: now one pass says it all."""
    _fake(tmp_path, "kind", 'echo "kind v0.27.0 go1.23 linux/amd64"')
    _fake(tmp_path, "python3", 'echo 3.9')
    _fake(tmp_path, "docker", '[ "$1" = info ] && exit 1; exit 0')  # installed, engine not running
    proc = _check_tools(tmp_path)
    assert proc.returncode != 0
    lines = proc.stdout.splitlines()
    assert "too old: python3 is Python 3.9 (needs >= 3.11)" in proc.stdout
    assert any(line.startswith("missing: Pulumi CLI") for line in lines)
    assert any(line.startswith("missing: kubectl") for line in lines)
    assert "too old: kind 0.27.0 (the node image needs kind >= v0.31.0)" in proc.stdout
    assert "Docker is installed but the engine is not running: start Docker" in lines
    assert lines[-1] == "Without them you can still see everything the platform would create: make render STACK=dev"


def test_check_tools_passes_with_every_tool_recent_enough(tmp_path):
    _fake(tmp_path, "kind", 'echo "kind v0.31.0 go1.24 linux/amd64"')
    _fake(tmp_path, "python3", 'echo 3.11')
    for tool in ("pulumi", "docker", "kubectl"):
        _fake(tmp_path, tool, "exit 0")
    proc = _check_tools(tmp_path)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_make_test_shows_why_tests_are_skipped():
    """Issue 20: `-q` alone hid the skip reasons; CI passes a JUnit report through PYTEST_ARGS."""
    proc = subprocess.run(["make", "-n", "-o", ".venv/.installed", "-o", ".tools/.installed", "test",
                           "PYTEST_ARGS=--junitxml=x.xml"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert ".venv/bin/python -m pytest -rs --junitxml=x.xml" in proc.stdout.splitlines()
