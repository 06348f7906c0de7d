"""Per-service monitoring: a ServiceMonitor, a Grafana dashboard and one SLO rule group."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.monitoring.dashboards import (
    DASHBOARD_LABEL,
    DASHBOARD_LABEL_VALUE,
    dashboard_json,
    service_dashboard,
)
from cnplatform.monitoring.promql import (
    DEFAULT_LATENCY_BUCKETS,
    SLO_AVAILABILITY,
    SLO_LATENCY_MS,
    SLO_LATENCY_TARGET,
    ServiceSlo,
    slo_rule_group,
)
from cnplatform.monitoring.scrape import service_monitor_spec
from cnplatform.monitoring.values import NAMESPACE, SCRAPE_SELECTOR
from cnplatform.naming import MANAGED_BY, type_token
from cnplatform.options import inherited_depends_on

MONITORING_API = "monitoring.coreos.com/v1"


def monitoring_labels(service: str) -> dict[str, str]:
    """Labels of every monitoring object of a service (``release`` makes Prometheus select it)."""
    return {**SCRAPE_SELECTOR, "app.kubernetes.io/name": service, "app.kubernetes.io/component": "monitoring",
            "app.kubernetes.io/managed-by": MANAGED_BY}


def service_monitor_name(service: str) -> str:
    return service


def dashboard_configmap_name(service: str) -> str:
    return f"dashboard-{service}"


def prometheus_rule_name(service: str) -> str:
    return f"{service}-slo"


@dataclass
class ServiceMonitoringArgs:
    """Inputs of :class:`ServiceMonitoring`."""

    service: str
    """Service name (= its Service, ServiceAccount and ``app.kubernetes.io/name``)."""
    namespace: str = "shop"
    """Namespace the service runs in."""
    availability: float = SLO_AVAILABILITY
    """Availability objective in percent over 30 days."""
    latency_ms: int = SLO_LATENCY_MS
    """Requests slower than this count against the latency objective."""
    latency_target: float = SLO_LATENCY_TARGET
    """Percent of requests that must be faster than ``latency_ms``."""
    latency_buckets: list[float] = field(default_factory=lambda: list(DEFAULT_LATENCY_BUCKETS))
    """Bucket boundaries (seconds) of the service's ``http_request_duration_seconds`` histogram."""
    monitoring_namespace: str = NAMESPACE
    """Where the ServiceMonitor, dashboard and rules live (Prometheus selects them in any namespace)."""
    mtls_scrape_class: Optional[str] = None
    """Scrape over Istio mTLS with this Prometheus scrape class (the mesh's STRICT mode), else plain HTTP."""

    def slo(self) -> ServiceSlo:
        return ServiceSlo(self.service, self.namespace, self.availability, self.latency_ms,
                          self.latency_target, tuple(self.latency_buckets))

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "service": _v.dns_label, "namespace": _v.dns_label, "availability": _v.in_range(50, 100),
            "latency_ms": _v.positive, "latency_target": _v.in_range(50, 100), "monitoring_namespace": _v.dns_label,
        })


@dataclass(frozen=True)
class ServiceMonitoringObjects:
    """What :func:`create_service_monitoring` registered, and the values the component exports."""

    service_monitor: k8s.apiextensions.CustomResource
    dashboard: k8s.core.v1.ConfigMap
    rules: k8s.apiextensions.CustomResource
    rule_group: str
    dashboard_uid: str


def create_service_monitoring(name: str, args: ServiceMonitoringArgs, opts: pulumi.ResourceOptions,
                              dashboard_opts: Optional[pulumi.ResourceOptions] = None) -> ServiceMonitoringObjects:
    """Register one service's ServiceMonitor, dashboard and rules with ``opts`` (parent and dependencies
    included; the dashboard ConfigMap with ``dashboard_opts`` when given: it is a plain ConfigMap that
    Grafana's sidecar picks up whenever it appears, so it needs the namespace, not the chart's CRDs).
    Used by :class:`ServiceMonitoring` and by :class:`~cnplatform.monitoring.stack.MonitoringStack`
    for each of its ``services`` (there without a component per service, which would add a
    registration to every service's three objects)."""
    svc, ns = args.service, args.monitoring_namespace
    labels = monitoring_labels(svc)
    slo = args.slo()
    service_monitor = k8s.apiextensions.CustomResource(
        f"{name}-servicemonitor",
        api_version=MONITORING_API, kind="ServiceMonitor",
        metadata={"name": service_monitor_name(svc), "namespace": ns, "labels": labels},
        spec=service_monitor_spec(svc, args.namespace, args.mtls_scrape_class),
        opts=opts,
    )
    dashboard = service_dashboard(slo)
    configmap = k8s.core.v1.ConfigMap(
        f"{name}-dashboard",
        metadata={"name": dashboard_configmap_name(svc), "namespace": ns,
                  "labels": {**labels, DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}},
        data={f"{svc}.json": dashboard_json(dashboard)},
        opts=dashboard_opts or opts,
    )
    group = slo_rule_group(slo)
    rules = k8s.apiextensions.CustomResource(
        f"{name}-rules",
        api_version=MONITORING_API, kind="PrometheusRule",
        metadata={"name": prometheus_rule_name(svc), "namespace": ns, "labels": labels},
        spec={"groups": [group]},
        opts=opts,
    )
    return ServiceMonitoringObjects(service_monitor=service_monitor, dashboard=configmap, rules=rules,
                                    rule_group=group["name"], dashboard_uid=dashboard["uid"])


class ServiceMonitoring(pulumi.ComponentResource):
    """Scrape config, dashboard and SLO alerts of one service.

    Pass ``depends_on`` the kube-prometheus-stack chart (its CRDs) in ``opts``.
    """

    rule_group: pulumi.Output[str]
    """Name of the service's rule group."""
    dashboard_uid: pulumi.Output[str]
    """Grafana uid of the service's dashboard."""

    def __init__(self, name: str, args: ServiceMonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("monitoring", "ServiceMonitoring"), name, None, opts)
        made = create_service_monitoring(
            name, args, pulumi.ResourceOptions(parent=self, depends_on=inherited_depends_on(opts)))
        self.rule_group = pulumi.Output.from_input(made.rule_group)
        self.dashboard_uid = pulumi.Output.from_input(made.dashboard_uid)
        self.register_outputs({"rule_group": self.rule_group, "dashboard_uid": self.dashboard_uid})
