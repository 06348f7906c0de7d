"""Write the command outputs shown in README.md and docs/howto/*.md by running those commands.

    .venv/bin/python scripts/gen_doc_examples.py          # run every example, rewrite the blocks
    .venv/bin/python scripts/gen_doc_examples.py --check  # exit 1 and show the difference when one is stale

A generated block in a document is a fenced block right after ``<!-- generated: NAME -->``; its first
line is the command (``$ make render STACK=dev``), the rest what that command prints. The YAML a guide
tells you to add is a fenced block after ``<!-- snippet: NAME -->``: the examples apply that very
snippet to a copy of the stack file, so a guide's config and its output cannot drift apart.

Commands run from the repository root as shown, except that renders go to a temporary directory
(``OUT=...`` for ``make render``, ``build/render/`` paths replaced) and an edited stack file is passed
as ``CONFIG=``/``--config``; make's own lines (the recipe it echoes, ``make: ***``) are left out.
``--check`` compares with the render time (``in 1.2s``) masked: the one figure that varies between runs.
"""
from __future__ import annotations

import argparse
import copy
import difflib
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "howto").glob("*.md"))]
NS = "ecommerce-platform:"
#: (indent, name, opening lines, body, closing fence): blocks may sit indented in a list item.
GENERATED = re.compile(r"^( *)<!-- generated: ([\w-]+) -->\n( *```[a-z]*\n)(.*?)^( *```)$", re.S | re.M)
SNIPPET = re.compile(r"^( *)<!-- snippet: ([\w-]+) -->\n *```[a-z]*\n(.*?)^ *```$", re.S | re.M)
TIMING = re.compile(r"\bin \d+\.\ds\b")


def snippets() -> dict[str, str]:
    return {name: textwrap.dedent(body) for doc in DOCS for _, name, body in SNIPPET.findall(doc.read_text())}


