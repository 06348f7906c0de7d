"""Zero trust in the mesh: strict mTLS everywhere, deny by default, allow exactly the declared callers.

Who may call whom comes from ``cnplatform.topology.callers_of`` (the services' ``calls``); the
identities are SPIFFE principals ``cluster.local/ns/<ns>/sa/<sa>`` proven by mTLS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from cnplatform import validation as _v
from cnplatform.mesh._resources import metadata
from cnplatform.naming import selector_labels

SECURITY_API = "security.istio.io/v1"
#: Prometheus' namespace (the monitoring layer); it may read /metrics with an mTLS identity.
MONITORING_NAMESPACE = "monitoring"
DEFAULT_DENY_NAME = "allow-nothing"


@dataclass
class ServiceAuthorizationArgs:
    """Who may call one service (the authorization half of :class:`ServiceMeshPolicyArgs`)."""

    service: str
    """Service name (pods selected by ``app.kubernetes.io/name=<service>``)."""
    namespace: str = "shop"
    """Namespace of the service."""
    port: int = 8080
    """The port the workload serves on (Service port = container port by convention)."""
    caller_principals: list[str] = field(default_factory=list)
    """Principals allowed to call the service on ``port`` (any path)."""
    gateway_principal: Optional[str] = None
    """The ingress gateway's principal, when the service is exposed."""
    gateway_paths: list[str] = field(default_factory=list)
    """Paths (as the service sees them, after rewrites) the ingress gateway may call."""
    metrics_namespaces: list[str] = field(default_factory=lambda: [MONITORING_NAMESPACE])
    """Namespaces whose workloads may GET ``metrics_path`` (Prometheus)."""
    metrics_path: str = "/metrics"
    """Metrics endpoint of the service."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "service": _v.dns_label, "namespace": _v.dns_label, "port": _v.port, "gateway_paths": _v.http_path,
            "metrics_namespaces": _v.dns_label, "metrics_path": _v.http_path,
        })


# ------------------------------------------------------------------------------------ pure builders


def peer_authentication(namespace: str = "istio-system") -> dict:
    """Mesh-wide strict mTLS (a PeerAuthentication named ``default`` in the root namespace)."""
    return {"apiVersion": SECURITY_API, "kind": "PeerAuthentication",
            "metadata": metadata("default", namespace), "spec": {"mtls": {"mode": "STRICT"}}}


def allow_nothing(namespace: str) -> dict:
    """Namespace-wide default deny: an ALLOW policy without rules matches nothing."""
    return {"apiVersion": SECURITY_API, "kind": "AuthorizationPolicy",
            "metadata": metadata(DEFAULT_DENY_NAME, namespace), "spec": {}}


def authorization_rules(args: ServiceAuthorizationArgs) -> list[dict]:
    port = [str(args.port)]
    rules = []
    if args.caller_principals:
        rules.append({"from": [{"source": {"principals": sorted(set(args.caller_principals))}}],
                      "to": [{"operation": {"ports": port}}]})
    if args.gateway_principal:
        rules.append({"from": [{"source": {"principals": [args.gateway_principal]}}],
                      "to": [{"operation": {"ports": port, "paths": list(args.gateway_paths)}}]})
    return rules


def authorization_policy(args: ServiceAuthorizationArgs) -> Optional[dict]:
    """The service's ALLOW policy, or None: a service nobody calls and that is not exposed stays
    denied by the namespace's ``allow-nothing``."""
    rules = authorization_rules(args)
    if not rules:
        return None
    if args.metrics_namespaces:
        rules.append({"from": [{"source": {"namespaces": sorted(args.metrics_namespaces)}}],
                      "to": [{"operation": {"ports": [str(args.port)], "methods": ["GET"],
                                            "paths": [args.metrics_path]}}]})
    return {
        "apiVersion": SECURITY_API, "kind": "AuthorizationPolicy",
        "metadata": metadata(args.service, args.namespace),
        "spec": {"selector": {"matchLabels": selector_labels(args.service)}, "action": "ALLOW", "rules": rules},
    }
