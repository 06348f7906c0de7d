"""Issue #19 items 10 and 13: priority classes and HA of the platform's own pods; capacity at HPA maxima."""
from __future__ import annotations

import pytest

from cnplatform.cluster import priority as P
from cnplatform.mesh import values as mesh_values
from cnplatform.monitoring import values as MV
from cnplatform.validation import ArgsError
from stacks.checks import composition_errors
from stacks.checks import footprint as F
from stacks.compose.layers.mesh import mesh_args
from stacks.config import TIERS, ConfigError
from tests.helpers import capture_raw, capture_stack, config_of, objects, transitive_waits, with_changes

CHART = "kubernetes:helm.sh/v4:Chart"


def chart_values(capture, cluster: str) -> dict[str, dict]:
    """Release name -> the values the chart got, on one cluster."""
    return {r.inputs.get("name"): r.inputs.get("values") or {} for r in capture.resources
            if r.type == CHART and capture.cluster_of(r) == cluster}


def waits_for(capture) -> dict[str, set[str]]:
    """urn -> every urn it (transitively) depends on."""
    return transitive_waits({r.urn: set(r.depends_on) for r in capture.resources})


# ------------------------------------------------------------------------------------ priority classes


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_cluster_gets_the_platform_priority_classes(stack):
    cap = capture_stack(stack)
    for cluster in config_of(stack).clusters:
        classes = {o["metadata"]["name"]: o for o in objects(cap, "PriorityClass", cluster.name)}
        assert set(classes) == {P.PLATFORM_CRITICAL, P.PLATFORM}
        assert classes[P.PLATFORM_CRITICAL]["value"] > classes[P.PLATFORM]["value"] > 0
        assert all(not c.get("globalDefault") for c in classes.values())  # the services stay at 0


def test_every_platform_pod_names_its_class():
    cap = capture_stack("prod")
    for cluster in ("prod-eks", "prod-gke"):
        v = chart_values(cap, cluster)
        assert v["istiod"]["global"]["priorityClassName"] == P.PLATFORM_CRITICAL
        assert v["gateway"]["priorityClassName"] == P.PLATFORM_CRITICAL
        assert v["cert-manager"]["global"]["priorityClassName"] == P.PLATFORM_CRITICAL
        kps = v["kube-prometheus-stack"]
        for section in (kps["prometheus"]["prometheusSpec"], kps["alertmanager"]["alertmanagerSpec"],
                        kps["prometheusOperator"], kps["grafana"], kps["kube-state-metrics"],
                        kps["prometheus-node-exporter"]):
            assert section["priorityClassName"] == P.PLATFORM
        # kube-system add-ons keep the system classes (GKE admits those there only).
        assert "priorityClassName" not in v["istio-cni"]
    assert chart_values(cap, "prod-eks")["metrics-server"]["priorityClassName"] == P.SYSTEM_CLUSTER_CRITICAL
    jenkins = next(v for c in ("prod-eks", "prod-gke") for n, v in chart_values(cap, c).items() if n == "jenkins")
    assert jenkins["controller"]["priorityClassName"] == P.PLATFORM


def test_charts_wait_for_the_priority_classes():
    """A pod naming a missing PriorityClass is rejected at admission: every chart comes after them."""
    cap = capture_stack("prod")
    deps = waits_for(cap)
    classes: dict[str, set[str]] = {}
    for r in cap.resources:
        if r.type == "kubernetes:scheduling.k8s.io/v1:PriorityClass":
            classes.setdefault(cap.cluster_of(r), set()).add(r.urn)
    # Karpenter is the EKS cluster's own (before any layer), in kube-system at system-cluster-critical.
    charts = [r for r in cap.resources if r.type == CHART and "karpenter" not in r.name]
    assert len(charts) >= 10
    early = [r.name for r in charts if not classes[cap.cluster_of(r)] <= deps[r.urn]]
    assert not early


def test_priority_args_are_checked():
    with pytest.raises(ArgsError):
        P.PlatformPriorityClassesArgs(critical_value=10, platform_value=100)
    with pytest.raises(ArgsError):
        P.PlatformPriorityClassesArgs(critical_value=2_000_000_000)
    for bad in ("system-mine", "Upper", "-x", ""):
        with pytest.raises(ValueError):
            P.priority_class_name(bad)
    assert P.priority_class_name("system-cluster-critical") == "system-cluster-critical"


