"""The platform's PriorityClasses: which pods the scheduler places (and the kubelet keeps) first.

Three levels, highest first:

- ``cnplatform-platform-critical``: what every request path needs (istiod, the Istio gateways,
  cert-manager whose webhook gates every Certificate write).
- ``cnplatform-platform``: the platform's own services (monitoring, Jenkins).
- no class (priority 0): the application services.

Platform-owned classes rather than the built-in ``system-cluster-critical``: that one is meant for
the cluster's own add-ons (it outranks everything a user can define), and GKE admits pods naming it
only in namespaces holding a ResourceQuota scoped to it (``gcp-critical-pods`` exists in
``kube-system`` only), so istiod or Grafana would be rejected there. Add-ons that run in
``kube-system`` keep their charts' system classes (metrics-server ``system-cluster-critical``, the
Istio CNI node agent ``system-node-critical``).

A pod naming a PriorityClass that does not exist is rejected by admission: every chart that names one
depends on :class:`PlatformPriorityClasses` (the stack makes every Kubernetes object of a cluster
depend on it), and the components take the class name as an argument (none by default).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.naming import MANAGED_BY, type_token

PLATFORM_CRITICAL = "cnplatform-platform-critical"
PLATFORM = "cnplatform-platform"
#: The built-in classes (kube-system add-ons only; GKE limits them to namespaces with a quota for them).
SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
SYSTEM_NODE_CRITICAL = "system-node-critical"
#: Highest value a user-defined PriorityClass may have (the system classes sit above, at 2e9).
MAX_USER_PRIORITY = 1_000_000_000
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def priority_class_name(value: Any) -> str:
    """A PriorityClass name (DNS-1123 subdomain); the ``system-`` prefix is reserved to the built-ins."""
    if not isinstance(value, str) or len(value) > 253 or not _SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a PriorityClass name (a DNS-1123 subdomain)")
    if value.startswith("system-") and value not in (SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL):
        raise ValueError(f"{value!r}: the system- prefix is reserved to Kubernetes' own classes")
    return value


@dataclass
class PlatformPriorityClassesArgs:
    """Inputs of :class:`PlatformPriorityClasses`."""

    critical_value: int = 1_000_000
    """Priority of ``cnplatform-platform-critical`` (istiod, gateways, cert-manager)."""
    platform_value: int = 100_000
    """Priority of ``cnplatform-platform`` (monitoring, Jenkins); above the services' 0."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "critical_value": _v.in_range(1, MAX_USER_PRIORITY), "platform_value": _v.in_range(1, MAX_USER_PRIORITY),
        }, checks=[_v.not_above("platform_value", "critical_value")])


def priority_class_specs(args: PlatformPriorityClassesArgs) -> dict[str, dict]:
    """name -> the PriorityClass's fields (value, preemption, description); none is the global default."""
    return {
        PLATFORM_CRITICAL: {
            "value": args.critical_value, "preemption_policy": "PreemptLowerPriority", "global_default": False,
            "description": "cnplatform: on every request path (istiod, Istio gateways, cert-manager)"},
        PLATFORM: {
            "value": args.platform_value, "preemption_policy": "PreemptLowerPriority", "global_default": False,
            "description": "cnplatform: platform services (monitoring, CI); above the application services"},
    }


class PlatformPriorityClasses(pulumi.ComponentResource):
    """The platform's PriorityClasses (cluster-scoped): create them before any pod that names one."""

    critical: pulumi.Output[str]
    """Name of the class of the request path (``cnplatform-platform-critical``)."""
    platform: pulumi.Output[str]
    """Name of the class of the platform services (``cnplatform-platform``)."""

    def __init__(self, name: str, args: PlatformPriorityClassesArgs,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "PlatformPriorityClasses"), name, None, opts)
        #: name -> the PriorityClass resource (depend on the component, or on one of these).
        self.classes: dict[str, k8s.scheduling.v1.PriorityClass] = {}
        for cls, spec in priority_class_specs(args).items():
            self.classes[cls] = k8s.scheduling.v1.PriorityClass(
                f"{name}-{cls}",
                metadata={"name": cls, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
                opts=pulumi.ResourceOptions(parent=self), **spec)
        self.critical = pulumi.Output.from_input(PLATFORM_CRITICAL)
        self.platform = pulumi.Output.from_input(PLATFORM)
        self.register_outputs({"critical": self.critical, "platform": self.platform})
