"""NetworkPolicies of the platform's own namespaces: default-deny plus exactly what each component needs.

Pure functions return ``{policy name: spec}`` per namespace; :func:`create_network_policies` registers
them. The building blocks:

* DNS: kube-dns pods (``k8s-app: kube-dns`` on kind, EKS and GKE), UDP+TCP 53.
* API server: NetworkPolicy cannot select the control plane by label (on kind it is the node, on EKS
  ENIs in the VPC, on GKE a peered master CIDR), so it is TCP 443/6443 to any address (post-DNAT the
  ``kubernetes`` Service is the endpoint's port: 443 on EKS/GKE, 6443 on kind). Metadata servers
  (169.254.169.254:80) stay closed.
* Webhooks called by the API server: ingress on that port only, from any address (same reason).
* Scrapes: ingress on the metrics ports from the ``monitoring`` namespace only.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform.naming import MANAGED_BY

DEFAULT_DENY = "default-deny-all"
DNS_LABELS = {"k8s-app": "kube-dns"}
API_SERVER_PORTS = (443, 6443)
ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
MONITORING_NAMESPACE = "monitoring"
KUBE_SYSTEM = "kube-system"
#: Label and port of cert-manager's HTTP-01 solver pods.
ACME_SOLVER_LABEL = "acme.cert-manager.io/http01-solver"
ACME_SOLVER_PORT = 8089


def ns_selector(namespace: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def default_deny() -> dict:
    """Every pod of the namespace: no ingress, no egress, unless another policy allows it."""
    return {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def is_default_deny(spec: dict) -> bool:
    return (spec.get("podSelector") in ({}, None) and set(spec.get("policyTypes") or []) >= {"Ingress", "Egress"}
            and not spec.get("ingress") and not spec.get("egress"))


def dns_egress() -> dict:
    return {"to": [{**ns_selector(KUBE_SYSTEM), "podSelector": {"matchLabels": dict(DNS_LABELS)}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def api_server_egress() -> dict:
    return {"to": ANYWHERE, "ports": tcp(*API_SERVER_PORTS)}


def egress_policy(pod_selector: dict, rules: list[dict]) -> dict:
    return {"podSelector": pod_selector, "policyTypes": ["Egress"], "egress": rules}


def ingress_policy(pod_selector: dict, rules: list[dict]) -> dict:
    return {"podSelector": pod_selector, "policyTypes": ["Ingress"], "ingress": rules}


def same_namespace() -> dict:
    """Pods of the namespace reach each other (and nothing else by this policy)."""
    return {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]}


def scraped_from_monitoring(pod_selector: dict, *ports: int) -> dict:
    return ingress_policy(pod_selector, [{"from": [ns_selector(MONITORING_NAMESPACE)], "ports": tcp(*ports)}])


def _labels(**kv: str) -> dict:
    return {"matchLabels": dict(kv)}


# ---------------------------------------------------------------------------------- per namespace


def istio_system_policies(*, multicluster: bool = False) -> dict[str, dict]:
    """istiod: xDS/CA 15012 from every sidecar and gateway (and remote ones via the east-west gateway),
    webhooks 15017 from the API server, the API server (and, multi-cluster, the peers' API servers: the
    same ports). Gateways: egress to pods of the cluster (routes, istiod) and, multi-cluster, the remote
    east-west gateways on 15443."""
    istiod = _labels(app="istiod")
    gateway_egress = [{"to": [{"namespaceSelector": {}}]}, dns_egress()]
    if multicluster:
        gateway_egress.append({"to": ANYWHERE, "ports": tcp(15443)})
    return {
        DEFAULT_DENY: default_deny(),
        "istiod-ingress": ingress_policy(istiod, [{"ports": tcp(15012, 15017)}]),
        "istiod-egress": egress_policy(istiod, [dns_egress(), api_server_egress()]),
        # Ingress of each gateway: its listener/health/metrics ports (cnplatform.mesh.istio).
        "ingressgateway-egress": egress_policy(_labels(istio="ingressgateway"), gateway_egress),
        "eastwestgateway-egress": egress_policy(_labels(istio="eastwestgateway"), gateway_egress),
        "metrics-from-monitoring": scraped_from_monitoring({}, 15014, 15090),
        # cert-manager's HTTP-01 solver pods for the gateway certificate run here; the gateway routes
        # /.well-known/acme-challenge/ to them.
        "acme-solver-from-gateway": ingress_policy(_labels(**{ACME_SOLVER_LABEL: "true"}), [{
            "from": [{"podSelector": _labels(istio="ingressgateway")}], "ports": tcp(ACME_SOLVER_PORT)}]),
    }


def monitoring_policies(*, grafana_from_gateway: bool = False) -> dict[str, dict]:
    """Within the namespace anything (Grafana -> Prometheus/Alertmanager, Prometheus -> Alertmanager,
    scrapes of the chart's own pods, Alertmanager gossip); every pod DNS + API server (service
    discovery, the operator, the sidecars); Prometheus scrapes every pod of the cluster and the nodes
    (node-exporter 9100, kubelet 10250, kube-proxy 10249); Alertmanager reaches its receivers (HTTPS,
    SMTP); Grafana admits the ingress gateway only when it is exposed."""
    out = {
        DEFAULT_DENY: default_deny(),
        "same-namespace": same_namespace(),
        "dns-and-api-server": egress_policy({}, [dns_egress(), api_server_egress()]),
        "prometheus-scrape": egress_policy(_labels(**{"app.kubernetes.io/name": "prometheus"}), [
            {"to": [{"namespaceSelector": {}}]}, {"to": ANYWHERE, "ports": tcp(9100, 10249, 10250)}]),
        "alertmanager-receivers": egress_policy(_labels(**{"app.kubernetes.io/name": "alertmanager"}), [
            {"to": ANYWHERE, "ports": tcp(443, 465, 587)}]),
    }
    if grafana_from_gateway:
        out["grafana-from-gateway"] = ingress_policy(_labels(**{"app.kubernetes.io/name": "grafana"}), [{
            "from": [{**ns_selector("istio-system"), "podSelector": _labels(istio="ingressgateway")}],
            "ports": tcp(3000)}])
    return out


def node_exporter_policies() -> dict[str, dict]:
    """node-exporter runs with hostNetwork (NetworkPolicy does not apply to it): the namespace still
    denies by default, so nothing else scheduled there gets network access."""
    return {DEFAULT_DENY: default_deny()}


def jenkins_policies() -> dict[str, dict]:
    """Controller <-> agents within the namespace (the chart's own policies narrow the controller's
    ingress); every pod DNS, the API server and HTTPS out (Git hosting, registries, cloud and Pulumi
    APIs, plugin updates); no other port, no metadata server, no other namespace."""
    return {
        DEFAULT_DENY: default_deny(),
        "same-namespace": same_namespace(),
        "dns-api-server-https": egress_policy({}, [dns_egress(), api_server_egress()]),
    }


def cert_manager_policies() -> dict[str, dict]:
    """Every pod DNS + API server; the controller reaches ACME (443) and self-checks HTTP-01 (80);
    the webhook admits the API server on 10250; metrics (9402) from monitoring."""
    return {
        DEFAULT_DENY: default_deny(),
        "dns-and-api-server": egress_policy({}, [dns_egress(), api_server_egress()]),
        "controller-acme": egress_policy(_labels(**{"app.kubernetes.io/component": "controller"}), [
            {"to": ANYWHERE, "ports": tcp(80, 443)}]),
        "webhook-from-api-server": ingress_policy(_labels(**{"app.kubernetes.io/component": "webhook"}), [
            {"ports": tcp(10250)}]),
        "metrics-from-monitoring": scraped_from_monitoring({}, 9402),
    }


def create_network_policies(name: str, namespace: str, policies: dict[str, dict],
                            opts: Optional[pulumi.ResourceOptions] = None) -> list[k8s.networking.v1.NetworkPolicy]:
    """Register ``policies`` (name -> spec) in ``namespace``; logical names ``<name>-netpol-<policy>``."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
    return [k8s.networking.v1.NetworkPolicy(
        f"{name}-netpol-{policy}", metadata={"name": policy, "namespace": namespace, "labels": labels},
        spec=spec, opts=opts) for policy, spec in policies.items()]
