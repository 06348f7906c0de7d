"""Optional cloud SDKs: a missing one says which pip extra of cnplatform installs it."""
from __future__ import annotations

#: SDK module -> the cnplatform extra (pyproject ``[project.optional-dependencies]``) that brings it.
EXTRAS = {"pulumi_aws": "aws", "pulumi_gcp": "gcp", "pulumi_docker": "images"}


class MissingExtraError(ModuleNotFoundError):
    """A cloud SDK is not installed; the message names the extra to install."""


def missing_extra(exc: ModuleNotFoundError, needed_by: str) -> ModuleNotFoundError:
    """The error to raise when a module's plain ``import`` of a cloud SDK failed: it names the extra.

        try:
            import pulumi_aws as aws
        except ModuleNotFoundError as exc:
            raise missing_extra(exc, __name__) from None

    Any other missing module (not one of :data:`EXTRAS`) is returned unchanged."""
    if exc.name not in EXTRAS:
        return exc
    return MissingExtraError(
        f"{needed_by} needs {exc.name}, which is not installed: pip install 'cnplatform[{EXTRAS[exc.name]}]'",
        name=exc.name)
