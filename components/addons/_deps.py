"""Helpers shared by the add-on components."""
from __future__ import annotations

from typing import Optional

import pulumi


def inherited_depends_on(opts: Optional[pulumi.ResourceOptions]) -> list[pulumi.Resource]:
    """The component's own ``depends_on``, to pass on to its children.

    Children of a component do not inherit its ``depends_on``; without this a chart or custom
    resource could start before what the caller made the component wait for (node pools, CRDs).
    """
    deps = opts.depends_on if opts is not None else None
    if deps is None:
        return []
    if isinstance(deps, pulumi.Resource):
        return [deps]
    return [d for d in deps if isinstance(d, pulumi.Resource)]
