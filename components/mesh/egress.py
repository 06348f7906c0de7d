"""Egress to things outside the mesh (a cloud database, an external API): an Istio ``ServiceEntry``.

With ``outboundTrafficPolicy: REGISTRY_ONLY`` (prod), sidecars send traffic only to hosts in the
mesh registry; anything else (RDS / Cloud SQL on 3306, a payment provider...) needs a ServiceEntry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from cnplatform.mesh._resources import child_opts, custom_resource, inherited_depends_on, metadata
from cnplatform.naming import type_token

NETWORKING_API = "networking.istio.io/v1"


@dataclass
class ExternalServiceArgs:
    """Inputs of :class:`ExternalService`."""

    name: str
    """ServiceEntry name."""
    namespace: str
    """Namespace of the workloads that use it (the entry is visible there only)."""
    hosts: list[str]
    """Host names (DNS resolution) or a placeholder name (with ``addresses`` and NONE resolution)."""
    port: int
    """Destination port."""
    protocol: str = "TCP"
    """``TCP``, ``TLS``, ``HTTPS``, ``HTTP``..."""
    addresses: list[str] = field(default_factory=list)
    """IPs / CIDRs of the destination (e.g. the VPC CIDR of a private cloud database)."""
    resolution: Optional[str] = None
    """``DNS`` or ``NONE``; default: NONE with addresses, DNS without."""


def service_entry(args: ExternalServiceArgs) -> dict:
    spec: dict = {
        "hosts": list(args.hosts),
        "ports": [{"number": args.port, "name": f"{args.protocol.lower()}-{args.port}", "protocol": args.protocol}],
        "location": "MESH_EXTERNAL",
        "resolution": args.resolution or ("NONE" if args.addresses else "DNS"),
        "exportTo": ["."],
    }
    if args.addresses:
        spec["addresses"] = list(args.addresses)
    return {"apiVersion": NETWORKING_API, "kind": "ServiceEntry",
            "metadata": metadata(args.name, args.namespace), "spec": spec}


class ExternalService(pulumi.ComponentResource):
    """A destination outside the mesh, reachable under REGISTRY_ONLY egress.

    Pass the Istio charts (``ctx.parts["mesh"].crd_dependencies``) in ``opts.depends_on``.
    """

    hosts: pulumi.Output[list[str]]
    """The registered host names."""

    def __init__(self, name: str, args: ExternalServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("mesh", "ExternalService"), name, None, opts)
        custom_resource(f"{name}-se", service_entry(args), child_opts(self, inherited_depends_on(opts)))
        self.hosts = pulumi.Output.from_input(list(args.hosts))
        self.register_outputs({"hosts": self.hosts})
