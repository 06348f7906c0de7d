"""Optional: HashiCorp Consul (upstream chart pinned at CONSUL_VERSION) with catalog sync, so workloads
outside Kubernetes (VMs, other platforms) and the mesh's services can find each other. Istio stays the
service mesh: Consul's own sidecar injection is off.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.mesh import values as v
from cnplatform.mesh._resources import MESH_LABELS, child_opts
from cnplatform.naming import pod_security_labels, type_token
from cnplatform.options import inherited_depends_on


@dataclass
class ConsulCatalogSyncArgs:
    """Inputs of :class:`ConsulCatalogSync`."""

    datacenter: str
    """Consul datacenter name (one per cluster)."""
    server_replicas: int = 1
    """Consul servers (3 for a fault-tolerant quorum)."""
    app_namespaces: list[str] = field(default_factory=list)
    """Kubernetes namespaces whose Services are synced to Consul (empty: all but kube-system/public)."""
    pod_security: str = "baseline"
    """Pod Security Standards level of the consul namespace."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "server_replicas": _v.positive, "app_namespaces": _v.dns_label,
            "pod_security": _v.one_of("restricted", "baseline", "privileged"),
        })


def consul_values(args: ConsulCatalogSyncArgs) -> dict:
    return v.consul_values(args.datacenter, args.server_replicas, args.app_namespaces)


class ConsulCatalogSync(pulumi.ComponentResource):
    """Consul servers + catalog sync in the ``consul`` namespace."""

    namespace_name: pulumi.Output[str]
    """Namespace Consul runs in."""

    chart: k8s.helm.v4.Chart

    def __init__(self, name: str, args: ConsulCatalogSyncArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("mesh", "ConsulCatalogSync"), name, None, opts)
        deps = inherited_depends_on(opts)
        level = args.pod_security
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": v.CONSUL_NAMESPACE, "labels": {
                **MESH_LABELS, **pod_security_labels(level)}},
            opts=child_opts(self, deps))
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            k8s.helm.v4.ChartArgs(
                chart="consul", name=v.CONSUL_RELEASE, version=v.CONSUL_VERSION, namespace=v.CONSUL_NAMESPACE,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=v.CONSUL_REPO), values=consul_values(args)),
            opts=child_opts(self, deps, namespace))
        self.namespace_name = namespace.metadata.apply(lambda _: v.CONSUL_NAMESPACE)
        self.register_outputs({"namespace_name": self.namespace_name})
