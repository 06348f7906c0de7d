"""Per-service traffic policy: DestinationRule (mTLS, circuit breaking, subsets) and VirtualServices
(timeouts, retries, canary weights; the public route through the ingress gateway when exposed).

Identity conventions the specs rely on (docs/CONVENTIONS.md): Service ``<name>`` in its namespace,
port ``http`` on ``port``; pods labelled ``version: stable`` or ``version: canary``
(``cnplatform.naming.app_labels``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from cnplatform import validation as _v
from cnplatform.mesh._resources import metadata

NETWORKING_API = "networking.istio.io/v1"
#: Retry only what is safe to retry at the proxy (5xx answers, resets, connect failures, HTTP/2 refusals).
RETRY_ON = "5xx,reset,connect-failure,refused-stream"
#: Pod label distinguishing the stable and canary Deployments (``app_labels(name, version=...)``).
VERSION_LABEL = "version"
STABLE, CANARY = "stable", "canary"
PUBLIC_GATEWAY = "istio-system/public-gateway"


@dataclass
class ServiceTrafficPolicyArgs:
    """Traffic policy of one service (the traffic half of :class:`ServiceMeshPolicyArgs`; flat)."""

    service: str
    """Service name (the Kubernetes Service and its ServiceAccount)."""
    namespace: str = "shop"
    """Namespace of the Service."""
    port: int = 8080
    """Service port (named ``http``)."""
    timeout: str = "5s"
    """Total request timeout, retries included."""
    retries: int = 2
    """Retry attempts (0 disables retries)."""
    per_try_timeout: str = "2s"
    """Timeout of each attempt."""
    retry_on: str = RETRY_ON
    """Envoy retry conditions."""
    max_connections: int = 100
    """Circuit breaker: TCP connections per proxy to the service."""
    max_pending_requests: int = 100
    """Circuit breaker: requests queued while waiting for a connection."""
    max_requests_per_connection: int = 0
    """Requests per connection before it is recycled (0: unlimited)."""
    consecutive_5xx_errors: int = 5
    """Outlier detection: consecutive 5xx answers that eject a pod."""
    ejection_interval: str = "10s"
    """Outlier detection: analysis interval."""
    base_ejection_time: str = "30s"
    """Outlier detection: minimum ejection time."""
    max_ejection_percent: int = 50
    """Outlier detection: at most this share of pods is ejected."""
    canary: bool = False
    """The service has a canary (pods ``version: canary``); it gets a subset and traffic when weight > 0."""
    canary_weight: int = 0
    """Percent of traffic to the canary (0: everything to stable, i.e. rollback)."""
    exposed_path: Optional[str] = None
    """Public path prefix on the ingress gateway (None: not exposed)."""
    exposed_hosts: list[str] = field(default_factory=lambda: ["*"])
    """Hosts of the public route (a subset of the gateway's hosts)."""
    gateway: str = PUBLIC_GATEWAY
    """The Istio Gateway (``namespace/name``) the public route binds to."""
    cluster_domain: str = "cluster.local"
    """Kubernetes cluster domain."""
    cluster_local: bool = False
    """Requests to the service stay in the caller's cluster, never fail over to a peer cluster (its data
    lives in that cluster's own database). A mesh-wide setting (``meshConfig.serviceSettings``): honoured
    for the ``services`` of an ``IstioMesh``."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "service": _v.dns_label, "namespace": _v.dns_label, "port": _v.port, "timeout": _v.duration,
            "retries": _v.in_range(0, 10), "per_try_timeout": _v.duration, "max_connections": _v.positive,
            "max_pending_requests": _v.positive, "max_requests_per_connection": _v.in_range(0),
            "consecutive_5xx_errors": _v.positive, "ejection_interval": _v.duration,
            "base_ejection_time": _v.duration, "max_ejection_percent": _v.in_range(1, 100),
            "canary_weight": _v.percent, "exposed_path": _v.expose_path, "exposed_hosts": _v.hostname,
        })


# ------------------------------------------------------------------------------------ pure builders


def service_host(service: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    return f"{service}.{namespace}.svc.{cluster_domain}"


def ingress_rewrite(path: str) -> Optional[str]:
    """Public ``/api/<resource>...`` maps to ``/<resource>...`` on the service (the services route
    ``/orders``, ``/users``...); other paths are passed through unchanged (None)."""
    if path.startswith("/api/") and len(path) > len("/api/"):
        return path[len("/api"):]
    return None


def exposed_service_paths(path: str) -> list[str]:
    """The request paths the service itself sees for its public route (after the rewrite), in
    AuthorizationPolicy syntax: the prefix and everything below it."""
    target = (ingress_rewrite(path) or path).rstrip("/")
    return [target or "/", f"{target}/*"]


def canary_active(args: ServiceTrafficPolicyArgs) -> bool:
    """A canary takes traffic (weight 0 is the rollback: the microservice deletes the canary Deployment)."""
    return args.canary and args.canary_weight > 0


def subsets(args: ServiceTrafficPolicyArgs) -> list[dict]:
    out = [{"name": STABLE, "labels": {VERSION_LABEL: STABLE}}]
    if canary_active(args):
        out.append({"name": CANARY, "labels": {VERSION_LABEL: CANARY}})
    return out


def route(args: ServiceTrafficPolicyArgs) -> list[dict]:
    """Weighted destinations: stable only, or stable/canary split when a canary takes traffic.

    Stable is always addressed by subset, so that during a rollback (weight 0, or the canary being
    removed) no request reaches a canary pod that is still terminating.
    """
    host = service_host(args.service, args.namespace, args.cluster_domain)

    def dest(subset: str) -> dict:
        return {"host": host, "port": {"number": args.port}, "subset": subset}

    if canary_active(args):
        return [{"destination": dest(STABLE), "weight": 100 - args.canary_weight},
                {"destination": dest(CANARY), "weight": args.canary_weight}]
    return [{"destination": dest(STABLE)}]


def resilience(args: ServiceTrafficPolicyArgs) -> dict:
    """Timeout and retries of an HTTP route."""
    if args.retries > 0:
        retries = {"attempts": args.retries, "perTryTimeout": args.per_try_timeout, "retryOn": args.retry_on}
    else:
        retries = {"attempts": 0}  # Istio's default is 2 attempts: disabling needs an explicit 0.
    return {"timeout": args.timeout, "retries": retries}


def destination_rule(args: ServiceTrafficPolicyArgs) -> dict:
    http_pool: dict = {"http1MaxPendingRequests": args.max_pending_requests}
    if args.max_requests_per_connection:
        http_pool["maxRequestsPerConnection"] = args.max_requests_per_connection
    return {
        "apiVersion": NETWORKING_API, "kind": "DestinationRule",
        "metadata": metadata(args.service, args.namespace),
        "spec": {
            "host": service_host(args.service, args.namespace, args.cluster_domain),
            "trafficPolicy": {
                "tls": {"mode": "ISTIO_MUTUAL"},
                "connectionPool": {"tcp": {"maxConnections": args.max_connections}, "http": http_pool},
                "outlierDetection": {
                    "consecutive5xxErrors": args.consecutive_5xx_errors,
                    "interval": args.ejection_interval,
                    "baseEjectionTime": args.base_ejection_time,
                    "maxEjectionPercent": args.max_ejection_percent,
                },
            },
            "subsets": subsets(args),
        },
    }


def virtual_service(args: ServiceTrafficPolicyArgs) -> dict:
    """In-mesh route (sidecars of the callers): timeouts, retries, canary weights."""
    return {
        "apiVersion": NETWORKING_API, "kind": "VirtualService",
        "metadata": metadata(args.service, args.namespace),
        "spec": {
            "hosts": [service_host(args.service, args.namespace, args.cluster_domain)],
            "http": [{"name": "default", "route": route(args), **resilience(args)}],
        },
    }


def ingress_virtual_service(args: ServiceTrafficPolicyArgs) -> Optional[dict]:
    """Public route on the ingress gateway (same weights: the gateway does not use the mesh route)."""
    if not args.exposed_path:
        return None
    http: dict = {"name": args.service, "match": [{"uri": {"prefix": args.exposed_path}}]}
    rewrite = ingress_rewrite(args.exposed_path)
    if rewrite:
        http["rewrite"] = {"uri": rewrite}
    http.update(route=route(args), **resilience(args))
    return {
        "apiVersion": NETWORKING_API, "kind": "VirtualService",
        "metadata": metadata(f"{args.service}-ingress", args.namespace),
        "spec": {"hosts": list(args.exposed_hosts), "gateways": [args.gateway], "http": [http]},
    }
