"""CI skips nothing it can run: .ci/check_skips.py fails on a skipped test not in .ci/allowed-skips.txt."""
import subprocess
import sys

from tests.helpers import ROOT

CHECK = ROOT / ".ci" / "check_skips.py"
ALLOWED = ROOT / ".ci" / "allowed-skips.txt"


def junit(tmp_path, body: str):
    """A real pytest JUnit report of a test file with ``body``."""
    (tmp_path / "test_x.py").write_text("import pytest\n\n" + body)
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    str(tmp_path / "test_x.py")], cwd=tmp_path, capture_output=True, timeout=120)
    return report


def check(report, allowed) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(report), str(allowed)], capture_output=True, text=True,
                          timeout=60)


def test_an_unlisted_skip_fails_and_is_named(tmp_path):
    report = junit(tmp_path, "def test_amtool():\n    pytest.skip('amtool not installed')\n\n"
                             "def test_ok():\n    pass\n")
    proc = check(report, ALLOWED)
    assert proc.returncode == 1
    assert "skipped in CI: test_x.test_amtool: amtool not installed" in proc.stdout


def test_a_listed_skip_passes_only_with_its_reason(tmp_path):
    report = junit(tmp_path, "def test_cni():\n    pytest.skip('values.yaml is not in tests/reference')\n")
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("# comment\ntest_x.test_cni | is not in tests/reference\n")
    assert check(report, allowed).returncode == 0
    allowed.write_text("test_x.test_cni | another reason\n")
    assert check(report, allowed).returncode == 1


def test_the_allowed_list_is_only_what_ci_cannot_run():
    """Each entry says why; nothing a package would provide (promtool, amtool, MariaDB, the tools venv)."""
    entries = [line for line in ALLOWED.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all(" | " in line for line in entries)  # empty: CI skips nothing at all
    for tool in ("promtool", "amtool", "mariadb", "tools venv", "helm_python"):
        assert tool not in "\n".join(entries).lower()
