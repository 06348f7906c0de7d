"""Layer (after the mesh): the ingress gateway's TLS certificate, issued by cert-manager.

When cert-manager and the mesh ingress are enabled, the mesh does not create the gateway's TLS
Secret (``istio-system/<mesh.ingress.tls_secret_name or "ingress-gateway-tls">``): a cert-manager
``Certificate`` here writes and renews it, signed by the cluster's ClusterIssuer.
"""
from __future__ import annotations

from cnplatform.addons.cert_manager import ISSUER_ACME
from cnplatform.addons.certificate import (
    TlsCertificate,
    TlsCertificateArgs,
    dns_names_for,
)
from cnplatform.mesh.istio_spec import DEFAULT_TLS_SECRET
from stacks.compose.context import ClusterContext
from stacks.compose.layers.addons import issuer_type
from stacks.config import ClusterConfig, StackConfig

GATEWAY_NAMESPACE = "istio-system"
#: Name of the gateway certificate when the ingress accepts any host (``hosts: ["*"]``):
#: ``*.localtest.me`` resolves to 127.0.0.1, where kind publishes the gateway's HTTPS port.
LOCAL_INGRESS_HOST = "shop.localtest.me"
#: ``depends_on`` the mesh's istio-system Namespace when the mesh component exposes it (else the whole mesh).

def wanted(cfg: StackConfig) -> bool:
    return cfg.addons.cert_manager.enabled and cfg.mesh.enabled and cfg.mesh.ingress.enabled


def tls_secret_name(cfg: StackConfig) -> str:
    return cfg.mesh.ingress.tls_secret_name or DEFAULT_TLS_SECRET


def gateway_dns_names(cfg: StackConfig, cluster_cfg: ClusterConfig) -> list[str]:
    return dns_names_for(cfg.mesh.ingress.hosts, issuer_type(cfg, cluster_cfg), LOCAL_INGRESS_HOST)


def config_errors(cfg: StackConfig) -> list[tuple[str, str]]:
    """Clusters whose gateway certificate cannot be issued: ACME (HTTP-01) with only wildcard hosts."""
    if not wanted(cfg):
        return []
    return [("mesh.ingress.hosts", (
        f"cluster {c.name!r} issues the gateway certificate with ACME HTTP-01, which cannot prove "
        f"wildcard names, and mesh.ingress.hosts {cfg.mesh.ingress.hosts!r} has no other name: list the "
        "public host names, or set addons.cert_manager.issuer: ca"))
        for c in cfg.clusters if issuer_type(cfg, c) == ISSUER_ACME and not gateway_dns_names(cfg, c)]


def deploy(ctx: ClusterContext) -> None:
    cfg = ctx.cfg
    cert_manager = ctx.cert_manager
    if not wanted(cfg) or cert_manager is None:
        return
    names = gateway_dns_names(cfg, ctx.cluster_cfg)  # non-empty: config_errors ran with the config
    ctx.ingress_certificate = TlsCertificate(
        f"{ctx.name}-ingress-gateway-tls",
        TlsCertificateArgs(namespace=GATEWAY_NAMESPACE, secret_name=tls_secret_name(cfg),
                           issuer_name=cert_manager.issuer_name, dns_names=names),
        # The chart (CRDs + a ready webhook) and the issuer first; istio-system comes from the mesh.
        opts=ctx.k8s_opts(cert_manager.chart, *cert_manager.issuers,
                          *([ctx.mesh.namespace_resource] if ctx.mesh else [])),
    )
