"""What a MonitoringStack is made of, as plain data: :class:`MonitoringStackArgs`, the monitored services,
and the pure builders (labels, namespaces' metadata, chart values, per-service args, the Grafana route).

:mod:`cnplatform.monitoring.stack` wires the resources.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.cluster.baseline import NamespaceSpec, namespace_labels
from cnplatform.cluster.priority import priority_class_name
from cnplatform.monitoring.alerting import ReceiverSpec
from cnplatform.monitoring.promql import DEFAULT_LATENCY_BUCKETS, SLO_AVAILABILITY, SLO_LATENCY_MS, SLO_LATENCY_TARGET
from cnplatform.monitoring.service import ServiceMonitoringArgs
from cnplatform.monitoring.values import (
    GRAFANA_PORT,
    GRAFANA_SERVICE,
    GRAFANA_SUBPATH,
    ISTIO_MTLS_SCRAPE_CLASS,
    NAMESPACE,
    NODE_EXPORTER_NAMESPACE,
    NODE_EXPORTER_POD_SECURITY,
    POD_SECURITY,
    SCRAPE_SELECTOR,
    chart_values,
)
from cnplatform.naming import MANAGED_BY

GATEWAY = "istio-system/public-gateway"
PORT_FORWARD = f"kubectl -n {NAMESPACE} port-forward svc/{GRAFANA_SERVICE} 3000:{GRAFANA_PORT}"


@dataclass
class MonitoredService:
    """A service to monitor, from its config (the metric and naming conventions do the rest)."""

    name: str
    """Service name."""
    namespace: str = "shop"
    """Its namespace (Service ``<name>``, port ``http``, ``/metrics``: the naming conventions)."""
    availability: float = SLO_AVAILABILITY
    """Availability objective (percent, 30 days)."""
    latency_ms: int = SLO_LATENCY_MS
    """Latency threshold of the latency objective."""
    latency_target: float = SLO_LATENCY_TARGET
    """Percent of requests faster than ``latency_ms``."""


@dataclass
class MonitoringStackArgs:
    """Inputs of :class:`MonitoringStack`."""

    cluster: str
    """Cluster name (Prometheus external label ``cluster``)."""
    cloud: str = "local"
    """``local``, ``aws`` or ``gcp`` (which control-plane/kube-proxy targets exist)."""
    tier: str = "dev"
    """``dev``, ``staging`` or ``prod``: sizing and HA (see ``values.sizing``)."""
    retention: str = "7d"
    """Prometheus time retention."""
    storage: str = "20Gi"
    """Prometheus volume size (a PVC per replica)."""
    storage_class: Optional[str] = None
    """StorageClass of the Prometheus volumes (cluster default when unset)."""
    charts_dir: Optional[str] = None
    """Directory of unpacked charts (air-gapped installs): the chart is loaded from
    ``<charts_dir>/kube-prometheus-stack`` instead of the repository."""
    receivers: list[ReceiverSpec] = field(default_factory=list)
    """Alertmanager receivers."""
    receiver_secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    """Credential of each receiver by receiver name (secret Outputs; stored in ``alertmanager-receivers``)."""
    services: list[MonitoredService] = field(default_factory=list)
    """Services to scrape, chart and alert on."""
    latency_buckets: list[float] = field(default_factory=lambda: list(DEFAULT_LATENCY_BUCKETS))
    """Bucket boundaries (seconds) of the services' ``http_request_duration_seconds``."""
    mesh: bool = False
    """Istio mesh (STRICT mTLS): scrape services over mTLS, scrape istiod and the Envoy sidecars, add
    the mesh dashboard."""
    expose_grafana: bool = False
    """Route Grafana through the mesh ingress gateway (otherwise port-forward)."""
    grafana_host: Optional[str] = None
    """Host for Grafana on the gateway; without it Grafana is served under ``/grafana`` on ``ingress_hosts``."""
    ingress_hosts: list[str] = field(default_factory=lambda: ["*"])
    """Hosts the public gateway serves (used for the ``/grafana`` path route)."""
    gateway: str = GATEWAY
    """The Istio Gateway (``namespace/name``) Grafana's VirtualService binds to."""
    grafana_replicas: int = 1
    """Grafana pods; above 1 with a PodDisruptionBudget (``values.grafana_ha``: state and sessions)."""
    priority_class_name: Optional[str] = None
    """PriorityClass of every pod of the chart (it must exist; none: no class)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "cluster": _v.dns_label, "cloud": _v.one_of("local", "aws", "gcp"),
            "tier": _v.one_of("dev", "staging", "prod"), "storage": _v.quantity,
            "grafana_host": lambda x: _v.hostname(x, wildcard=False), "ingress_hosts": _v.hostname,
            "grafana_replicas": _v.positive, "priority_class_name": priority_class_name,
        })


def grafana_virtual_service_spec(args: MonitoringStackArgs) -> dict:
    """Gateway route to Grafana: the whole host ``grafana_host``, or ``/grafana`` on the ingress hosts
    (Grafana serves from that sub-path itself, so no rewrite)."""
    destination = {"host": f"{GRAFANA_SERVICE}.{NAMESPACE}.svc.cluster.local", "port": {"number": GRAFANA_PORT}}
    route: dict = {"name": "grafana", "route": [{"destination": destination}]}
    if args.grafana_host:
        hosts = [args.grafana_host]
    else:
        hosts = list(args.ingress_hosts)
        route["match"] = [{"uri": {"exact": GRAFANA_SUBPATH}}, {"uri": {"prefix": f"{GRAFANA_SUBPATH}/"}}]
    return {"hosts": hosts, "gateways": [args.gateway], "http": [route]}


def grafana_access(args: MonitoringStackArgs) -> str:
    """How to reach Grafana: its URL on the gateway, or the port-forward command."""
    if not args.expose_grafana:
        return PORT_FORWARD
    if args.grafana_host:
        return f"https://{args.grafana_host}/"
    host = next((h for h in args.ingress_hosts if "*" not in h), "<ingress-host>")
    return f"https://{host}{GRAFANA_SUBPATH}/"


#: Labels of every object the stack creates itself.
LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "monitoring"}


def namespace_metadata(namespace: str, pod_security: str) -> dict:
    """A monitoring namespace: Pod Security level, no istio-injection label (only the Prometheus pods opt
    in, ``sidecar.istio.io/inject``)."""
    return {"name": namespace, "labels": {
        **namespace_labels(NamespaceSpec(namespace, pod_security), mesh_injection=False), **LABELS}}


def monitoring_namespace_metadata() -> dict:
    return namespace_metadata(NAMESPACE, POD_SECURITY)


def node_exporter_namespace_metadata() -> dict:
    return namespace_metadata(NODE_EXPORTER_NAMESPACE, NODE_EXPORTER_POD_SECURITY)


def receivers_without_credential(args: MonitoringStackArgs) -> list[str]:
    """Receivers that have no entry in ``receiver_secrets``."""
    return sorted({r.name for r in args.receivers} - set(args.receiver_secrets))


def stack_chart_values(args: MonitoringStackArgs) -> dict:
    """kube-prometheus-stack values of these args (:func:`cnplatform.monitoring.values.chart_values`)."""
    return chart_values(
        tier=args.tier, cluster=args.cluster, cloud=args.cloud, retention=args.retention,
        storage=args.storage, storage_class=args.storage_class, receivers=args.receivers,
        expose_grafana=args.expose_grafana, grafana_host=args.grafana_host, mesh=args.mesh,
        grafana_replicas=args.grafana_replicas, priority_class=args.priority_class_name,
    )


def service_monitoring_args(svc: MonitoredService, args: MonitoringStackArgs) -> ServiceMonitoringArgs:
    """One monitored service's ServiceMonitor / dashboard / rules args (mTLS scrape class with the mesh)."""
    return ServiceMonitoringArgs(
        service=svc.name, namespace=svc.namespace, availability=svc.availability,
        latency_ms=svc.latency_ms, latency_target=svc.latency_target,
        latency_buckets=list(args.latency_buckets), monitoring_namespace=NAMESPACE,
        mtls_scrape_class=ISTIO_MTLS_SCRAPE_CLASS if args.mesh else None,
    )


def mesh_monitor_labels() -> dict[str, str]:
    """Labels of the mesh monitors and dashboard (Prometheus selects them by :data:`SCRAPE_SELECTOR`)."""
    return {**SCRAPE_SELECTOR, **LABELS, "app.kubernetes.io/name": "istio"}


def app_namespaces(args: MonitoringStackArgs) -> list[str]:
    """The monitored services' namespaces (the Envoy PodMonitor's scope)."""
    return sorted({s.namespace for s in args.services})
