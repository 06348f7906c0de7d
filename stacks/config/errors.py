"""The error report: every problem with its key path and a hint, structural errors in plain words."""
from __future__ import annotations

import difflib
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from stacks.config.stack import StackConfig


class ConfigError(Exception):
    """Every problem of a stack config, each with its key path."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in errors))

    def report(self, stack: str) -> str:
        lines = [f"stack {stack!r}: invalid configuration ({len(self.errors)} error(s)):"]
        lines += [f"  - {path or '<root>'}: {msg}" for path, msg in self.errors]
        return "\n".join(lines)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple) -> Optional[type[BaseModel]]:
    """The model class that owns the last key of ``loc`` (for "did you mean")."""
    import typing

    model: Any = StackConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        for _ in range(3):  # unwrap Optional[...] / list[...] / dict[str, ...]
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            ann = args[-1] if args else ann
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _structural_errors(exc: ValidationError) -> list[tuple[str, str]]:
    errors, mismatches = [], set()
    for err in exc.errors():
        # drop pydantic's validator and union-branch tags (``function-after[...]``, ``dict[str,...]``, ``str``)
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
            p.startswith("function-") or "[" in p or p in ("str", "int", "list", "dict"))))
        if err["type"] in ("string_type", "dict_type", "list_type"):
            mismatches.add(_path(loc))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = _model_at(loc)
            known = [f.alias or n for n, f in model.model_fields.items()] if model else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "") + (
                f" (known keys: {', '.join(sorted(known))})" if known else "")
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        errors.append((_path(loc), msg))
    # a union (``image: str | {cluster: ref}``): report the branch that matched the shape, not the other one
    deeper = {p for p, _ in errors}
    return [(p, m) for p, m in errors if not (p in mismatches and m.startswith("Input should be a valid") and any(
        d.startswith(p + ".") or d.startswith(p + "[") for d in deeper))]
