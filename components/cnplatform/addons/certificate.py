"""A cert-manager Certificate that keeps a TLS Secret issued (e.g. the ingress gateway's)."""

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.addons.cert_manager import API_VERSION, ISSUER_ACME
from cnplatform.manifests import custom_resource
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on

_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass
class TlsCertificateArgs:
    """Inputs of :class:`TlsCertificate`."""

    namespace: str
    """Namespace of the Certificate and of the Secret it writes."""
    secret_name: str
    """TLS Secret (``tls.crt``/``tls.key``/``ca.crt``) cert-manager writes and renews; also the Certificate's name."""
    issuer_name: str
    """ClusterIssuer that signs it."""
    dns_names: list[str] = field(default_factory=list)
    """Subject alternative names (at least one)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "namespace": _v.dns_label, "secret_name": _v.dns_label, "issuer_name": _v.dns_label,
            "dns_names": _v.hostname,
        })


def dns_names_for(hosts: list[str], issuer: str, fallback: str) -> list[str]:
    """Names a certificate for these gateway hosts can carry with this issuer type.

    ``*`` (any host) is not a DNS name: it is dropped, and when nothing is left a CA issuer gets
    ``fallback``. Istio's ``namespace/host`` form is reduced to the host. ACME over HTTP-01 cannot
    prove control of a wildcard (``*.example.com``), so ACME drops wildcards; an empty result means
    nothing can be issued (the caller reports it).
    """
    names: list[str] = []
    for host in hosts:
        host = host.split("/", 1)[-1].strip().lower()
        if not host or host == "*" or (issuer == ISSUER_ACME and host.startswith("*.")):
            continue
        if host not in names:
            names.append(host)
    if not names and issuer != ISSUER_ACME:
        names = [fallback]
    return names


def certificate_manifest(args: TlsCertificateArgs) -> dict:
    bad = [n for n in args.dns_names if len(n) > 253 or not _HOSTNAME.match(n)]
    if not args.dns_names or bad:
        raise ValueError(f"certificate {args.secret_name!r} needs valid DNS names, got {args.dns_names!r}")
    return {
        "apiVersion": API_VERSION, "kind": "Certificate",
        "metadata": {"name": args.secret_name, "namespace": args.namespace},
        "spec": {
            "secretName": args.secret_name,
            "dnsNames": list(args.dns_names),
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["digital signature", "server auth"],  # ECDSA: no key encipherment
            "issuerRef": {"name": args.issuer_name, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    }


class TlsCertificate(pulumi.ComponentResource):
    """A cert-manager ``Certificate``; depend this component on the cert-manager chart and issuer."""

    secret_name: pulumi.Output[str]
    """The TLS Secret cert-manager keeps issued."""
    dns_names: pulumi.Output[list[str]]
    """Names the certificate carries."""

    def __init__(self, name: str, args: TlsCertificateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("addons", "TlsCertificate"), name, None, opts)
        manifest = certificate_manifest(args)
        #: The Certificate object (a handle, not a schema output).
        self.certificate = custom_resource(
            f"{name}-certificate", manifest,
            pulumi.ResourceOptions(parent=self, depends_on=inherited_depends_on(opts)),
        )
        self.secret_name = pulumi.Output.from_input(args.secret_name)
        self.dns_names = pulumi.Output.from_input(list(args.dns_names))
        self.register_outputs({"secret_name": self.secret_name, "dns_names": self.dns_names})
