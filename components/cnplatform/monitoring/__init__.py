"""monitoring: kube-prometheus-stack (pinned) with per-service SLOs, dashboards and mesh telemetry.

- :class:`~cnplatform.monitoring.stack.MonitoringStack` (``cnplatform:monitoring:MonitoringStack``): the
  chart, the ``monitoring`` namespace, Grafana admin and receiver Secrets, mesh monitors, Grafana route.
- :class:`~cnplatform.monitoring.service.ServiceMonitoring` (``cnplatform:monitoring:ServiceMonitoring``):
  one service's ServiceMonitor, dashboard and SLO rule group, for a service monitored on its own
  (``MonitoringStack`` registers the same objects for its ``services`` through ``create_service_monitoring``).
- Pure logic: ``promql`` (SLO rules), ``dashboards``, ``alerting`` (Alertmanager config), ``scrape``
  (monitor specs), ``values`` (chart values and sizing per tier).
"""
from cnplatform.monitoring.alerting import ReceiverSpec
from cnplatform.monitoring.service import ServiceMonitoring, ServiceMonitoringArgs, create_service_monitoring
from cnplatform.monitoring.stack import MonitoredService, MonitoringStack, MonitoringStackArgs

__all__ = [
    "MonitoredService", "MonitoringStack", "MonitoringStackArgs", "ReceiverSpec", "ServiceMonitoring",
    "ServiceMonitoringArgs", "create_service_monitoring",
]
