"""Issue 18: one home for each repeated fact (the Pod Security label block, the SLO defaults, the
gateway TLS secret name): every user takes it from there, so changing it changes it everywhere."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cnplatform.mesh import istio_spec
from cnplatform.microservice.component import MicroserviceArgs
from cnplatform.monitoring import promql
from cnplatform.monitoring.service import ServiceMonitoringArgs
from cnplatform.monitoring.stack_spec import MonitoredService
from cnplatform.naming import pod_security_labels
from stacks.compose.layers import ingress_certificate
from stacks.config.services import Slo

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("components/cnplatform", "stacks") for p in sorted((ROOT / d).rglob("*.py"))]


def test_the_pod_security_label_keys_are_spelled_in_one_module():
    spelled = [p.relative_to(ROOT).as_posix() for p in SOURCES
               if '"pod-security.kubernetes.io/enforce"' in p.read_text()]
    assert spelled == ["components/cnplatform/naming.py"]


def test_pod_security_labels_enforce_warn_and_audit():
    assert pod_security_labels("restricted") == {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
    assert pod_security_labels("baseline", audit="restricted")["pod-security.kubernetes.io/audit"] == "restricted"


def _defaults(cls, prefix: str = "") -> tuple:
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    return tuple(fields[f"{prefix}{k}"] for k in ("availability", "latency_ms", "latency_target"))


@pytest.mark.parametrize("defaults", [
    _defaults(MicroserviceArgs, "slo_"), _defaults(ServiceMonitoringArgs), _defaults(MonitoredService),
    tuple(Slo.model_fields[k].default for k in ("availability", "latency_ms", "latency_target")),
], ids=["MicroserviceArgs", "ServiceMonitoringArgs", "MonitoredService", "stack config"])
def test_every_layer_has_the_same_slo_defaults(defaults):
    assert defaults == (promql.SLO_AVAILABILITY, promql.SLO_LATENCY_MS, promql.SLO_LATENCY_TARGET)


def test_the_gateway_tls_secret_name_has_one_definition():
    assert ingress_certificate.DEFAULT_TLS_SECRET is istio_spec.DEFAULT_TLS_SECRET
    spelled = [p.relative_to(ROOT).as_posix() for p in SOURCES if 'TLS_SECRET = "' in p.read_text()]
    assert spelled == ["components/cnplatform/mesh/istio_spec.py"]
