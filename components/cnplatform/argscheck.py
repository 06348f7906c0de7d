"""The engine under every component's args check: the dataclass field types, per-field rules and
whole-args checks, gathered into one :class:`ArgsError` listing every problem.

The rules themselves (names, quantities, images, paths...) are in :mod:`cnplatform.validation`, which
re-exports everything here.
"""
from __future__ import annotations

import collections.abc as abc
import dataclasses
import re
import typing
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional, Union


class ArgsError(ValueError, TypeError):
    """Every problem of a component's args (a ``ValueError`` and, for wrong types, a ``TypeError``)."""

    def __init__(self, owner: str, errors: list[tuple[str, str]]):
        self.owner, self.errors = owner, errors
        lines = [f"{owner}: {len(errors)} invalid argument(s):"] + [f"  - {k}: {m}" for k, m in errors]
        super().__init__("\n".join(lines))


def _conforms(value: Any, tp: Any) -> bool:
    import pulumi

    if tp is Any or isinstance(value, (pulumi.Output, abc.Awaitable)):
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        return any(_conforms(value, a) for a in args)
    if value is None:
        return tp is type(None)
    if origin is typing.Literal:
        return value in args
    if origin in (list, abc.Sequence, tuple):
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value) if args else True
    if origin in (dict, abc.Mapping):
        return isinstance(value, dict) and (not args or all(
            isinstance(k, str) and _conforms(v, args[1]) for k, v in value.items()))
    if origin is not None:
        return isinstance(value, origin) if isinstance(origin, type) else True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp) if isinstance(tp, type) else True


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations; a field whose annotation cannot be resolved is not type-checked."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        import sys

        import pulumi

        scope = {**vars(typing), "pulumi": pulumi, **vars(sys.modules[cls.__module__])}
        out = {}
        for f in dataclasses.fields(cls):
            try:
                out[f.name] = eval(f.type, scope) if isinstance(f.type, str) else f.type  # noqa: S307 (annotations)
            except Exception:  # noqa: BLE001 (an annotation naming a TYPE_CHECKING-only type)
                out[f.name] = Any
        return out


def _type_name(tp: Any) -> str:
    text = getattr(tp, "__name__", None) if typing.get_origin(tp) is None else None
    return text or re.sub(r"(?:\w+\.)+(\w+)", r"\1", str(tp))


def type_errors(args: Any) -> list[tuple[str, str]]:
    """``(field, message)`` for each dataclass field whose value is not of its annotated type (nested too)."""
    out = []
    cls: type = type(args)
    for f in dataclasses.fields(args):
        value, tp = getattr(args, f.name), _hints(cls).get(f.name, Any)
        if not _conforms(value, tp):
            out.append((f.name, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}"[:300]))
    return out


Rule = Callable[[Any], Any]


def check_args(args: Any, rules: Optional[dict[str, Union[Rule, list[Rule]]]] = None,
               checks: Iterable[Callable[[Any], list[tuple[str, str]]]] = ()) -> None:
    """Type-check ``args`` (a dataclass), apply per-field ``rules`` (skipping None and Outputs) and
    whole-args ``checks``; raise one :class:`ArgsError` with every problem."""
    import pulumi

    errors = type_errors(args)
    bad_types = {k for k, _ in errors}
    for name, field_rules in (rules or {}).items():
        value = getattr(args, name)
        if name in bad_types or value is None or isinstance(value, pulumi.Output):
            continue
        for rule in field_rules if isinstance(field_rules, list) else [field_rules]:
            items = value.items() if isinstance(value, dict) and getattr(rule, "each_key", False) else (
                enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)])
            for key, item in items:
                if isinstance(item, pulumi.Output):
                    continue
                try:
                    rule(key if getattr(rule, "each_key", False) else item)
                except ValueError as exc:
                    errors.append((name if key is None else f"{name}[{key!r}]" if isinstance(key, str)
                                   else f"{name}[{key}]", str(exc)))
    if not bad_types:
        for check in checks:
            errors += check(args)
    if errors:
        raise ArgsError(type(args).__name__, errors)


def keys(rule: Rule) -> Rule:
    """Apply ``rule`` to each key of a dict field (e.g. env variable names)."""
    def each(value: Any) -> Any:
        return rule(value)
    each.each_key = True  # type: ignore[attr-defined]
    return each
