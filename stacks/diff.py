"""Readable markdown diff of two offline renders (what a pull request changes in the platform).

    python -m stacks.diff BASE_DIR HEAD_DIR [--max-value 80] [--max-chars 60000] [--title TEXT]
                          [--base-errors FILE] [--head-errors FILE]

Reads ``plan.json`` of each render and matches resources by URN: added, removed, replaced (a
field that forces replacement changed: ``stacks.compare.REPLACE_ON``) and changed, with the changed fields as
dotted paths ``old -> new``; lists whose order means nothing (``stacks.compare.SET_LIKE``: policy peers,
principals, ports...) as members added and removed (``- order, + cart``). Grouped by cluster (Kubernetes
objects: the cluster of their provider) and component (nearest ``cnplatform:*`` ancestor), after the
footprint change per cluster (``footprint.json``: requests against allocatable, by layer) and the
critical path's (``critical_path.json``: ``critical path prod-eks: 14 -> 16 (+2)``). Secrets
(``[secret]``, ``secret::``) print as ``(secret)``; long values are truncated. Always exits 0 (a report)
with a summary line. A side without ``plan.json`` counts as an empty render (everything added / removed)
and is noted, unless its render failed (``--base-errors``/``--head-errors``: what it printed): then its
errors are shown, and a failed head is not compared.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from stacks.compare import MISSING, field_changes, member_change, member_label, replacement_fields, set_like_for
from stacks.footprint_diff import footprint_lines, load_footprint

SECRET = "(secret)"

ACTIONS = ("add", "remove", "replace", "change")
MARK = {"add": "+", "remove": "-", "replace": "-/+", "change": "~"}


# ------------------------------------------------------------------------------------- loading


def load_plan(render_dir: Path) -> Optional[dict]:
    path = Path(render_dir) / "plan.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _index(plan: Optional[dict]) -> dict[str, dict]:
    return {r["urn"]: r for r in (plan or {}).get("resources", [])}


def _is_cluster_component(res: dict) -> bool:
    return res["type"].startswith("cnplatform:cluster:") and res["type"].endswith("Cluster")


def cluster_of(res: dict, index: dict[str, dict]) -> str:
    """The cluster of a resource: as the render recorded it, else (renders before it did) its (or its
    nearest ancestor's) provider's cluster, else its cluster ancestor."""
    if res.get("cluster"):
        return res["cluster"]
    seen = set()
    node: Optional[dict] = res
    while node is not None and node["urn"] not in seen:
        seen.add(node["urn"])
        if _is_cluster_component(node):
            return node["name"]
        provider = index.get(node.get("provider") or "")
        if provider is not None and provider["urn"] != node["urn"]:
            return cluster_of(provider, index)
        node = index.get(node.get("parent") or "")
    return "_stack"


def component_of(res: dict, index: dict[str, dict]) -> str:
    """``<module>:<Type> <name>`` of the nearest ``cnplatform:*`` ancestor (itself for a component)."""
    node: Optional[dict] = res
    seen = set()
    while node is not None and node["urn"] not in seen:
        seen.add(node["urn"])
        if node["type"].startswith("cnplatform:"):
            return f"{node['type'].split(':', 1)[1]} {node['name']}"
        node = index.get(node.get("parent") or "")
    return "(stack)"


def load_critical_path(render_dir: Path, plan: Optional[dict]) -> Optional[dict]:
    """``critical_path.json`` of a render; for a render made before it, computed from its ``plan.json``
    (explicit and property dependencies not told apart there: the lengths are the same)."""
    path = Path(render_dir) / "critical_path.json"
    if path.is_file():
        return json.loads(path.read_text())
    if plan is None:
        return None
    from stacks.checks import critical_path  # the composition's package: only for an old render

    nodes = critical_path.nodes_from_plan(plan, cluster_of, lambda res: res["type"].startswith("cnplatform:"))
    return critical_path.to_json(critical_path.critical_paths(nodes))


def critical_path_lines(base: Optional[dict], head: Optional[dict]) -> list[str]:
    """``critical path `prod-eks`: 14 -> 16 (+2)`` per cluster whose critical path changed length, with
    the head's chain; empty when none did or a side has none."""
    if base is None or head is None:
        return []
    old, new = (side.get("clusters") or {} for side in (base, head))
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = (old.get(name) or {}).get("length"), (new.get(name) or {}).get("length")
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"- critical path `{name}`: {a if b is None else b} ({'removed' if b is None else 'new'})")
        else:
            lines.append(f"- critical path `{name}`: {a} -> {b} ({b - a:+d})")
        if b is not None:
            lines.append(f"  - {_outline(new[name])}")
    return ["", "### Critical path (longest chain of resources waiting for one another)", "", *lines] if lines else []


def _outline(chain: dict) -> str:
    steps = [f"{k['type'].rsplit(':', 1)[-1]} {k['name']}" for k in chain.get("chain", []) if k.get("step")]
    return " -> ".join(f"`{s}`" for s in steps)


# ---------------------------------------------------------------------------------- comparison


def _is_secret(value: Any) -> bool:
    return isinstance(value, str) and (value == "[secret]" or "secret::" in value)


