"""What a layer declares it runs on a cluster (pods x requests/limits): the footprint's unit.

Each layer builds its ``Workload`` list from the same values it gives its chart, so the footprint
(``stacks.checks.footprint``) counts what is deployed, not a copy.
"""
from __future__ import annotations

from dataclasses import dataclass

from cnplatform.quantity import cpu_millicores, memory_mib


@dataclass(frozen=True)
class Workload:
    """``replicas`` pods of one workload, each with these requests/limits (millicores, MiB)."""

    layer: str
    name: str
    replicas: int
    cpu_request: int
    memory_request: int
    cpu_limit: int
    memory_limit: int

    @classmethod
    def of(cls, layer: str, name: str, replicas: int, resources: dict) -> "Workload":
        req, lim = resources.get("requests", {}), resources.get("limits", resources.get("requests", {}))
        return cls(layer, name, replicas, cpu_millicores(req.get("cpu", 0)), memory_mib(req.get("memory", 0)),
                   cpu_millicores(lim.get("cpu", 0)), memory_mib(lim.get("memory", 0)))

    def total(self) -> tuple[int, int, int, int]:
        r = self.replicas
        return (self.cpu_request * r, self.memory_request * r, self.cpu_limit * r, self.memory_limit * r)
