"""TLS of ``MySqlDatabase``: the server refuses plaintext, the service verifies the server's CA.

* ``local``: a CA and a server certificate made for this database (pulumi-tls, keys in the state as
  secrets); the MySQL pod mounts the key pair and runs with ``--require-secure-transport=ON``; the
  CA goes into the ConfigMap ``<service>-db-ca``. The server certificate names the in-cluster DNS
  name, so the service also verifies the host name.
* ``aws``: a parameter group with ``require_secure_transport=1``; the instance's CA is pinned
  (``ca_cert_identifier``) and its root is in the AWS RDS bundle that the service images carry
  (``RDS_CA_BUNDLE_PATH``, see ``services/Dockerfile``). RDS puts the endpoint in the certificate,
  so the host name is verified too.
* ``gcp``: ``ssl_mode: ENCRYPTED_ONLY`` and a per-instance Google-managed CA
  (``GOOGLE_MANAGED_INTERNAL_CA``); its certificates (``server_ca_certs``) go into the ConfigMap.
  That CA signs only this instance, whose certificate names no private IP: no host name check.

CA certificates are public: a ConfigMap, never a Secret. Pure helpers here; the resources are made
by :class:`cnplatform.database.mysql.MySqlDatabase`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import pulumi
import pulumi_tls as tls

from cnplatform.options import as_secret

if TYPE_CHECKING:  # pragma: no cover
    from pulumi_aws.rds import ParameterGroupParameterArgsDict

#: Where the service container finds the CA of its database (ConfigMap ``<service>-db-ca``, read-only).
CA_MOUNT = "/etc/mysql-ca"
CA_KEY = "ca.pem"
#: Where the in-cluster MySQL finds its key pair and CA (Secret ``<service>-mysql-tls``).
SERVER_TLS_MOUNT = "/run/secrets/mysql-tls"
#: The RDS CA the instances are pinned to (RSA 2048, SHA-256; roots valid to 2061).
RDS_CA_IDENTIFIER = "rds-ca-rsa2048-g1"
#: The AWS RDS CA bundle (every region's roots) baked into the service images at build time.
RDS_CA_BUNDLE_PATH = "/etc/ssl/rds/global-bundle.pem"
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
#: Cloud SQL modes that refuse plaintext connections.
CLOUDSQL_TLS_MODES = ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
HOURS_PER_YEAR = 8760


def ca_configmap_name(service: str) -> str:
    """ConfigMap holding the CA bundle (key ``ca.pem``) the service verifies its database with."""
    return f"{service}-db-ca"


def server_tls_secret_name(service: str) -> str:
    """Secret with the in-cluster MySQL's key, certificate and CA (mounted by the MySQL pod only)."""
    return f"{service}-mysql-tls"


def rds_parameter_family(mysql_version: str) -> str:
    """RDS parameter group family of a MySQL major.minor version (``8.4`` -> ``mysql8.4``)."""
    return f"mysql{mysql_version}"


def rds_parameters(require_tls: bool) -> list[ParameterGroupParameterArgsDict]:
    """The parameter group's parameters (``require_secure_transport`` is dynamic: no reboot)."""
    value = "1" if require_tls else "0"
    return [{"name": "require_secure_transport", "value": value, "apply_method": "immediate"}]


def cloudsql_ssl_mode(require_tls: bool) -> str:
    return "ENCRYPTED_ONLY" if require_tls else "ALLOW_UNENCRYPTED_AND_ENCRYPTED"


def ca_bundle(certs: Optional[Sequence[Any]]) -> str:
    """PEM bundle of a Cloud SQL instance's ``server_ca_certs`` (all of them: current and upcoming CA)."""
    pems = []
    for cert in certs or []:
        pem = cert.get("cert") if isinstance(cert, dict) else getattr(cert, "cert", None)
        if pem:
            pems.append(pem if pem.endswith("\n") else pem + "\n")
    return "".join(pems)


def local_server_args() -> list[str]:
    """mysqld flags of the in-cluster server: our key pair, and no plaintext connections."""
    return [f"--ssl-ca={SERVER_TLS_MOUNT}/ca.pem", f"--ssl-cert={SERVER_TLS_MOUNT}/tls.crt",
            f"--ssl-key={SERVER_TLS_MOUNT}/tls.key", "--require-secure-transport=ON"]


def client_env(ca_file: str, verify_identity: bool) -> dict[str, str]:
    """What the service reads (``svc_common.config.DBConfig``): verify against ``ca_file``, and the host name."""
    return {"MYSQL_SSL_CA": ca_file, "MYSQL_SSL_VERIFY_IDENTITY": "true" if verify_identity else "false"}


def local_certificates(name: str, host: str, validity_years: int,
                       opts: pulumi.ResourceOptions) -> tuple[pulumi.Output[str], ...]:
    """(CA cert, server cert, server key) of an in-cluster database: a CA of its own, and a certificate for ``host``."""
    hours = validity_years * HOURS_PER_YEAR
    ca_key = tls.PrivateKey(f"{name}-tls-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    ca = tls.SelfSignedCert(
        f"{name}-tls-ca", private_key_pem=as_secret(ca_key.private_key_pem),
        subject=tls.SelfSignedCertSubjectArgs(common_name=f"{host} CA", organization="cnplatform"),
        is_ca_certificate=True, set_subject_key_id=True, validity_period_hours=hours,
        allowed_uses=["cert_signing", "crl_signing", "digital_signature"], opts=opts)
    key = tls.PrivateKey(f"{name}-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    csr = tls.CertRequest(
        f"{name}-tls-csr", private_key_pem=as_secret(key.private_key_pem),
        subject=tls.CertRequestSubjectArgs(common_name=host, organization="cnplatform"),
        dns_names=[host], opts=opts)
    cert = tls.LocallySignedCert(
        f"{name}-tls-cert", cert_request_pem=csr.cert_request_pem,
        ca_private_key_pem=as_secret(ca_key.private_key_pem), ca_cert_pem=ca.cert_pem,
        validity_period_hours=hours, early_renewal_hours=30 * 24,
        allowed_uses=["digital_signature", "key_encipherment", "server_auth"], opts=opts)
    return ca.cert_pem, cert.cert_pem, as_secret(key.private_key_pem)
