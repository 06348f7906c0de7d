"""Optional cloud SDKs: a missing one says which pip extra of cnplatform installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

#: SDK module -> the cnplatform extra (pyproject ``[project.optional-dependencies]``) that brings it.
EXTRAS = {"pulumi_aws": "aws", "pulumi_gcp": "gcp", "pulumi_docker": "images"}


class MissingExtraError(ModuleNotFoundError):
    """A cloud SDK is not installed; the message names the extra to install."""


def require(module: str, needed_by: str) -> ModuleType:
    """Import ``module`` (e.g. ``pulumi_aws``) or raise :class:`MissingExtraError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        extra = EXTRAS.get(module, "all")
        raise MissingExtraError(
            f"{needed_by} needs {module}, which is not installed: pip install 'cnplatform[{extra}]'",
            name=module) from None
