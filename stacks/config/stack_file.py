"""Reading a ``Pulumi.<stack>.yaml`` file for the offline tools: every mistake is a ConfigError.

A missing file, a YAML syntax error, a document that is not a mapping, a ``config:`` that is not a
mapping and keys under a namespace that is neither this project's nor a provider's are reported
with the other config errors (key path + hint), never as a traceback.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import yaml

from stacks.config.base import PROJECT, ROOT
from stacks.config.errors import ConfigError
from stacks.config.loading import raw_from_stack_file
from stacks.config.namespaces import namespace_errors

STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

def stack_file(stack: str, path: Optional[str]) -> Path:
    """The config file of ``stack`` (``--config`` or ``Pulumi.<stack>.yaml`` in the repo root)."""
    if path:
        return Path(path)
    if not STACK_NAME.match(stack) or stack in (".", ".."):
        raise ConfigError([("--stack", f"{stack!r} is not a Pulumi stack name (letters, digits, '-', '_', '.')")])
    return ROOT / f"Pulumi.{stack}.yaml"


def known_stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


def read_document(stack: str, path: Optional[str]) -> dict:
    """The YAML document of the stack file; a ConfigError when it is missing, unreadable or not a mapping."""
    file = stack_file(stack, path)
    if not file.is_file():
        hint = (f"; pass --config PATH or create {file.name} (stacks: {', '.join(known_stacks())})"
                if not path else "")
        raise ConfigError([("--config" if path else "--stack", f"no stack config file {str(file)!r}{hint}")])
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([(file.name, f"YAML syntax error{where}: {problem}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([(file.name, f"cannot read the file: {exc}")]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError([("<root>", f"a stack file is a mapping with a 'config:' key (got a {type(doc).__name__})")])
    return doc


def document_errors(doc: dict, project: str = PROJECT) -> list[tuple[str, str]]:
    config = doc.get("config")
    if config is not None and not isinstance(config, dict):
        return [("config", f"'config:' must be a mapping of 'namespace:key: value' (got a {type(config).__name__})")]
    unknown_top = [k for k in doc if k not in ("config", "secretsprovider", "encryptedkey", "encryptionsalt",
                                               "environment")]
    errors = [(str(k), "unknown top-level key of a stack file (known: config, secretsprovider, encryptedkey, "
                       "encryptionsalt, environment)") for k in unknown_top]
    return errors + namespace_errors(list((config or {}).keys()), project)


def load(stack: str, path: Optional[str], project: str = PROJECT) -> tuple[dict, dict[str, str], list]:
    """(raw project config, secure values, document errors) of a stack file; raises ConfigError when unreadable."""
    doc = read_document(stack, path)
    errors = document_errors(doc, project)
    if any(k == "config" for k, _ in errors):
        raise ConfigError(errors)
    raw, secure = raw_from_stack_file(doc, project)
    return raw, secure, errors


def out_dir_errors(out: Any) -> list[tuple[str, str]]:
    """The render replaces ``--out``: refuse a directory that is not empty and not a previous render."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        return [("--out", f"{str(out)!r} exists and is not a directory")]
    if path.is_dir() and any(path.iterdir()) and not (path / "plan.json").is_file():
        return [("--out", f"{str(out)!r} is a non-empty directory that is not a render (no plan.json); the render "
                          "replaces its output directory, so give a new or a previous render's directory")]
    resolved = path.resolve()
    if resolved == ROOT or ROOT.is_relative_to(resolved) or resolved == Path.home():
        return [("--out", f"{str(out)!r} would replace the repository or a parent of it")]
    return []
