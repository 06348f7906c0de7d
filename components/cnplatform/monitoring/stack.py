"""MonitoringStack: kube-prometheus-stack plus the platform's own monitoring objects on one cluster."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from cnplatform import validation as _v
from cnplatform.charts import chart_source
from cnplatform.cluster.baseline import NamespaceSpec, namespace_labels
from cnplatform.monitoring.alerting import RECEIVERS_SECRET, ReceiverSpec
from cnplatform.monitoring.dashboards import DASHBOARD_LABEL, DASHBOARD_LABEL_VALUE, dashboard_json, mesh_dashboard
from cnplatform.monitoring.promql import DEFAULT_LATENCY_BUCKETS
from cnplatform.monitoring.scrape import envoy_pod_monitor_spec, istiod_service_monitor_spec
from cnplatform.monitoring.service import (
    MONITORING_API,
    ServiceMonitoringArgs,
    ServiceMonitoringObjects,
    create_service_monitoring,
)
from cnplatform.monitoring.values import (
    CHART,
    CHART_REPO,
    CHART_VERSION,
    GRAFANA_ADMIN_PASSWORD_KEY,
    GRAFANA_ADMIN_SECRET,
    GRAFANA_ADMIN_USER_KEY,
    GRAFANA_PORT,
    GRAFANA_ROLE,
    GRAFANA_ROLE_RULES,
    GRAFANA_SERVICE,
    GRAFANA_SUBPATH,
    ISTIO_MTLS_SCRAPE_CLASS,
    NAMESPACE,
    NODE_EXPORTER_NAMESPACE,
    NODE_EXPORTER_POD_SECURITY,
    POD_SECURITY,
    RELEASE,
    SCRAPE_SELECTOR,
    chart_values,
)
from cnplatform.naming import MANAGED_BY, type_token
from cnplatform.netpolicy import create_network_policies, monitoring_policies, node_exporter_policies
from cnplatform.options import inherited_depends_on

GATEWAY = "istio-system/public-gateway"
PORT_FORWARD = f"kubectl -n {NAMESPACE} port-forward svc/{GRAFANA_SERVICE} 3000:{GRAFANA_PORT}"


@dataclass
class MonitoredService:
    """A service to monitor, from its config (the metric and naming conventions do the rest)."""

    name: str
    """Service name."""
    namespace: str = "shop"
    """Its namespace (Service ``<name>``, port ``http``, ``/metrics``: the naming conventions)."""
    availability: float = 99.9
    """Availability objective (percent, 30 days)."""
    latency_ms: int = 300
    """Latency threshold of the latency objective."""
    latency_target: float = 99.0
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
    """Directory of unpacked charts (air-gapped installs): the chart is loaded from ``<charts_dir>/kube-prometheus-stack`` instead of the repository."""
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

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "cluster": _v.dns_label, "cloud": _v.one_of("local", "aws", "gcp"),
            "tier": _v.one_of("dev", "staging", "prod"), "storage": _v.quantity,
            "grafana_host": lambda x: _v.hostname(x, wildcard=False), "ingress_hosts": _v.hostname,
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


class MonitoringStack(pulumi.ComponentResource):
    """Prometheus, Alertmanager and Grafana (kube-prometheus-stack, pinned) in ``monitoring``, with
    per-service ServiceMonitors, dashboards and SLO alerts, mesh telemetry, and receivers whose
    credentials stay in Kubernetes Secrets."""

    namespace: pulumi.Output[str]
    """The monitoring namespace."""
    grafana_service: pulumi.Output[str]
    """Grafana's Service (port 80)."""
    grafana_access: pulumi.Output[str]
    """Grafana's URL on the gateway, or the port-forward command."""
    grafana_admin_secret: pulumi.Output[str]
    """Name of the Secret holding Grafana's admin user and password."""

    chart: k8s.helm.v4.Chart
    #: Per service (``args.services``): its ServiceMonitor, dashboard and rules, registered as children.
    services: dict[str, ServiceMonitoringObjects]

    def __init__(self, name: str, args: MonitoringStackArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("monitoring", "MonitoringStack"), name, None, opts)
        deps = inherited_depends_on(opts)
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "monitoring"}

        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            # No istio-injection label: only the Prometheus pods opt in (sidecar.istio.io/inject).
            metadata={"name": NAMESPACE, "labels": {
                **namespace_labels(NamespaceSpec(NAMESPACE, POD_SECURITY), mesh_injection=False), **labels}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        node_exporter_ns = k8s.core.v1.Namespace(
            f"{name}-node-exporter-ns",
            metadata={"name": NODE_EXPORTER_NAMESPACE, "labels": {
                **namespace_labels(NamespaceSpec(NODE_EXPORTER_NAMESPACE, NODE_EXPORTER_POD_SECURITY),
                                   mesh_injection=False), **labels}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps),
        )

        password = random.RandomPassword(
            f"{name}-grafana-admin-password", length=32, special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": NAMESPACE, "labels": labels},
            type="Opaque",
            string_data=pulumi.Output.secret(password.result).apply(
                lambda pw: {GRAFANA_ADMIN_USER_KEY: "admin", GRAFANA_ADMIN_PASSWORD_KEY: pw}),
            opts=in_ns,
        )
        # Grafana's sidecars read dashboards/datasources (ConfigMaps) in this namespace only; the chart
        # binds its ServiceAccount to this Role (rbac.useExistingRole) and creates no (Cluster)Role.
        grafana_role = k8s.rbac.v1.Role(
            f"{name}-grafana-role",
            metadata={"name": GRAFANA_ROLE, "namespace": NAMESPACE, "labels": labels},
            rules=GRAFANA_ROLE_RULES,
            opts=in_ns,
        )
        chart_deps: list[pulumi.Resource] = [ns, node_exporter_ns, admin, grafana_role]
        create_network_policies(name, NAMESPACE, monitoring_policies(grafana_from_gateway=args.expose_grafana), in_ns)
        create_network_policies(f"{name}-node-exporter", NODE_EXPORTER_NAMESPACE, node_exporter_policies(),
                                pulumi.ResourceOptions(parent=self, depends_on=[node_exporter_ns]))
        if args.receivers:
            missing = sorted({r.name for r in args.receivers} - set(args.receiver_secrets))
            if missing:
                raise ValueError(f"no credential for receiver(s) {', '.join(missing)}")
            data = pulumi.Output.secret(pulumi.Output.all(
                **{r.name: args.receiver_secrets[r.name] for r in args.receivers}))
            chart_deps.append(k8s.core.v1.Secret(
                f"{name}-alertmanager-receivers",
                metadata={"name": RECEIVERS_SECRET, "namespace": NAMESPACE, "labels": labels},
                type="Opaque",
                string_data=data,
                opts=in_ns,
            ))

        values = chart_values(
            tier=args.tier, cluster=args.cluster, cloud=args.cloud, retention=args.retention,
            storage=args.storage, storage_class=args.storage_class, receivers=args.receivers,
            expose_grafana=args.expose_grafana, grafana_host=args.grafana_host, mesh=args.mesh,
        )
        self.chart = k8s.helm.v4.Chart(
            f"{name}-{CHART}",
            **chart_source(CHART, CHART_REPO, args.charts_dir),
            version=CHART_VERSION,
            name=RELEASE,
            namespace=NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=chart_deps),
        )
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[self.chart])

        self.services = {}
        for svc in args.services:
            self.services[svc.name] = create_service_monitoring(
                f"{name}-{svc.name}",
                ServiceMonitoringArgs(
                    service=svc.name, namespace=svc.namespace, availability=svc.availability,
                    latency_ms=svc.latency_ms, latency_target=svc.latency_target,
                    latency_buckets=list(args.latency_buckets), monitoring_namespace=NAMESPACE,
                    mtls_scrape_class=ISTIO_MTLS_SCRAPE_CLASS if args.mesh else None,
                ),
                after_chart,
            )

        app_namespaces = sorted({s.namespace for s in args.services})
        if args.mesh:
            mesh_labels = {**SCRAPE_SELECTOR, **labels, "app.kubernetes.io/name": "istio"}
            k8s.apiextensions.CustomResource(
                f"{name}-istiod-servicemonitor",
                api_version=MONITORING_API, kind="ServiceMonitor",
                metadata={"name": "istiod", "namespace": NAMESPACE, "labels": mesh_labels},
                spec=istiod_service_monitor_spec(),
                opts=after_chart,
            )
            if app_namespaces:
                k8s.apiextensions.CustomResource(
                    f"{name}-envoy-podmonitor",
                    api_version=MONITORING_API, kind="PodMonitor",
                    metadata={"name": "envoy-stats", "namespace": NAMESPACE, "labels": mesh_labels},
                    spec=envoy_pod_monitor_spec(app_namespaces),
                    opts=after_chart,
                )
            k8s.core.v1.ConfigMap(
                f"{name}-mesh-dashboard",
                metadata={"name": "dashboard-mesh-overview", "namespace": NAMESPACE,
                          "labels": {**mesh_labels, DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}},
                data={"mesh-overview.json": dashboard_json(mesh_dashboard())},
                opts=in_ns,
            )

        if args.expose_grafana:
            k8s.apiextensions.CustomResource(
                f"{name}-grafana-virtualservice",
                api_version="networking.istio.io/v1", kind="VirtualService",
                metadata={"name": "grafana", "namespace": NAMESPACE, "labels": labels},
                spec=grafana_virtual_service_spec(args),
                opts=after_chart,
            )

        self.namespace = pulumi.Output.from_input(NAMESPACE)
        self.grafana_service = pulumi.Output.from_input(GRAFANA_SERVICE)
        self.grafana_access = pulumi.Output.from_input(grafana_access(args))
        self.grafana_admin_secret = pulumi.Output.from_input(GRAFANA_ADMIN_SECRET)
        self.register_outputs({
            "namespace": self.namespace, "grafana_service": self.grafana_service,
            "grafana_access": self.grafana_access, "grafana_admin_secret": self.grafana_admin_secret,
        })
