"""Reading a stack's config (Pulumi config or a stack file) and validating it as a whole."""
from __future__ import annotations

import json
from typing import Optional

from pydantic import ValidationError

from stacks.config.base import PROJECT
from stacks.config.checks import cross_errors
from stacks.config.errors import ConfigError, _structural_errors
from stacks.config.namespaces import namespace_errors
from stacks.config.stack import StackConfig


def parse_config(raw: dict, secret_keys: Optional[set[str]] = None) -> StackConfig:
    """Validate raw stack config (keys without the project prefix); raise ConfigError with all errors.

    The config's own rules only: ``stacks.checks.check_config`` adds those that need the composed
    platform (capacity, certificate issuance) and is what the program and the render run.
    ``secret_keys``: the stack's secret config keys; when given, every secret the config refers to
    must be one of them.
    """
    errors: list[tuple[str, str]] = []
    cfg = None
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as exc:
        errors += _structural_errors(exc)
    errors += cross_errors(raw if isinstance(raw, dict) else {})
    if cfg is not None and secret_keys is not None:
        for i, receiver in enumerate(cfg.monitoring.receivers):
            if receiver.secret_config_key not in secret_keys:
                errors.append((f"monitoring.receivers[{i}].secret_config_key", (
                    f"no stack secret {receiver.secret_config_key!r}: run "
                    f"`pulumi config set --secret {receiver.secret_config_key} <value>`")))
    if errors:
        raise ConfigError(errors)
    assert cfg is not None
    return cfg


# --------------------------------------------------------------------------- reading the stack


def raw_from_stack_file(doc: dict, project: str = PROJECT) -> tuple[dict, dict[str, str]]:
    """Split a ``Pulumi.<stack>.yaml`` document into (raw config for the model, secure values).

    Keys of other namespaces (``aws:region``, ``gcp:project``...) are ignored here. ``secure:``
    values cannot be decrypted offline; they are returned separately by key.
    """
    raw: dict = {}
    secure: dict[str, str] = {}
    for key, value in ((doc or {}).get("config") or {}).items():
        ns, _, name = key.partition(":")
        if not name:
            ns, name = project, key
        if ns != project:
            continue
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure[name] = value["secure"]
            continue
        raw[name] = value
    return raw, secure


def read_pulumi_config() -> tuple[dict, set[str], list[tuple[str, str]]]:
    """The running stack's config through ``pulumi.Config``: (raw config for the model, the project's
    secret keys, errors of keys under an unknown namespace)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, is_config_secret

    config = pulumi.Config()
    raw: dict = {}
    for field, info in StackConfig.model_fields.items():
        value = config.get(field)
        if value is None:
            continue
        try:
            raw[field] = json.loads(value) if info.annotation is not str else value
        except json.JSONDecodeError:
            raw[field] = value
    for key in _unknown_project_keys(set(StackConfig.model_fields)):
        raw[key] = config.get(key)
    secrets = {k.split(":", 1)[1] for k in CONFIG.get() if k.startswith(PROJECT + ":") and is_config_secret(k)}
    return raw, secrets, namespace_errors(sorted(CONFIG.get()))


def _unknown_project_keys(known: set[str]) -> list[str]:
    """Non-secret project config keys the model does not know, so a typo is reported, not ignored.

    Secret keys (``pulumi config set --secret``) are stack secrets referred to by name
    (e.g. ``monitoring.receivers[].secret_config_key``), not model data.
    """
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    return sorted(
        k.split(":", 1)[1] for k in set(CONFIG.get()) | set(get_config_env())
        if k.startswith(PROJECT + ":") and k.split(":", 1)[1] not in known and not is_config_secret(k)
    )


def secret_config_keys(cfg: StackConfig) -> set[str]:
    """The stack secrets (config keys set with ``--secret``) a valid config refers to."""
    return {r.secret_config_key for r in cfg.monitoring.receivers}
