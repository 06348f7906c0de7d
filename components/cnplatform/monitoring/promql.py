"""PromQL for service SLOs (pure): recording rules, multi-window multi-burn-rate alerts, latency alert.

Metric contract of the services (see docs/monitoring.md):

- ``http_requests_total{service,route,method,status}`` (counter; ``status`` is the HTTP code);
- ``http_request_duration_seconds{service,route,method,status}`` (classic histogram, seconds).

Scraped through the ServiceMonitor of Service ``<name>``, every series also carries the target
labels ``namespace`` and ``service`` (= the Kubernetes Service name, which by convention is the
service name), so every query selects ``{namespace="<ns>", service="<name>"}``.

Errors are responses with a 5xx status (4xx are the client's fault and count as good events).

Numbers are computed with :class:`~decimal.Decimal` from the config's decimal text, so a threshold
is exactly the hand-computed value (``14.4 * 0.001`` renders ``0.0144``, not ``0.014400000000000001``).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Optional, Sequence

REQUESTS_TOTAL = "http_requests_total"
DURATION_HISTOGRAM = "http_request_duration_seconds"

#: Bucket boundaries (seconds) of ``http_request_duration_seconds`` the services export
#: (``services/common/svc_common/metrics.py`` LATENCY_BUCKETS). The latency SLO can only be evaluated
#: exactly at one of these boundaries: see :func:`latency_bucket`.
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0)

#: Labels every SLO series is aggregated to (and alerts carry; inhibition matches on them).
SLO_LABELS = ("namespace", "service")


@dataclass(frozen=True)
class BurnRateWindow:
    """One condition of the multi-window, multi-burn-rate policy (Google SRE workbook, ch. 5)."""

    severity: str
    long_window: str
    short_window: str
    factor: Decimal
    """Burn rate: how many times faster than "exactly the budget in 30 days" the budget is spent."""


#: 2% of a 30-day budget in 1h / 5% in 6h -> page; 10% in 1d / 100% in 3d -> ticket.
BURN_RATE_POLICY: tuple[BurnRateWindow, ...] = (
    BurnRateWindow("page", "1h", "5m", Decimal("14.4")),
    BurnRateWindow("page", "6h", "30m", Decimal("6")),
    BurnRateWindow("ticket", "1d", "2h", Decimal("3")),
    BurnRateWindow("ticket", "3d", "6h", Decimal("1")),
)
SEVERITIES = ("page", "ticket")
#: Windows the latency alert compares (long for significance, short so it resets quickly).
LATENCY_WINDOWS = ("1h", "5m")

ERROR_BURN_ALERT = "SLOErrorBudgetBurn"
LATENCY_ALERT = "SLOLatencyBreach"


# ------------------------------------------------------------------------------------- numbers


def _dec(value: float | int | str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt(value: Decimal) -> str:
    """A Decimal as a plain PromQL number: ``0.0144``, ``6``, ``0.0005`` (no exponent, no trailing 0)."""
    text = format(value.normalize(), "f")
    return text


def error_budget(availability: float | str | Decimal) -> Decimal:
    """Allowed error ratio: ``1 - availability/100`` (99.9 -> 0.001)."""
    return 1 - _dec(availability) / 100


def burn_threshold(availability: float | str | Decimal, factor: Decimal | str | float) -> Decimal:
    """Error ratio above which the budget burns ``factor`` times too fast (14.4 x 0.001 = 0.0144)."""
    return _dec(factor) * error_budget(availability)


def latency_budget(latency_target: float | str | Decimal) -> Decimal:
    """Allowed share of slow requests: ``1 - latency_target/100`` (99 -> 0.01)."""
    return 1 - _dec(latency_target) / 100


def le_label(seconds: float) -> str:
    """A bucket boundary as Prometheus stores it in ``le``.

    Prometheus 3 normalizes classic-histogram ``le`` values to the OpenMetrics float text
    (``1`` -> ``1.0``), which is also what the Python client emits: ``0.25``, ``1.0``, ``10.0``.
    """
    return repr(float(seconds))


@dataclass(frozen=True)
class LatencyBucket:
    """The histogram boundary the latency SLO is evaluated at."""

    seconds: float
    exact: bool
    """False when ``latency_ms`` is not a bucket boundary and the next lower boundary is used."""

    @property
    def le(self) -> str:
        return le_label(self.seconds)

    @property
    def ms(self) -> int:
        return int((_dec(self.seconds) * 1000).to_integral_value())


def latency_bucket(latency_ms: int, buckets: Iterable[float] = DEFAULT_LATENCY_BUCKETS) -> LatencyBucket:
    """The ``le`` boundary for "faster than ``latency_ms``".

    A classic histogram only counts requests up to its boundaries, so the share of requests faster
    than X is exact only when X is a boundary. When it is not, the largest boundary below X is used:
    requests between that boundary and X then count as slow, so the alert is stricter than the SLO
    (it may fire early, never late). Add the SLO threshold to the services' buckets to make it exact.
    """
    target = _dec(latency_ms) / 1000
    ordered = sorted(_dec(b) for b in buckets)
    if not ordered:
        raise ValueError("no histogram buckets")
    for b in ordered:
        if b == target:
            return LatencyBucket(float(b), True)
    below = [b for b in ordered if b < target]
    if not below:
        raise ValueError(f"latency_ms={latency_ms} is below the smallest histogram bucket "
                         f"({fmt(ordered[0] * 1000)}ms): no boundary can measure it")
    return LatencyBucket(float(below[-1]), False)


# ------------------------------------------------------------------------------------- queries


def selector(namespace: str, service: str, **extra: str) -> str:
    """``{namespace="shop",service="user"}`` plus extra matchers (values starting with ``~`` are regexes)."""
    parts = [f'namespace="{namespace}"', f'service="{service}"']
    for key, value in extra.items():
        parts.append(f'{key}=~"{value[1:]}"' if value.startswith("~") else f'{key}="{value}"')
    return "{" + ",".join(parts) + "}"


def _by() -> str:
    return f"sum by ({', '.join(SLO_LABELS)})"


def request_rate_expr(namespace: str, service: str, window: str, **extra: str) -> str:
    return f"{_by()} (rate({REQUESTS_TOTAL}{selector(namespace, service, **extra)}[{window}]))"


def error_ratio_expr(namespace: str, service: str, window: str) -> str:
    """Share of 5xx responses over ``window``."""
    return (f"{request_rate_expr(namespace, service, window, status='~5..')}\n/\n"
            f"{request_rate_expr(namespace, service, window)}")


def slow_ratio_expr(namespace: str, service: str, window: str, bucket: LatencyBucket) -> str:
    """Share of requests slower than the bucket boundary over ``window`` (1 - fast/all)."""
    fast = f"{_by()} (rate({DURATION_HISTOGRAM}_bucket{selector(namespace, service, le=bucket.le)}[{window}]))"
    total = f"{_by()} (rate({DURATION_HISTOGRAM}_count{selector(namespace, service)}[{window}]))"
    return f"1 - (\n{fast}\n/\n{total}\n)"


def error_ratio_record(window: str) -> str:
    return f"service:http_request_errors:ratio_rate{window}"


def slow_ratio_record(window: str) -> str:
    return f"service:http_request_slow:ratio_rate{window}"


def error_windows() -> list[str]:
    """Every window the burn-rate policy reads, shortest first."""
    seen: list[str] = []
    for w in BURN_RATE_POLICY:
        for window in (w.short_window, w.long_window):
            if window not in seen:
                seen.append(window)
    return sorted(seen, key=_seconds)


def _seconds(window: str) -> int:
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[window[-1]]
    return int(window[:-1]) * unit


def burn_rate_condition(namespace: str, service: str, availability: float, window: BurnRateWindow) -> str:
    """``long > t and short > t`` on the recorded error ratios, t = factor x budget."""
    t = fmt(burn_threshold(availability, window.factor))
    sel = selector(namespace, service)
    return (f"{error_ratio_record(window.long_window)}{sel} > {t}\n"
            f"and\n"
            f"{error_ratio_record(window.short_window)}{sel} > {t}")


def burn_rate_alert_expr(namespace: str, service: str, availability: float, severity: str) -> str:
    """The conditions of one severity, OR-ed: fires when any window pair burns too fast."""
    conditions = [burn_rate_condition(namespace, service, availability, w)
                  for w in BURN_RATE_POLICY if w.severity == severity]
    if not conditions:
        raise ValueError(f"no burn-rate windows for severity {severity!r}")
    return "\nor\n".join(f"(\n{c}\n)" for c in conditions)


def latency_alert_expr(namespace: str, service: str, latency_target: float) -> str:
    """Share of slow requests above the latency budget over both latency windows."""
    t = fmt(latency_budget(latency_target))
    sel = selector(namespace, service)
    long, short = LATENCY_WINDOWS
    return (f"{slow_ratio_record(long)}{sel} > {t}\n"
            f"and\n"
            f"{slow_ratio_record(short)}{sel} > {t}")


# --------------------------------------------------------------------------------- rule group


#: The SLO defaults every layer uses (the stack config, Microservice, ServiceMonitoring, MonitoringStack):
#: 99.9% of requests succeed over 30 days, 99% of them faster than 300 ms.
SLO_AVAILABILITY = 99.9
SLO_LATENCY_MS = 300
SLO_LATENCY_TARGET = 99.0


@dataclass(frozen=True)
class ServiceSlo:
    """What the rules of one service are generated from (plain config values)."""

    name: str
    namespace: str
    availability: float
    latency_ms: int
    latency_target: float
    buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS


def rule_group_name(service: str) -> str:
    return f"slo-{service}"


def slo_rule_group(slo: ServiceSlo, interval: Optional[str] = "1m") -> dict:
    """One rule group per service: recording rules (error ratio per window, slow ratio) + alerts."""
    ns, svc = slo.namespace, slo.name
    bucket = latency_bucket(slo.latency_ms, slo.buckets)
    budget = error_budget(slo.availability)
    rules: list[dict] = []
    for window in error_windows():
        rules.append({"record": error_ratio_record(window), "expr": error_ratio_expr(ns, svc, window)})
    for window in sorted(LATENCY_WINDOWS, key=_seconds):
        rules.append({"record": slow_ratio_record(window), "expr": slow_ratio_expr(ns, svc, window, bucket)})

    availability = fmt(_dec(slo.availability))
    for severity in SEVERITIES:
        windows = ", ".join(f"{w.long_window}/{w.short_window} at {fmt(w.factor)}x"
                            for w in BURN_RATE_POLICY if w.severity == severity)
        rules.append({
            "alert": ERROR_BURN_ALERT,
            "expr": burn_rate_alert_expr(ns, svc, slo.availability, severity),
            "labels": {"severity": severity, "slo": "availability"},
            "annotations": {
                "summary": f"{svc} is burning its {availability}% availability error budget too fast",
                "description": (
                    f"Service {{{{ $labels.namespace }}}}/{{{{ $labels.service }}}}: error ratio "
                    f"{{{{ $value | humanizePercentage }}}} over the long window; error budget "
                    f"{fmt(budget)} ({windows})."),
            },
        })
    rounded = "" if bucket.exact else f" (SLO {slo.latency_ms}ms rounded down to a histogram bucket)"
    slow_text = f"{bucket.ms}ms{rounded}"
    rules.append({
        "alert": LATENCY_ALERT,
        "expr": latency_alert_expr(ns, svc, slo.latency_target),
        "labels": {"severity": "ticket", "slo": "latency"},
        "annotations": {
            "summary": f"{svc}: more than {fmt(latency_budget(slo.latency_target) * 100)}% of requests "
                       f"slower than {slo.latency_ms}ms",
            "description": (
                f"Service {{{{ $labels.namespace }}}}/{{{{ $labels.service }}}}: "
                f"{{{{ $value | humanizePercentage }}}} of requests slower than {slow_text} over "
                f"{LATENCY_WINDOWS[0]}; objective {fmt(_dec(slo.latency_target))}% faster."),
        },
    })
    group: dict = {"name": rule_group_name(svc), "rules": rules}
    if interval:
        group["interval"] = interval
    return group
