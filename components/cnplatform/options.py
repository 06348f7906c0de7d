"""Resource-option and Output helpers shared by the components."""
from __future__ import annotations

from typing import Any, Optional, TypeVar

import pulumi

T = TypeVar("T")


def inherited_depends_on(opts: Optional[pulumi.ResourceOptions]) -> list[Any]:
    """The ``depends_on`` of a component's options, as a list, to pass on to its children.

    Children of a component do not inherit its ``depends_on``; without this a chart or custom
    resource could start before what the caller made the component wait for (node pools, CRDs).
    """
    deps = opts.depends_on if opts is not None else None
    if deps is None:
        return []
    if isinstance(deps, (list, tuple)):
        return list(deps)
    return [deps]


def as_secret(value: pulumi.Output[T]) -> pulumi.Output[T]:
    """``pulumi.Output.secret`` of an Output, typed: the SDK's ``Input[U]`` parameter (``U | Awaitable[U] |
    Output[U]``) leaves mypy no single ``U`` for an Output argument without an expected type."""
    return pulumi.Output.secret(value)
