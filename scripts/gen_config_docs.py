"""Generate docs/configuration.md from the typed stack config (``stacks.config.StackConfig``).

    .venv/bin/python scripts/gen_config_docs.py          # write docs/configuration.md
    .venv/bin/python scripts/gen_config_docs.py --check  # exit 1 when the file is stale (tests do this)

Every key with its type, default, tier default and rules: the rules come from the model itself
(field constraints, allowed values, the docstrings of the shared ``cnplatform.validation`` rules and
of the model validators), the descriptions from the ``#:`` comments above each field.
"""
from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path

from pydantic import AfterValidator, BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402

from stacks import config as C  # noqa: E402
from stacks.config import checks as config_checks  # noqa: E402
from stacks.config.tiers import TIERS, TierDefaults  # noqa: E402

OUT = ROOT / "docs" / "configuration.md"


def _by_tier(attr: str, show=repr) -> str:
    return ", ".join(f"{tier} {show(getattr(d, attr))}" for tier, d in TIERS.items())


#: Keys whose default depends on the tier (the values: stacks/config/tiers.py, table below).
TIER_DEFAULTS = {
    "services[].replicas": _by_tier("service_replicas", str) + f" (prod needs >= {TIERS['prod'].min_service_replicas})",
    "services[].resources": "`service_resources` (below) when the service sets no `resources`",
    "services[].autoscaling.min_replicas": "the service's replicas",
    "services[].autoscaling.max_replicas": "max(3 x replicas, 3)",
    "clusters[].aws.nat_per_zone": _by_tier("aws_nat_per_zone", str),
    "clusters[].gcp.regional": _by_tier("gke_regional", str),
    "mesh.outbound_traffic_policy": _by_tier("outbound_traffic_policy", str),
    "addons.karpenter.consolidate_after": _by_tier("karpenter_consolidate_after", str),
    "addons.karpenter.disruption_budget": _by_tier("karpenter_disruption_budget", str),
    "mesh.east_west_gateway": "on when the stack has more than one cluster",
    "addons.cert_manager.issuer": "ca on local clusters, acme on cloud clusters",
    "cicd.deploy_stacks": "the stack itself where `jenkins_deploys_own_stack` (below); else none",
}
CROSS_RULES = [f.__doc__.strip().splitlines()[0] for f in (
    config_checks._duplicates, config_checks._cluster_errors, config_checks._name_errors,
    config_checks._expose_errors, config_checks._image_errors)] + [
    "services[].calls and services[].clusters name existing services and clusters; services[].namespace is declared",
    "services[].env literals that look like secrets (names like *PASSWORD*/*TOKEN*, cloud keys, URLs with a "
    "password) are refused: use secret_env",
    "the requests of every layer fit the node pools' allocatable capacity (stacks/checks/footprint.py)",
]


def _comments(cls: type) -> dict[str, str]:
    """``#:`` comment lines right above each field of ``cls``."""
    out, pending = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        m = re.match(r"^(\w+)\s*:", text)
        if m and pending:
            out[m.group(1)] = " ".join(pending)
        pending = []
    return out


def _unwrap(ann):
    """(inner annotation, rules from Annotated metadata)."""
    rules = []
    if typing.get_origin(ann) is typing.Annotated:
        base, *meta = typing.get_args(ann)
        rules += [(m.func.__doc__ or "").strip().splitlines()[0] for m in meta
                  if isinstance(m, AfterValidator) and m.func.__doc__]
        return base, rules
    return ann, rules


def _type(ann) -> str:
    ann, _ = _unwrap(ann)
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(_type(a) for a in inner)
        return f"optional {text}" if len(inner) < len(args) else text
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"map of {_type(args[1])}"
    return getattr(ann, "__name__", str(ann))


