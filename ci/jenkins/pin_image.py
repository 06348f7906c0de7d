"""Pin service images, per cluster, in a stack file before the pipeline runs ``pulumi preview`` / ``up``.

    python ci/jenkins/pin_image.py Pulumi.<stack>.yaml SERVICE \
        --registries "$REGISTRIES" [--pushed image-ref] [--outputs clusters.json]

CI agents have no Docker daemon, so no service may be left on ``build:``. Each cluster pulls from its
own cloud's registry (ECR for EKS, Artifact Registry for GKE), so an image is pinned per cluster, by
digest, as ``image: {<cluster>: <repo>@sha256:...}``:

* SERVICE gets the references kaniko pushed (``--pushed``: its ``--image-name-with-digest-file``, one
  ``<repo>@sha256:...`` line per destination), matched to clusters by ``REGISTRIES``
  (``cluster=prefix`` words, from JCasC). Without ``--pushed`` (a pull request builds without
  pushing) it keeps what it runs now.
* every other service on ``build:`` keeps the image it runs now on each cluster
  (``pulumi stack output --json clusters``: ``clusters.<cluster>.services.<name>.image``).

No moving tag is ever used (the registries are immutable, and a tag would not say what runs). A
cluster left without an image is an error (exit 2) naming it. Edits the checkout's copy only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import yaml

PROJECT = "ecommerce-platform"


def parse_registries(text: str) -> dict[str, str]:
    """``"a=host/x b=host/y"`` -> {cluster: prefix}."""
    pairs = [w.split("=", 1) for w in (text or "").split() if "=" in w]
    return {cluster: prefix.rstrip("/") for cluster, prefix in pairs}


def pushed_by_cluster(lines: list[str], registries: dict[str, str], service: str) -> dict[str, str]:
    """kaniko's digest file -> {cluster: ref}: a ref belongs to the cluster whose prefix it is under."""
    out: dict[str, str] = {}
    for ref in (line.strip() for line in lines):
        if "@sha256:" not in ref:
            continue
        repo = ref.split("@", 1)[0]
        for cluster, prefix in registries.items():
            if repo == f"{prefix}/{service}":
                out[cluster] = ref
    return out


def deployed_images(outputs: dict) -> dict[str, dict[str, str]]:
    """{service: {cluster: image}} from the stack's ``clusters`` output."""
    images: dict[str, dict[str, str]] = {}
    for cluster in sorted(outputs or {}):
        for name, info in sorted(((outputs[cluster] or {}).get("services") or {}).items()):
            if isinstance(info, dict) and isinstance(info.get("image"), str):
                images.setdefault(name, {})[cluster] = info["image"]
    return images


def pin(doc: dict, service: str, pushed: dict[str, str], deployed: dict[str, dict[str, str]]) -> list[str]:
    """Rewrite ``doc`` in place; return one line per change. KeyError: unknown service; ValueError: a
    cluster without an image (every problem in the message)."""
    config = doc.get("config") or {}
    services = config.get(f"{PROJECT}:services") or []
    clusters = [c.get("name") for c in config.get(f"{PROJECT}:clusters") or []]
    names = [s.get("name") for s in services]
    if service not in names:
        raise KeyError(f"service {service!r} is not in the stack's services ({', '.join(map(str, names))})")
    changes, missing = [], []
    for svc in services:
        name = svc["name"]
        if name != service and not svc.get("build"):
            continue
        runs_on = [c for c in clusters if not svc.get("clusters") or c in svc["clusters"]]
        current = deployed.get(name, {})
        images = {c: (pushed.get(c) if name == service and pushed.get(c) else current.get(c)) for c in runs_on}
        missing += [f"{name} on {c}" for c, ref in images.items() if not ref]
        svc.pop("build", None)
        svc["image"] = images
        changes += [f"{name}: {c} -> {ref}" for c, ref in images.items() if ref]
    if missing:
        raise ValueError("no image to pin for " + ", ".join(missing) + ": build and push it for that cluster "
                         "(its registry is in REGISTRIES) or deploy it once from a workstation")
    return changes


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stack_file")
    parser.add_argument("service")
    parser.add_argument("--registries", default="", help="REGISTRIES: cluster=prefix words")
    parser.add_argument("--pushed", help="kaniko's --image-name-with-digest-file (may be missing)")
    parser.add_argument("--outputs", help="JSON of `pulumi stack output --json clusters` (may be missing)")
    args = parser.parse_args(argv)
    path = Path(args.stack_file)
    doc = yaml.safe_load(path.read_text()) or {}
    outputs: dict = {}
    if args.outputs and Path(args.outputs).is_file() and Path(args.outputs).stat().st_size:
        try:
            outputs = json.loads(Path(args.outputs).read_text()) or {}
        except json.JSONDecodeError:
            outputs = {}
    lines = Path(args.pushed).read_text().splitlines() if args.pushed and Path(args.pushed).is_file() else []
    pushed = pushed_by_cluster(lines, parse_registries(args.registries), args.service)
    try:
        changes = pin(doc, args.service, pushed, deployed_images(outputs))
    except (KeyError, ValueError) as exc:
        print(f"pin_image: {exc.args[0]}", file=sys.stderr)
        return 2
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    print("\n".join(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
