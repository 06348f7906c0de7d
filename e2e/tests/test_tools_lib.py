"""e2e/tools/lib.sh: the checks the tool scripts make on what they build."""

from __future__ import annotations

import subprocess
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "tools" / "lib.sh"
TOOLS = LIB.parent


def _fake_tool(tmp_path: Path, trailing_lines: int) -> Path:
    """A binary like etcd: the version on its first line, then more output."""
    tool = tmp_path / "fake-etcd"
    tool.write_text(
        "#!/usr/bin/env bash\n"
        "echo 'etcd Version: 3.6.16'\n"
        f"for ((i = 0; i < {trailing_lines}; i++)); do echo \"Git SHA: line $i\"; done\n"
    )
    tool.chmod(0o755)
    return tool


def _bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CNPLATFORM_E2E_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source {LIB}; {script}"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def test_expect_output_is_immune_to_sigpipe(tmp_path: Path) -> None:
    # `tool | grep -q` under pipefail fails here: grep exits at line one, the tool dies of SIGPIPE
    tool = _fake_tool(tmp_path, trailing_lines=200_000)
    piped = _bash(f"{tool} | grep -q 'etcd Version: 3.6.16' && echo matched", tmp_path)
    assert piped.returncode != 0, "the old check no longer shows the race; keep this test honest"
    checked = _bash(f"expect_output etcd '^etcd Version: 3.6.16$' {tool}; echo ok", tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "ok"


def test_expect_output_rejects_the_wrong_version(tmp_path: Path) -> None:
    tool = _fake_tool(tmp_path, trailing_lines=3)
    result = _bash(f"expect_output etcd '^etcd Version: 3.6.17$' {tool}", tmp_path)
    assert result.returncode == 1
    assert "etcd reports 'etcd Version: 3.6.16" in result.stderr


def test_expect_output_reports_a_tool_that_fails(tmp_path: Path) -> None:
    result = _bash("expect_output etcd 'x' false", tmp_path)
    assert result.returncode == 1
    assert "etcd: 'false' failed" in result.stderr


def test_no_tool_script_pipes_into_grep_q() -> None:
    offenders = [
        f"{script.name}:{n}"
        for script in sorted(TOOLS.glob("*.sh"))
        for n, line in enumerate(script.read_text().splitlines(), 1)
        if "| grep -q" in line and not line.lstrip().startswith("#")
    ]
    assert not offenders, f"use expect_output instead of '| grep -q' under pipefail: {offenders}"
