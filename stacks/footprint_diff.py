"""The footprint change per cluster between two renders (their ``footprint.json``), for ``python -m stacks.diff``:
requests against allocatable before and after, and the layers whose requests changed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

ZERO = {"cpu_m": 0, "memory_mi": 0}


def load_footprint(render_dir: Path) -> Optional[dict]:
    """``footprint.json`` of a render (written by ``python -m stacks.render``), None when absent."""
    path = Path(render_dir) / "footprint.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _share(used: int, allocatable: int) -> str:
    return f"{100 * used / allocatable:.0f}%" if allocatable else "-"


def _resource(old: Optional[dict], new: Optional[dict], key: str, unit: str) -> str:
    """``1925m -> 2025m of 4000m (48% -> 51%)``; one side only for a cluster added or removed."""
    sides = [(fp["requests"][key], fp["allocatable"][key]) if fp else None for fp in (old, new)]
    (a, cap_a), (b, cap_b) = (s or (0, 0) for s in sides)
    if sides[0] is None or sides[1] is None:
        used, cap = (b, cap_b) if sides[0] is None else (a, cap_a)
        return f"{used}{unit} of {cap}{unit} ({_share(used, cap)})"
    of = f"{cap_b}{unit}" if cap_a == cap_b else f"{cap_a}{unit} -> {cap_b}{unit}"
    if a == b and cap_a == cap_b:
        return f"{b}{unit} of {of} ({_share(b, cap_b)}, unchanged)"
    return f"{a}{unit} -> {b}{unit} of {of} ({_share(a, cap_a)} -> {_share(b, cap_b)})"


def _layers(old: Optional[dict], new: Optional[dict]) -> str:
    """The layers whose requests changed: ``services +100m/+256Mi``."""
    before, after = (old or {}).get("layers", {}), (new or {}).get("layers", {})
    parts = []
    for layer in sorted(set(before) | set(after)):
        a = before.get(layer, {}).get("requests", ZERO)
        b = after.get(layer, {}).get("requests", ZERO)
        cpu, mem = b["cpu_m"] - a["cpu_m"], b["memory_mi"] - a["memory_mi"]
        if cpu or mem:
            parts.append(f"{layer} {cpu:+d}m/{mem:+d}Mi")
    return ", ".join(parts) or "-"


def _requests(fp: Optional[dict]) -> Any:
    """What the table compares: allocatable and requests, in total and per layer (limits left out)."""
    if fp is None:
        return None
    return (fp["allocatable"], fp["requests"], {k: v["requests"] for k, v in fp.get("layers", {}).items()})


def footprint_lines(base: Optional[dict], head: Optional[dict]) -> list[str]:
    """A markdown table of the clusters whose requests (or allocatable) changed; empty when none did or
    a side has no footprint (a render of before ``footprint.json``, or a failed one)."""
    if base is None or head is None:
        return []
    old, new = base.get("clusters", {}), head.get("clusters", {})
    rows = []
    for name in [*old, *(n for n in new if n not in old)]:
        a, b = old.get(name), new.get(name)
        if _requests(a) == _requests(b):
            continue
        label = f"`{name}`" + (" (new)" if a is None else " (removed)" if b is None else "")
        rows.append(f"| {label} | {_resource(a, b, 'cpu_m', 'm')} | {_resource(a, b, 'memory_mi', 'Mi')} "
                    f"| {_layers(a, b)} |")
    if not rows:
        return []
    return ["", "### Footprint (requests against allocatable)", "",
            "| cluster | CPU | memory | requests changed by layer |", "|---|---|---|---|", *rows]

