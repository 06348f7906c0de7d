"""What the render tells a reviewer: per cluster its resources, footprint and warnings first, detail after.

``footprint.json`` (written with every render, read by ``python -m stacks.diff``) holds the same figures
as the printed footprint: per cluster the allocatable capacity, the requests and limits, and per layer.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any, Optional

from stacks.checks.critical_path import outline
from stacks.checks.footprint import cluster_capacity, totals, workloads
from stacks.config import StackConfig

STACK_LEVEL = "_stack"
_CLUSTER_PREFIX = re.compile(r"^\[([\w.-]+)\] (.*)$", re.S)


def _pair(cpu: int, memory: int) -> dict[str, int]:
    return {"cpu_m": cpu, "memory_mi": memory}


def footprint_data(cfg: StackConfig) -> dict[str, Any]:
    """Per cluster: cloud, allocatable, requests, limits, and the same per layer (millicores, MiB)."""
    clusters = {}
    for cluster_cfg in cfg.clusters:
        cap = cluster_capacity(cluster_cfg, cfg)
        items = workloads(cfg, cluster_cfg)
        layers: dict[str, Any] = {}
        for layer in sorted({w.layer for w in items}):
            cr, mr, cl, ml = totals([w for w in items if w.layer == layer])
            layers[layer] = {"requests": _pair(cr, mr), "limits": _pair(cl, ml)}
        cr, mr, cl, ml = totals(items)
        clusters[cluster_cfg.name] = {
            "cloud": cluster_cfg.cloud, "allocatable": _pair(cap.cpu_millicores, cap.memory_mib),
            "requests": _pair(cr, mr), "limits": _pair(cl, ml), "layers": layers}
    return {"clusters": clusters}


def share(used: int, allocatable: int) -> str:
    return f"{100 * used / allocatable:.0f}%" if allocatable else "-"


class WarningLog(logging.Handler):
    """Collects the program's warnings while it runs: under mocks ``pulumi.log.warn`` goes to the root
    logger (which would otherwise print them to stderr, unattributed, before the summary)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "root":
            self.messages.append(record.getMessage())

    def __enter__(self) -> "WarningLog":
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


def by_cluster(messages: list[str], clusters: list[str]) -> dict[str, list[str]]:
    """Warnings per cluster (the program prefixes a cluster's with ``[<cluster>] ``), the rest stack-level."""
    out: dict[str, list[str]] = {}
    for message in messages:
        match = _CLUSTER_PREFIX.match(message)
        if match and match.group(1) in clusters:
            out.setdefault(match.group(1), []).append(match.group(2))
        else:
            out.setdefault(STACK_LEVEL, []).append(message)
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def critical_lines(critical: Optional[dict], clusters: list[str]) -> list[str]:
    """Per cluster the length of its critical path (``critical_path.json``) and its first and last resources."""
    chains = (critical or {}).get("clusters") or {}
    named = [c for c in clusters if c in chains]
    if not named:
        return []
    width = max(len(c) for c in named)
    lines = ["critical path (the longest chain of resources that wait for one another):"]
    lines += [f"  {c:<{width}}  {chains[c]['length']:>3}: {outline(chains[c])}" for c in named]
    return lines


def headline(stack: str, counts: dict[str, Counter], footprint: dict, warnings: dict[str, list[str]],
             seconds: float, out: str, critical: Optional[dict] = None) -> list[str]:
    """The first lines: per cluster resources, requests against allocatable, warnings; the critical path
    of each cluster; then every warning."""
    total = sum(sum(c.values()) for c in counts.values())
    lines = [f"rendered stack {stack!r} in {seconds:.1f}s: {_plural(total, 'resource')} -> {out}"]
    clusters = footprint["clusters"]
    width = max([len(f"{n} ({c['cloud']})") for n, c in clusters.items()] + [len("stack-level")])
    for name, fp in clusters.items():
        req, cap = fp["requests"], fp["allocatable"]
        label = f"{name} ({fp['cloud']})"
        n_warn = len(warnings.get(name, []))
        lines.append(
            f"  {label:<{width}}  {sum(counts.get(name, Counter()).values()):>4} resources   requests "
            f"{req['cpu_m']}m CPU / {req['memory_mi']}Mi of {cap['cpu_m']}m / {cap['memory_mi']}Mi "
            f"({share(req['cpu_m'], cap['cpu_m'])} / {share(req['memory_mi'], cap['memory_mi'])})"
            + (f"   {_plural(n_warn, 'warning')}" if n_warn else ""))
    stack_level = sum(counts.get(STACK_LEVEL, Counter()).values())
    if stack_level:
        lines.append(f"  {'stack-level':<{width}}  {stack_level:>4} resources   (on no one cluster: "
                     "image builds, generated passwords and keys)")
    lines += critical_lines(critical, list(clusters))
    listed = [(name, m) for name in [*clusters, STACK_LEVEL] for m in warnings.get(name, [])]
    if listed:
        lines.append(f"{_plural(len(listed), 'warning')}:")
        lines += [f"  {'stack' if name == STACK_LEVEL else name}: {m}" for name, m in listed]
    return lines


def type_counts(counts: dict[str, Counter]) -> list[str]:
    """Resources by type, per cluster (``--verbose``)."""
    lines = ["resources by type:"]
    for cluster in sorted(counts):
        lines.append(f"  {'stack-level' if cluster == STACK_LEVEL else cluster}: {sum(counts[cluster].values())}")
        lines += [f"    {n:>4}  {type_}" for type_, n in sorted(counts[cluster].items())]
    return lines


def format_summary(stack: str, counts: dict[str, Counter], footprint: dict, warnings: dict[str, list[str]],
                   seconds: float, out: str, detail: str, verbose: bool = False,
                   critical: Optional[dict] = None) -> str:
    """Headline, then ``detail`` (the footprint by layer), then the type counts (verbose) or how to get them."""
    lines = headline(stack, counts, footprint, warnings, seconds, out, critical)
    lines.append(detail)
    lines += type_counts(counts) if verbose else ["(resources by type: --verbose)"]
    return "\n".join(lines)


def warning_lines(warnings: dict[str, list[str]], clusters: Optional[list[str]] = None) -> list[str]:
    """``warning: ...`` lines for stderr (``--quiet`` prints only these and errors)."""
    order = [*(clusters or []), *sorted(set(warnings) - set(clusters or []))]
    return [f"warning: {'' if name == STACK_LEVEL else f'[{name}] '}{m}" for name in order
            for m in warnings.get(name, [])]
