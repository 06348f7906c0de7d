"""Small helpers shared by the mesh components (options and metadata; no policy here)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import pulumi

from cnplatform.naming import MANAGED_BY

#: Labels on every object the mesh components create.
MESH_LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "ecommerce-platform"}


def child_opts(parent: pulumi.Resource, base: Sequence[Any], *extra: pulumi.Resource,
               **kwargs) -> pulumi.ResourceOptions:
    """Options for a child: parented, and depending on what the component depends on plus ``extra``."""
    return pulumi.ResourceOptions(parent=parent, depends_on=[*base, *extra], **kwargs)


def metadata(name: str, namespace: str, labels: Optional[dict] = None, **extra) -> dict:
    return {"name": name, "namespace": namespace, "labels": {**MESH_LABELS, **(labels or {})}, **extra}
