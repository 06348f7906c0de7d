"""Monitoring (components/cnplatform/monitoring, stacks/compose/layers/monitoring.py): kube-prometheus-stack values,
SLO rules (PromQL checked by hand-computed thresholds and by promtool), dashboards, scrape objects,
Alertmanager routing, secrets, footprint."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from decimal import Decimal
from functools import lru_cache

import pytest
import yaml

from cnplatform.monitoring import alerting, dashboards, promql, scrape, values
from cnplatform.monitoring.alerting import ReceiverSpec
from cnplatform.monitoring.stack import PORT_FORWARD, MonitoringStackArgs, grafana_access, grafana_virtual_service_spec
from cnplatform.testing import Secret, unwrap
from stacks.checks import check_config
from stacks.checks.footprint import totals
from stacks.compose.layers import monitoring as layer
from stacks.compose.workloads import Workload
from stacks.config import ConfigError
from tests.helpers import STACKS, capture_raw, capture_stack, config_of, objects, with_changes
from tests.reference_checks import chart_version, unknown_values_keys, validate_custom_resource

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
KPS = "kube-prometheus-stack"
NS = "monitoring"
SVC = {"namespace": "shop", "service": "user"}


def sel(**extra):
    return promql.selector("shop", "user", **extra)


# ------------------------------------------------------------------------------- capture helpers


def chart_reg(capture, cluster):
    regs = [r for r in capture.by_type("kubernetes:helm.sh/v4:Chart")
            if unwrap(r.inputs).get("chart") == KPS and capture.cluster_of(r) == cluster]
    assert len(regs) == 1, f"{len(regs)} kube-prometheus-stack charts on {cluster}"
    return regs[0]


def chart_values_of(capture, cluster) -> dict:
    return unwrap(chart_reg(capture, cluster).inputs)["values"]


def mon(capture, kind, cluster):
    return [o for o in objects(capture, kind, cluster) if o["metadata"].get("namespace") == NS]


def regs_of(capture, kind, cluster):
    return [r for r in capture.resources if r.type.endswith(":" + kind) and capture.cluster_of(r) == cluster]


def rendered_docs(out, kind):
    return [yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").rglob(f"{kind}-*.yaml"))]


@lru_cache(maxsize=None)
def variant() -> object:
    """dev without the mesh, with one receiver of each type, a storage class: the other branches."""
    def change(raw):
        raw["mesh"] = {"enabled": False}
        raw["monitoring"] = {**raw["monitoring"], "storage_class": "fast-ssd", "receivers": [
            {"name": "oncall", "type": "pagerduty", "severity": "page", "secret_config_key": "pdKey"},
            {"name": "team-slack", "type": "slack", "severity": "ticket", "channel": "#shop",
             "secret_config_key": "slackUrl"},
            {"name": "mail", "type": "email", "severity": "page", "to": "ops@example.com",
             "smarthost": "smtp.example.com:587", "from": "am@example.com", "secret_config_key": "smtpPass"},
        ]}
    return capture_raw(with_changes("dev", change), "variant",
                       secure={"pdKey": "secret::pdKey", "slackUrl": "secret::slackUrl",
                               "smtpPass": "secret::smtpPass"})


@lru_cache(maxsize=None)
def exposed() -> object:
    def change(raw):
        raw["monitoring"] = {**raw["monitoring"], "expose_grafana": True}
    return capture_raw(with_changes("dev", change), "exposed")


# ------------------------------------------------------------------------------ SLO arithmetic


@pytest.mark.parametrize("availability, budget, expected", [
    (99.9, "0.001", {("1h", "5m"): "0.0144", ("6h", "30m"): "0.006", ("1d", "2h"): "0.003", ("3d", "6h"): "0.001"}),
    (99, "0.01", {("1h", "5m"): "0.144", ("6h", "30m"): "0.06", ("1d", "2h"): "0.03", ("3d", "6h"): "0.01"}),
    (99.95, "0.0005", {("1h", "5m"): "0.0072", ("6h", "30m"): "0.003", ("1d", "2h"): "0.0015", ("3d", "6h"): "0.0005"}),
])
def test_burn_rate_thresholds_hand_computed(availability, budget, expected):
    assert promql.error_budget(availability) == Decimal(budget)
    got = {(w.long_window, w.short_window): promql.fmt(promql.burn_threshold(availability, w.factor))
           for w in promql.BURN_RATE_POLICY}
    assert got == expected


def test_burn_rate_policy_windows_and_severities():
    policy = [(w.severity, w.long_window, w.short_window, str(w.factor)) for w in promql.BURN_RATE_POLICY]
    assert policy == [("page", "1h", "5m", "14.4"), ("page", "6h", "30m", "6"),
                      ("ticket", "1d", "2h", "3"), ("ticket", "3d", "6h", "1")]


def test_page_alert_expression_for_99_9():
    expr = promql.burn_rate_alert_expr("shop", "user", 99.9, "page")
    assert expr == (
        "(\n"
        f"service:http_request_errors:ratio_rate1h{sel()} > 0.0144\nand\n"
        f"service:http_request_errors:ratio_rate5m{sel()} > 0.0144\n"
        ")\nor\n(\n"
        f"service:http_request_errors:ratio_rate6h{sel()} > 0.006\nand\n"
        f"service:http_request_errors:ratio_rate30m{sel()} > 0.006\n"
        ")")


def test_ticket_alert_expression_for_99():
    expr = promql.burn_rate_alert_expr("shop", "user", 99, "ticket")
    assert (f"service:http_request_errors:ratio_rate1d{sel()} > 0.03\nand\n"
            f"service:http_request_errors:ratio_rate2h{sel()} > 0.03") in expr
    assert (f"service:http_request_errors:ratio_rate3d{sel()} > 0.01\nand\n"
            f"service:http_request_errors:ratio_rate6h{sel()} > 0.01") in expr
    assert "ratio_rate1h" not in expr and "0.144" not in expr


def test_error_ratio_counts_5xx_over_all_requests():
    assert promql.error_ratio_expr("shop", "user", "1h") == (
        'sum by (namespace, service) (rate(http_requests_total{namespace="shop",service="user",status=~"5.."}[1h]))'
        "\n/\n"
        'sum by (namespace, service) (rate(http_requests_total{namespace="shop",service="user"}[1h]))')


def test_latency_bucket_maps_threshold_to_a_boundary():
    assert promql.latency_bucket(500) == promql.LatencyBucket(0.5, True)
    assert promql.latency_bucket(500).le == "0.5"
    assert promql.latency_bucket(1000).le == "1.0"  # Prometheus 3 / OpenMetrics float text
    # Not a boundary: the next lower one (stricter), flagged inexact.
    assert promql.latency_bucket(400) == promql.LatencyBucket(0.3, False)
    assert promql.latency_bucket(150).ms == 100
    assert promql.latency_bucket(300, [0.1, 0.3, 1]).exact
    assert not promql.latency_bucket(300, [0.1, 0.25, 1]).exact


def test_services_histogram_buckets_match_the_rules_and_cover_the_configured_slos():
    from services.common.svc_common.metrics import LATENCY_BUCKETS
    from tests.helpers import STACKS, config_of

    assert tuple(LATENCY_BUCKETS) == promql.DEFAULT_LATENCY_BUCKETS
    for stack in STACKS:
        for svc in config_of(stack).services:
            assert promql.latency_bucket(svc.slo.latency_ms).exact, (stack, svc.name)
    with pytest.raises(ValueError, match="below the smallest"):
        promql.latency_bucket(1)


def test_latency_alert_compares_slow_share_with_latency_budget():
    assert promql.latency_budget(99) == Decimal("0.01") and promql.latency_budget(99.5) == Decimal("0.005")
    assert promql.latency_alert_expr("shop", "user", 99.5) == (
        f"service:http_request_slow:ratio_rate1h{sel()} > 0.005\nand\n"
        f"service:http_request_slow:ratio_rate5m{sel()} > 0.005")
    slow = promql.slow_ratio_expr("shop", "user", "5m", promql.latency_bucket(500))
    assert f'http_request_duration_seconds_bucket{sel(le="0.5")}[5m]' in slow
    assert f"http_request_duration_seconds_count{sel()}[5m]" in slow and slow.startswith("1 - (")


def test_rule_group_records_every_series_its_alerts_read():
    group = promql.slo_rule_group(promql.ServiceSlo("user", "shop", 99.9, 500, 99.0))
    assert group["name"] == "slo-user"
    records = {r["record"] for r in group["rules"] if "record" in r}
    alerts = [r for r in group["rules"] if "alert" in r]
    assert [(a["alert"], a["labels"]["severity"]) for a in alerts] == [
        ("SLOErrorBudgetBurn", "page"), ("SLOErrorBudgetBurn", "ticket"), ("SLOLatencyBreach", "ticket")]
    used = {m for a in alerts for m in re.findall(r"(service:[a-z_]+:ratio_rate\w+)\{", a["expr"])}
    assert used == records
    windows = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    assert {f"service:http_request_errors:ratio_rate{w}" for w in windows} <= records


def _promtool_rules_test(tmp_path, group, series, eval_time, expected):
    """Run ``promtool test rules`` on ``group`` (annotations dropped: only expressions are under test)."""
    stripped = {**group, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [stripped]}))
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": eval_time, "alertname": name, "exp_alerts": exp}
                            for name, exp in expected.items()]}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _traffic(errors_per_min: int, total_per_min: int, minutes: int = 120) -> list[dict]:
    base = 'http_requests_total{namespace="shop",service="user",status="%s"}'
    return [{"series": base % "500", "values": f"0+{errors_per_min}x{minutes}"},
            {"series": base % "200", "values": f"0+{total_per_min - errors_per_min}x{minutes}"}]


@pytest.mark.skipif(not shutil.which(PROMTOOL), reason="promtool not installed")
def test_burn_rate_alerts_fire_by_severity_under_promtool(tmp_path):
    group = promql.slo_rule_group(promql.ServiceSlo("user", "shop", 99.9, 500, 99.0))
    labels = {**SVC, "slo": "availability"}
    # 2% errors: above 14.4 x 0.001 -> page (and ticket, inhibited in Alertmanager).
    _promtool_rules_test(tmp_path, group, _traffic(2, 100), "65m", {
        "SLOErrorBudgetBurn": [{"exp_labels": {**labels, "severity": "page"}},
                               {"exp_labels": {**labels, "severity": "ticket"}}],
        "SLOLatencyBreach": []})
    # 0.5% errors: below 6 x 0.001 (no page), above 3 x 0.001 -> ticket only.
    _promtool_rules_test(tmp_path, group, _traffic(1, 200), "125m", {
        "SLOErrorBudgetBurn": [{"exp_labels": {**labels, "severity": "ticket"}}]})


@pytest.mark.skipif(not shutil.which(PROMTOOL), reason="promtool not installed")
def test_latency_alert_fires_on_slow_share_under_promtool(tmp_path):
    group = promql.slo_rule_group(promql.ServiceSlo("user", "shop", 99.9, 500, 99.0))
    h = 'http_request_duration_seconds_%s{namespace="shop",service="user"%s}'
    series = [  # 100 req/min, 95 under 0.5s: 5% slow > 1% budget
        {"series": h % ("bucket", ',le="0.5"'), "values": "0+95x90"},
        {"series": h % ("bucket", ',le="+Inf"'), "values": "0+100x90"},
        {"series": h % ("count", ""), "values": "0+100x90"},
        *_traffic(0, 100, 90),
    ]
    _promtool_rules_test(tmp_path, group, series, "65m", {
        "SLOLatencyBreach": [{"exp_labels": {**SVC, "slo": "latency", "severity": "ticket"}}],
        "SLOErrorBudgetBurn": []})


# ---------------------------------------------------------------------------------- dashboards


def test_service_dashboard_panels_use_the_services_metrics():
    d = dashboards.service_dashboard(promql.ServiceSlo("user", "shop", 99.9, 300, 99.0))
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in d["panels"]}
    assert any("http_requests_total" in e for e in exprs["Request rate by status"])
    assert 'status=~"5.."' in exprs["Error ratio (5xx)"][0]
    quantiles = exprs["Latency p50 / p95 / p99"]
    assert [e.split(",")[0] for e in quantiles] == ["histogram_quantile(0.5", "histogram_quantile(0.95",
                                                     "histogram_quantile(0.99"]
    assert all(f"http_request_duration_seconds_bucket{sel()}" in e for e in quantiles)
    assert d["uid"] == "svc-user" and json.loads(dashboards.dashboard_json(d)) == d


def test_mesh_dashboard_uses_istio_metrics():
    text = dashboards.dashboard_json(dashboards.mesh_dashboard())
    assert "istio_requests_total" in text and "destination_service" in text
    assert "histogram_quantile(0.95" in text and "istio_request_duration_milliseconds_bucket" in text
    assert 'response_code!~\\"5..\\"' in text


# ------------------------------------------------------------------------------------ values


def test_pinned_chart_matches_reference():
    assert values.CHART_VERSION == chart_version(KPS) == "88.5.3"
    assert values.CHART_REPO == "https://prometheus-community.github.io/helm-charts"


@pytest.mark.parametrize("tier", ["dev", "staging", "prod"])
def test_values_keys_exist_in_the_pinned_chart(tier):
    v = values.chart_values(tier=tier, cluster="c", cloud="aws", retention="7d", storage="20Gi",
                            storage_class="gp3", receivers=[ReceiverSpec("oncall", "pagerduty", "page")],
                            expose_grafana=True, mesh=True)
    assert unknown_values_keys(KPS, v) == []
    assert unknown_values_keys(KPS, values.chart_values(tier=tier, cluster="c", cloud="local", retention="1d",
                                                       storage="5Gi", grafana_host="g.example.com",
                                                       expose_grafana=True)) == []


def test_ha_and_sizes_are_a_function_of_the_tier():
    assert (values.sizing("dev").prometheus_replicas, values.sizing("dev").alertmanager_replicas) == (1, 1)
    assert (values.sizing("prod").prometheus_replicas, values.sizing("prod").alertmanager_replicas) == (2, 3)
    v = values.chart_values(tier="prod", cluster="p", cloud="aws", retention="30d", storage="100Gi")
    assert v["prometheus"]["prometheusSpec"]["replicas"] == 2
    assert v["alertmanager"]["alertmanagerSpec"]["replicas"] == 3
    assert v["prometheus"]["podDisruptionBudget"]["enabled"] and v["alertmanager"]["podDisruptionBudget"]["enabled"]
    assert v["prometheus"]["prometheusSpec"]["resources"] == values.SIZES["production"]["prometheus"]
    dev = values.chart_values(tier="dev", cluster="d", cloud="local", retention="2d", storage="5Gi")
    assert dev["prometheus"]["prometheusSpec"]["resources"] == values.SIZES["small"]["prometheus"]
    assert dev["grafana"]["resources"] == values.SIZES["small"]["grafana"]
    assert dev["kube-state-metrics"]["resources"] == values.SIZES["small"]["kube-state-metrics"]
    assert dev["prometheus-node-exporter"]["resources"] == values.SIZES["small"]["node-exporter"]
    assert dev["prometheusOperator"]["resources"] == values.SIZES["small"]["prometheus-operator"]


def test_grafana_admin_from_existing_secret_and_dashboard_sidecar():
    g = values.chart_values(tier="dev", cluster="d", cloud="local", retention="2d", storage="5Gi")["grafana"]
    assert g["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert "adminPassword" not in g
    assert g["sidecar"]["dashboards"] == {"enabled": True, "label": "grafana_dashboard", "labelValue": "1",
                                          "searchNamespace": NS, "resource": "configmap"}


def test_selectors_pick_up_objects_labelled_release_in_any_namespace():
    spec = values.chart_values(tier="dev", cluster="d", cloud="local", retention="2d",
                               storage="5Gi")["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
        assert spec[f"{kind}Selector"] == {"matchLabels": {"release": KPS}}
        assert spec[f"{kind}NamespaceSelector"] == {}


def test_retention_and_storage_from_config():
    spec = values.chart_values(tier="prod", cluster="p", cloud="gcp", retention="30d", storage="100Gi",
                               storage_class="premium-rwo")["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d" and spec["retentionSize"] == "87040MB"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}},
                     "storageClassName": "premium-rwo"}
    no_class = values.storage_spec("5Gi", None)["volumeClaimTemplate"]["spec"]
    assert "storageClassName" not in no_class


def test_admission_webhooks_off_with_client_side_render():
    chart = values.chart_values(tier="dev", cluster="d", cloud="local", retention="2d", storage="5Gi")
    op = chart["prometheusOperator"]
    assert op["admissionWebhooks"] == {"enabled": False, "patch": {"enabled": False}}
    assert op["tls"] == {"enabled": False}  # its certificate came from the webhook patch Job


def test_mesh_mtls_scrape_class_and_sidecar_only_with_mesh():
    spec = values.chart_values(tier="dev", cluster="d", cloud="local", retention="2d", storage="5Gi",
                               mesh=True)["prometheus"]["prometheusSpec"]
    (cls,) = spec["scrapeClasses"]
    assert cls["name"] == values.ISTIO_MTLS_SCRAPE_CLASS
    assert cls["tlsConfig"]["certFile"] == "/etc/prom-certs/cert-chain.pem"
    meta = spec["podMetadata"]
    assert meta["labels"] == {"sidecar.istio.io/inject": "true"}
    assert meta["annotations"]["traffic.sidecar.istio.io/includeOutboundIPRanges"] == ""
    assert "OUTPUT_CERTS" in meta["annotations"]["proxy.istio.io/config"]
    proxy = values.SIZES["small"]["prometheus-istio-proxy"]
    assert meta["annotations"]["sidecar.istio.io/proxyMemory"] == proxy["requests"]["memory"]
    plain = values.chart_values(tier="dev", cluster="d", cloud="local", retention="2d", storage="5Gi")
    assert "scrapeClasses" not in plain["prometheus"]["prometheusSpec"]
    sm = scrape.service_monitor_spec("user", "shop", values.ISTIO_MTLS_SCRAPE_CLASS)
    assert sm["scrapeClass"] == "istio-mtls" and sm["endpoints"][0]["scheme"] == "https"
    assert scrape.service_monitor_spec("user", "shop")["endpoints"][0]["scheme"] == "http"


# ------------------------------------------------------------------------------ Alertmanager


RECEIVERS = [ReceiverSpec("oncall", "pagerduty", "page"),
             ReceiverSpec("team-slack", "slack", "ticket", channel="#shop"),
             ReceiverSpec("mail", "email", "page", to="ops@example.com", smarthost="smtp:587", from_address="am@x")]


def test_routing_by_severity_with_null_default():
    config = alerting.alertmanager_config(RECEIVERS)
    route = config["route"]
    assert route["receiver"] == "null" and {"name": "null"} in config["receivers"]
    by_receiver = {r["receiver"]: r for r in route["routes"] if r["receiver"] != "null"}
    assert by_receiver["oncall"]["matchers"] == ['severity=~"page|critical"']
    assert by_receiver["mail"]["matchers"] == ['severity=~"page|critical"']
    assert by_receiver["team-slack"]["matchers"] == ['severity=~"ticket|warning"']
    assert all(r["continue"] for r in by_receiver.values())
    silent = [r for r in route["routes"] if r["receiver"] == "null"]
    assert [r["matchers"] for r in silent] == [['alertname="Watchdog"'], ['alertname="InfoInhibitor"']]


def test_tickets_inhibited_while_a_page_fires_for_the_same_service_and_alert():
    rule = alerting.alertmanager_config(RECEIVERS)["inhibit_rules"][0]
    assert rule == {"source_matchers": ['severity=~"page|critical"'],
                    "target_matchers": ['severity=~"ticket|warning"'],
                    "equal": ["namespace", "service", "alertname"]}


def test_receivers_read_credentials_only_from_files():
    configs = {r["name"]: r for r in alerting.alertmanager_config(RECEIVERS)["receivers"]}
    base = "/etc/alertmanager/secrets/alertmanager-receivers"
    assert configs["oncall"]["pagerduty_configs"][0]["routing_key_file"] == f"{base}/oncall"
    assert configs["team-slack"]["slack_configs"][0]["api_url_file"] == f"{base}/team-slack"
    assert configs["team-slack"]["slack_configs"][0]["channel"] == "#shop"
    assert configs["mail"]["email_configs"][0]["auth_password_file"] == f"{base}/mail"
    text = json.dumps(configs)
    for field in ("api_url\"", "routing_key\"", "auth_password\"", "service_key"):
        assert field not in text


def test_email_receiver_needs_its_fields():
    with pytest.raises(ValueError, match="needs"):
        alerting.receiver_config(ReceiverSpec("mail", "email", "page"))
    def receivers(*items):
        return with_changes("dev", lambda r: r.update(monitoring={"receivers": list(items)}))
    with pytest.raises(ConfigError, match="an email receiver needs to, smarthost, from"):
        check_config(receivers({"name": "mail", "type": "email", "severity": "page", "secret_config_key": "k"}))
    with pytest.raises(ConfigError, match=r"duplicate receiver name\(s\) mail"):
        check_config(receivers({"name": "mail", "type": "pagerduty", "severity": "page", "secret_config_key": "k"},
                               {"name": "mail", "type": "slack", "severity": "ticket", "secret_config_key": "k2"}))


# ------------------------------------------------------------------------------ the stacks


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_rules_pass_promtool_and_crds(rendered, stack, tmp_path):
    out = rendered(stack)
    rules = rendered_docs(out, "PrometheusRule")
    assert rules
    files = []
    for i, doc in enumerate(rules):
        assert validate_custom_resource(doc) == []
        path = tmp_path / f"rules-{i}.yaml"
        path.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
        files.append(str(path))
    if not shutil.which(PROMTOOL):
        pytest.skip("promtool not installed")
    proc = subprocess.run([PROMTOOL, "check", "rules", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_monitors_validate_against_crds(rendered, stack):
    docs = rendered_docs(rendered(stack), "ServiceMonitor") + rendered_docs(rendered(stack), "PodMonitor")
    assert docs
    errors = [e for d in docs for e in validate_custom_resource(d)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("stack", STACKS)
def test_one_service_monitor_dashboard_and_rule_group_per_service(stack):
    cap, cfg = capture_stack(stack), config_of(stack)
    for cluster in cfg.clusters:
        names = sorted(s.name for s in cfg.services_on(cluster.name))
        assert names
        monitors = [m for m in mon(cap, "ServiceMonitor", cluster.name)
                    if m["spec"]["selector"].get("matchLabels", {}).get("app.kubernetes.io/name") in names]
        assert sorted(m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for m in monitors) == names
        for m in monitors:
            svc = cfg.service(m["metadata"]["name"])
            assert m["spec"]["namespaceSelector"] == {"matchNames": [svc.namespace]}
            assert m["metadata"]["labels"]["release"] == KPS
            (ep,) = m["spec"]["endpoints"]
            assert (ep["port"], ep["path"]) == ("http", "/metrics")
        boards = [c for c in mon(cap, "ConfigMap", cluster.name)
                  if c["metadata"]["labels"].get("grafana_dashboard") == "1"
                  and c["metadata"]["name"].startswith("dashboard-") and c["metadata"]["name"][10:] in names]
        assert sorted(c["metadata"]["name"][10:] for c in boards) == names
        groups = [g["name"] for r in mon(cap, "PrometheusRule", cluster.name) for g in r["spec"]["groups"]]
        assert sorted(groups) == sorted(f"slo-{n}" for n in names)
        for rule in mon(cap, "PrometheusRule", cluster.name):
            assert rule["metadata"]["labels"]["release"] == KPS


@pytest.mark.parametrize("stack", STACKS)
def test_rules_use_each_services_own_slo(stack):
    cap, cfg = capture_stack(stack), config_of(stack)
    cluster = cfg.clusters[0].name
    for rule in mon(cap, "PrometheusRule", cluster):
        (group,) = rule["spec"]["groups"]
        svc = cfg.service(group["name"].removeprefix("slo-"))
        page = next(r for r in group["rules"] if r.get("alert") == "SLOErrorBudgetBurn"
                    and r["labels"]["severity"] == "page")
        t = promql.fmt(Decimal("14.4") * (1 - Decimal(str(svc.slo.availability)) / 100))
        assert f'ratio_rate1h{{namespace="{svc.namespace}",service="{svc.name}"}} > {t}\n' in page["expr"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_placeholder_in_values_or_configmaps(stack):
    cap, cfg = capture_stack(stack), config_of(stack)
    for cluster in cfg.clusters:
        assert "secret::" not in json.dumps(chart_values_of(cap, cluster.name))
        assert not any("secret::" in json.dumps(c) for c in objects(cap, "ConfigMap", cluster.name))
        v = chart_values_of(cap, cluster.name)
        assert v["grafana"]["admin"]["existingSecret"] == "grafana-admin" and "adminPassword" not in v["grafana"]
        assert unknown_values_keys(KPS, v) == []


def test_chart_pinned_in_monitoring_and_custom_resources_wait_for_it():
    cap = capture_stack("dev")
    chart = chart_reg(cap, "dev")
    inputs = unwrap(chart.inputs)
    assert (inputs["chart"], inputs["version"], inputs["name"], inputs["namespace"]) == (KPS, "88.5.3", KPS, NS)
    assert inputs["repositoryOpts"]["repo"] == values.CHART_REPO
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        regs = regs_of(cap, kind, "dev")
        assert regs and all(chart.urn in r.depends_on for r in regs)
    ns = next(o for o in objects(cap, "Namespace", "dev") if o["metadata"]["name"] == NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    secret_names = {r.urn for r in regs_of(cap, "Secret", "dev") if unwrap(r.inputs)["metadata"]["namespace"] == NS}
    assert secret_names <= set(chart.depends_on)


def test_grafana_admin_secret_generated():
    cap = capture_stack("dev")
    (reg,) = [r for r in regs_of(cap, "Secret", "dev") if unwrap(r.inputs)["metadata"]["name"] == "grafana-admin"]
    assert isinstance(reg.inputs["stringData"], Secret)
    data = unwrap(reg.inputs["stringData"])
    assert data["admin-user"] == "admin" and data["admin-password"] == "secret::dev-monitoring-grafana-admin-password"
    (pw,) = [r for r in cap.by_type("random:index/randomPassword:RandomPassword") if "grafana" in r.name]
    assert pw.inputs["length"] == 32


def test_receivers_secret_from_stack_secrets_mounted_and_referred_by_file():
    cap = variant()
    (reg,) = [r for r in regs_of(cap, "Secret", "dev")
              if unwrap(r.inputs)["metadata"]["name"] == "alertmanager-receivers"]
    assert isinstance(reg.inputs["stringData"], Secret)
    assert unwrap(reg.inputs["stringData"]) == {"oncall": "secret::pdKey", "team-slack": "secret::slackUrl",
                                                "mail": "secret::smtpPass"}
    v = chart_values_of(cap, "dev")
    assert v["alertmanager"]["alertmanagerSpec"]["secrets"] == ["alertmanager-receivers"]
    config = v["alertmanager"]["config"]
    assert "secret::" not in json.dumps(v)
    assert {r["name"] for r in config["receivers"]} == {"null", "oncall", "team-slack", "mail"}
    assert config["inhibit_rules"][0]["equal"] == ["namespace", "service", "alertname"]
    assert unknown_values_keys(KPS, v) == []
    claim = v["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"


def test_stack_without_receivers_mounts_nothing():
    v = chart_values_of(capture_stack("dev"), "dev")
    assert "secrets" not in v["alertmanager"]["alertmanagerSpec"]
    assert not [r for r in regs_of(capture_stack("dev"), "Secret", "dev")
                if unwrap(r.inputs)["metadata"]["name"] == "alertmanager-receivers"]


def test_mesh_telemetry_with_the_mesh():
    cap = capture_stack("dev")
    monitors = {m["metadata"]["name"]: m for m in mon(cap, "ServiceMonitor", "dev")}
    istiod = monitors["istiod"]["spec"]
    assert istiod["namespaceSelector"] == {"matchNames": ["istio-system"]}
    assert istiod["selector"]["matchLabels"]["app"] == "istiod"
    assert istiod["endpoints"][0]["port"] == "http-monitoring"
    (pm,) = mon(cap, "PodMonitor", "dev")
    ep = pm["spec"]["podMetricsEndpoints"][0]
    assert (ep["port"], ep["path"]) == ("http-envoy-prom", "/stats/prometheus")
    assert ep["relabelings"][0]["regex"] == "istio-proxy"
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}
    assert any(c["metadata"]["name"] == "dashboard-mesh-overview" for c in mon(cap, "ConfigMap", "dev"))
    assert monitors["user"]["spec"]["scrapeClass"] == "istio-mtls"
    assert "scrapeClasses" in chart_values_of(cap, "dev")["prometheus"]["prometheusSpec"]


def test_no_mesh_no_mesh_telemetry():
    cap = variant()
    assert not mon(cap, "PodMonitor", "dev")
    assert "istiod" not in {m["metadata"]["name"] for m in mon(cap, "ServiceMonitor", "dev")}
    assert all("scrapeClass" not in m["spec"] for m in mon(cap, "ServiceMonitor", "dev"))
    assert "scrapeClasses" not in chart_values_of(cap, "dev")["prometheus"]["prometheusSpec"]
    assert not [c for c in mon(cap, "ConfigMap", "dev") if c["metadata"]["name"] == "dashboard-mesh-overview"]


def test_grafana_port_forward_by_default():
    cap = capture_stack("dev")
    assert not mon(cap, "VirtualService", "dev")
    assert "grafana.ini" not in chart_values_of(cap, "dev")["grafana"]
    assert cap.outputs["clusters"]["dev"]["monitoring"]["grafana"] == PORT_FORWARD
    assert PORT_FORWARD == "kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80"


def test_grafana_through_the_gateway_under_a_path():
    cap = exposed()
    (vs,) = mon(cap, "VirtualService", "dev")
    spec = vs["spec"]
    assert spec["gateways"] == ["istio-system/public-gateway"] and spec["hosts"] == ["*"]
    assert spec["http"][0]["match"] == [{"uri": {"exact": "/grafana"}}, {"uri": {"prefix": "/grafana/"}}]
    dest = spec["http"][0]["route"][0]["destination"]
    assert dest == {"host": "kube-prometheus-stack-grafana.monitoring.svc.cluster.local", "port": {"number": 80}}
    assert validate_custom_resource(vs) == []
    server = chart_values_of(cap, "dev")["grafana"]["grafana.ini"]["server"]
    assert server["serve_from_sub_path"] is True and server["root_url"].endswith("/grafana/")
    (reg,) = [r for r in regs_of(cap, "VirtualService", "dev") if unwrap(r.inputs)["metadata"]["namespace"] == NS]
    assert chart_reg(cap, "dev").urn in reg.depends_on


def test_grafana_on_its_own_host():
    args = MonitoringStackArgs(cluster="p", expose_grafana=True, grafana_host="grafana.example.com",
                               ingress_hosts=["shop.example.com"])
    spec = grafana_virtual_service_spec(args)
    assert spec["hosts"] == ["grafana.example.com"] and "match" not in spec["http"][0]
    assert grafana_access(args) == "https://grafana.example.com/"
    assert values.grafana_server_ini(True, "grafana.example.com") == {
        "domain": "grafana.example.com", "root_url": "https://grafana.example.com/"}


def test_layer_warns_about_unroutable_host_and_inexact_buckets():
    def change(raw):
        raw["monitoring"].update(expose_grafana=True, grafana_host="grafana.example.com")
        raw["services"][0]["slo"]["latency_ms"] = 400
    cfg = check_config(with_changes("prod", change))
    warnings = layer.config_warnings(cfg, cfg.clusters[0])
    assert any("not among mesh.ingress.hosts" in w for w in warnings)
    assert any("'user'" in w and "300ms" in w for w in warnings)
    assert not layer.config_warnings(config_of("prod"), config_of("prod").clusters[0])
    assert layer.host_served("grafana.example.com", ["*.example.com"])


# --------------------------------------------------------------------------------- footprint


def test_footprint_counts_the_values_given_to_the_chart():
    cfg = config_of("dev")
    cluster = cfg.clusters[0]
    items = {w.name: w for w in layer.footprint(cfg, cluster)}
    v = values.chart_values(tier="dev", cluster="dev", cloud="local", retention="2d", storage="5Gi", mesh=True)
    assert items["prometheus"].replicas == v["prometheus"]["prometheusSpec"]["replicas"] == 1
    assert items["alertmanager"].replicas == v["alertmanager"]["alertmanagerSpec"]["replicas"] == 1
    assert items["node-exporter"].replicas == 1  # one kind node
    assert items["grafana"] == Workload.of("monitoring", "grafana", 1, v["grafana"]["resources"])
    assert items["prometheus"] == Workload.of("monitoring", "prometheus", 1,
                                              v["prometheus"]["prometheusSpec"]["resources"])
    assert items["prometheus-config-reloader"] == Workload.of(
        "monitoring", "prometheus-config-reloader", 1, v["prometheusOperator"]["prometheusConfigReloader"]["resources"])
    assert items["prometheus-istio-proxy"].cpu_request == 10 and items["prometheus-istio-proxy"].memory_request == 40
    assert {"grafana-sc-dashboard", "grafana-sc-datasources", "kube-state-metrics", "prometheus-operator",
            "alertmanager-config-reloader"} <= set(items)
    cpu, mem, _, _ = totals(list(items.values()))
    assert (cpu, mem) == (225, 976)  # what the chart's render requests (docs/monitoring.md)


def test_prod_footprint_is_ha_and_node_exporter_per_node():
    cfg = config_of("prod")
    for cluster in cfg.clusters:
        items = {w.name: w for w in layer.footprint(cfg, cluster)}
        assert items["prometheus"].replicas == 2 and items["alertmanager"].replicas == 3
        assert items["node-exporter"].replicas == sum(p.max_size for p in cluster.node_pools)


def test_disabled_monitoring_deploys_and_counts_nothing():
    raw = {"tier": "dev", "clusters": [{"name": "dev", "cloud": "local"}], "monitoring": {"enabled": False},
           "mesh": {"enabled": False}}
    cfg = check_config(raw)
    assert layer.footprint(cfg, cfg.clusters[0]) == []
    cap = capture_raw(raw, "nomon")
    assert not [r for r in cap.resources if r.type.startswith("cnplatform:monitoring:")]


AMTOOL = shutil.which("amtool")


@pytest.mark.skipif(not AMTOOL, reason="amtool not installed")
def test_alertmanager_config_accepted_and_routes_by_amtool(tmp_path):
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(alerting.alertmanager_config(RECEIVERS)))
    proc = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def route(*labels):
        out = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={path}", *labels],
                             capture_output=True, text=True)
        return out.stdout.strip().split(",")

    assert route("severity=page", "service=user", "alertname=SLOErrorBudgetBurn") == ["oncall", "mail"]
    assert route("severity=ticket", "service=user") == ["team-slack"]
    assert route("severity=critical", "alertname=KubeAPIDown") == ["oncall", "mail"]
    assert route("severity=info") == ["null"]
    assert route("alertname=Watchdog", "severity=none") == ["null"]


def test_service_monitoring_objects_are_children_of_the_stack_with_no_component_per_service():
    capture = capture_stack("dev")
    assert not capture.by_type("cnplatform:monitoring:ServiceMonitoring")
    stack_urns = {r.urn for r in capture.by_type("cnplatform:monitoring:MonitoringStack")}
    rules = capture.by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert len(rules) == len(capture.config.services) and all(r.parent in stack_urns for r in rules)


def test_standalone_service_monitoring_makes_the_same_objects_as_the_stack():
    from cnplatform.monitoring.service import ServiceMonitoring, ServiceMonitoringArgs
    from stacks.render import is_k8s_object, manifest_of
    from tests.helpers import run_program

    cfg = config_of("dev")
    svc = cfg.services[0]
    args = layer.monitoring_args(cfg, cfg.clusters[0], {})
    monitored = next(s for s in args.services if s.name == svc.name)
    standalone = run_program(lambda: {"g": ServiceMonitoring("alone", ServiceMonitoringArgs(
        service=monitored.name, namespace=monitored.namespace, availability=monitored.availability,
        latency_ms=monitored.latency_ms, latency_target=monitored.latency_target,
        latency_buckets=list(args.latency_buckets), mtls_scrape_class="istio-mtls" if args.mesh else None,
    )).rule_group}, stack="test", raw={})
    alone = sorted((manifest_of(r) for r in standalone.resources if r.type.startswith("kubernetes:")),
                   key=lambda d: d["kind"])
    capture = capture_stack("dev")
    ours = sorted((manifest_of(r) for r in capture.resources if is_k8s_object(r)
                   and r.parent in {p.urn for p in capture.by_type("cnplatform:monitoring:MonitoringStack")}
                   and manifest_of(r)["metadata"]["name"] in (svc.name, f"dashboard-{svc.name}", f"{svc.name}-slo")),
                  key=lambda d: d["kind"])
    assert len(alone) == 3 and alone == ours
    assert standalone.outputs["g"] == alone[1]["spec"]["groups"][0]["name"]
