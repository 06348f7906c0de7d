"""Every mistaken or hostile stack config is rejected by the render: exit 2, its key path, nothing written.

Each ``tests/bad_configs/<case>.yaml`` is a stack file with one mistake; its leading comments name the
key path the error must name (``# error: <path>``) and a part of the message (``# message: <text>``).
"""
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import render
from tests.helpers import ROOT

CASES = sorted((ROOT / "tests" / "bad_configs").glob("*.yaml"))


def expectation(file: Path) -> tuple[str, str]:
    head = dict(line[2:].split(": ", 1) for line in file.read_text().splitlines()[:2] if line.startswith("# "))
    return head["error"], head["message"]


def run(capsys, *argv) -> tuple[int, str]:
    code = render.main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("file", CASES, ids=[c.stem for c in CASES])
def test_bad_config_exits_2_with_its_key_path_and_writes_nothing(file, tmp_path, capsys):
    path, message = expectation(file)
    out = tmp_path / "out"
    code, err = run(capsys, "--stack", file.stem, "--config", str(file), "--out", str(out), "-q")
    assert code == 2, err
    assert f"  - {path}: " in err, err
    assert message in err.split(f"  - {path}: ", 1)[1].split("\n  - ")[0], err
    assert "Traceback" not in err
    assert not out.exists()


def test_there_is_a_case_for_each_mistake_of_the_issue():
    assert len(CASES) >= 45


def test_unknown_stack_names_the_known_ones(tmp_path, capsys):
    code, err = run(capsys, "--stack", "nosuch", "--out", str(tmp_path / "o"))
    assert code == 2 and "--stack: no stack config file" in err and "stacks: dev, prod, staging" in err
    assert not (tmp_path / "o").exists()


def test_stack_name_cannot_escape_the_repository(tmp_path, capsys):
    code, err = run(capsys, "--stack", "../etc/passwd", "--out", str(tmp_path / "o"))
    assert code == 2 and "is not a Pulumi stack name" in err


def test_missing_config_file(tmp_path, capsys):
    code, err = run(capsys, "--stack", "x", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o"))
    assert code == 2 and "--config: no stack config file" in err


@pytest.mark.parametrize("setup", ["repo", "not-a-render", "file"])
def test_out_that_is_not_a_render_is_never_replaced(setup, tmp_path, capsys):
    out = {"repo": ROOT, "not-a-render": tmp_path / "mine", "file": tmp_path / "f"}[setup]
    if setup == "not-a-render":
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    if setup == "file":
        out.write_text("keep me")
    code, err = run(capsys, "--stack", "dev", "--out", str(out), "-q")
    assert code == 2 and "--out" in err
    assert setup == "repo" or (out / "notes.txt" if setup == "not-a-render" else out).read_text() == "keep me"


def test_all_errors_at_once(tmp_path, capsys):
    file = tmp_path / "Pulumi.many.yaml"
    file.write_text("config:\n  ecommerce-platfrom:x: 1\n  ecommerce-platform:tier: dev\n"
                    "  ecommerce-platform:clusters: [{name: dev, cloud: local, zones: [a]}]\n"
                    "  ecommerce-platform:services:\n  - {name: 1a, image: 'a:latest', expose: {path: /}}\n")
    code, err = run(capsys, "--stack", "many", "--config", str(file), "--out", str(tmp_path / "o"))
    assert code == 2
    for path in ("config.ecommerce-platfrom:x", "services[0].name", "services[0].image", "services[0].expose.path"):
        assert f"  - {path}: " in err, err


def test_the_cli_itself_exits_2_without_a_traceback(tmp_path):
    file = ROOT / "tests" / "bad_configs" / "syntax_error.yaml"
    proc = subprocess.run([sys.executable, "-m", "stacks.render", "--stack", "x", "--config", str(file),
                           "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "YAML syntax error at line 5" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_readme_bad_config_example_is_the_real_output(tmp_path, capsys):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("$ make render STACK=bad CONFIG=examples/bad-config/Pulumi.bad.yaml\n", 1)[1].split("```")[0]
    code, err = run(capsys, "--stack", "bad", "--config", str(ROOT / "examples/bad-config/Pulumi.bad.yaml"),
                    "--out", str(tmp_path / "o"))
    assert code == 2 and err == block
