"""kube-prometheus-stack: pinned chart, sizing per tier and the Helm values (pure).

The same :func:`sizing` feeds the chart values and the layer's footprint, so what the capacity check
counts is what the chart is asked to run.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

from cnplatform.monitoring.alerting import RECEIVERS_SECRET, ReceiverSpec, alertmanager_config
from cnplatform.quantity import memory_mib

CHART = "kube-prometheus-stack"
CHART_VERSION = "88.5.3"
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
#: Release name = chart name, so the chart's fullname is ``kube-prometheus-stack`` and the objects are
#: ``kube-prometheus-stack-grafana``, ``kube-prometheus-stack-prometheus``, ...
RELEASE = CHART
NAMESPACE = "monitoring"
GRAFANA_SERVICE = f"{RELEASE}-grafana"
GRAFANA_PORT = 80
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER_KEY = "admin-user"
GRAFANA_ADMIN_PASSWORD_KEY = "admin-password"
GRAFANA_SUBPATH = "/grafana"
#: The Role (ours, in ``monitoring``) Grafana's sidecars run under: read ConfigMaps, nothing else.
GRAFANA_ROLE = f"{RELEASE}-grafana-configmaps"
GRAFANA_ROLE_RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
#: kube-state-metrics collectors turned off: ``secrets`` (a cluster-wide list/watch on every Secret).
KSM_EXCLUDED_COLLECTORS = ("secrets",)

#: The label Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules by. The chart puts it
#: on its own objects; every object of this program that should be picked up carries it too.
SCRAPE_SELECTOR = {"release": RELEASE}

#: Pod Security Standards level of the ``monitoring`` namespace: every pod there meets ``restricted``.
POD_SECURITY = "restricted"
#: node-exporter needs hostNetwork, hostPID and hostPath mounts, which only ``privileged`` admits: it
#: runs alone in its own namespace, so ``monitoring`` stays ``restricted``.
NODE_EXPORTER_NAMESPACE = "node-exporter"
NODE_EXPORTER_POD_SECURITY = "privileged"
#: node-exporter still runs non-root (the chart's 65534), with RuntimeDefault seccomp and no capability.
NODE_EXPORTER_POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                      "fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}}
NODE_EXPORTER_CONTAINER_SECURITY_CONTEXT = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}


def _res(cpu_req: str, mem_req: str, cpu_lim: str, mem_lim: str) -> dict:
    return {"requests": {"cpu": cpu_req, "memory": mem_req}, "limits": {"cpu": cpu_lim, "memory": mem_lim}}


#: Container resources per size class. ``config-reloader`` runs in the Prometheus and the Alertmanager
#: pods (set through the operator); ``grafana-sidecar`` is each of Grafana's two sidecars
#: (dashboards, datasources).
SIZES: dict[str, dict[str, dict]] = {
    # dev: one kind node, a handful of targets (sources of each figure: docs/footprint.md).
    "small": {
        "prometheus": _res("100m", "400Mi", "1", "1536Mi"),
        "alertmanager": _res("10m", "48Mi", "100m", "128Mi"),
        "config-reloader": _res("10m", "24Mi", "50m", "48Mi"),
        "grafana": _res("25m", "192Mi", "500m", "384Mi"),
        "grafana-sidecar": _res("10m", "64Mi", "100m", "128Mi"),
        "prometheus-operator": _res("20m", "64Mi", "200m", "192Mi"),
        "kube-state-metrics": _res("10m", "32Mi", "100m", "128Mi"),
        "node-exporter": _res("10m", "24Mi", "200m", "64Mi"),
        "prometheus-istio-proxy": _res("10m", "40Mi", "200m", "256Mi"),
    },
    "production": {
        "prometheus": _res("500m", "2Gi", "2", "4Gi"),
        "alertmanager": _res("50m", "128Mi", "200m", "256Mi"),
        "config-reloader": _res("20m", "32Mi", "100m", "64Mi"),
        "grafana": _res("200m", "512Mi", "1", "1Gi"),
        "grafana-sidecar": _res("50m", "128Mi", "200m", "256Mi"),
        "prometheus-operator": _res("100m", "128Mi", "500m", "512Mi"),
        "kube-state-metrics": _res("50m", "128Mi", "250m", "256Mi"),
        "node-exporter": _res("50m", "64Mi", "250m", "128Mi"),
        "prometheus-istio-proxy": _res("50m", "128Mi", "500m", "512Mi"),
    },
}
TIER_SIZE = {"dev": "small", "staging": "production", "prod": "production"}
#: (Prometheus replicas, Alertmanager replicas): HA only in prod (two independent Prometheus scraping
#: the same targets; a three-member Alertmanager gossip cluster deduplicating notifications).
TIER_REPLICAS = {"dev": (1, 1), "staging": (1, 1), "prod": (2, 3)}
#: Scrape class whose TLS files are the Istio workload certificate of Prometheus' own sidecar.
ISTIO_MTLS_SCRAPE_CLASS = "istio-mtls"
#: Where Prometheus' sidecar writes its certificate (OUTPUT_CERTS) and where Prometheus reads it.
ISTIO_OUTPUT_CERTS = "/etc/istio-output-certs"
PROMETHEUS_CERTS = "/etc/prom-certs"
#: Grafana's sidecars in the pod (both use ``grafana.sidecar.resources``).
GRAFANA_SIDECARS = ("grafana-sc-dashboard", "grafana-sc-datasources")


@dataclass(frozen=True)
class Sizing:
    """Replicas and container resources of every workload the chart runs, for one tier."""

    tier: str
    prometheus_replicas: int
    alertmanager_replicas: int
    resources: dict = field(hash=False)

    def of(self, container: str) -> dict:
        return copy.deepcopy(self.resources[container])


def sizing(tier: str) -> Sizing:
    """A pure function of the tier: ``dev`` small and single-replica, ``prod`` production-size and HA."""
    if tier not in TIER_SIZE:
        raise ValueError(f"unknown tier {tier!r}")
    prom, am = TIER_REPLICAS[tier]
    return Sizing(tier, prom, am, copy.deepcopy(SIZES[TIER_SIZE[tier]]))


def workloads(tier: str, nodes: int, mesh: bool = False, grafana_replicas: int = 1) -> list[tuple[str, int, dict]]:
    """(container, pod count, resources) of everything the chart runs; ``nodes`` for the DaemonSet,
    ``mesh`` for the Istio sidecar of the Prometheus pods (mTLS scrapes, :func:`istio_mtls_values`)."""
    s = sizing(tier)
    extra = [("prometheus-istio-proxy", s.prometheus_replicas, s.of("prometheus-istio-proxy"))] if mesh else []
    return [
        ("prometheus", s.prometheus_replicas, s.of("prometheus")),
        ("prometheus-config-reloader", s.prometheus_replicas, s.of("config-reloader")),
        ("alertmanager", s.alertmanager_replicas, s.of("alertmanager")),
        ("alertmanager-config-reloader", s.alertmanager_replicas, s.of("config-reloader")),
        ("grafana", grafana_replicas, s.of("grafana")),
        *[(name, grafana_replicas, s.of("grafana-sidecar")) for name in GRAFANA_SIDECARS],
        ("prometheus-operator", 1, s.of("prometheus-operator")),
        ("kube-state-metrics", 1, s.of("kube-state-metrics")),
        ("node-exporter", nodes, s.of("node-exporter")),
        *extra,
    ]


def retention_size(storage: str) -> str:
    """Size-based retention at 85% of the volume, so Prometheus deletes old blocks before the disk is
    full (time-based ``retention`` alone can fill a volume); Prometheus' MB are MiB."""
    return f"{int(memory_mib(storage) * 0.85)}MB"


