"""Every default that depends on the tier, in one table (:data:`TIERS`).

A stack's ``tier`` (dev, staging, prod) decides these unless its config sets the value itself; the
config model, the config checks and every layer read them from here (``cfg.defaults``), so a reader
finds in one place what prod does differently. dev fits one 4 vCPU / 8 GiB kind node; staging runs
two of everything; prod runs three (PodDisruptionBudget + zone spread), protected and highly available.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from stacks.config.services import DEFAULT_LIMITS, DEFAULT_REQUESTS


@dataclass(frozen=True)
class TierDefaults:
    """The defaults of one tier (frozen; the dict fields are read, never changed: callers copy them)."""

    #: Replicas of a service that does not set ``replicas``; the minimum a service may set.
    service_replicas: int
    min_service_replicas: int
    #: Requests/limits of a service that does not set ``resources`` (one that does gets the model's
    #: defaults for the keys it leaves out); the Istio sidecar injected into every meshed pod.
    service_resources: dict[str, dict[str, str]]
    sidecar_resources: dict[str, dict[str, str]]
    #: ``protect`` on stateful and cluster resources, deletion protection, retained volumes.
    protect: bool
    #: Services spread strictly over zones (``DoNotSchedule``); highly available cloud databases.
    strict_zone_spread: bool
    #: A world-open control-plane allow-list entry (0.0.0.0/0) needs an explicit opt-in.
    world_open_needs_opt_in: bool
    #: AWS: one NAT gateway per zone (zone-independent egress) or one per VPC.
    aws_nat_per_zone: bool
    #: GCP: regional control plane (``gcp.regional`` unset); Cloud NAT addresses.
    gke_regional: bool
    gcp_nat_addresses: int
    #: Karpenter: consolidateAfter, disruption budget (prod consolidates slowly, one node in twenty at a
    #: time, so spot churn and consolidation do not keep rescheduling the HA replicas); a moving AMI
    #: alias is warned about.
    karpenter_consolidate_after: str
    karpenter_disruption_budget: str
    karpenter_pinned_ami: bool
    #: metrics-server and cert-manager controller replicas.
    addon_replicas: int
    #: Istio: istiod, gateway and CNI node agent sizing (``IstioMeshArgs`` fields), mesh egress policy,
    #: Consul servers.
    mesh_sizing: dict[str, Any]
    outbound_traffic_policy: str
    consul_server_replicas: int
    #: Monitoring: a dead man's switch receiver is expected.
    expects_deadman_receiver: bool
    #: Grafana pods (above 1: a PodDisruptionBudget); kube-state-metrics and the Prometheus operator
    #: stay single (docs/decisions.md).
    grafana_replicas: int
    #: Jenkins controller and config-reload sidecar requests/limits; whether it deploys its own stack.
    jenkins_resources: dict[str, dict[str, dict[str, str]]]
    jenkins_deploys_own_stack: bool
    #: Cloud databases: RDS instance class, Cloud SQL tier, backup retention (days).
    rds_instance_class: str
    cloudsql_tier: str
    backup_retention_days: int


_RELOAD = {"requests": {"cpu": "20m", "memory": "96Mi"}, "limits": {"cpu": "100m", "memory": "192Mi"}}
#: staging and prod: the config model's own defaults (``stacks.config.services``).
_SERVICE = {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}
_SIDECAR = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}

# dev is sized from what each component uses on one kind node at dev scale (a few requests per second);
# every figure's source is in docs/footprint.md. Limits stay: no container runs unbounded.

TIERS: Mapping[str, TierDefaults] = MappingProxyType({
    "dev": TierDefaults(
        service_replicas=1, min_service_replicas=1,
        service_resources={"requests": {"cpu": "25m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        sidecar_resources={"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        protect=False, strict_zone_spread=False,
        world_open_needs_opt_in=False, aws_nat_per_zone=False, gke_regional=False, gcp_nat_addresses=1,
        karpenter_consolidate_after="1m", karpenter_disruption_budget="10%", karpenter_pinned_ami=False,
        addon_replicas=1,
        mesh_sizing=dict(
            istiod_replicas=1, istiod_autoscale_max=1, istiod_cpu_request="10m", istiod_memory_request="100Mi",
            istiod_cpu_limit="1", istiod_memory_limit="1Gi", gateway_replicas=1, gateway_autoscale_max=1,
            gateway_cpu_request="10m", gateway_memory_request="40Mi", gateway_cpu_limit="1",
            gateway_memory_limit="512Mi", cni_cpu_request="10m", cni_memory_request="40Mi", cni_cpu_limit="200m",
            cni_memory_limit="256Mi"),
        outbound_traffic_policy="ALLOW_ANY", consul_server_replicas=1, expects_deadman_receiver=False,
        grafana_replicas=1,
        jenkins_resources={
            "controller": {"requests": {"cpu": "100m", "memory": "768Mi"}, "limits": {"cpu": "1500m", "memory": "2Gi"}},
            "reload": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "192Mi"}}},
        # dev's state is on a laptop: its Jenkins builds, it deploys nothing.
        jenkins_deploys_own_stack=False,
        rds_instance_class="db.t4g.micro", cloudsql_tier="db-custom-1-3840", backup_retention_days=1,
    ),
    "staging": TierDefaults(
        service_replicas=2, min_service_replicas=1, service_resources=_SERVICE, sidecar_resources=_SIDECAR,
        protect=False, strict_zone_spread=False,
        world_open_needs_opt_in=False, aws_nat_per_zone=False, gke_regional=False, gcp_nat_addresses=1,
        karpenter_consolidate_after="5m", karpenter_disruption_budget="10%", karpenter_pinned_ami=False,
        addon_replicas=1,
        mesh_sizing=dict(
            istiod_replicas=2, istiod_autoscale_max=3, istiod_cpu_request="250m", istiod_memory_request="512Mi",
            istiod_cpu_limit="1", istiod_memory_limit="2Gi", gateway_replicas=2, gateway_autoscale_max=4,
            gateway_cpu_request="100m", gateway_memory_request="128Mi", gateway_cpu_limit="1",
            gateway_memory_limit="512Mi"),
        outbound_traffic_policy="ALLOW_ANY", consul_server_replicas=1, expects_deadman_receiver=False,
        grafana_replicas=2,
        jenkins_resources={
            "controller": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}},
            "reload": _RELOAD},
        jenkins_deploys_own_stack=True,
        rds_instance_class="db.t4g.small", cloudsql_tier="db-custom-1-3840", backup_retention_days=7,
    ),
    "prod": TierDefaults(
        service_replicas=3, min_service_replicas=3, service_resources=_SERVICE, sidecar_resources=_SIDECAR,
        protect=True, strict_zone_spread=True,
        world_open_needs_opt_in=True, aws_nat_per_zone=True, gke_regional=True, gcp_nat_addresses=2,
        karpenter_consolidate_after="15m", karpenter_disruption_budget="5%", karpenter_pinned_ami=True,
        addon_replicas=2,
        mesh_sizing=dict(
            istiod_replicas=3, istiod_autoscale_max=6, istiod_cpu_request="500m", istiod_memory_request="1Gi",
            istiod_cpu_limit="2", istiod_memory_limit="4Gi", gateway_replicas=3, gateway_autoscale_max=6,
            gateway_cpu_request="250m", gateway_memory_request="256Mi", gateway_cpu_limit="2",
            gateway_memory_limit="1Gi"),
        outbound_traffic_policy="REGISTRY_ONLY", consul_server_replicas=3, expects_deadman_receiver=True,
        grafana_replicas=2,
        jenkins_resources={
            "controller": {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
            "reload": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}},
        jenkins_deploys_own_stack=True,
        rds_instance_class="db.m6g.large", cloudsql_tier="db-custom-2-7680", backup_retention_days=14,
    ),
})


def tier_defaults(tier: object) -> TierDefaults | None:
    """The defaults of ``tier`` (raw config: None when it is not a known tier; the model reports that)."""
    return TIERS.get(tier) if isinstance(tier, str) else None
