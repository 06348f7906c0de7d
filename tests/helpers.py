"""Shared test helpers: run stacks offline (same code path as `pulumi up`) and read renders."""
from __future__ import annotations

import copy
import functools
from functools import lru_cache
from pathlib import Path
from typing import Optional

import yaml

from cnplatform import testing
from cnplatform.testing import Capture
from stacks.checks import check_config
from stacks.config import PROJECT, StackConfig, raw_from_stack_file
from stacks.offline import run_stack
from stacks.render import load_stack_file, render

#: The library's harness, for this project (its config keys live under ``ecommerce-platform:``).
run_program = functools.partial(testing.run_program, project=PROJECT)

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "reference"
STACKS = ("dev", "staging", "prod")


def stack_raw(stack: str) -> tuple[dict, dict]:
    return raw_from_stack_file(load_stack_file(stack, None), PROJECT)


def config_of(stack: str) -> StackConfig:
    return check_config(stack_raw(stack)[0])


def capture_raw(raw: dict, stack: str = "test", secure: Optional[dict] = None) -> Capture:
    """Validate ``raw`` and run the composition under mocks."""
    secure = secure or {}
    cfg = check_config(raw, secret_keys=set(secure))
    return run_stack(cfg, stack=stack, raw=raw, secure=secure)


@lru_cache(maxsize=None)
def capture_stack(stack: str) -> Capture:
    """A checked-in stack, with placeholders for stack secrets it refers to (as the render does)."""
    from stacks.config import secret_config_keys

    raw, secure = stack_raw(stack)
    secure = {**{k: "unset" for k in secret_config_keys(check_config(raw))}, **secure}
    return capture_raw(raw, stack, secure)


def with_changes(stack: str, change) -> dict:
    """A deep copy of a stack's raw config after ``change(raw)``."""
    raw = copy.deepcopy(stack_raw(stack)[0])
    change(raw)
    return raw


def render_to(capture: Capture, out: Path) -> Path:
    render(capture, out)
    return out


def manifests(out: Path) -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted((out / "manifests").rglob("*.yaml")):
        docs.append((path, yaml.safe_load(path.read_text())))
    return docs


def objects(capture: Capture, kind: str, cluster: Optional[str] = None) -> list[dict]:
    """Manifests of one kind from a capture (optionally for one cluster)."""
    from stacks.render import is_k8s_object, manifest_of

    out = []
    for reg in capture.resources:
        if is_k8s_object(reg) and reg.type.endswith(":" + kind):
            if cluster is None or capture.cluster_of(reg) == cluster:
                out.append(manifest_of(reg))
    return out


def transitive_waits(depends_on: dict[str, set[str]]) -> dict[str, set[str]]:
    """urn -> every urn it (transitively) waits for, from each urn's direct ``depends_on``."""
    memo: dict[str, set[str]] = {}

    def walk(urn: str) -> set[str]:
        if urn not in memo:
            memo[urn] = set()
            out = set(depends_on.get(urn, ()))
            for d in list(out):
                out |= walk(d)
            memo[urn] = out
        return memo[urn]
    return {urn: walk(urn) for urn in depends_on}