def storage_spec(storage: str, storage_class: Optional[str]) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"volumeClaimTemplate": {"spec": spec}}


def grafana_server_ini(expose: bool, host: Optional[str]) -> dict:
    """``grafana.ini`` [server] for the mesh ingress: on ``host`` at ``/``, or under ``/grafana``."""
    if not expose:
        return {}
    if host:
        return {"domain": host, "root_url": f"https://{host}/"}
    return {"root_url": f"%(protocol)s://%(domain)s:%(http_port)s{GRAFANA_SUBPATH}/", "serve_from_sub_path": True}


def istio_mtls_values(s: Sizing) -> dict:
    """prometheusSpec additions so Prometheus can scrape ``/metrics`` of STRICT-mTLS workloads.

    Istio's documented pattern: Prometheus gets a sidecar that intercepts nothing (no inbound, no
    outbound capture) and only writes its workload certificate to a shared in-memory volume
    (``OUTPUT_CERTS``); the ``istio-mtls`` scrape class points Prometheus' TLS client at those files.
    The sidecar's size is pinned with annotations so the footprint counts what runs.
    """
    proxy = s.of("prometheus-istio-proxy")
    return {
        "podMetadata": {
            "labels": {"sidecar.istio.io/inject": "true"},
            "annotations": {
                "traffic.sidecar.istio.io/includeInboundPorts": "",
                "traffic.sidecar.istio.io/includeOutboundIPRanges": "",
                "proxy.istio.io/config": '{"proxyMetadata": {"OUTPUT_CERTS": "%s"}}' % ISTIO_OUTPUT_CERTS,
                "sidecar.istio.io/userVolumeMount": '[{"name": "istio-certs", "mountPath": "%s"}]' % ISTIO_OUTPUT_CERTS,
                "sidecar.istio.io/proxyCPU": proxy["requests"]["cpu"],
                "sidecar.istio.io/proxyMemory": proxy["requests"]["memory"],
                "sidecar.istio.io/proxyCPULimit": proxy["limits"]["cpu"],
                "sidecar.istio.io/proxyMemoryLimit": proxy["limits"]["memory"],
            },
        },
        "volumes": [{"name": "istio-certs", "emptyDir": {"medium": "Memory"}}],
        "volumeMounts": [{"name": "istio-certs", "mountPath": PROMETHEUS_CERTS, "readOnly": True}],
        "scrapeClasses": [{
            "name": ISTIO_MTLS_SCRAPE_CLASS,
            "tlsConfig": {
                "caFile": f"{PROMETHEUS_CERTS}/root-cert.pem",
                "certFile": f"{PROMETHEUS_CERTS}/cert-chain.pem",
                "keyFile": f"{PROMETHEUS_CERTS}/key.pem",
            },
        }],
    }


