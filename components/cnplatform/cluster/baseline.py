"""Cluster baseline: app namespaces with Pod Security Standards and a default-deny NetworkPolicy."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.naming import MANAGED_BY, pod_security_labels, type_token


@dataclass
class NamespaceSpec:
    name: str
    """Namespace name (DNS-1123)."""
    pod_security: str = "restricted"
    """Pod Security Standards level enforced (``restricted``, ``baseline``, ``privileged``)."""


@dataclass
class ClusterBaselineArgs:
    """Inputs of :class:`ClusterBaseline`."""

    namespaces: list[NamespaceSpec] = field(default_factory=lambda: [NamespaceSpec("shop")])
    """Application namespaces to create."""
    mesh_injection: bool = False
    """Label app namespaces for Istio sidecar injection."""
    default_deny: bool = True
    """Create a default-deny (ingress and egress) NetworkPolicy in every app namespace."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {})


def namespace_labels(ns: NamespaceSpec, mesh_injection: bool) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **pod_security_labels(ns.pod_security),
    }
    if mesh_injection:
        labels["istio-injection"] = "enabled"
    return labels


class ClusterBaseline(pulumi.ComponentResource):
    """Namespaces every app lands in, locked down by default."""

    namespace_names: pulumi.Output[list[str]]
    """Names of the created namespaces."""

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: ClusterBaselineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "Baseline"), name, None, opts)
        self.namespaces = {}
        for ns in args.namespaces:
            namespace = k8s.core.v1.Namespace(
                f"{name}-ns-{ns.name}",
                metadata={"name": ns.name, "labels": namespace_labels(ns, args.mesh_injection)},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.namespaces[ns.name] = namespace
            if args.default_deny:
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-default-deny-{ns.name}",
                    metadata={"name": "default-deny-all", "namespace": ns.name,
                              "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
                    spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
                )
        self.namespace_names = pulumi.Output.from_input(sorted(self.namespaces))
        self.register_outputs({"namespace_names": self.namespace_names})
