"""Fail CI on a skipped test that CI could run: every skip in the JUnit report must match a line of the
allowed list (``<test id prefix> | <part of the reason>``: why CI cannot run it), else exit 1 listing them.

    python .ci/check_skips.py build/test-results.xml .ci/allowed-skips.txt
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def skipped(report: Path) -> list[tuple[str, str]]:
    """(test id, reason) of every skipped test in a pytest JUnit XML report."""
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is not None:
            test_id = f"{case.get('classname', '')}.{case.get('name', '')}"
            out.append((test_id, skip.get("message") or skip.text or ""))
    return out


def allowed(path: Path) -> list[tuple[str, str]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            prefix, _, reason = (part.strip() for part in line.partition("|"))
            rules.append((prefix, reason))
    return rules


def unexpected(skips: list[tuple[str, str]], rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(test, reason) for test, reason in skips
            if not any(test.startswith(prefix) and part in reason for prefix, part in rules)]


def main(argv: list[str]) -> int:
    report, allow = Path(argv[0]), Path(argv[1])
    skips = skipped(report)
    wrong = unexpected(skips, allowed(allow))
    for test, reason in wrong:
        print(f"skipped in CI: {test}: {reason}")
    if wrong:
        print(f"{len(wrong)} test(s) skipped that CI should run: install what they need in .ci/run, "
              f"or list them with the reason CI cannot run them in {allow}")
        return 1
    print(f"skips: {len(skips)}, all listed in {allow}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