def _selector_block(kind: str) -> dict:
    """Select ``kind`` objects by :data:`SCRAPE_SELECTOR` in every namespace (explicit, not the chart's
    implicit "nil uses Helm values")."""
    return {
        f"{kind}SelectorNilUsesHelmValues": False,
        f"{kind}Selector": {"matchLabels": dict(SCRAPE_SELECTOR)},
        f"{kind}NamespaceSelector": {},
    }


def grafana_ha(replicas: int) -> dict:
    """Grafana's replicas and, above one, a PodDisruptionBudget (a drain keeps one pod serving).

    Each pod is stateless apart from its own SQLite on an emptyDir (the chart's default, persistence
    off): dashboards and datasources come from ConfigMaps through the sidecars, the admin from a
    Secret, and nothing else is kept (no Grafana-managed alert rules: alerting is Prometheus'). A login
    session is a row of one pod's database: through the mesh gateway a session sticks to a pod
    (:func:`grafana_session_affinity`); a port-forward holds one pod anyway."""
    return {"replicas": replicas, **({"podDisruptionBudget": {"minAvailable": 1}} if replicas > 1 else {})}


#: Cookie the mesh gateway pins a browser to one Grafana pod by (Envoy sets it on the first response).
GRAFANA_AFFINITY_COOKIE = "grafana-pod"


def grafana_session_affinity() -> dict:
    """A DestinationRule (the Grafana chart's ``extraObjects``) hashing requests to Grafana on a cookie
    Envoy issues: a browser keeps talking to the pod whose database holds its login session."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "grafana-session-affinity", "namespace": NAMESPACE},
        "spec": {"host": f"{GRAFANA_SERVICE}.{NAMESPACE}.svc.cluster.local", "trafficPolicy": {"loadBalancer": {
            "consistentHash": {"httpCookie": {"name": GRAFANA_AFFINITY_COOKIE, "path": "/", "ttl": "0s"}}}}},
    }


def with_priority(values: dict, priority_class: Optional[str]) -> dict:
    """Every pod of the chart in ``priority_class`` (Prometheus, Alertmanager, the operator, Grafana,
    kube-state-metrics, node-exporter): each section's own ``priorityClassName`` key."""
    if not priority_class:
        return values
    for section in (values["prometheus"]["prometheusSpec"], values["alertmanager"]["alertmanagerSpec"],
                    values["prometheusOperator"], values["grafana"], values["kube-state-metrics"],
                    values["prometheus-node-exporter"]):
        section["priorityClassName"] = priority_class
    return values