def test_no_class_unless_asked():
    """A library user without the platform's classes gets pods the API server admits (no class named)."""
    args = mesh_args(config_of("dev"), config_of("dev").clusters[0])
    args.priority_class_name = None
    assert "priorityClassName" not in mesh_values.istiod_values(args)["global"]
    assert "priorityClassName" not in mesh_values.gateway_values(args)
    values = MV.chart_values(tier="prod", cluster="c", cloud="aws", retention="7d", storage="20Gi")
    assert "priorityClassName" not in values["grafana"] and "priorityClassName" not in values["prometheusOperator"]


# ------------------------------------------------------------------------------------------------ HA


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_grafana_replicas_and_pdb_per_tier(stack):
    cfg = config_of(stack)
    cap = capture_stack(stack)
    want = TIERS[cfg.tier].grafana_replicas
    assert want == (1 if cfg.tier == "dev" else 2)
    for cluster in cfg.clusters:
        grafana = chart_values(cap, cluster.name)["kube-prometheus-stack"]["grafana"]
        assert grafana["replicas"] == want
        assert grafana.get("podDisruptionBudget") == ({"minAvailable": 1} if want > 1 else None)
        counted = {w.name: w.replicas for w in F.workloads(cfg, cluster) if w.layer == "monitoring"}
        assert counted["grafana"] == counted["grafana-sc-dashboard"] == want


def test_grafana_sessions_stick_to_a_pod_through_the_gateway():
    kw = dict(tier="prod", cluster="c", cloud="aws", retention="7d", storage="20Gi", grafana_replicas=2)
    exposed = MV.chart_values(**kw, mesh=True, expose_grafana=True)["grafana"]
    (rule,) = exposed["extraObjects"]
    assert rule["kind"] == "DestinationRule" and rule["spec"]["host"].startswith(MV.GRAFANA_SERVICE + ".")
    assert rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["httpCookie"]["name"]
    assert "extraObjects" not in MV.chart_values(**kw, mesh=True)["grafana"]  # port-forward: one pod anyway
    assert "extraObjects" not in MV.chart_values(**{**kw, "grafana_replicas": 1}, mesh=True, expose_grafana=True)[
        "grafana"]


# ------------------------------------------------------------------------------------- capacity at maxima


def test_maxima_count_every_hpa_at_max():
    cfg = config_of("prod")
    gke = cfg.clusters[1]
    maxima = F.autoscaled_maxima(cfg, gke)
    assert maxima["istiod"] == TIERS["prod"].mesh_sizing["istiod_autoscale_max"]
    assert maxima["istio-ingressgateway"] == TIERS["prod"].mesh_sizing["gateway_autoscale_max"]
    low = {w.name: w.replicas for w in F.workloads(cfg, gke)}
    high = {w.name: w.replicas for w in F.workloads(cfg, gke, at_max=True)}
    assert high["istiod"] > low["istiod"] and high["user"] > low["user"]
    assert high["user-istio-proxy"] == high["user"]
    assert F.totals(F.workloads(cfg, gke, at_max=True))[0] > F.totals(F.workloads(cfg, gke))[0]


def _pool_max(size: int):
    def change(raw):
        raw["clusters"][1]["node_pools"][0]["max_size"] = size
    return change


def test_a_pool_that_fits_the_minima_but_not_the_hpa_maxima_is_an_error():
    """prod-gke before the fix: 3 x e2-standard-4 held the minima, not what the HPAs may ask for."""
    raw = with_changes("prod", _pool_max(3))
    raw["clusters"][1]["node_pools"][0]["min_size"] = 1
    from stacks.config import parse_config

    cfg = parse_config(raw)
    gke = cfg.clusters[1]
    cap = F.cluster_capacity(gke, cfg)
    assert F.totals(F.workloads(cfg, gke))[0] <= cap.cpu_millicores  # the minima fit
    errors = [m for p, m in composition_errors(cfg) if p == "clusters[1]"]
    assert len(errors) == 1 and "maxima" in errors[0] and "max_size" in errors[0]
    with pytest.raises(ConfigError):
        capture_raw(raw)


def test_prod_pools_hold_the_maxima_and_the_report_shows_both():
    cfg = config_of("prod")
    for cluster in cfg.clusters:
        cap = F.cluster_capacity(cluster, cfg)
        cpu, mem, _, _ = F.totals(F.workloads(cfg, cluster, at_max=True))
        assert cpu <= cap.cpu_millicores and mem <= cap.memory_mib
    report = F.report(cfg)
    assert report.count("AT HPA MAXIMA") == len(cfg.clusters) and report.count("TOTAL") == len(cfg.clusters)
