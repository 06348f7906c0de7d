"""Tier 2 can fail: the harness' no-perpetual-diff check (``e2e.tier2.preview_no_changes``, what tier 2 runs
after ``pulumi up``) is run by the real Pulumi CLI, language host and Kubernetes provider against the
simulated cluster (fixture ``sim_cluster``) on two tiny programs: one whose ConfigMap is the same on
every run (the check passes) and one whose ConfigMap changes on every run (the check must fail and
name the resource). Skipped when the tools are not built or the program virtualenv lacks the pinned SDKs.
"""
from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest

from e2e import tier2

PROGRAM = '''\
import time
import pulumi
import pulumi_kubernetes as k8s

provider = k8s.Provider("sim", kubeconfig=pulumi.Config().require("kubeconfig_path"),
                        context=pulumi.Config().require("context"))
ns = k8s.core.v1.Namespace("ns", metadata={"name": "{namespace}"}, opts=pulumi.ResourceOptions(provider=provider))
data = {"stamp": str(time.time_ns())} if {perpetual} else {"stamp": "fixed"}
k8s.core.v1.ConfigMap("stamp", metadata={"name": "stamp", "namespace": ns.metadata["name"]}, data=data,
                      opts=pulumi.ResourceOptions(provider=provider))
'''


def _venv() -> Path:
    return Path(os.environ.get("E2E_PROGRAM_VENV") or tier2.REPO / ".venv")


@pytest.fixture(scope="module")
def tools():
    missing = tier2.missing_tools()
    if missing:
        pytest.skip(f"Pulumi e2e tools not built ({', '.join(missing)} missing in {tier2.BIN_DIR}): "
                    "run `bash e2e/tools/build_pulumi.sh`")
    want = tier2.versions()["PULUMI_KUBERNETES_VERSION"]
    venv = _venv()
    have = tier2._pip_freeze_version(venv, "pulumi-kubernetes") if (venv / "bin" / "python").exists() else None
    if have != want:
        pytest.skip(f"{venv} has pulumi-kubernetes {have}, the built provider is {want}: run `make venv` "
                    "(or set E2E_PROGRAM_VENV)")
    return venv


def _program(tmp: Path, name: str, venv: Path, cluster, perpetual: bool) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        runtime:
          name: python
          options:
            toolchain: pip
            virtualenv: {venv}
        """))
    ns = f"e2e-{name}-{uuid.uuid4().hex[:6]}"
    (d / "__main__.py").write_text(PROGRAM.replace("{namespace}", ns).replace("{perpetual}", str(perpetual)))
    (d / "Pulumi.dev.yaml").write_text(f"config:\n  {name}:kubeconfig_path: {Path(cluster.kubeconfig).resolve()}\n"
                                       f"  {name}:context: {cluster.context}\n")
    return d


def _up_then_check(tmp_path: Path, sim_cluster, venv: Path, name: str, perpetual: bool):
    pulumi = tier2.Pulumi(tmp_path / "pulumi", str(Path(sim_cluster.kubeconfig).resolve()))
    problems: list[str] = []
    installed = tier2.install_plugins(pulumi, tier2.versions(), problems)
    assert "kubernetes" in installed, problems
    project = _program(tmp_path, name, venv, sim_cluster, perpetual)
    proc, _ = pulumi.run("stack-init", "stack", "init", "dev", "--secrets-provider", "passphrase", cwd=project)
    assert proc.returncode == 0, proc.stderr
    try:
        proc, _ = pulumi.run("up", "up", "--yes", "--skip-preview=false", "--stack", "dev", cwd=project)
        assert proc.returncode == 0, tier2.error_summary(proc)
        return tier2.preview_no_changes(pulumi, project, "dev")
    finally:
        proc, _ = pulumi.run("destroy", "destroy", "--yes", "--stack", "dev", cwd=project)
        assert proc.returncode == 0, tier2.error_summary(proc)


def test_stable_program_passes_the_no_changes_check(tmp_path, sim_cluster, tools):
    problem, _ = _up_then_check(tmp_path, sim_cluster, tools, "stable", perpetual=False)
    assert problem is None


def test_perpetual_diff_fails_the_no_changes_check(tmp_path, sim_cluster, tools):
    problem, _ = _up_then_check(tmp_path, sim_cluster, tools, "perpetual", perpetual=True)
    assert problem is not None, "a ConfigMap that changes on every run must fail --expect-no-changes"
    assert "perpetual diff" in problem and "stamp" in problem, problem


VIOLATING = '''\
import pulumi
import pulumi_kubernetes as k8s

provider = k8s.Provider("sim", kubeconfig=pulumi.Config().require("kubeconfig_path"),
                        context=pulumi.Config().require("context"))
k8s.apps.v1.Deployment("web", metadata={"namespace": "default"}, spec={
    "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    opts=pulumi.ResourceOptions(provider=provider))
'''


def test_policy_step_fails_on_a_violation(tmp_path, sim_cluster, tools):
    """The real policy pack (policy/, in its own virtualenv) through the real CLI: a Deployment without
    resources or a non-root security context is denied, and tier 2's policy step reports it."""
    import shutil

    pulumi = tier2.Pulumi(tmp_path / "pulumi", str(Path(sim_cluster.kubeconfig).resolve()))
    problems: list[str] = []
    assert "kubernetes" in tier2.install_plugins(pulumi, tier2.versions(), problems), problems
    project = _program(tmp_path, "violating", tools, sim_cluster, perpetual=False)
    (project / "__main__.py").write_text(VIOLATING)
    shutil.copytree(tier2.REPO / "policy", project / "policy", ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    proc, _ = pulumi.run("stack-init", "stack", "init", "dev", "--secrets-provider", "passphrase", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert tier2.run_policy(pulumi, project, problems, None) is False
    assert any("container-resources" in p and "mandatory" in p for p in problems), problems
