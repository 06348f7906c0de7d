"""Istio gateways as plain objects: the public HTTPS Gateway (and, under ACME HTTP-01, its port-80
Gateway and redirect), the east-west cross-network Gateway, the gateways' pod selectors and
NetworkPolicies, and the names other layers bind to.

Pure functions; :class:`cnplatform.mesh.istio.IstioMesh` applies them.
"""
from __future__ import annotations

from cnplatform.mesh import values as v
from cnplatform.mesh._resources import metadata
from cnplatform.naming import service_account_principal

NETWORKING_API = "networking.istio.io/v1"
PUBLIC_GATEWAY_NAME = "public-gateway"
#: ACME HTTP-01 only: port 80 of the public hosts (challenges in clear text) and its HTTPS redirect.
PUBLIC_HTTP_GATEWAY_NAME = "public-gateway-http"
HTTPS_REDIRECT_NAME = "public-gateway-https-redirect"
#: Prefix of ACME HTTP-01 challenges (RFC 8555, 8.3), served by cert-manager's solver over plain HTTP.
ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
CROSS_NETWORK_GATEWAY_NAME = "cross-network-gateway"


def public_gateway_name(namespace: str = v.ISTIO_NAMESPACE) -> str:
    """``<namespace>/<name>`` of the public Istio Gateway, as VirtualServices bind to it."""
    return f"{namespace}/{PUBLIC_GATEWAY_NAME}"


def ingress_gateway_principal(trust_domain: str = "cluster.local", namespace: str = v.ISTIO_NAMESPACE) -> str:
    """The ingress gateway's mTLS identity (what an AuthorizationPolicy admits for exposed services)."""
    return service_account_principal(namespace, v.INGRESS_GATEWAY_SERVICE_ACCOUNT, trust_domain)


def public_gateway(hosts: list[str], tls_secret_name: str, namespace: str = v.ISTIO_NAMESPACE,
                   name: str = PUBLIC_GATEWAY_NAME, http: bool = True) -> dict:
    """HTTPS on 443 with the TLS Secret; HTTP on 80 only redirects to HTTPS (``tls.httpsRedirect``).

    ``http=False`` (ACME HTTP-01): HTTPS only; port 80 is :func:`public_http_gateway`. Istio applies
    ``httpsRedirect`` to the whole virtual host of each host of the server (``require_tls: ALL``), the
    ACME challenge path included, so it cannot stay on while challenges must be answered in clear text.
    """
    servers = []
    if http:
        servers.append({"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": list(hosts),
                        "tls": {"httpsRedirect": True}})
    servers.append({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": list(hosts),
                    "tls": {"mode": "SIMPLE", "credentialName": tls_secret_name}})
    return {
        "apiVersion": NETWORKING_API, "kind": "Gateway",
        "metadata": metadata(name, namespace),
        "spec": {"selector": dict(v.INGRESS_GATEWAY_LABELS), "servers": servers},
    }


def public_http_gateway(hosts: list[str], namespace: str = v.ISTIO_NAMESPACE) -> dict:
    """ACME HTTP-01: port 80 of the public hosts as a Gateway of its own, without ``httpsRedirect``.

    Separate from ``public-gateway`` on purpose: every VirtualService bound to ``public-gateway`` (the
    services' public routes, Grafana...) then exists on 443 only and can never be served in clear text;
    only :func:`https_redirect_virtual_service` is bound here.
    """
    return {
        "apiVersion": NETWORKING_API, "kind": "Gateway",
        "metadata": metadata(PUBLIC_HTTP_GATEWAY_NAME, namespace),
        "spec": {
            "selector": dict(v.INGRESS_GATEWAY_LABELS),
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": list(hosts)}],
        },
    }


def https_redirect_virtual_service(hosts: list[str], namespace: str = v.ISTIO_NAMESPACE) -> dict:
    """Port 80 under ACME HTTP-01: a 301 to https for everything but the challenges.

    One route without a match: a catch-all. cert-manager's solver Ingress (class ``istio``) becomes,
    through Istio's Ingress translation, a Gateway with an HTTP server on port 80 (hosts ``*``) on the
    same ingress pods and a VirtualService for the certificate's host with an exact match on
    ``/.well-known/acme-challenge/<token>``. Istio builds one route table for port 80 from every
    Gateway's HTTP server on it, merges the virtual hosts of one host name across Gateways, and then
    moves catch-all routes behind all others (``SortVHostRoutes``). The challenge route therefore
    always precedes this redirect, in whatever order the two VirtualServices are merged; nothing
    relies on the (unspecified) order between two specific routes of different VirtualServices.
    """
    return {
        "apiVersion": NETWORKING_API, "kind": "VirtualService",
        "metadata": metadata(HTTPS_REDIRECT_NAME, namespace),
        "spec": {
            "hosts": list(hosts),
            "gateways": [f"{namespace}/{PUBLIC_HTTP_GATEWAY_NAME}"],
            "http": [{"name": "https-redirect", "redirect": {"scheme": "https", "redirectCode": 301}}],
        },
    }


def cross_network_gateway(namespace: str = v.ISTIO_NAMESPACE) -> dict:
    """Expose every service of the cluster to the other networks through the east-west gateway
    (mTLS end to end: the gateway routes on SNI and never terminates TLS)."""
    return {
        "apiVersion": NETWORKING_API, "kind": "Gateway",
        "metadata": metadata(CROSS_NETWORK_GATEWAY_NAME, namespace),
        "spec": {
            "selector": dict(v.EASTWEST_GATEWAY_LABELS),
            "servers": [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                         "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}],
        },
    }


def gateway_selector(release: str, labels: dict[str, str]) -> dict[str, str]:
    """The pod selector the gateway chart derives: ``app: <release>``, ``istio: <labels.istio>``."""
    return {"app": release, "istio": labels["istio"]}


def gateway_network_policy(release: str, labels: dict[str, str], ports: list[int],
                           namespace: str = v.ISTIO_NAMESPACE) -> dict:
    """Gateway pods accept connections on their listener, health and metrics ports only (from anywhere:
    clients, load balancers and node ports); their egress is istio-system's ``gateways-egress``
    (cnplatform.netpolicy: pods of the cluster, DNS, remote east-west gateways)."""
    return {
        "metadata": metadata(release, namespace),
        "spec": {
            "podSelector": {"matchLabels": gateway_selector(release, labels)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": p, "protocol": "TCP"} for p in ports]}],
        },
    }


def self_signed_names(hosts: list[str]) -> list[str]:
    names = [h for h in hosts if h != "*" and not h.startswith("*.")] + [h for h in hosts if h.startswith("*.")]
    return names or ["localhost", "shop.localtest.me"]
