"""Readable markdown diff of two offline renders (what a pull request changes in the platform).

    python -m stacks.diff BASE_DIR HEAD_DIR [--max-value 80] [--max-chars 60000] [--title TEXT]

Reads ``plan.json`` of each render and matches resources by URN: added, removed, replaced (a
field that forces replacement changed: :data:`REPLACE_ON`) and changed, with the changed fields as
dotted paths ``old -> new``. Grouped by cluster (Kubernetes objects: the cluster of their provider)
and component (nearest ``cnplatform:*`` ancestor). Secrets (``[secret]``, ``secret::``) print as
``(secret)``; long values are truncated. Always exits 0 (a report) with a summary line; a missing
``plan.json`` counts as an empty render (everything added / removed) and is noted.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

SECRET = "(secret)"
MISSING = object()

#: (type glob, field path) pairs: a change at or under such a path replaces the resource. "*" = any input.
#: Kubernetes immutable fields, cloud identity/placement fields, and providers whose every input is ForceNew.
REPLACE_ON: list[tuple[str, str]] = [
    ("kubernetes:*", "metadata.name"),
    ("kubernetes:*", "metadata.namespace"),
    ("kubernetes:apps/v1:Deployment", "spec.selector"),
    ("kubernetes:apps/v1:DaemonSet", "spec.selector"),
    ("kubernetes:apps/v1:ReplicaSet", "spec.selector"),
    ("kubernetes:apps/v1:StatefulSet", "spec.selector"),
    ("kubernetes:apps/v1:StatefulSet", "spec.serviceName"),
    ("kubernetes:apps/v1:StatefulSet", "spec.volumeClaimTemplates"),
    ("kubernetes:apps/v1:StatefulSet", "spec.podManagementPolicy"),
    ("kubernetes:batch/v1:Job", "spec.template"),
    ("kubernetes:batch/v1:Job", "spec.selector"),
    ("kubernetes:core/v1:Service", "spec.clusterIP"),
    ("kubernetes:core/v1:Service", "spec.clusterIPs"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.storageClassName"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.accessModes"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.volumeName"),
    ("kubernetes:core/v1:Secret", "type"),
    ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "roleRef"),
    ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "roleRef"),
    ("kubernetes:helm.sh/v4:Chart", "name"),
    ("kubernetes:helm.sh/v4:Chart", "namespace"),
    ("kubernetes:helm.sh/v3:Release", "name"),
    ("kubernetes:helm.sh/v3:Release", "namespace"),
    ("aws:*", "name"),
    ("aws:*", "namePrefix"),
    ("aws:*", "region"),
    ("aws:*", "availabilityZone"),
    ("aws:*", "cidrBlock"),
    ("aws:*", "vpcId"),
    ("aws:*", "engine"),
    ("aws:*", "identifier"),
    ("aws:*", "bucket"),
    ("aws:*", "clusterName"),
    ("aws:*", "nodeGroupName"),
    ("aws:*", "kmsKeyId"),
    ("gcp:*", "name"),
    ("gcp:*", "project"),
    ("gcp:*", "region"),
    ("gcp:*", "location"),
    ("gcp:*", "zone"),
    ("gcp:*", "network"),
    ("gcp:*", "ipCidrRange"),
    ("gcp:*", "databaseVersion"),
    ("random:*", "*"),
    ("tls:*", "*"),
    ("command:local:Command", "triggers"),
    ("pulumi:providers:*", "*"),
]

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
    """The cluster of a resource: its (or its nearest ancestor's) provider's cluster, else its cluster ancestor."""
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


# ---------------------------------------------------------------------------------- comparison


def field_changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) of every leaf that differs; MISSING marks an absent side."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            here = f"{path}.{key}" if path else str(key)
            out += field_changes(old.get(key, MISSING), new.get(key, MISSING), here)
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            out += field_changes(old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING,
                                 f"{path}[{i}]")
        return out
    return [] if old == new else [(path or "(root)", old, new)]


def _path_under(path: str, prefix: str) -> bool:
    return prefix == "*" or path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def replacement_fields(type_: str, paths: list[str]) -> list[str]:
    """The changed paths of a resource of ``type_`` that force its replacement."""
    rules = [prefix for pattern, prefix in REPLACE_ON if fnmatch.fnmatchcase(type_, pattern)]
    return [p for p in paths if any(_path_under(p, prefix) for prefix in rules)]


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
    """What counts as a resource's configuration: its inputs, protect and provider."""
    return {"inputs": res.get("inputs") or {}, "protect": bool(res.get("protect")),
            "provider": res.get("provider")}


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
            changes = field_changes(_compared(old), _compared(new))
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


def format_markdown(base: Optional[dict], head: Optional[dict], *, title: str = "Platform plan diff",
                    max_value: int = 80, max_chars: int = 60000, notes: Optional[list[str]] = None) -> str:
    entries, unchanged = diff_plans(base, head)
    lines = [f"## {title}", ""]
    lines += [f"> {n}" for n in notes or []]
    if notes:
        lines.append("")
    stack = (head or base or {}).get("stack", "?")
    if not entries and (base or {}).get("outputs") == (head or {}).get("outputs"):
        lines += [f"Stack `{stack}`: **no changes**.", "", summary_line(entries, unchanged)]
        return "\n".join(lines) + "\n"
    counts = Counter(e.action for e in entries)
    lines.append(f"Stack `{stack}`: " + ", ".join(f"**{counts[a]}** to {a}" for a in ACTIONS)
                 + f" ({unchanged} unchanged).")
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
                for path, old, new in e.fields:
                    detail = _multiline_detail(old, new, max_value)
                    lines.append(f"  - `{path}`: {show(old, max_value)} -> {show(new, max_value)}{detail}")
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


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.diff", description=__doc__.split("\n")[0])
    parser.add_argument("base", help="render directory of the base (python -m stacks.render --out ...)")
    parser.add_argument("head", help="render directory of the head")
    parser.add_argument("--title", default="Platform plan diff")
    parser.add_argument("--max-value", type=int, default=80, help="truncate values longer than this")
    parser.add_argument("--max-chars", type=int, default=60000, help="truncate the report (PR comment limit)")
    args = parser.parse_args(argv)
    base, head = load_plan(Path(args.base)), load_plan(Path(args.head))
    notes = [f"{name}: no plan.json in `{path}` (render failed or missing); compared as empty"
             for name, path, plan in (("base", args.base, base), ("head", args.head, head)) if plan is None]
    sys.stdout.write(format_markdown(base, head, title=args.title, max_value=args.max_value,
                                     max_chars=args.max_chars, notes=notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
