"""What the platform asks of each cluster: CPU/memory requests and limits vs node capacity.

Every layer may declare a ``footprint(cfg, cluster_cfg) -> list[Workload]`` (its add-ons' requests,
taken from the same values the layer gives its chart); services are counted here.

Two sums per cluster, both against the capacity at the node pools' maximum size (what the cluster
autoscaler, or Karpenter within its limits, can grow to): the requests at the autoscalers' minima
(what runs at rest) and at their maxima (:func:`autoscaled_maxima`: every HPA at ``maxReplicas``,
what a load peak asks for). Either one over capacity is a config error: past the pools' maxima,
no autoscaler can place the pods.
"""
from __future__ import annotations

import dataclasses

from cnplatform.cluster.base import pools_capacity
from cnplatform.cluster.capacity import NodeCapacity, karpenter_capacity
from cnplatform.mesh import values as mesh_values
from cnplatform.quantity import cpu_millicores, memory_mib
from stacks.compose.layers import LAYERS
from stacks.compose.layers.mesh import mesh_args
from stacks.compose.layers.services import autoscaling_bounds
from stacks.compose.workloads import Workload
from stacks.config import ClusterConfig, StackConfig

LOCAL_DEFAULT = NodeCapacity(4000, 8192)

def cluster_capacity(cluster_cfg: ClusterConfig, cfg: StackConfig | None = None) -> NodeCapacity:
    """Allocatable capacity of a cluster at its node pools' maximum size (+ Karpenter's limits on EKS)."""
    if cluster_cfg.cloud == "local":
        pool = cluster_cfg.node_pools[0] if cluster_cfg.node_pools else None
        if pool and pool.cpu and pool.memory:
            return NodeCapacity(cpu_millicores(pool.cpu), memory_mib(pool.memory))
        return LOCAL_DEFAULT
    total = pools_capacity(cluster_cfg.node_pools)
    karpenter = cfg.addons.karpenter if cfg is not None else None
    if cluster_cfg.cloud == "aws" and karpenter is not None and karpenter.enabled:
        total = total.plus(karpenter_capacity(karpenter.cpu_limit, karpenter.memory_limit))
    return total


