"""Pure parts of :class:`~cnplatform.mesh.istio.IstioMesh`: the mesh namespace's labels, the Istio custom
resources each part of the mesh declares (by resource name), the reader token's metadata.

Tests call these without a Pulumi engine; :mod:`cnplatform.mesh.istio` registers what they return.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Mapping, Optional

from cnplatform.mesh import values as v
from cnplatform.mesh._resources import MESH_LABELS, metadata
from cnplatform.mesh.authorization import allow_nothing, peer_authentication
from cnplatform.mesh.gateways import (
    cross_network_gateway,
    https_redirect_virtual_service,
    public_gateway,
    public_http_gateway,
)
from cnplatform.naming import pod_security_labels

if TYPE_CHECKING:
    from cnplatform.mesh.istio import IstioMeshArgs

DEFAULT_TLS_SECRET = "ingress-gateway-tls"
READER_TOKEN_SECRET = "istio-reader-service-account-token"


def namespace_labels(args: IstioMeshArgs) -> dict[str, str]:
    level = args.pod_security
    return {
        **MESH_LABELS,
        **pod_security_labels(level),
        # Multi-network: istiod learns the cluster's network from its namespace.
        "topology.istio.io/network": args.network,
    }


def ingress_custom_resources(name: str, args: IstioMeshArgs) -> list[tuple[str, dict]]:
    """The public Gateway (HTTPS; HTTP too unless ACME HTTP-01 owns port 80: then its own HTTP Gateway
    serving the challenge and a redirect of the rest), by resource name."""
    resources = [(f"{name}-public-gateway",
                  public_gateway(args.ingress_hosts, args.tls_secret_name, http=not args.acme_http01))]
    if args.acme_http01:
        resources += [(f"{name}-public-http-gateway", public_http_gateway(args.ingress_hosts)),
                      (f"{name}-https-redirect", https_redirect_virtual_service(args.ingress_hosts))]
    return resources


def zero_trust_custom_resources(name: str, args: IstioMeshArgs, namespace: str) -> list[tuple[str, dict]]:
    """Strict mTLS mesh-wide and an allow-nothing AuthorizationPolicy in every app namespace."""
    return [(f"{name}-peer-authentication", peer_authentication(namespace)),
            *[(f"{name}-allow-nothing-{ns}", allow_nothing(ns)) for ns in args.app_namespaces]]


def cross_network_custom_resources(name: str, namespace: str) -> list[tuple[str, dict]]:
    """The east-west gateway's cross-network Gateway (multi-network)."""
    return [(f"{name}-cross-network-gateway", cross_network_gateway(namespace))]


def reader_token_metadata(namespace: str) -> dict:
    """The ``kubernetes.io/service-account-token`` Secret of istio-reader-service-account."""
    return metadata(READER_TOKEN_SECRET, namespace,
                    annotations={"kubernetes.io/service-account.name": v.READER_SERVICE_ACCOUNT})


def token_of(data: Optional[Mapping[str, str]]) -> str:
    """The token of a service-account-token Secret's ``data`` (base64), empty until the API fills it."""
    token = (data or {}).get("token")
    return base64.b64decode(token).decode() if token else ""
