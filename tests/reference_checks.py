"""Checks against the pinned upstream reference data in tests/reference/.

- :func:`validate_custom_resource`: a custom resource against its CRD's ``openAPIV3Schema`` with
  API-server semantics for unknown fields (rejected unless ``x-kubernetes-preserve-unknown-fields``
  or ``additionalProperties``), ``nullable`` and ``x-kubernetes-int-or-string``.
- :func:`unknown_values_keys`: every key path a Helm values dict sets must exist in the chart's
  upstream ``values.yaml`` (subcharts merged under their key, Istio's internal defaults unwrapped).
"""
from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

REFERENCE = Path(__file__).resolve().parent / "reference"


# ------------------------------------------------------------------------------------------ CRDs


@lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str, str], dict]:
    """(group, version, kind) -> openAPIV3Schema for every CRD in tests/reference/crds."""
    out = {}
    for path in sorted((REFERENCE / "crds").rglob("*.yaml")):
        for doc in load_yaml_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema:
                    out[(spec["group"], version["name"], spec["names"]["kind"])] = schema
    return out


def _to_json_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: _to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_to_json_schema(v) for v in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    return out


@lru_cache(maxsize=None)
def _validator(group: str, version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = _to_json_schema(crd_schemas()[(group, version, kind)])
    # metadata is an ObjectMeta, validated by the API server itself; require a name like it does.
    schema.setdefault("properties", {}).update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}})
    schema["properties"]["metadata"] = {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}},
    }
    return jsonschema.Draft7Validator(schema)


