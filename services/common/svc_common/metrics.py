"""Prometheus metrics: RED metrics per route template plus process metrics."""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

# The ``*_created`` series double the number of series for no benefit here.
prometheus_client.disable_created_metrics()

HTTP_LABELS = ("service", "route", "method", "status")
# Bucket boundaries include the SLO latency thresholds in use (200, 300, 800 ms) so the SLO is exact.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """A service's metrics, in a registry of its own (no global state between apps)."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None,
                 process_metrics: bool = True) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        if process_metrics and registry is None:
            prometheus_client.ProcessCollector(registry=self.registry)
            prometheus_client.PlatformCollector(registry=self.registry)
            prometheus_client.GCCollector(registry=self.registry)
        self.requests = Counter("http_requests_total", "HTTP requests handled.",
                                HTTP_LABELS, registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency in seconds.",
                                 HTTP_LABELS, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being handled.",
                               ("service",), registry=self.registry)
        self.upstream_requests = Counter(
            "upstream_requests_total", "Outgoing HTTP requests to other services.",
            ("service", "upstream", "method", "status"), registry=self.registry)
        self.upstream_latency = Histogram(
            "upstream_request_duration_seconds", "Outgoing HTTP request latency in seconds.",
            ("service", "upstream", "method", "status"), buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (self.service, route, method, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def observe_upstream(self, upstream: str, method: str, status: str, seconds: float) -> None:
        labels = (self.service, upstream, method, status)
        self.upstream_requests.labels(*labels).inc()
        self.upstream_latency.labels(*labels).observe(seconds)

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        """Create a domain counter in this service's registry (``service`` label added)."""
        return Counter(name, documentation, ("service", *labels), registry=self.registry)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """Exposition in the format the scraper asked for (Prometheus text 0.0.4 by default)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
