"""Grafana dashboards as plain dicts (pure): one per service, one mesh overview.

Dashboards are provisioned by Grafana's dashboard sidecar from ConfigMaps labelled
``grafana_dashboard: "1"``; the datasource is the chart's default Prometheus (uid ``prometheus``).
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Optional

from cnplatform.monitoring.promql import (
    DURATION_HISTOGRAM,
    REQUESTS_TOTAL,
    SLO_LABELS,
    ServiceSlo,
    error_budget,
    fmt,
    latency_bucket,
    latency_budget,
    selector,
    slow_ratio_expr,
)

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"
SCHEMA_VERSION = 39
QUANTILES = (0.5, 0.95, 0.99)


def _target(expr: str, legend: str, ref: str) -> dict:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def _timeseries(panel_id: int, title: str, targets: list[dict], unit: str, x: int, y: int,
                thresholds: Optional[list[tuple[float, str]]] = None, w: int = 12, h: int = 8,
                description: str = "") -> dict:
    steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in (thresholds or [])]
    return {
        "id": panel_id, "type": "timeseries", "title": title, "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line" if thresholds else "off"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
    }


def _dashboard(uid: str, title: str, tags: list[str], panels: list[dict]) -> dict:
    return {
        "uid": uid, "title": title, "tags": tags, "editable": False, "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "utc",
        "templating": {"list": []}, "annotations": {"list": []}, "panels": panels,
    }


def service_dashboard_uid(service: str) -> str:
    return f"svc-{service}"[:40]


def service_dashboard(slo: ServiceSlo, window: str = "5m") -> dict:
    """Request rate, error ratio (vs. the error budget) and latency p50/p95/p99 (vs. the SLO) of one
    service, from its own metrics ``http_requests_total`` / ``http_request_duration_seconds``."""
    ns, svc = slo.namespace, slo.name
    sel = selector(ns, svc)
    err_sel = selector(ns, svc, status="~5..")
    budget = error_budget(slo.availability)
    bucket = latency_bucket(slo.latency_ms, slo.buckets)
    lat_budget = latency_budget(slo.latency_target)
    by = f"sum by ({', '.join(SLO_LABELS)})"
    panels = [
        _timeseries(1, "Request rate by status", [
            _target(f"sum by (status) (rate({REQUESTS_TOTAL}{sel}[{window}]))", "{{status}}", "A"),
            _target(f"sum(rate({REQUESTS_TOTAL}{sel}[{window}]))", "total", "B"),
        ], "reqps", 0, 0),
        _timeseries(2, "Request rate by route", [
            _target(f"sum by (method, route) (rate({REQUESTS_TOTAL}{sel}[{window}]))", "{{method}} {{route}}", "A"),
        ], "reqps", 12, 0),
        _timeseries(3, "Error ratio (5xx)", [
            _target(f"{by} (rate({REQUESTS_TOTAL}{err_sel}[{window}]))\n/\n"
                    f"{by} (rate({REQUESTS_TOTAL}{sel}[{window}]))", "error ratio", "A"),
        ], "percentunit", 0, 8, thresholds=[(float(budget), "red")],
            description=f"SLO {fmt(Decimal(str(slo.availability)))}% availability: error budget {fmt(budget)}."),
        _timeseries(4, "Latency p50 / p95 / p99", [
            _target(f"histogram_quantile({q}, sum by (le) (rate({DURATION_HISTOGRAM}_bucket{sel}[{window}])))",
                    f"p{int(q * 100)}", "A") for q in QUANTILES
        ], "s", 12, 8, thresholds=[(slo.latency_ms / 1000, "red")],
            description=f"SLO: {fmt(Decimal(str(slo.latency_target)))}% of requests faster than {slo.latency_ms}ms."),
        _timeseries(5, f"Share of requests slower than {bucket.ms}ms", [
            _target(slow_ratio_expr(ns, svc, window, bucket), "slow share", "A"),
        ], "percentunit", 0, 16, thresholds=[(float(lat_budget), "red")], w=24,
            description=("Latency SLO budget " + fmt(lat_budget)
                         + ("" if bucket.exact else f"; {slo.latency_ms}ms is not a histogram bucket, "
                            f"{bucket.ms}ms (the boundary below) is used"))),
    ]
    return _dashboard(service_dashboard_uid(svc), f"Service / {svc}", ["cnplatform", "service", ns], panels)


def mesh_dashboard(window: str = "5m") -> dict:
    """Istio overview: requests, success rate and p95 per destination service (reporter=destination)."""
    dest = 'reporter="destination"'
    by = "sum by (destination_service)"
    panels = [
        _timeseries(1, "Requests by destination service", [
            _target(f"{by} (rate(istio_requests_total{{{dest}}}[{window}]))", "{{destination_service}}", "A"),
        ], "reqps", 0, 0, w=24),
        _timeseries(2, "Success rate (non-5xx) by destination service", [
            _target(f'{by} (rate(istio_requests_total{{{dest},response_code!~"5.."}}[{window}]))\n/\n'
                    f"{by} (rate(istio_requests_total{{{dest}}}[{window}]))", "{{destination_service}}", "A"),
        ], "percentunit", 0, 8),
        _timeseries(3, "p95 latency by destination service", [
            _target(f"histogram_quantile(0.95, sum by (le, destination_service) "
                    f"(rate(istio_request_duration_milliseconds_bucket{{{dest}}}[{window}])))",
                    "{{destination_service}}", "A"),
        ], "ms", 12, 8),
    ]
    return _dashboard("mesh-overview", "Mesh / Overview", ["cnplatform", "istio"], panels)


def dashboard_json(dashboard: dict) -> str:
    """Deterministic, compact JSON text for a ConfigMap (Grafana does not need the indentation; at
    hundreds of services it is a third of every dashboard's bytes in state and in etcd)."""
    return json.dumps(dashboard, separators=(",", ":"), sort_keys=True)