def validate_custom_resource(doc: dict) -> list[str]:
    """Errors of ``doc`` against its CRD; raises KeyError when no reference CRD covers the kind."""
    group, _, version = doc["apiVersion"].rpartition("/")
    validator = _validator(group, version, doc["kind"])
    name = (doc.get("metadata") or {}).get("name")
    return [f"{doc['kind']}/{name}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


# ----------------------------------------------------------------------------------- Helm values

#: Keys whose content is Kubernetes (or free-form) data passed through by the charts.
PASS_THROUGH = {
    "resources", "securityContext", "podSecurityContext", "containerSecurityContext",
    "podSecurityContextOverride", "affinity", "tolerations", "nodeSelector", "annotations", "labels",
    "podAnnotations", "podLabels", "serviceAnnotations", "serviceLabels", "deploymentAnnotations",
    "deploymentLabels", "commonLabels", "additionalLabels", "extraLabels", "env", "extraEnv", "envFrom",
    "extraEnvFrom", "volumes", "volumeMounts", "extraVolumes", "extraVolumeMounts", "topologySpreadConstraints",
    "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "dnsConfig", "imagePullSecrets",
    "matchLabels", "matchExpressions", "storageSpec", "volumeClaimTemplate", "podMetadata", "hostAliases",
    "initContainers", "containers", "extraContainers", "sidecars", "extraObjects", "extraManifests",
    "autoscaleBehavior", "behavior", "strategy", "updateStrategy", "seccompProfile", "capabilities",
    "serviceAccountAnnotations", "podDisruptionBudget", "nodeAffinity", "podAffinity", "podAntiAffinity",
}
#: Free-form paths per chart (their content is the application's own config, not chart keys).
OPEN_PATHS = {
    "istiod": ["meshConfig", "meshConfig.*", "global.meshNetworks", "global.meshNetworks.*",
               "sidecarInjectorWebhook.templates", "sidecarInjectorWebhook.templates.*", "gateways.*"],
    "gateway": ["service.ports", "labels", "networkGateway"],
    "jenkins": ["controller.JCasC.configScripts.*", "controller.initScripts.*", "agent.podTemplates.*",
                "additionalAgents.*", "additionalClouds.*", "controller.ingress.*"],
    "kube-prometheus-stack": ["alertmanager.config", "alertmanager.config.*", "grafana.grafana.ini.*",
                              "grafana.datasources.*", "grafana.dashboardProviders.*", "grafana.dashboards.*",
                              "additionalPrometheusRulesMap.*", "prometheus.prometheusSpec.additionalConfig.*",
                              "alertmanager.alertmanagerSpec.additionalConfig.*", "customRules.*",
                              "defaultRules.additionalRuleLabels.*", "defaultRules.disabled.*",
                              "prometheus.prometheusSpec.externalLabels.*", "*.serviceMonitor.additionalLabels.*"],
}

#: Keys a chart's templates read and its values.yaml documents only as a commented-out default
#: (so they are absent from the parsed values). Each is named in the chart's values.yaml.
COMMENTED_DEFAULTS = {
    # istiod values.yaml: "# validationFailurePolicy: Fail" under base:, read by both charts' validators.
    "istiod": ["base.validationFailurePolicy"],
    "base": ["base.validationFailurePolicy"],
    # grafana values.yaml: "# useExistingRole: name-of-some-role" under rbac:. "# priorityClassName:" of
    # grafana, kube-state-metrics, node-exporter and prometheusOperator (each read by its pod template).
    "kube-prometheus-stack": ["grafana.rbac.useExistingRole", "grafana.priorityClassName",
                              "kube-state-metrics.priorityClassName", "prometheus-node-exporter.priorityClassName",
                              "prometheusOperator.priorityClassName"],
}

#: Keys a chart's templates read that its values.yaml does not declare at all (not even commented).
TEMPLATE_ONLY_KEYS = {
    # istio-cni 1.29.6 templates/zzz_profile.yaml: coalesce .Values.platform .Values.global.platform
    # selects files/profile-platform-<name>.yaml (Istio's documented platform profiles, e.g. gke).
    "cni": ["global.platform"],
}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when available: ~10x faster
    """Safe loader tolerating the '=' value tag some CRDs use as a key (PyYAML issue 89)."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: str(node.value))


def load_yaml_all(text: str):
    return yaml.load_all(text, Loader=_Loader)


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)
#: Subcharts of a chart: values under these keys are checked against the subchart's values.yaml.
SUBCHARTS = {
    "kube-prometheus-stack": {
        "grafana": "kube-prometheus-stack/subcharts/grafana",
        "kube-state-metrics": "kube-prometheus-stack/subcharts/kube-state-metrics",
        "prometheus-node-exporter": "kube-prometheus-stack/subcharts/prometheus-node-exporter",
        "prometheus-windows-exporter": "kube-prometheus-stack/subcharts/prometheus-windows-exporter",
        "crds": "kube-prometheus-stack/subcharts/crds",
    },
}
#: The reference folder of each chart name we deploy.
CHART_DIRS = {"base": "istio-base", "istiod": "istiod", "gateway": "istio-gateway", "cni": "istio-cni"}


@lru_cache(maxsize=None)
def upstream_values(chart: str) -> dict:
    folder = CHART_DIRS.get(chart, chart)
    values = load_yaml((REFERENCE / "helm-values" / folder / "values.yaml").read_text()) or {}
    if "_internal_defaults_do_not_set" in values:  # Istio charts
        inner = values.pop("_internal_defaults_do_not_set")
        values = {**inner, **values}
    for key, sub in SUBCHARTS.get(folder, {}).items():
        values[key] = _deep_merge(upstream_values(sub), values.get(key) or {})
    return values


def _deep_merge(base: dict, over: dict) -> dict:
    """Helm's coalescing of a parent chart's values over a subchart's: nested maps merge key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def chart_version(chart: str) -> str:
    """The published version of the pinned chart (SOURCES.json: Istio's in-repo Chart.yaml says 1.0.0)."""
    import json

    folder = CHART_DIRS.get(chart, chart)
    return str(json.loads((REFERENCE / "SOURCES.json").read_text())["helm_charts"][folder]["chart_version"])


def unknown_values_keys(chart: str, values: dict, open_paths: Iterable[str] = ()) -> list[str]:
    """Key paths of ``values`` that the chart's values.yaml does not have."""
    unknown: list[str] = []
    patterns = [*OPEN_PATHS.get(chart, []), *COMMENTED_DEFAULTS.get(chart, []),
                *TEMPLATE_ONLY_KEYS.get(chart, []), *open_paths]
    if chart == "istiod" and isinstance(values.get("pilot"), dict):
        # istiod's templates merge `.pilot` over `.` (zzy_descope_legacy.yaml): pilot.X means X.
        values = {**{k: v for k, v in values.items() if k != "pilot"}, **values["pilot"]}

    def walk(ours: Any, theirs: Any, path: str) -> None:
        if not isinstance(ours, dict):
            return
        for key, value in ours.items():
            here = f"{path}.{key}" if path else str(key)
            if key in PASS_THROUGH or any(fnmatch.fnmatchcase(here, p) for p in patterns):
                continue
            if not isinstance(theirs, dict) or key not in theirs:
                unknown.append(here)
                continue
            upstream = theirs[key]
            if not isinstance(upstream, dict) or not upstream:
                continue
            walk(value, upstream, here)

    walk(values, upstream_values(chart), "")
    return unknown
