"""The README and the how-to guides show what their commands really print, and need nothing outside
the repository (issue 20: a newcomer has only the clone)."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gen_doc_examples as gen  # noqa: E402

HOWTOS = ("add-a-service", "add-a-cluster", "canary", "rotate-a-secret")
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "e2e" / "README.md",
             ROOT / "services" / "README.md", ROOT / "examples" / "team-app" / "README.md"]


def test_every_command_output_shown_is_what_the_command_prints():
    """Runs every example command (renders, diffs, the bad config) and compares, timing masked."""
    proc = subprocess.run([sys.executable, "scripts/gen_doc_examples.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]


def test_each_document_has_a_block_for_each_of_its_examples_and_no_other():
    for doc in gen.EXAMPLES:
        names = {m.group(2) for m in gen.GENERATED.finditer((ROOT / doc).read_text())}
        assert names, doc
        prefix = {"README.md": "readme-"}.get(doc, "")
        assert all(n.startswith(prefix) for n in names), (doc, names)


def test_rewrite_replaces_a_blocks_body_and_check_masks_only_the_timing():
    text = "x\n  <!-- generated: a -->\n  ```text\n  $ old\n  stale\n  ```\ny\n"
    new = gen.rewrite(text, {"a": "$ cmd\nrendered stack 'dev' in 1.2s: 3 resources\n\nend\n"}, "t.md")
    assert new == ("x\n  <!-- generated: a -->\n  ```text\n  $ cmd\n  rendered stack 'dev' in 1.2s: 3 resources\n"
                   "\n  end\n  ```\ny\n")
    assert gen.TIMING.sub("", new) == gen.TIMING.sub("", new.replace("in 1.2s", "in 9.8s"))
    assert gen.TIMING.sub("", new) != gen.TIMING.sub("", new.replace("3 resources", "4 resources"))


def test_the_guides_snippets_are_what_the_examples_apply():
    snippets = gen.snippets()
    assert {"cart-service", "staging-eks", "product-canary"} <= set(snippets)
    assert gen.snippet_entry("cart-service")["calls"] == ["product", "user"]


def test_readme_links_every_howto_and_the_testing_guide():
    readme = (ROOT / "README.md").read_text()
    for name in HOWTOS:
        assert f"(docs/howto/{name}.md)" in readme and (ROOT / "docs" / "howto" / f"{name}.md").is_file()
    assert "(docs/testing.md)" in readme


def test_docs_point_at_nothing_outside_the_repository():
    """No tool or path a user of the repository does not have (a shared folder, a validation venv)."""
    outside = re.compile(r"shared/tools|\.\./shared|/work/|VALIDATE_VENV")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in USER_DOCS if p.is_file()
             for i, line in enumerate(p.read_text().splitlines(), 1) if outside.search(line)]
    assert found == []


def test_readme_kind_version_is_the_one_make_up_checks():
    minimum = re.search(r"^KIND_MIN := (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    major_minor = ".".join(minimum.split(".")[:2])
    assert f"[kind](https://kind.sigs.k8s.io/) v{major_minor}+" in (ROOT / "README.md").read_text()


def test_the_urn_the_rotation_guide_replaces_is_one_the_render_lists():
    text = (ROOT / "docs" / "howto" / "rotate-a-secret.md").read_text()
    listed = next(m.group(4) for m in gen.GENERATED.finditer(text) if m.group(2) == "rotate-password-urns")
    replaced = re.findall(r"--replace '([^']+)'", text)
    assert replaced and all(urn in listed.splitlines() for urn in replaced)