def _rules(field, ann) -> list[str]:
    rules = []
    for m in field.metadata:
        if isinstance(m, AfterValidator) and m.func.__doc__:
            rules.append(m.func.__doc__.strip().splitlines()[0])
        for key, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "at least items:")):
            if getattr(m, key, None) is not None:
                rules.append(f"{word} {getattr(m, key)}")
    stack = [ann]
    while stack:
        a = stack.pop()
        base, found = _unwrap(a)
        rules += found
        if typing.get_origin(base) in (list, dict, typing.Union, types.UnionType):
            stack += list(typing.get_args(base))
    return list(dict.fromkeys(rules))


def _model(ann):
    base, _ = _unwrap(ann)
    for a in [base, *typing.get_args(base)]:
        a, _ = _unwrap(a)
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a, typing.get_origin(base) is list and a is typing.get_args(base)[0]
        for b in typing.get_args(a):
            if isinstance(b, type) and issubclass(b, BaseModel):
                return b, typing.get_origin(a) is list
    return None, False


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{value!r}`" if len(repr(value)) < 70 else f"`{repr(value)[:60]}...`"


def _validators(model: type) -> list[str]:
    decs = model.__pydantic_decorators__
    funcs = [d.func for d in [*decs.model_validators.values(), *decs.field_validators.values()]]
    return [f.__doc__.strip().splitlines()[0] for f in funcs if getattr(f, "__doc__", None)]


def rows(model: type, prefix: str, out: list[str], sections: list) -> None:
    comments = _comments(model)
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        sub, is_list = _model(field.annotation)
        desc = comments.get(name, "")
        tier = TIER_DEFAULTS.get(key, "")
        rules = "; ".join(_rules(field, field.annotation))
        out.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {tier} | {rules} | {desc} |")
        if sub is not None and sub is not model:
            sections.append((sub, key + ("[]." if is_list else ".")))


def _cell(value) -> str:
    if isinstance(value, dict):
        return "<br>".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return f"`{value}`"


def tier_table() -> list[str]:
    """Every tier default (``stacks/config/tiers.py``), one row per field."""
    comments = _comments(TierDefaults)
    lines = ["## Tier defaults", "", "What `tier` decides when a key does not (`stacks/config/tiers.py`, read as "
             "`cfg.defaults` by the model, the checks and every layer).", "",
             "| default | " + " | ".join(TIERS) + " | description |", "|---|" + "---|" * len(TIERS) + "---|"]
    for f in dataclasses.fields(TierDefaults):
        cells = " | ".join(_cell(getattr(d, f.name)) for d in TIERS.values())
        lines.append(f"| `{f.name}` | {cells} | {comments.get(f.name, '')} |")
    return lines + [""]


def generate() -> str:
    lines = ["# Configuration reference", "",
             "<!-- generated by scripts/gen_config_docs.py from stacks/config/; do not edit -->", "",
             "Keys of `Pulumi.<stack>.yaml` under the `ecommerce-platform:` namespace (other namespaces: "
             "`pulumi`, `aws`, `gcp`, `kubernetes`, ... for the providers; any other is an error). A bad config "
             "lists every error with its key path and exits 2 before any resource; examples of each mistake are "
             "in `tests/bad_configs/`.", ""]
    queue, seen = [(C.StackConfig, "")], set()
    while queue:
        model, prefix = queue.pop(0)
        if (model, prefix) in seen:
            continue
        seen.add((model, prefix))
        title = prefix.rstrip(".") or "top level"
        lines += [f"## `{title}` ({model.__name__})", ""]
        if model.__doc__ and model.__doc__ != BaseModel.__doc__ and not model.__doc__.startswith("!!!"):
            lines += [model.__doc__.strip().splitlines()[0], ""]
        lines += ["| key | type | default | tier default | rules | description |", "|---|---|---|---|---|---|"]
        rows(model, prefix, lines, queue)
        checks = _validators(model)
        lines += [""] + [f"- {c}" for c in checks] + ([""] if checks else [])
    lines += ["## Rules across keys", ""] + [f"- {r}" for r in CROSS_RULES] + [""]
    lines += tier_table()
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run .venv/bin/python scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
