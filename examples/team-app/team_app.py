"""team-app: one more service on a platform cluster, with the platform's guarantees, from another stack.

The platform stack (``ecommerce-platform``) owns the clusters and exports ``clusters`` (per cluster:
cloud, region, zones, endpoint, registry_url, workload_identity, mesh, monitoring, services...),
``kubeconfigs`` (secret, per cluster) and ``tier``. This stack reads them with a StackReference,
talks to the chosen cluster through its own Kubernetes provider, and deploys ``reviews`` with the
library's components: its own namespace (Pod Security "restricted", default-deny NetworkPolicy,
sidecar injection with the mesh) and a :class:`~cnplatform.microservice.Microservice` (non-root,
read-only root filesystem, requests/limits, probes, HPA, PDB and zone spread by tier, least-privilege
NetworkPolicy to exactly the services it calls).

Config (``team-app:<key>``):

``platformStack`` (required)
    The platform stack, ``<org>/ecommerce-platform/<stack>``.
``cluster`` (required)
    One of the platform's clusters (a key of its ``clusters`` output).
``image`` (required)
    The service's image, by digest.
``tier``
    ``dev``, ``staging`` or ``prod``; default: the platform stack's name. Checked against the
    platform's ``tier`` output (tier defaults are decided at program time, so they cannot wait for it).
``mesh``
    Sidecar injection and mesh rules (default true); checked against the platform cluster's ``mesh``.
``name`` / ``namespace``
    Default ``reviews`` / ``reviews``.
``calls``
    Services it calls, ``[{name, namespace, port}]`` (default: ``product`` in ``shop`` on 8080). The
    callee must admit it too: its owner lists this service as a caller (NetworkPolicy and mesh
    AuthorizationPolicy are derived from declared callers on the platform side).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform.cluster.baseline import ClusterBaseline, ClusterBaselineArgs, NamespaceSpec
from cnplatform.microservice import Microservice, MicroserviceArgs, Peer

#: Replicas per tier, as on the platform (prod >= 3: PDB + spread over zones).
TIER_REPLICAS = {"dev": 1, "staging": 2, "prod": 3}


@dataclass
class Settings:
    platform_stack: str
    cluster: str
    image: str
    tier: Optional[str] = None
    mesh: bool = True
    name: str = "reviews"
    namespace: str = "reviews"
    calls: list[Peer] = field(default_factory=lambda: [Peer("product", "shop", 8080)])

    @property
    def effective_tier(self) -> str:
        tier = self.tier or self.platform_stack.rsplit("/", 1)[-1]
        if tier not in TIER_REPLICAS:
            raise ValueError(f"tier {tier!r} is not one of {sorted(TIER_REPLICAS)}: set team-app:tier")
        return tier


def settings_from_config(config: pulumi.Config) -> Settings:
    calls = config.get_object("calls")
    return Settings(
        platform_stack=config.require("platformStack"),
        cluster=config.require("cluster"),
        image=config.require("image"),
        tier=config.get("tier"),
        mesh=config.get_bool("mesh") if config.get("mesh") is not None else True,
        name=config.get("name") or "reviews",
        namespace=config.get("namespace") or "reviews",
        **({"calls": [Peer(c["name"], c.get("namespace"), int(c.get("port", 8080))) for c in calls]}
           if calls is not None else {}),
    )


def service_args(settings: Settings, image: pulumi.Input[str]) -> MicroserviceArgs:
    """The Microservice with the platform's tier defaults (HPA bounds and PDB follow ``replicas``)."""
    tier = settings.effective_tier
    return MicroserviceArgs(
        name=settings.name, namespace=settings.namespace, image=image,
        replicas=TIER_REPLICAS[tier], strict_zone_spread=tier == "prod",
        calls=list(settings.calls), mesh_enabled=settings.mesh,
    )


def of_cluster(per_cluster: dict[str, Any], settings: Settings) -> Any:
    """The chosen cluster's entry of a per-cluster platform output, or a clear error."""
    if settings.cluster not in per_cluster:
        raise ValueError(f"cluster {settings.cluster!r} is not a cluster of {settings.platform_stack} "
                         f"(it has: {', '.join(sorted(per_cluster))}): set team-app:cluster")
    return per_cluster[settings.cluster]


def platform_cluster(clusters: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The chosen cluster's outputs, or a clear error (unknown cluster, mesh mismatch)."""
    cluster = of_cluster(clusters, settings)
    if settings.mesh and not cluster.get("mesh"):
        raise ValueError(f"cluster {settings.cluster!r} runs no service mesh: set team-app:mesh false")
    return cluster


def check_tier(platform_tier: str, settings: Settings) -> str:
    if platform_tier != settings.effective_tier:
        raise ValueError(f"this stack uses tier {settings.effective_tier!r} but {settings.platform_stack} is "
                         f"{platform_tier!r}: set team-app:tier")
    return platform_tier


def deploy(settings: Settings) -> dict[str, Any]:
    """Create the app's resources; return the stack outputs."""
    platform = pulumi.StackReference(settings.platform_stack)
    cluster = platform.require_output("clusters").apply(lambda cs: platform_cluster(cs, settings))
    # `kubeconfigs` is a secret output of the platform: what is derived from it stays secret.
    kubeconfig = platform.require_output("kubeconfigs").apply(lambda k: of_cluster(k, settings))
    provider = k8s.Provider(f"{settings.cluster}-k8s", kubeconfig=kubeconfig,
                            delete_unreachable=True, enable_server_side_apply=True)
    on_cluster = pulumi.ResourceOptions(provider=provider)
    baseline = ClusterBaseline(f"{settings.name}-baseline", ClusterBaselineArgs(
        namespaces=[NamespaceSpec(settings.namespace)], mesh_injection=settings.mesh), opts=on_cluster)
    service = Microservice(settings.name, service_args(settings, settings.image), opts=pulumi.ResourceOptions(
        provider=provider, depends_on=[baseline.namespaces[settings.namespace]]))
    return {
        "url": service.url,
        "namespace": service.namespace,
        "cluster": cluster.apply(lambda c: {k: c.get(k) for k in ("cloud", "region", "zones", "endpoint")}),
        "platform_tier": platform.require_output("tier").apply(lambda t: check_tier(t, settings)),
    }
