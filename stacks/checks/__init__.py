"""Checks that need the composed platform's knowledge, run on a valid config before any resource.

:func:`check_config` is the whole validation the program and the render run: the config's own rules
(``stacks.config``), then each layer's ``config_errors`` (e.g. certificate issuance) and the
footprint against each cluster's capacity (:mod:`.footprint`).
"""
from __future__ import annotations

from typing import Optional

from stacks.checks.footprint import capacity_errors
from stacks.compose.layers import LAYERS
from stacks.config import ConfigError, StackConfig, parse_config


def composition_errors(cfg: StackConfig) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for layer in LAYERS:
        if layer.config_errors is not None:
            errors += layer.config_errors(cfg)
    return errors + capacity_errors(cfg)


def check_config(raw: dict, secret_keys: Optional[set[str]] = None) -> StackConfig:
    """``parse_config`` plus :func:`composition_errors`; raise ConfigError with every error."""
    cfg = parse_config(raw, secret_keys)
    errors = composition_errors(cfg)
    if errors:
        raise ConfigError(errors)
    return cfg


__all__ = ["check_config", "composition_errors"]
