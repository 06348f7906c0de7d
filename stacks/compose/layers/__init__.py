"""The platform's layers after cluster + baseline, in dependency order (:data:`LAYERS`).

A layer deploys onto one cluster (``deploy(ctx)``) and may declare what it runs (``footprint``, counted
by ``stacks.checks.footprint``) and rules the config must meet for it (``config_errors``, checked before
any resource is registered).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from stacks.compose.layers import (
    addons,
    cicd,
    ingress_certificate,
    mesh,
    monitoring,
    services,
)
from stacks.compose.workloads import Workload
from stacks.config import ClusterConfig, StackConfig

if TYPE_CHECKING:
    from stacks.compose.context import ClusterContext


@dataclass(frozen=True)
class Layer:
    name: str
    deploy: Callable[["ClusterContext"], None]
    footprint: Optional[Callable[[StackConfig, ClusterConfig], list[Workload]]] = None
    config_errors: Optional[Callable[[StackConfig], list[tuple[str, str]]]] = None


LAYERS: tuple[Layer, ...] = (
    Layer("addons", addons.deploy, footprint=addons.footprint),
    Layer("mesh", mesh.deploy, footprint=mesh.footprint),
    Layer("ingress_certificate", ingress_certificate.deploy, config_errors=ingress_certificate.config_errors),
    Layer("monitoring", monitoring.deploy, footprint=monitoring.footprint),
    Layer("services", services.deploy, footprint=services.footprint),
    Layer("cicd", cicd.deploy, footprint=cicd.footprint),
)