def mask(value: Any) -> Any:
    if _is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def show(value: Any, limit: int = 80) -> str:
    """A short one-line rendering: secrets masked, multi-line strings summarised, long text truncated."""
    if value is MISSING:
        return "(none)"
    value = mask(value)
    if value == SECRET:
        return SECRET
    if isinstance(value, str) and "\n" in value:
        lines = value.splitlines()
        text = f"{json.dumps(lines[0])[:-1]}…\" ({len(lines)} lines)"
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return text


def _multiline_detail(old: Any, new: Any, limit: int) -> str:
    """For two multi-line strings: the first differing line (JCasC scripts, dashboards...)."""
    if not (isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new)):
        return ""
    if _is_secret(old) or _is_secret(new):
        return ""
    a, b = old.splitlines(), new.splitlines()
    for i in range(max(len(a), len(b))):
        la, lb = (a[i] if i < len(a) else ""), (b[i] if i < len(b) else "")
        if la != lb:
            delta = len(b) - len(a)
            more = f", {delta:+d} lines" if delta else ""
            return f" (line {i + 1}: {show(la.strip(), limit)} -> {show(lb.strip(), limit)}{more})"
    return ""


@dataclass
class Entry:
    action: str
    urn: str
    type: str
    name: str
    cluster: str
    component: str
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)
    replace_fields: list[str] = field(default_factory=list)


def _compared(res: dict) -> dict:
    """What counts as a resource's configuration: its inputs, protect and provider (a local component has
    none the engine knows of: the providers it is given only pass to its children)."""
    provider = None if res["type"].startswith("cnplatform:") else res.get("provider")
    return {"inputs": res.get("inputs") or {}, "protect": bool(res.get("protect")), "provider": provider}


def diff_plans(base: Optional[dict], head: Optional[dict]) -> tuple[list[Entry], int]:
    """Entries for every differing resource, and the number of unchanged ones."""
    bi, hi = _index(base), _index(head)
    entries: list[Entry] = []
    unchanged = 0
    for urn in sorted(set(bi) | set(hi)):
        old, new = bi.get(urn), hi.get(urn)
        res, index = (new, hi) if new is not None else (old, bi)
        assert res is not None
        entry = Entry("", urn, res["type"], res["name"], cluster_of(res, index), component_of(res, index))
        if old is None:
            entry.action = "add"
        elif new is None:
            entry.action = "remove"
        else:
            changes = field_changes(_compared(old), _compared(new), set_like=set_like_for(res["type"]))
            if not changes:
                unchanged += 1
                continue
            # Paths relative to the inputs for readability; protect/provider keep their names.
            entry.fields = [(p.removeprefix("inputs."), a, b) for p, a, b in changes]
            paths = [p for p, _, _ in entry.fields]
            entry.replace_fields = replacement_fields(res["type"], paths)
            if any(p == "provider" for p in paths):
                entry.replace_fields.append("provider")
            entry.action = "replace" if entry.replace_fields else "change"
        entries.append(entry)
    return entries, unchanged


# ------------------------------------------------------------------------------------ markdown


def summary_line(entries: list[Entry], unchanged: int) -> str:
    counts = Counter(e.action for e in entries)
    if not entries:
        return f"Summary: no changes ({unchanged} resources unchanged)"
    return ("Summary: " + ", ".join(f"{counts[a]} to {a}" for a in ACTIONS)
            + f", {unchanged} unchanged")


def _field_lines(fields: list[tuple[str, Any, Any]], limit: int) -> list[str]:
    """One line per changed leaf (``path: old -> new``); the members added to or removed from a set-like
    list on one line: ``path: - order, + cart``."""
    lines: list[Any] = []
    members: dict[str, list[str]] = {}
    for path, old, new in fields:
        member = member_change(path)
        if member is None:
            lines.append(f"  - `{path}`: {show(old, limit)} -> {show(new, limit)}{_multiline_detail(old, new, limit)}")
            continue
        key, sign = member
        if key not in members:
            members[key] = []
            lines.append((key,))
        label = member_label(mask(new if sign == "+" else old))
        members[key].append(f"{sign} `{label if len(label) <= limit else label[:limit - 1] + '…'}`")
    return [f"  - `{line[0]}`: {', '.join(members[line[0]])}" if isinstance(line, tuple) else line for line in lines]


def _failed(errors: dict[str, str]) -> list[str]:
    """A quoted block per side whose render failed, with its errors (e.g. a ``build:`` directory missing)."""
    lines = []
    for side, text in errors.items():
        lines += [f"> :warning: **The {side} render failed**; its errors:", ">", "> ```"]
        lines += [f"> {line}" for line in text.rstrip().splitlines()] + ["> ```", ""]
    return lines


