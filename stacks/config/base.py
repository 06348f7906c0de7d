"""What every part of the config model shares: the project, the strict base model, typed values."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from cnplatform import validation as v
from cnplatform.monitoring.values import GRAFANA_SUBPATH

PROJECT = "ecommerce-platform"
ROOT = Path(__file__).resolve().parents[2]
#: Paths the platform routes on the public gateway besides the services' (ACME is under /.well-known).
PLATFORM_ROUTES = (GRAFANA_SUBPATH, "/jenkins")


def build_dir(value: str) -> str:
    """A directory under the repository that holds a Dockerfile."""
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or any(c.isspace() for c in value):
        raise ValueError(f"build {value!r} must be a relative path inside the repository (e.g. services/user)")
    if not (ROOT / path).resolve().is_relative_to(ROOT):
        raise ValueError(f"build {value!r} leads outside the repository (a symbolic link)")
    if not (ROOT / path).is_dir():
        raise ValueError(f"build directory {value!r} does not exist in the repository")
    # Its own Dockerfile, or the shared parameterised one beside it (services/Dockerfile, SERVICE=<dir>).
    if not (ROOT / path / "Dockerfile").is_file() and not (
            (ROOT / path.parent / "Dockerfile").is_file() and (ROOT / path / "app.py").is_file()):
        raise ValueError(f"build directory {value!r} has no Dockerfile (nor an app.py for {path.parent}/Dockerfile)")
    return value

def _doc(fn, doc: str):
    """``fn`` with ``doc`` as its docstring (the configuration reference shows it as the key's rule)."""
    fn.__doc__ = doc
    return fn


#: Typed values checked by the shared rules of ``cnplatform.validation`` (the components use the same).
Cidr = Annotated[str, AfterValidator(v.cidr)]
HostName = Annotated[str, AfterValidator(v.hostname)]
HttpPath = Annotated[str, AfterValidator(v.http_path)]
PinnedImage = Annotated[str, AfterValidator(v.pinned_image)]
DigestImage = Annotated[str, AfterValidator(v.digest_image)]

Tier = Literal["dev", "staging", "prod"]
Cloud = Literal["local", "aws", "gcp"]


class Strict(BaseModel):
    """Base: unknown keys are errors (with a "did you mean" hint), values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)
