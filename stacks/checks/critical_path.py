"""The critical path of a plan: per cluster, the longest chain of resources that must wait for one another.

What the engine waits for (the Python SDK, ``pulumi/runtime/resource.py`` ``prepare_resource``): a
resource is registered only once

- every resource of its ``dependencies`` exists: its explicit ``depends_on`` and the resources whose
  Outputs feed its inputs (property dependencies), a *local* component among them expanded to the
  resources under it (``rpc._expand_dependencies``; a remote component such as a Helm v4 ``Chart``
  counts as one, its registration returning once its children exist);
- its parent's URN resolved (``await opts.parent.urn``): a custom parent once created, a component once
  registered, i.e. once the component's own waits are over (so a component's ``depends_on`` holds back
  every child);
- its provider exists (``_create_provider_ref`` awaits the provider's URN and id).

The length of a chain is the number of resources in it the engine creates (custom resources and remote
components); local components take no time and are kept in the chain only to show why a resource waits.
Durations are not estimated: the count is what a change makes longer or shorter.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Optional

#: How a resource waits for the one before it in a chain.
VIA = ("depends_on", "property", "parent", "provider", "dependency")
STACK_LEVEL = "_stack"


@dataclass(frozen=True)
class Node:
    """One resource of the plan: ``step`` when the engine creates it (takes time), its waits as
    ``(urn, via)`` and the cluster it belongs to."""

    urn: str
    type: str
    name: str
    step: bool
    waits: tuple[tuple[str, str], ...]
    cluster: str = STACK_LEVEL


@dataclass(frozen=True)
class Link:
    urn: str
    type: str
    name: str
    step: bool
    #: How this resource waits for the previous link (None for the first).
    via: Optional[str]


@dataclass(frozen=True)
class Chain:
    length: int
    links: tuple[Link, ...]

    def steps(self) -> list[Link]:
        return [link for link in self.links if link.step]


def _order(nodes: dict[str, Node]) -> list[str]:
    """The URNs in an order where every resource comes after those it waits for (Kahn, sorted ties)."""
    waiting = {urn: {u for u, _ in n.waits if u in nodes and u != urn} for urn, n in nodes.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for urn, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(urn)
    ready = sorted(urn for urn, deps in waiting.items() if not deps)
    order: list[str] = []
    while ready:
        urn = ready.pop()
        order.append(urn)
        for other in dependents[urn]:
            waiting[other].discard(urn)
            if not waiting[other]:
                ready.append(other)
    if len(order) != len(nodes):
        stuck = sorted(set(nodes) - set(order))[:5]
        raise ValueError(f"the plan's waits form a cycle (e.g. {', '.join(stuck)})")
    return order


def finish_times(nodes: dict[str, Node]) -> tuple[dict[str, int], dict[str, Optional[tuple[str, str]]]]:
    """Per URN: how many steps have run when it exists (its longest chain), and the wait that decides it."""
    done: dict[str, int] = {}
    best: dict[str, Optional[tuple[str, str]]] = {}
    for urn in _order(nodes):
        node = nodes[urn]
        start, pick = 0, None
        # The wait that ends last decides; ties go to the smallest URN, then the first kind in VIA
        # (deterministic whatever the input order). A chain starts at a step: waits on nothing that
        # took time are not followed.
        for dep, via in sorted((w for w in node.waits if w[0] in done),
                               key=lambda w: (w[0], VIA.index(w[1]) if w[1] in VIA else len(VIA))):
            if done[dep] > start:
                start, pick = done[dep], (dep, via)
        done[urn] = start + (1 if node.step else 0)
        best[urn] = pick
    return done, best


def _chain(nodes: dict[str, Node], end: str, done: dict[str, int], best: dict) -> Chain:
    links: list[Link] = []
    urn: Optional[str] = end
    while urn is not None:
        node = nodes[urn]
        pick = best[urn]
        links.append(Link(node.urn, node.type, node.name, node.step, pick[1] if pick else None))
        urn = pick[0] if pick else None
    links.reverse()
    return Chain(done[end], tuple(links))


def critical_paths(nodes: Iterable[Node]) -> dict[str, Chain]:
    """Per cluster the longest chain ending at one of its resources (the resources it waits for may
    belong elsewhere: stack-level images, passwords), sorted by name; stack-level resources alone
    (``_stack``) are not a cluster and get none."""
    index = {n.urn: n for n in nodes}
    done, best = finish_times(index)
    ends: dict[str, str] = {}
    for urn in sorted(index):
        cluster = index[urn].cluster
        if not index[urn].step or cluster == STACK_LEVEL:
            continue
        if cluster not in ends or done[urn] > done[ends[cluster]]:
            ends[cluster] = urn
    return {cluster: _chain(index, ends[cluster], done, best) for cluster in sorted(ends)}


# --------------------------------------------------------------------------------------- adapters


def _ref_urn(ref: str) -> str:
    """``urn::id`` provider reference -> urn."""
    return ref.rsplit("::", 1)[0] if ref else ""


def nodes_from_capture(capture: Any) -> list[Node]:
    """Nodes of a ``cnplatform.testing.Capture``: custom resources and remote components are steps;
    explicit and property dependencies told apart by the request's ``propertyDependencies``."""
    nodes = []
    for reg in capture.resources:
        prop = set(reg.property_dependencies)
        waits = [(d, "property" if d in prop else "depends_on") for d in reg.depends_on]
        if reg.parent:
            waits.append((reg.parent, "parent"))
        refs = [reg.provider] if reg.custom else list(reg.providers.values())
        waits += [(_ref_urn(r), "provider") for r in refs if r]
        nodes.append(Node(reg.urn, reg.type, reg.name, reg.custom or reg.remote, tuple(waits),
                          capture.cluster_of(reg)))
    return nodes