def chart_values(*, tier: str, cluster: str, cloud: str, retention: str, storage: str,
                 storage_class: Optional[str] = None, receivers: Optional[list[ReceiverSpec]] = None,
                 expose_grafana: bool = False, grafana_host: Optional[str] = None, mesh: bool = False,
                 grafana_replicas: int = 1, priority_class: Optional[str] = None) -> dict:
    """The kube-prometheus-stack values. No secret: Grafana's admin comes from ``grafana-admin``
    (``admin.existingSecret``), receivers' credentials are files of the mounted ``alertmanager-receivers``."""
    s = sizing(tier)
    receivers = receivers or []
    prod = tier == "prod"
    prometheus_spec = {
        "replicas": s.prometheus_replicas,
        "retention": retention,
        "retentionSize": retention_size(storage),
        "storageSpec": storage_spec(storage, storage_class),
        "resources": s.of("prometheus"),
        "externalLabels": {"cluster": cluster},
        **_selector_block("serviceMonitor"),
        **_selector_block("podMonitor"),
        **_selector_block("rule"),
        **(istio_mtls_values(s) if mesh else {}),
    }
    alertmanager_spec: dict = {"replicas": s.alertmanager_replicas, "resources": s.of("alertmanager")}
    if receivers:
        alertmanager_spec["secrets"] = [RECEIVERS_SECRET]
    grafana: dict = {
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": GRAFANA_ADMIN_USER_KEY,
                  "passwordKey": GRAFANA_ADMIN_PASSWORD_KEY},
        # Every dashboard and datasource is a ConfigMap in ``monitoring``: the sidecars watch only
        # their own namespace, ConfigMaps only, under a Role of ours (GRAFANA_ROLE, get/list/watch on
        # configmaps) instead of the chart's cluster-wide read of every Secret and ConfigMap.
        "rbac": {"namespaced": True, "useExistingRole": GRAFANA_ROLE},
        "sidecar": {
            "dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1",
                           "searchNamespace": NAMESPACE, "resource": "configmap"},
            "datasources": {"searchNamespace": NAMESPACE, "resource": "configmap"},
            "resources": s.of("grafana-sidecar"),
        },
        "resources": s.of("grafana"),
        "testFramework": {"enabled": False},
        **grafana_ha(grafana_replicas),
    }
    if grafana_replicas > 1 and mesh and expose_grafana:
        grafana["extraObjects"] = [grafana_session_affinity()]
    server = grafana_server_ini(expose_grafana, grafana_host)
    if server:
        grafana["grafana.ini"] = {"server": server}
    values = {
        "crds": {"enabled": True},
        "defaultRules": {"create": True},
        # Managed control planes (EKS, GKE) and kind (binds them to 127.0.0.1) do not expose these.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        # kube-proxy metrics listen on 127.0.0.1 in kind; GKE Dataplane V2 has no kube-proxy.
        "kubeProxy": {"enabled": cloud == "aws"},
        "prometheusOperator": {
            # helm.v4.Chart renders client-side and omits Helm hooks, i.e. the kube-webhook-certgen
            # Jobs that create the webhook/operator TLS Secret and patch the caBundle: the operator
            # pod (tls.enabled) would wait forever for that Secret. Rules are checked by promtool
            # before deploy instead (docs/decisions.md).
            "admissionWebhooks": {"enabled": False, "patch": {"enabled": False}},
            "tls": {"enabled": False},
            "resources": s.of("prometheus-operator"),
            "prometheusConfigReloader": {"resources": s.of("config-reloader")},
        },
        "prometheus": {
            "prometheusSpec": prometheus_spec,
            "podDisruptionBudget": {"enabled": prod, "minAvailable": 1},
        },
        "alertmanager": {
            "alertmanagerSpec": alertmanager_spec,
            "config": alertmanager_config(receivers),
            "podDisruptionBudget": {"enabled": prod, "minAvailable": 2 if prod else 1},
        },
        "grafana": grafana,
        # No Secret collector (nothing alerts or charts on kube_secret_*): kube-state-metrics then has
        # no cluster-wide list/watch on Secrets.
        "kube-state-metrics": {"resources": s.of("kube-state-metrics"),
                               "collectorsExclude": list(KSM_EXCLUDED_COLLECTORS)},
        "prometheus-node-exporter": {
            "namespaceOverride": NODE_EXPORTER_NAMESPACE,
            "resources": s.of("node-exporter"),
            "securityContext": dict(NODE_EXPORTER_POD_SECURITY_CONTEXT),
            "containerSecurityContext": dict(NODE_EXPORTER_CONTAINER_SECURITY_CONTEXT),
        },
    }
    return with_priority(values, priority_class)
