"""MonitoringStack: kube-prometheus-stack plus the platform's own monitoring objects on one cluster.

The args and the pure builders are in :mod:`cnplatform.monitoring.stack_spec`; this module wires the resources.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from cnplatform.charts import chart_source
from cnplatform.monitoring.alerting import RECEIVERS_SECRET
from cnplatform.monitoring.dashboards import DASHBOARD_LABEL, DASHBOARD_LABEL_VALUE, dashboard_json, mesh_dashboard
from cnplatform.monitoring.scrape import envoy_pod_monitor_spec, istiod_service_monitor_spec
from cnplatform.monitoring.service import MONITORING_API, ServiceMonitoringObjects, create_service_monitoring
from cnplatform.monitoring.stack_spec import (  # noqa: F401  (re-exported)
    GATEWAY,
    LABELS,
    PORT_FORWARD,
    MonitoredService,
    MonitoringStackArgs,
    app_namespaces,
    grafana_access,
    grafana_virtual_service_spec,
    mesh_monitor_labels,
    monitoring_namespace_metadata,
    node_exporter_namespace_metadata,
    receivers_without_credential,
    service_monitoring_args,
    stack_chart_values,
)
from cnplatform.monitoring.values import (
    CHART,
    CHART_REPO,
    CHART_VERSION,
    GRAFANA_ADMIN_PASSWORD_KEY,
    GRAFANA_ADMIN_SECRET,
    GRAFANA_ADMIN_USER_KEY,
    GRAFANA_ROLE,
    GRAFANA_ROLE_RULES,
    GRAFANA_SERVICE,
    NAMESPACE,
    NODE_EXPORTER_NAMESPACE,
    RELEASE,
)
from cnplatform.naming import type_token
from cnplatform.netpolicy import create_network_policies, monitoring_policies, node_exporter_policies
from cnplatform.options import as_secret, inherited_depends_on


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
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata=monitoring_namespace_metadata(),
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=deps))
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        node_exporter_ns = k8s.core.v1.Namespace(
            f"{name}-node-exporter-ns", metadata=node_exporter_namespace_metadata(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps))
        chart_deps: list[pulumi.Resource] = [ns, node_exporter_ns, *self._grafana_access_objects(name, in_ns)]
        create_network_policies(name, NAMESPACE, monitoring_policies(grafana_from_gateway=args.expose_grafana), in_ns)
        create_network_policies(f"{name}-node-exporter", NODE_EXPORTER_NAMESPACE, node_exporter_policies(),
                                pulumi.ResourceOptions(parent=self, depends_on=[node_exporter_ns]))
        if args.receivers:
            chart_deps.append(self._receivers_secret(name, args, in_ns))
        self.chart = k8s.helm.v4.Chart(
            f"{name}-{CHART}", **chart_source(CHART, CHART_REPO, args.charts_dir), version=CHART_VERSION,
            name=RELEASE, namespace=NAMESPACE, values=stack_chart_values(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=chart_deps),
        )
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[self.chart])
        self.services = {svc.name: create_service_monitoring(f"{name}-{svc.name}", service_monitoring_args(svc, args),
                                                             after_chart, dashboard_opts=in_ns)
                         for svc in args.services}
        if args.mesh:
            self._mesh_telemetry(name, args, in_ns, after_chart)
        if args.expose_grafana:
            k8s.apiextensions.CustomResource(
                f"{name}-grafana-virtualservice", api_version="networking.istio.io/v1", kind="VirtualService",
                metadata={"name": "grafana", "namespace": NAMESPACE, "labels": LABELS},
                spec=grafana_virtual_service_spec(args), opts=after_chart)
        self._publish(args)

    def _grafana_access_objects(self, name: str, in_ns: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """Grafana's admin Secret (a generated password) and the Role its sidecars use."""
        password = random.RandomPassword(f"{name}-grafana-admin-password", length=32, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": NAMESPACE, "labels": LABELS},
            type="Opaque",
            string_data=as_secret(password.result).apply(
                lambda pw: {GRAFANA_ADMIN_USER_KEY: "admin", GRAFANA_ADMIN_PASSWORD_KEY: pw}),
            opts=in_ns,
        )
        # Grafana's sidecars read dashboards/datasources (ConfigMaps) in this namespace only; the chart
        # binds its ServiceAccount to this Role (rbac.useExistingRole) and creates no (Cluster)Role.
        grafana_role = k8s.rbac.v1.Role(
            f"{name}-grafana-role", metadata={"name": GRAFANA_ROLE, "namespace": NAMESPACE, "labels": LABELS},
            rules=GRAFANA_ROLE_RULES, opts=in_ns)
        return [admin, grafana_role]

    def _receivers_secret(self, name: str, args: MonitoringStackArgs,
                          in_ns: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """The receivers' credentials, in the Secret Alertmanager's config reads them from."""
        missing = receivers_without_credential(args)
        if missing:
            raise ValueError(f"no credential for receiver(s) {', '.join(missing)}")
        credentials = {r.name: args.receiver_secrets[r.name] for r in args.receivers}
        data = as_secret(pulumi.Output.all(**credentials))
        return k8s.core.v1.Secret(
            f"{name}-alertmanager-receivers",
            metadata={"name": RECEIVERS_SECRET, "namespace": NAMESPACE, "labels": LABELS},
            type="Opaque", string_data=data, opts=in_ns)

    def _mesh_telemetry(self, name: str, args: MonitoringStackArgs, in_ns: pulumi.ResourceOptions,
                        after_chart: pulumi.ResourceOptions) -> None:
        """istiod's ServiceMonitor, the sidecars' PodMonitor (over the services' namespaces), the mesh dashboard."""
        mesh_labels = mesh_monitor_labels()
        k8s.apiextensions.CustomResource(
            f"{name}-istiod-servicemonitor", api_version=MONITORING_API, kind="ServiceMonitor",
            metadata={"name": "istiod", "namespace": NAMESPACE, "labels": mesh_labels},
            spec=istiod_service_monitor_spec(), opts=after_chart)
        namespaces = app_namespaces(args)
        if namespaces:
            k8s.apiextensions.CustomResource(
                f"{name}-envoy-podmonitor", api_version=MONITORING_API, kind="PodMonitor",
                metadata={"name": "envoy-stats", "namespace": NAMESPACE, "labels": mesh_labels},
                spec=envoy_pod_monitor_spec(namespaces), opts=after_chart)
        k8s.core.v1.ConfigMap(
            f"{name}-mesh-dashboard",
            metadata={"name": "dashboard-mesh-overview", "namespace": NAMESPACE,
                      "labels": {**mesh_labels, DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}},
            data={"mesh-overview.json": dashboard_json(mesh_dashboard())}, opts=in_ns)

    def _publish(self, args: MonitoringStackArgs) -> None:
        self.namespace = pulumi.Output.from_input(NAMESPACE)
        self.grafana_service = pulumi.Output.from_input(GRAFANA_SERVICE)
        self.grafana_access = pulumi.Output.from_input(grafana_access(args))
        self.grafana_admin_secret = pulumi.Output.from_input(GRAFANA_ADMIN_SECRET)
        self.register_outputs({
            "namespace": self.namespace, "grafana_service": self.grafana_service,
            "grafana_access": self.grafana_access, "grafana_admin_secret": self.grafana_admin_secret,
        })
