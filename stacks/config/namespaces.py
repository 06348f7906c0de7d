"""Config namespaces: the project's, Pulumi's and the providers'; any other one is a typo, reported."""
from __future__ import annotations

import difflib

from stacks.config.base import PROJECT

#: Config namespaces besides the project's: Pulumi itself and the providers the program uses.
PROVIDER_NAMESPACES = ("pulumi", "aws", "gcp", "google-native", "kubernetes", "docker", "random", "tls",
                       "command")


def namespace_errors(keys: list[str], project: str = PROJECT) -> list[tuple[str, str]]:
    """Keys whose namespace is neither the project's nor a provider's (a typo would be silently dropped)."""
    errors = []
    for key in keys:
        ns, sep, _ = str(key).partition(":")
        if not sep or ns == project or ns in PROVIDER_NAMESPACES:
            continue
        close = difflib.get_close_matches(ns, [project, *PROVIDER_NAMESPACES], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"the project's namespace is {project!r}"
        errors.append((f"config.{key}", f"unknown config namespace {ns!r}; {hint} (provider namespaces: "
                                        f"{', '.join(PROVIDER_NAMESPACES)})"))
    return errors
