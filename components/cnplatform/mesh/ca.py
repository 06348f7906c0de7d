"""One trust root for every cluster of a stack: a root CA, and per cluster an intermediate CA that
istiod uses to sign workload certificates (Istio's "plug-in CA certificates", Secret ``cacerts``).

Workloads of two clusters (EKS and GKE alike) trust each other because both intermediates chain to
the same root; the trust domain stays ``cluster.local`` everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_tls as tls

from cnplatform import validation as _v
from cnplatform.naming import type_token
from cnplatform.options import as_secret

#: Key usages of a CA certificate (a CA signs certificates and CRLs).
CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
#: Keys of the ``cacerts`` Secret istiod reads at start-up (/etc/cacerts).
CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
CACERTS_SECRET = "cacerts"
HOURS_PER_YEAR = 8760


@dataclass
class MeshRootCaArgs:
    """Inputs of :class:`MeshRootCa`."""

    common_name: str = "ecommerce-mesh root CA"
    """Subject CN of the root certificate."""
    organization: str = "ecommerce-platform"
    """Subject O of the root and intermediate certificates."""
    validity_hours: int = 10 * HOURS_PER_YEAR
    """Lifetime of the root (rotating it means re-issuing every intermediate)."""
    rsa_bits: int = 4096
    """RSA key size."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"validity_hours": _v.positive, "rsa_bits": _v.one_of(2048, 3072, 4096)})


def cacerts_data(ca_cert: str, ca_key: str, root_cert: str) -> dict[str, str]:
    """The ``cacerts`` Secret content: intermediate cert/key, the root, and the chain up to the root."""
    chain = ca_cert if ca_cert.endswith("\n") else ca_cert + "\n"
    return {"ca-cert.pem": ca_cert, "ca-key.pem": ca_key, "root-cert.pem": root_cert,
            "cert-chain.pem": chain + root_cert}


class MeshRootCa(pulumi.ComponentResource):
    """The stack's mesh root CA (create it once per stack and hand its PEMs to every cluster's mesh).

    The root key lives only in the Pulumi state (encrypted as a secret); keep the stack ``protect``ed.
    """

    cert_pem: pulumi.Output[str]
    """Root certificate (PEM)."""
    private_key_pem: pulumi.Output[str]
    """Root private key (PEM, secret)."""

    def __init__(self, name: str, args: MeshRootCaArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("mesh", "RootCa"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="RSA", rsa_bits=args.rsa_bits, opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=as_secret(key.private_key_pem),
            subject=tls.SelfSignedCertSubjectArgs(common_name=args.common_name, organization=args.organization),
            is_ca_certificate=True,
            set_subject_key_id=True,
            validity_period_hours=args.validity_hours,
            allowed_uses=CA_USES,
            opts=child,
        )
        self.cert_pem = cert.cert_pem
        self.private_key_pem = as_secret(key.private_key_pem)
        self.register_outputs({"cert_pem": self.cert_pem, "private_key_pem": self.private_key_pem})


def intermediate_ca(parent: pulumi.Resource, name: str, cluster: str, root_cert_pem: pulumi.Input[str],
                    root_key_pem: pulumi.Input[str], validity_hours: int, early_renewal_hours: int,
                    organization: str = "ecommerce-platform", istio_namespace: str = "istio-system",
                    depends_on: Sequence[pulumi.Resource] = ()) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """Key + CSR + certificate signed by the root: (cert PEM, key PEM as secret) of a cluster's CA."""
    child = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))
    key = tls.PrivateKey(f"{name}-key", algorithm="RSA", rsa_bits=4096, opts=child)
    key_pem = as_secret(key.private_key_pem)
    csr = tls.CertRequest(
        f"{name}-csr",
        private_key_pem=key_pem,
        subject=tls.CertRequestSubjectArgs(common_name=f"Istio intermediate CA {cluster}",
                                           organization=organization, organizational_unit=cluster),
        dns_names=[f"istiod.{istio_namespace}.svc"],
        opts=child,
    )
    cert = tls.LocallySignedCert(
        f"{name}-cert",
        cert_request_pem=csr.cert_request_pem,
        ca_cert_pem=root_cert_pem,
        ca_private_key_pem=pulumi.Output.secret(root_key_pem),
        is_ca_certificate=True,
        max_path_length=0,  # signs workload certificates only
        set_subject_key_id=True,
        allowed_uses=CA_USES,
        validity_period_hours=validity_hours,
        # `pulumi up` re-issues it this long before expiry; the new `cacerts` Secret is picked up by
        # istiod (plug-in cert reload) and workloads rotate their certificates within their TTL.
        early_renewal_hours=early_renewal_hours,
        opts=child,
    )
    return cert.cert_pem, key_pem
