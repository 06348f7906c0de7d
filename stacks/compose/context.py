"""What the layers of one cluster share, as typed fields (each set by the layer that creates it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import pulumi

from cnplatform.cluster.base import Cluster
from cnplatform.cluster.baseline import ClusterBaseline
from stacks.config import ClusterConfig, StackConfig

if TYPE_CHECKING:  # the components are imported by the layers that create them
    from cnplatform.addons.cert_manager import CertManager
    from cnplatform.addons.certificate import TlsCertificate
    from cnplatform.addons.metrics_server import MetricsServer
    from cnplatform.cicd.jenkins import Jenkins
    from cnplatform.cluster.priority import PlatformPriorityClasses
    from cnplatform.mesh.ca import MeshRootCa
    from cnplatform.mesh.consul import ConsulCatalogSync
    from cnplatform.mesh.istio import IstioMesh
    from cnplatform.microservice import Microservice
    from cnplatform.monitoring import MonitoringStack
    from cnplatform.registry import ArtifactRepository


@dataclass
class MeshMember:
    """One cluster's mesh, as the other clusters' istiods read it (multi-primary remote secrets)."""

    ctx: "ClusterContext"
    mesh: "IstioMesh"
    server: pulumi.Output[str]
    ca: pulumi.Output[str]
    token: pulumi.Output[str]

    @property
    def name(self) -> str:
        return self.ctx.name


@dataclass
class StackShared:
    """What every cluster of the stack shares."""

    #: cluster -> its registry URL (clusters that have one): CI pushes each image to every cluster's.
    registries: pulumi.Output[dict[str, str]]
    #: cluster -> its egress CIDRs (NAT addresses): what a peer's east-west load balancer admits.
    egress_cidrs: dict[str, pulumi.Output[list[str]]] = field(default_factory=dict)
    #: The mesh root CA: created by the first cluster's mesh, reused by the others.
    mesh_root_ca: Optional["MeshRootCa"] = None
    #: The meshes of the clusters built so far (remote secrets are exchanged pairwise as clusters come).
    mesh_members: list[MeshMember] = field(default_factory=list)


@dataclass
class ClusterContext:
    """One cluster's composition: its config, the cluster, and what each layer created (None: not created)."""

    cfg: StackConfig
    cluster_cfg: ClusterConfig
    cluster: Cluster
    baseline: ClusterBaseline
    shared: StackShared
    #: The platform's PriorityClasses (the add-ons layer, first): every object after them depends on them.
    priority_classes: Optional["PlatformPriorityClasses"] = None
    metrics_server: Optional["MetricsServer"] = None
    cert_manager: Optional["CertManager"] = None
    mesh: Optional["IstioMesh"] = None
    consul: Optional["ConsulCatalogSync"] = None
    ingress_certificate: Optional["TlsCertificate"] = None
    monitoring: Optional["MonitoringStack"] = None
    services: dict[str, "Microservice"] = field(default_factory=dict)
    jenkins: Optional["Jenkins"] = None
    #: GCP: the cluster's Docker repository, created with the first image built for it.
    artifact_repository: Optional["ArtifactRepository"] = None
    #: GCP: the private services access of the cluster's network (Cloud SQL), created with the first database.
    cloudsql_private_access: Optional[tuple[Optional[pulumi.Resource], Any]] = None
    #: Extra stack outputs of this cluster, by layer.
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cluster_cfg.name

    def k8s_opts(self, *depends_on: pulumi.Resource, **kwargs) -> pulumi.ResourceOptions:
        """Options for anything deployed onto this cluster: its provider, after the cluster is ready (and
        after the PriorityClasses, which a pod naming one needs at admission)."""
        return pulumi.ResourceOptions(provider=self.cluster.provider, depends_on=self.k8s_waits(*depends_on),
                                      **kwargs)

    def k8s_waits(self, *depends_on: pulumi.Resource) -> list[pulumi.Resource]:
        """What anything deployed onto this cluster waits for (the ``depends_on`` of :meth:`k8s_opts`)."""
        first = [self.priority_classes] if self.priority_classes is not None else []
        return [*self.cluster.ready, *first, *depends_on]
