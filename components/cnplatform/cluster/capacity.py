"""Allocatable capacity per node, by machine type (pure data + lookup).

Figures are the allocatable CPU (millicores) and memory (MiB) a node offers to pods after the
kubelet/system reservations the clouds document for these sizes (rounded down).
"""
from __future__ import annotations

from typing import NamedTuple


class NodeCapacity(NamedTuple):
    cpu_millicores: int
    memory_mib: int

    def times(self, n: int) -> "NodeCapacity":
        return NodeCapacity(self.cpu_millicores * n, self.memory_mib * n)

    def plus(self, other: "NodeCapacity") -> "NodeCapacity":
        return NodeCapacity(self.cpu_millicores + other.cpu_millicores, self.memory_mib + other.memory_mib)


ALLOCATABLE: dict[str, NodeCapacity] = {
    # AWS (EKS AL2023: kube-reserved by max pods, 100Mi eviction)
    "t3.medium": NodeCapacity(1930, 3350),
    "t3.large": NodeCapacity(1930, 7100),
    "m6i.large": NodeCapacity(1930, 7100),
    "m6i.xlarge": NodeCapacity(3920, 14500),
    "m6i.2xlarge": NodeCapacity(7910, 29300),
    "c6i.xlarge": NodeCapacity(3920, 6600),
    "r6i.xlarge": NodeCapacity(3920, 29300),
    # GCP (GKE reservations)
    "e2-standard-2": NodeCapacity(1930, 5940),
    "e2-standard-4": NodeCapacity(3920, 13000),
    "e2-standard-8": NodeCapacity(7910, 28300),
    "n2-standard-4": NodeCapacity(3920, 13000),
    "n2-standard-8": NodeCapacity(7910, 28300),
}


def node_capacity(machine_type: str, cpu: str | None = None, memory: str | None = None) -> NodeCapacity:
    """Capacity of one node: explicit ``cpu``/``memory`` quantities win over the machine-type table."""
    from cnplatform.quantity import cpu_millicores, memory_mib

    if cpu and memory:
        return NodeCapacity(cpu_millicores(cpu), memory_mib(memory))
    if machine_type not in ALLOCATABLE:
        raise KeyError(f"unknown machine type {machine_type!r}: set the pool's cpu and memory explicitly")
    return ALLOCATABLE[machine_type]


def karpenter_capacity(cpu_limit: int, memory_limit: str) -> NodeCapacity:
    """Upper bound of what Karpenter may add (its NodePool limits)."""
    from cnplatform.quantity import memory_mib

    return NodeCapacity(cpu_limit * 1000, memory_mib(memory_limit))