def format_markdown(base: Optional[dict], head: Optional[dict], *, title: str = "Platform plan diff",
                    max_value: int = 80, max_chars: int = 60000, notes: Optional[list[str]] = None,
                    footprints: tuple[Optional[dict], Optional[dict]] = (None, None),
                    errors: Optional[dict[str, str]] = None,
                    critical: tuple[Optional[dict], Optional[dict]] = (None, None)) -> str:
    """The report. ``footprints``: base's and head's ``footprint.json``; ``critical``: their
    ``critical_path.json``; ``errors``: per side ("base",
    "head") the errors of its failed render: a failed head is not compared (it is not "everything removed")."""
    lines = [f"## {title}", ""]
    lines += [f"> {n}" for n in notes or []]
    if notes:
        lines.append("")
    lines += _failed(errors or {})
    stack = (head or base or {}).get("stack", "?")
    if head is None and "head" in (errors or {}):
        lines += [f"Stack `{stack}`: **not compared**: the head render failed (errors above).", "",
                  "Summary: not compared (the head render failed)"]
        return "\n".join(lines) + "\n"
    entries, unchanged = diff_plans(base, head)
    critical_changes = critical_path_lines(*critical)  # waits alone may change it (depends_on is not compared)
    if not entries and not critical_changes and (base or {}).get("outputs") == (head or {}).get("outputs"):
        lines += [f"Stack `{stack}`: **no changes**.", "", summary_line(entries, unchanged)]
        return "\n".join(lines) + "\n"
    counts = Counter(e.action for e in entries)
    lines.append(f"Stack `{stack}`: " + ", ".join(f"**{counts[a]}** to {a}" for a in ACTIONS)
                 + f" ({unchanged} unchanged).")
    lines += footprint_lines(*footprints)
    lines += critical_changes
    lines += _resource_lines(entries, max_value)
    out_changes = field_changes((base or {}).get("outputs") or {}, (head or {}).get("outputs") or {})
    if out_changes:
        lines += ["", "### Stack outputs", ""]
        lines += [f"- `{p}`: {show(a, max_value)} -> {show(b, max_value)}" for p, a, b in out_changes]
    lines += ["", summary_line(entries, unchanged)]
    text = "\n".join(lines) + "\n"
    if len(text) > max_chars:
        cut = text[: max_chars - 200].rsplit("\n", 1)[0]
        text = cut + "\n\n… (truncated)\n\n" + summary_line(entries, unchanged) + "\n"
    return text


def _resource_lines(entries: list[Entry], max_value: int) -> list[str]:
    """Per cluster, per component: each resource added, removed, replaced or changed (many added or
    removed in one component: counted by type)."""
    lines: list[str] = []
    groups: dict[str, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        groups[e.cluster][e.component].append(e)
    for cluster in sorted(groups, key=lambda c: (c == "_stack", c)):
        lines += ["", f"### Cluster `{cluster}`" if cluster != "_stack" else "### Stack-level resources"]
        for component in sorted(groups[cluster]):
            items = sorted(groups[cluster][component], key=lambda e: (ACTIONS.index(e.action), e.type, e.name))
            lines += ["", f"#### `{component}`", ""]
            actions = {e.action for e in items}
            if len(items) > 8 and len(actions) == 1 and actions <= {"add", "remove"}:
                by_type = Counter(e.type for e in items)
                kinds = ", ".join(f"{t} ×{n}" for t, n in sorted(by_type.items()))
                lines.append(f"- `{MARK[items[0].action]}` {items[0].action} {len(items)} resources: {kinds}")
                continue
            for e in items:
                lines.append(f"- `{MARK[e.action]}` {e.action} `{e.type}` **{e.name}**")
                if e.action == "replace":
                    lines.append(f"  - replaced because of: {', '.join(f'`{p}`' for p in e.replace_fields)}")
                lines += _field_lines(e.fields, max_value)
    return lines


def _read_errors(path: Optional[str]) -> str:
    file = Path(path) if path else None
    return file.read_text() if file is not None and file.is_file() else ""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.diff", description=__doc__.split("\n")[0])
    parser.add_argument("base", help="render directory of the base (python -m stacks.render --out ...)")
    parser.add_argument("head", help="render directory of the head")
    parser.add_argument("--title", default="Platform plan diff")
    parser.add_argument("--max-value", type=int, default=80, help="truncate values longer than this")
    parser.add_argument("--max-chars", type=int, default=60000, help="truncate the report (PR comment limit)")
    for side in ("base", "head"):
        parser.add_argument(f"--{side}-errors", metavar="FILE",
                            help=f"what the {side} render printed on stderr (shown when it wrote no plan.json)")
    args = parser.parse_args(argv)
    base, head = load_plan(Path(args.base)), load_plan(Path(args.head))
    errors = {side: text for side, plan, text in (("base", base, _read_errors(args.base_errors)),
                                                  ("head", head, _read_errors(args.head_errors)))
              if plan is None and text.strip()}
    notes = [f"{name}: no plan.json in `{path}` (render failed or missing); compared as empty"
             for name, path, plan in (("base", args.base, base), ("head", args.head, head))
             if plan is None and name not in errors]
    sys.stdout.write(format_markdown(base, head, title=args.title, max_value=args.max_value,
                                     max_chars=args.max_chars, notes=notes, errors=errors,
                                     footprints=(load_footprint(Path(args.base)), load_footprint(Path(args.head))),
                                     critical=(load_critical_path(Path(args.base), base),
                                               load_critical_path(Path(args.head), head))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
