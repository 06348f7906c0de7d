"""Pin service images in a stack file before the pipeline runs ``pulumi preview`` / ``pulumi up``.

    python ci/jenkins/pin_image.py Pulumi.<stack>.yaml SERVICE IMAGE_REF \
        [--outputs clusters.json] [--registry REGISTRY --fallback-tag TAG]

CI agents have no Docker daemon, so no service may be left on ``build:`` (a Docker build by
``pulumi up``): the built SERVICE gets IMAGE_REF (``repo@sha256:...`` from kaniko); every other
service on ``build:`` keeps the image it runs now (``pulumi stack output --json clusters``:
``clusters.<cluster>.services.<name>.image``), else ``REGISTRY/<name>:<TAG>`` (the moving branch
tag each main build also pushes). Edits the checkout's copy only; prints what it pinned.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import yaml

PROJECT = "ecommerce-platform"


def deployed_images(outputs: dict) -> dict[str, str]:
    """service -> image from the stack's ``clusters`` output (first cluster that runs it)."""
    images: dict[str, str] = {}
    for cluster in sorted(outputs or {}):
        for name, info in sorted(((outputs[cluster] or {}).get("services") or {}).items()):
            if isinstance(info, dict) and isinstance(info.get("image"), str):
                images.setdefault(name, info["image"])
    return images


def pin(doc: dict, service: str, image: str, deployed: dict[str, str],
        registry: Optional[str] = None, fallback_tag: Optional[str] = None) -> list[str]:
    """Rewrite ``doc`` in place; return one line per change. Raises KeyError for an unknown service."""
    services = (doc.get("config") or {}).get(f"{PROJECT}:services") or []
    names = [s.get("name") for s in services]
    if service not in names:
        raise KeyError(f"service {service!r} is not in the stack's services ({', '.join(map(str, names))})")
    changes = []
    for svc in services:
        name = svc["name"]
        if name == service:
            target = image
        elif svc.get("build"):
            target = deployed.get(name) or (f"{registry}/{name}:{fallback_tag}" if registry and fallback_tag else None)
            if target is None:
                changes.append(f"{name}: left on build: (no deployed image, no --registry/--fallback-tag)")
                continue
        else:
            continue
        svc.pop("build", None)
        svc["image"] = target
        changes.append(f"{name}: image {target}")
    return changes


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stack_file")
    parser.add_argument("service")
    parser.add_argument("image")
    parser.add_argument("--outputs", help="JSON of `pulumi stack output --json clusters` (may be missing)")
    parser.add_argument("--registry")
    parser.add_argument("--fallback-tag")
    args = parser.parse_args(argv)
    path = Path(args.stack_file)
    doc = yaml.safe_load(path.read_text()) or {}
    outputs: dict = {}
    if args.outputs and Path(args.outputs).is_file() and Path(args.outputs).stat().st_size:
        try:
            outputs = json.loads(Path(args.outputs).read_text()) or {}
        except json.JSONDecodeError:
            outputs = {}
    try:
        changes = pin(doc, args.service, args.image, deployed_images(outputs), args.registry, args.fallback_tag)
    except KeyError as exc:
        print(f"pin_image: {exc.args[0]}", file=sys.stderr)
        return 2
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    print("\n".join(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