class Runner:
    """Runs the commands of one document in its own temporary directory."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.configs: dict[str, Path] = {}

    def stack_file(self, name: str, stack: str, edit: Callable[[dict], None]) -> str:
        """A copy of ``Pulumi.<stack>.yaml`` after ``edit(config)`` (``config`` without the namespace)."""
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        config = {k.removeprefix(NS): v for k, v in doc["config"].items()}
        edit(config)
        path = self.tmp / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump({"config": {NS + k: v for k, v in config.items()}}, sort_keys=False))
        return str(path)

    def run(self, command: str, config: Optional[str] = None) -> str:
        """``$ command`` and what it prints (stdout and stderr, in order)."""
        actual = command.replace("build/render/", f"{self.tmp}/render/")
        words = shlex.split(command.split("|")[0])
        if words[:2] == ["make", "render"]:
            stack = next(w.split("=", 1)[1] for w in words if w.startswith("STACK="))
            make = f"make -s -o .venv/.installed render{actual.split('make render', 1)[1]}"
            actual = make + ("" if "OUT=" in command else f" OUT={self.tmp}/render/{stack}")
            actual += f" CONFIG={config}" if config else ""
        elif config:
            actual = actual.replace(" --out ", f" --config {config} --out ", 1)
        proc = subprocess.run(["bash", "-c", actual], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=600)
        if "Traceback (most recent call last)" in proc.stdout:  # never a crash into a document
            raise SystemExit(f"example {command!r} crashed:\n{proc.stdout}")
        lines = [line for line in proc.stdout.replace(f"{self.tmp}/render/", "build/render/").splitlines()
                 if not line.startswith(("make: ", "make[1]: "))]
        return "\n".join([f"$ {command}", *lines]) + "\n"


# --------------------------------------------------------------------------------------- edits


def upsert(items: list[dict], entry: dict) -> None:
    """Merge ``entry`` into the item of the same name, or append it."""
    for item in items:
        if item["name"] == entry["name"]:
            item.update(copy.deepcopy(entry))
            return
    items.append(copy.deepcopy(entry))


def with_entries(key: str, *entries: dict) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        for entry in entries:
            upsert(config[key], entry)
    return edit


def snippet_entry(name: str, **changes) -> dict:
    """The single list item of snippet ``name`` (a service or a cluster), with ``changes`` applied."""
    (entry,) = yaml.safe_load(snippets()[name])
    return {**entry, **changes}


# ------------------------------------------------------------------------------------ examples


def readme(r: Runner) -> dict[str, str]:
    return {
        "readme-bad-config": r.run("make render STACK=bad CONFIG=examples/bad-config/Pulumi.bad.yaml"),
        "readme-render-dev": r.run("make render STACK=dev"),
        "readme-render-prod": r.run("make render STACK=prod"),
    }


def add_a_service(r: Runner) -> dict[str, str]:
    cart = snippet_entry("cart-service")
    r.run("make render STACK=dev OUT=build/render/before")
    edited = r.stack_file("cart", "dev", with_entries("services", cart))
    built = {k: v for k, v in cart.items() if k != "image"} | {"build": "services/cart"}
    missing = r.stack_file("cart-build", "dev", with_entries("services", built))
    return {
        "add-service-render": r.run("make render STACK=dev", config=edited),
        "add-service-diff": r.run(".venv/bin/python -m stacks.diff build/render/before build/render/dev"),
        "add-service-missing-build": r.run("make render STACK=dev", config=missing),
    }


def add_a_cluster(r: Runner) -> dict[str, str]:
    cluster = snippet_entry("staging-eks")
    r.run("make render STACK=staging OUT=build/render/before")
    no_role = copy.deepcopy(cluster)
    no_role["aws"].pop("deployer_role_arns")
    return {
        "add-cluster-no-role": r.run("make render STACK=staging",
                                     config=r.stack_file("no-role", "staging", with_entries("clusters", no_role))),
        "add-cluster-render": r.run("make render STACK=staging",
                                    config=r.stack_file("eks", "staging", with_entries("clusters", cluster))),
        "add-cluster-diff": r.run(
            ".venv/bin/python -m stacks.diff build/render/before build/render/staging | head -10"),
    }


def canary(r: Runner) -> dict[str, str]:
    start = snippet_entry("product-canary")
    rollback = copy.deepcopy(start)
    rollback["canary"]["weight"] = 0
    r.run("make render STACK=dev OUT=build/render/before")
    out = {"canary-render": r.run("make render STACK=dev OUT=build/render/canary",
                                  config=r.stack_file("canary", "dev", with_entries("services", start)))}
    out["canary-diff"] = r.run(".venv/bin/python -m stacks.diff build/render/before build/render/canary")
    r.run("make render STACK=dev OUT=build/render/rollback",
          config=r.stack_file("rollback", "dev", with_entries("services", rollback)))
    out["canary-rollback-diff"] = r.run(".venv/bin/python -m stacks.diff build/render/canary build/render/rollback")
    return out


def rotate_a_secret(r: Runner) -> dict[str, str]:
    out = {"rotate-unset-secrets": r.run(".venv/bin/python -m stacks.render --stack prod --out build/render/prod -q")}
    r.run("make render STACK=dev")
    out["rotate-password-urns"] = r.run(
        "grep -o 'urn:pulumi:[^\"]*RandomPassword::dev-order-db[^\"]*' build/render/dev/plan.json | sort -u")
    return out


EXAMPLES: dict[str, Callable[[Runner], dict[str, str]]] = {
    "README.md": readme,
    "docs/howto/add-a-service.md": add_a_service,
    "docs/howto/add-a-cluster.md": add_a_cluster,
    "docs/howto/canary.md": canary,
    "docs/howto/rotate-a-secret.md": rotate_a_secret,
}


def produce(doc: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="doc-examples-") as tmp:
        return EXAMPLES[doc](Runner(Path(tmp)))


def rewrite(text: str, outputs: dict[str, str], path: str) -> str:
    def block(match: re.Match) -> str:
        indent, name = match.group(1), match.group(2)
        if name not in outputs:
            raise SystemExit(f"{path}: no example named {name!r} (scripts/gen_doc_examples.py)")
        body = "".join(f"{indent}{line}".rstrip() + "\n" for line in outputs[name].splitlines())
        return f"{indent}<!-- generated: {name} -->\n{match.group(3)}{body}{match.group(5)}"
    return GENERATED.sub(block, text)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a block differs (timing masked)")
    parser.add_argument("docs", nargs="*", default=list(EXAMPLES), help="documents (default: all)")
    args = parser.parse_args(argv)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(args.docs, pool.map(produce, args.docs), strict=True))
    stale = 0
    for doc, outputs in results.items():
        path = ROOT / doc
        text = path.read_text()
        new = rewrite(text, outputs, doc)
        names = {m.group(2) for m in GENERATED.finditer(text)}
        if set(outputs) - names:
            print(f"{doc}: examples without a block: {sorted(set(outputs) - names)}", file=sys.stderr)
            stale += 1
        if not args.check:
            path.write_text(new)
        elif TIMING.sub("in N.Ns", new) != TIMING.sub("in N.Ns", text):
            stale += 1
            diff = difflib.unified_diff(text.splitlines(True), new.splitlines(True), doc, f"{doc} (now)")
            sys.stderr.writelines(diff)
    if stale and args.check:
        print("stale: run .venv/bin/python scripts/gen_doc_examples.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