def nodes_from_plan(plan: dict, cluster_of: Any, is_component: Any) -> list[Node]:
    """Nodes of a rendered ``plan.json`` (for a render without ``critical_path.json``): its
    ``depends_on`` is the union of explicit and property dependencies (``via`` "dependency");
    ``cluster_of(res, index)`` and ``is_component(res)`` as the diff knows them."""
    index = {r["urn"]: r for r in plan.get("resources", [])}
    nodes = []
    for res in index.values():
        waits = [(d, "dependency") for d in res.get("depends_on") or []]
        waits += [(res[k], k) for k in ("parent", "provider") if res.get(k)]
        nodes.append(Node(res["urn"], res["type"], res["name"], not is_component(res), tuple(waits),
                          cluster_of(res, index)))
    return nodes


# ------------------------------------------------------------------------------------------- output


def label(link: Link) -> str:
    """``Deployment user``; providers as ``provider dev-k8s``."""
    kind = "provider" if link.type.startswith("pulumi:providers:") else link.type.rsplit(":", 1)[-1]
    return f"{kind} {link.name}"


def to_json(paths: dict[str, Chain]) -> dict:
    """``critical_path.json``: per cluster the length and the chain, first resource first."""
    return {"clusters": {cluster: {
        "length": chain.length,
        "chain": [{"urn": k.urn, "type": k.type, "name": k.name, "step": k.step, "via": k.via} for k in chain.links],
    } for cluster, chain in paths.items()}}


def of_capture(capture: Any) -> dict:
    """``critical_path.json`` of a capture."""
    return to_json(critical_paths(nodes_from_capture(capture)))


def lengths(data: Optional[dict]) -> dict[str, int]:
    return {c: v["length"] for c, v in ((data or {}).get("clusters") or {}).items()}


def outline(chain_json: dict, head: int = 2, tail: int = 2) -> str:
    """The first and last few resources of a chain (``critical_path.json`` form): ``a -> b -> … -> z``."""
    steps = [label(Link(k["urn"], k["type"], k["name"], k["step"], k["via"])) for k in chain_json["chain"] if k["step"]]
    if len(steps) > head + tail + 1:
        steps = [*steps[:head], "…", *steps[-tail:]]
    return " -> ".join(steps)
