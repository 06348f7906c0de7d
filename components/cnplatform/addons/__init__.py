"""addons components: metrics-server, cert-manager (with the cluster's ClusterIssuer), TLS certificates.

Karpenter (EKS node autoscaling) lives with the EKS cluster code, not here.
"""
from cnplatform.addons.cert_manager import CertManager, CertManagerArgs, cert_manager_values, cluster_issuer_manifests
from cnplatform.addons.certificate import TlsCertificate, TlsCertificateArgs, certificate_manifest, dns_names_for
from cnplatform.addons.metrics_server import MetricsServer, MetricsServerArgs, metrics_server_values

__all__ = [
    "CertManager", "CertManagerArgs", "cert_manager_values", "cluster_issuer_manifests",
    "TlsCertificate", "TlsCertificateArgs", "certificate_manifest", "dns_names_for",
    "MetricsServer", "MetricsServerArgs", "metrics_server_values",
]