#: What a kind node already runs before the platform (kind v0.31 / Kubernetes 1.35 kubeadm defaults):
#: kube-apiserver 250m, controller-manager 200m, scheduler 100m, etcd 100m/100Mi, 2x CoreDNS
#: 100m/70Mi (limit 170Mi), kindnet 100m/50Mi. Cloud control planes are managed (not on nodes).
KIND_SYSTEM = [
    ("kube-apiserver", 1, {"requests": {"cpu": "250m", "memory": "0"}, "limits": {}}),
    ("kube-controller-manager", 1, {"requests": {"cpu": "200m", "memory": "0"}, "limits": {}}),
    ("kube-scheduler", 1, {"requests": {"cpu": "100m", "memory": "0"}, "limits": {}}),
    ("etcd", 1, {"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {}}),
    ("coredns", 2, {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"cpu": "0", "memory": "170Mi"}}),
    ("kindnet", 1, {"requests": {"cpu": "100m", "memory": "50Mi"}, "limits": {"cpu": "100m", "memory": "50Mi"}}),
]


def system_workloads(cluster_cfg: ClusterConfig) -> list[Workload]:
    if cluster_cfg.cloud != "local":
        return []
    return [Workload.of("kind-system", name, n, res) for name, n, res in KIND_SYSTEM]


def service_workloads(cfg: StackConfig, cluster_cfg: ClusterConfig, at_max: bool = False) -> list[Workload]:
    """The services (their own or the tier's requests) and, with the mesh, their Istio sidecars; with
    ``at_max``, each autoscaled service at its HPA's ``maxReplicas``."""
    out = []
    for svc in cfg.services_on(cluster_cfg.name):
        resources = cfg.resources(svc)
        replicas = cfg.replicas(svc)
        if svc.autoscaling.enabled and svc.autoscaling.min_replicas:
            replicas = max(replicas, svc.autoscaling.min_replicas)
        if svc.autoscaling.enabled and at_max:
            replicas = max(replicas, autoscaling_bounds(cfg, svc)[1])
        out.append(Workload.of("services", svc.name, replicas, resources))
        if svc.canary:
            out.append(Workload.of("services", f"{svc.name}-canary", 1, resources))
        if cfg.mesh.enabled:
            out.append(Workload.of("mesh-sidecars", f"{svc.name}-istio-proxy",
                                   replicas + (1 if svc.canary else 0), cfg.defaults.sidecar_resources))
    return out


def autoscaled_maxima(cfg: StackConfig, cluster_cfg: ClusterConfig) -> dict[str, int]:
    """Workload name -> the pods its HPA may run at most, for the platform's autoscaled charts (istiod,
    the gateways), read from the values the charts get; the services' are in :func:`service_workloads`."""
    if not cfg.mesh.enabled:
        return {}
    args = mesh_args(cfg, cluster_cfg)
    istiod = mesh_values.istiod_values(args)
    out = {"istiod": int(istiod["autoscaleMax"]) if istiod["autoscaleEnabled"] else int(istiod["replicaCount"])}
    gateways = {"istio-ingressgateway": (args.ingress_gateway, mesh_values.gateway_values),
                "istio-eastwestgateway": (args.east_west_gateway, mesh_values.eastwest_gateway_pods)}
    for name, (enabled, values_of) in gateways.items():
        if enabled:
            auto = values_of(args)["autoscaling"]
            out[name] = int(auto["maxReplicas"]) if auto["enabled"] else int(values_of(args)["replicaCount"])
    return out


def workloads(cfg: StackConfig, cluster_cfg: ClusterConfig, at_max: bool = False) -> list[Workload]:
    """Everything the platform runs on the cluster: at the autoscalers' minima, or (``at_max``) with
    every HPA at its maximum."""
    out = system_workloads(cluster_cfg) + service_workloads(cfg, cluster_cfg, at_max)
    for layer in LAYERS:
        if layer.footprint is not None:
            out += layer.footprint(cfg, cluster_cfg)
    if at_max:
        maxima = autoscaled_maxima(cfg, cluster_cfg)
        out = [dataclasses.replace(w, replicas=max(w.replicas, maxima.get(w.name, 0))) for w in out]
    return out


def totals(items: list[Workload]) -> tuple[int, int, int, int]:
    sums = [0, 0, 0, 0]
    for w in items:
        for i, v in enumerate(w.total()):
            sums[i] += v
    return tuple(sums)  # type: ignore[return-value]


def capacity_errors(cfg: StackConfig) -> list[tuple[str, str]]:
    """A config whose requests exceed a cluster's allocatable capacity is invalid."""
    errors = []
    for i, cluster_cfg in enumerate(cfg.clusters):
        try:
            cap = cluster_capacity(cluster_cfg, cfg)
        except KeyError as exc:
            errors.append((f"clusters[{i}].node_pools", str(exc.args[0])))
            continue
        for at_max in (False, True):
            cpu, mem, _, _ = totals(workloads(cfg, cluster_cfg, at_max))
            if cpu > cap.cpu_millicores or mem > cap.memory_mib:
                what = "at its autoscalers' maxima (every HPA at maxReplicas)" if at_max else ""
                errors.append((f"clusters[{i}]", (
                    f"cluster {cluster_cfg.name!r} requests {cpu}m CPU / {mem}Mi memory{' ' + what if what else ''} "
                    f"but its nodes offer {cap.cpu_millicores}m / {cap.memory_mib}Mi allocatable at the node "
                    "pools' max_size: raise node_pools max_size or machine_type, or lower service "
                    f"{'autoscaling.max_replicas' if at_max else 'replicas'}/requests")))
                break
    return errors


def report(cfg: StackConfig) -> str:
    """Human-readable footprint per cluster and layer (printed by the render)."""
    lines = []
    for cluster_cfg in cfg.clusters:
        cap = cluster_capacity(cluster_cfg, cfg)
        items = workloads(cfg, cluster_cfg)
        lines.append(f"footprint {cluster_cfg.name} ({cluster_cfg.cloud}): "
                     f"allocatable {cap.cpu_millicores}m CPU / {cap.memory_mib}Mi")
        by_layer: dict[str, list[Workload]] = {}
        for w in items:
            by_layer.setdefault(w.layer, []).append(w)
        for layer in sorted(by_layer):
            cr, mr, cl, ml = totals(by_layer[layer])
            lines.append(f"  {layer:<16} requests {cr:>6}m {mr:>7}Mi   limits {cl:>6}m {ml:>7}Mi")
        for label, group in (("TOTAL", items), ("AT HPA MAXIMA", workloads(cfg, cluster_cfg, at_max=True))):
            cr, mr, cl, ml = totals(group)
            pct_c = 100 * cr / cap.cpu_millicores if cap.cpu_millicores else 0
            pct_m = 100 * mr / cap.memory_mib if cap.memory_mib else 0
            lines.append(f"  {label:<16} requests {cr:>6}m {mr:>7}Mi   limits {cl:>6}m {ml:>7}Mi   "
                         f"({pct_c:.0f}% CPU, {pct_m:.0f}% memory of allocatable)")
    return "\n".join(lines)
