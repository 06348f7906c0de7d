"""Who may talk to whom, derived from what services declare (pure functions).

A service's ``calls`` list is the single source of truth: NetworkPolicies (L3/4) and Istio
AuthorizationPolicies (L7 identity) are both computed from :func:`callers_of`.
"""
from __future__ import annotations

from typing import Mapping, Sequence


def callers_of(calls: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Invert ``{service: [services it calls]}`` into ``{service: sorted callers}`` (every service present)."""
    callers: dict[str, set[str]] = {name: set() for name in calls}
    for caller, callees in calls.items():
        for callee in callees:
            callers.setdefault(callee, set()).add(caller)
    return {name: sorted(c) for name, c in sorted(callers.items())}
