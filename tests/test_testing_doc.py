"""docs/testing.md: the consumer's first test it shows is a test that passes, run as a consumer runs it."""
import re
import subprocess
import sys

from tests.helpers import ROOT

DOC = ROOT / "docs" / "testing.md"


def first_test() -> str:
    block = re.search(r"<!-- tested: [^>]*-->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/testing.md: no python block after the <!-- tested --> marker"
    return block.group(1)


def test_the_documented_first_test_passes_on_its_own(tmp_path):
    """In a directory of its own (no conftest, nothing of this repository on the path but the library)."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_reviews.py").write_text(first_test())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "tests"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\b2 passed\b", proc.stdout), proc.stdout


def test_the_documented_test_fails_when_its_claim_is_wrong(tmp_path):
    """The doc's assertions are real: two replicas claimed, three created, the test fails."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_reviews.py").write_text(first_test().replace("replicas=2", "replicas=3"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
