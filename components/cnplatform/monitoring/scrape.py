"""ServiceMonitor / PodMonitor bodies (pure) for services and the mesh.

Service conventions (docs/CONVENTIONS.md): Service ``<name>`` in its namespace, selector label
``app.kubernetes.io/name: <name>``, port name ``http``, metrics at ``/metrics`` on that port.
"""
from __future__ import annotations

from typing import Optional

from cnplatform.naming import selector_labels

METRICS_PORT_NAME = "http"
METRICS_PATH = "/metrics"
SCRAPE_INTERVAL = "30s"

ISTIO_NAMESPACE = "istio-system"
ISTIOD_SELECTOR = {"app": "istiod", "istio": "pilot"}
ISTIOD_MONITORING_PORT = "http-monitoring"  # 15014
ENVOY_PORT_NAME = "http-envoy-prom"  # 15090 on the injected istio-proxy container
ENVOY_PORT = 15090
ENVOY_PATH = "/stats/prometheus"
SIDECAR_CONTAINER = "istio-proxy"
#: Label the sidecar injector puts on every injected pod.
INJECTED_POD_LABEL = "security.istio.io/tlsMode"


def service_monitor_spec(service: str, namespace: str, mtls_scrape_class: Optional[str] = None) -> dict:
    """Scrape ``/metrics`` on port ``http`` of Service ``<service>`` in ``<namespace>``.

    With the mesh (STRICT mTLS) the scrape is HTTPS with Prometheus' Istio certificate, given by the
    scrape class ``mtls_scrape_class``. The server's certificate carries only a SPIFFE URI SAN, which
    Prometheus' TLS client cannot verify, so server verification is skipped (Istio's documented
    setting); what mTLS buys here is the workload authenticating Prometheus (its AuthorizationPolicy
    admits the ``monitoring`` namespace's identity on ``GET /metrics``).

    The app's own ``service`` label collides with the target label ``service`` (the Service name,
    equal by convention) and is renamed ``exported_service`` by Prometheus: dropped as redundant.
    """
    endpoint: dict = {
        "port": METRICS_PORT_NAME,
        "path": METRICS_PATH,
        "scheme": "http",
        "interval": SCRAPE_INTERVAL,
        "metricRelabelings": [{"action": "labeldrop", "regex": "exported_service"}],
    }
    spec: dict = {
        "selector": {"matchLabels": selector_labels(service)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [endpoint],
    }
    if mtls_scrape_class:
        spec["scrapeClass"] = mtls_scrape_class
        endpoint["scheme"] = "https"
        endpoint["tlsConfig"] = {"insecureSkipVerify": True}
    return spec


def istiod_service_monitor_spec() -> dict:
    return {
        "selector": {"matchLabels": dict(ISTIOD_SELECTOR)},
        "namespaceSelector": {"matchNames": [ISTIO_NAMESPACE]},
        "endpoints": [{"port": ISTIOD_MONITORING_PORT, "path": "/metrics", "interval": SCRAPE_INTERVAL}],
    }


def envoy_pod_monitor_spec(namespaces: list[str]) -> dict:
    """Envoy's own stats of every injected pod in the app namespaces (port 15090, /stats/prometheus)."""
    return {
        "selector": {"matchExpressions": [{"key": INJECTED_POD_LABEL, "operator": "Exists"}]},
        "namespaceSelector": {"matchNames": sorted(set(namespaces))},
        "podMetricsEndpoints": [{
            "port": ENVOY_PORT_NAME,
            "path": ENVOY_PATH,
            "interval": SCRAPE_INTERVAL,
            "relabelings": [
                {"action": "keep", "sourceLabels": ["__meta_kubernetes_pod_container_name"],
                 "regex": SIDECAR_CONTAINER},
            ],
        }],
    }
