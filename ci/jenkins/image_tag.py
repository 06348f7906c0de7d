"""The content tag of an image, as the Pulumi program computes it: CI pushes a service under that tag.

    python ci/jenkins/image_tag.py service SERVICE     # services/<SERVICE> (as ``build: services/<SERVICE>``)
    python ci/jenkins/image_tag.py dir ci/images/deploy  # a directory that is its own context + Dockerfile

The tag is ``cnplatform.registry.context.image_digest``: a hash of the Dockerfile, its build arguments
and exactly the files the image copies. An unchanged service keeps its tag, so its registries already
hold it (immutable: it is never pushed again) and the pipeline pins the digest it runs now; editing
one service changes that service's tag only. The registries are IMMUTABLE: a content tag is pushed
once (check, then push), never moved.

Runs in the plain Python agent (no Pulumi SDK): ``context.py`` is loaded by path, not through the
``cnplatform`` package (whose ``__init__`` imports the SDK).
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
CONTEXT_PY = ROOT / "components" / "cnplatform" / "registry" / "context.py"


@functools.cache
def _context() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cnplatform_registry_context", CONTEXT_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def service_build(root: Path, service: str) -> tuple[Path, Path, dict[str, str]]:
    """(context, dockerfile, build args) of ``services/<service>``: the program's own rule
    (``cnplatform.registry.context.build_context``)."""
    context, dockerfile, build_args = _context().build_context(f"services/{service}", root)
    return root / context, root / dockerfile, build_args


def service_tag(root: Path, service: str) -> str:
    if not (root / "services" / service).is_dir():
        raise FileNotFoundError(f"no services/{service}")
    context, dockerfile, build_args = service_build(root, service)
    return str(_context().image_digest(context, dockerfile, build_args=build_args))


def dir_tag(directory: Path) -> str:
    return str(_context().image_digest(directory, directory / "Dockerfile"))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["service", "dir"])
    parser.add_argument("name")
    parser.add_argument("--root", default=str(ROOT), help="repository root (service)")
    args = parser.parse_args(argv)
    try:
        tag = service_tag(Path(args.root), args.name) if args.kind == "service" else dir_tag(Path(args.name))
    except FileNotFoundError as exc:
        print(f"image_tag: {exc}", file=sys.stderr)
        return 2
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
