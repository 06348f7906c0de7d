"""The platform program: the running stack's config, checked, then composed (``__main__.py`` runs it;
``stacks.offline`` runs the same function under mocks)."""
from __future__ import annotations

import sys
from typing import Any

import pulumi

from stacks.checks import check_config
from stacks.compose.platform import build_platform
from stacks.config import ConfigError, StackConfig, read_pulumi_config


def load_checked_config() -> StackConfig:
    """The running stack's config, fully checked; on any error: the report on stderr and exit 2."""
    raw, secrets, errors = read_pulumi_config()
    cfg = None
    try:
        cfg = check_config(raw, secret_keys=secrets)
    except ConfigError as err:
        errors = errors + err.errors
    if errors or cfg is None:
        print(ConfigError(errors).report(pulumi.get_stack()), file=sys.stderr)
        raise SystemExit(2) from None
    return cfg


def program() -> dict[str, Any]:
    """The stack outputs of the whole platform."""
    return build_platform(load_checked_config())

