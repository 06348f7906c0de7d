"""Monitoring layer: kube-prometheus-stack and the services' SLO monitoring on every cluster.

Config -> component args: retention/storage/receivers from ``monitoring``; the services on the
cluster with their SLOs; mesh telemetry when ``mesh.enabled``; Grafana on the public gateway when
``monitoring.expose_grafana`` (and the mesh ingress is on). Receivers' credentials are stack secrets
(``pulumi config set --secret <secret_config_key> ...``) read here as secret Outputs; the component
stores them in the Secret ``alertmanager-receivers``. Sizing is a pure function of the tier
(``cnplatform.monitoring.values.sizing``); :func:`footprint` counts the same values.
"""
from __future__ import annotations

import fnmatch

import pulumi

from cnplatform.cluster.priority import PLATFORM
from cnplatform.monitoring import (
    MonitoredService,
    MonitoringStack,
    MonitoringStackArgs,
    ReceiverSpec,
)
from cnplatform.monitoring.promql import DEFAULT_LATENCY_BUCKETS, latency_bucket
from cnplatform.monitoring.stack import GATEWAY
from cnplatform.monitoring.values import workloads
from stacks.compose.context import ClusterContext
from stacks.compose.workloads import Workload


def receiver_specs(cfg) -> list[ReceiverSpec]:
    return [ReceiverSpec(name=r.name, type=r.type, severity=r.severity, channel=r.channel, to=r.to,
                         smarthost=r.smarthost, from_address=r.from_)
            for r in cfg.monitoring.receivers]


def exposes_grafana(cfg) -> bool:
    """Grafana goes on the gateway only when asked and the mesh ingress exists."""
    return cfg.monitoring.expose_grafana and cfg.mesh.enabled and cfg.mesh.ingress.enabled


def host_served(host: str, gateway_hosts: list[str]) -> bool:
    """Whether the gateway (hosts like ``*``, ``*.example.com``, ``shop.example.com``) serves ``host``."""
    return any(fnmatch.fnmatchcase(host, pattern) for pattern in gateway_hosts)


def monitoring_args(cfg, cluster_cfg, receiver_secrets: dict | None = None) -> MonitoringStackArgs:
    """The component's inputs for one cluster (pure: config in, args out)."""
    mon = cfg.monitoring
    services = [
        MonitoredService(name=s.name, namespace=s.namespace, availability=s.slo.availability,
                         latency_ms=s.slo.latency_ms, latency_target=s.slo.latency_target)
        for s in cfg.services_on(cluster_cfg.name)
    ]
    return MonitoringStackArgs(
        cluster=cluster_cfg.name, cloud=cluster_cfg.cloud, tier=cfg.tier, charts_dir=cfg.charts_dir,
        retention=mon.retention, storage=mon.storage, storage_class=mon.storage_class,
        receivers=receiver_specs(cfg), receiver_secrets=dict(receiver_secrets or {}),
        services=services, latency_buckets=list(DEFAULT_LATENCY_BUCKETS),
        mesh=cfg.mesh.enabled,
        expose_grafana=exposes_grafana(cfg), grafana_host=mon.grafana_host,
        ingress_hosts=list(cfg.mesh.ingress.hosts), gateway=GATEWAY,
        # HA per tier; the platform's PriorityClass (created by the add-ons layer, before any chart).
        grafana_replicas=cfg.defaults.grafana_replicas, priority_class_name=PLATFORM,
    )


def config_warnings(cfg, cluster_cfg) -> list[str]:
    """Things that deploy but not as the config may intend (printed with ``pulumi.log.warn``)."""
    out = []
    mon = cfg.monitoring
    if mon.expose_grafana and not exposes_grafana(cfg):
        out.append("monitoring.expose_grafana needs mesh.enabled and mesh.ingress.enabled: "
                   "Grafana stays reachable by port-forward only")
    if exposes_grafana(cfg) and mon.grafana_host and not host_served(mon.grafana_host, cfg.mesh.ingress.hosts):
        out.append(f"monitoring.grafana_host {mon.grafana_host!r} is not among mesh.ingress.hosts "
                   f"{cfg.mesh.ingress.hosts}: the gateway will not route it")
    if cfg.defaults.expects_deadman_receiver and mon.enabled and not any(
            r.severity == "deadman" for r in mon.receivers):
        out.append("monitoring.receivers has no dead man's switch (severity: deadman): a dead Prometheus/"
                   "Alertmanager pipeline would page nobody")
    for s in cfg.services_on(cluster_cfg.name):
        bucket = latency_bucket(s.slo.latency_ms, DEFAULT_LATENCY_BUCKETS)
        if not bucket.exact:
            out.append(f"service {s.name!r}: slo.latency_ms={s.slo.latency_ms} is not a bucket of "
                       f"http_request_duration_seconds; the latency SLO is evaluated at {bucket.ms}ms (stricter). "
                       f"Add {s.slo.latency_ms / 1000:g} to the services' LATENCY_BUCKETS to make it exact")
    return out


def deploy(ctx: ClusterContext) -> None:
    cfg = ctx.cfg
    if not cfg.monitoring.enabled:
        return
    config = pulumi.Config()
    secrets = {r.name: config.require_secret(r.secret_config_key) for r in cfg.monitoring.receivers}
    for message in config_warnings(cfg, ctx.cluster_cfg):
        pulumi.log.warn(f"[{ctx.name}] {message}")
    depends = [ctx.baseline]
    mesh = ctx.mesh
    if mesh is not None:
        # Istio CRDs for Grafana's VirtualService; istiod to inject the sidecars.
        depends.extend(mesh.crd_dependencies)
    monitoring = MonitoringStack(f"{ctx.name}-monitoring", monitoring_args(cfg, ctx.cluster_cfg, secrets),
                                 opts=ctx.k8s_opts(*depends))
    ctx.monitoring = monitoring
    ctx.outputs["monitoring"] = {"namespace": monitoring.namespace, "grafana": monitoring.grafana_access}


def node_count(cluster_cfg) -> int:
    """Nodes a DaemonSet runs on: the kind nodes (1 + workers); for clouds, every pool at max size."""
    if cluster_cfg.cloud == "local":
        return 1 + cluster_cfg.local.workers
    return sum(pool.max_size for pool in cluster_cfg.node_pools) or 1


def footprint(cfg, cluster_cfg) -> list[Workload]:
    if not cfg.monitoring.enabled:
        return []
    return [Workload.of("monitoring", name, count, resources)
            for name, count, resources in workloads(cfg.tier, node_count(cluster_cfg), mesh=cfg.mesh.enabled,
                                                    grafana_replicas=cfg.defaults.grafana_replicas)]
