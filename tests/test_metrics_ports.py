"""Issue 20, item 6: the metrics ports the NetworkPolicies open are the ports something scrapes.

Prometheus scrapes each service's own ``/metrics`` on its app port through the sidecar (Istio mTLS,
authorised by the service's AuthorizationPolicy), Envoy's stats on 15090 (the envoy-stats PodMonitor)
and istiod on 15014. Nothing scrapes istio-agent's merged metrics on 15020, which would bypass mTLS
and authorization: the port is closed everywhere and merging is off.
"""
from __future__ import annotations

import pytest
import yaml

from cnplatform.monitoring import scrape
from tests.helpers import manifests

STACKS = ("dev", "staging", "prod")
MERGED_METRICS_PORT = 15020


def _ingress_ports(policy: dict) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("ingress") or [] for p in rule.get("ports") or []}


@pytest.mark.parametrize("stack", STACKS)
def test_no_network_policy_opens_the_merged_metrics_port(rendered, stack):
    policies = [doc for _, doc in manifests(rendered(stack)) if doc["kind"] == "NetworkPolicy"]
    assert policies, f"{stack}: no NetworkPolicy rendered"
    opening = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies
               if MERGED_METRICS_PORT in _ingress_ports(p)]
    assert not opening, f"{stack}: {opening} admit {MERGED_METRICS_PORT}, which nothing scrapes"


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_merge_is_off_in_every_istiod(rendered, stack):
    values = sorted(rendered(stack).glob("helm/*/istiod.yaml"))
    assert values, f"{stack}: no istiod values"
    for path in values:
        mesh = yaml.safe_load(path.read_text())["meshConfig"]
        assert mesh["enablePrometheusMerge"] is False, path


def test_every_port_opened_to_monitoring_on_services_is_scraped(rendered):
    """The services' monitoring ingress = the app port (ServiceMonitor) + Envoy's port (PodMonitor)."""
    scraped = {8080, scrape.ENVOY_PORT}
    for _, doc in manifests(rendered("dev")):
        if doc["kind"] != "NetworkPolicy" or doc["metadata"]["namespace"] != "shop":
            continue
        for rule in doc["spec"].get("ingress") or []:
            from_monitoring = any((peer.get("namespaceSelector") or {}).get("matchLabels", {})
                                  .get("kubernetes.io/metadata.name") == "monitoring" for peer in rule["from"])
            if from_monitoring:
                assert {p["port"] for p in rule["ports"]} <= scraped, doc["metadata"]["name"]
