"""Egress to things outside the mesh (a cloud database, an external API): an Istio ``ServiceEntry``.

With ``outboundTrafficPolicy: REGISTRY_ONLY`` (prod), sidecars send traffic only to hosts in the
mesh registry; anything else (RDS / Cloud SQL on 3306, a payment provider...) needs a ServiceEntry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, cast

import pulumi

from cnplatform import validation as _v
from cnplatform.manifests import custom_resource
from cnplatform.mesh._resources import child_opts, metadata
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on

NETWORKING_API = "networking.istio.io/v1"


@dataclass
class ExternalServiceArgs:
    """Inputs of :class:`ExternalService`."""

    name: str
    """ServiceEntry name."""
    namespace: str
    """Namespace of the workloads that use it (the entry is visible there only)."""
    hosts: list[pulumi.Input[str]]
    """Host names (DNS resolution) or a placeholder name (with ``addresses`` and NONE resolution)."""
    port: int
    """Destination port."""
    protocol: str = "TCP"
    """``TCP``, ``TLS``, ``HTTPS``, ``HTTP``..."""
    addresses: list[pulumi.Input[str]] = field(default_factory=list)
    """IPs / CIDRs of the destination (e.g. the VPC CIDR of a private cloud database)."""
    resolution: Optional[str] = None
    """``DNS`` or ``NONE``; default: NONE with addresses, DNS without."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "name": _v.dns_label, "namespace": _v.dns_label, "hosts": _v.hostname, "port": _v.port,
            "addresses": _v.cidr,
        })


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


#: Placeholder domain of Cloud SQL ServiceEntries (reached by private IP: the name is never resolved).
CLOUDSQL_HOST_DOMAIN = "cloudsql.internal"


def cloud_database_egress(service: str, namespace: str, cloud: str, host: pulumi.Input[str],
                          port: int = 3306) -> ExternalServiceArgs:
    """The ServiceEntry that lets ``service``'s sidecars reach its cloud MySQL under REGISTRY_ONLY.

    ``host`` is what the service connects to (the ``host`` of its database Secret):

    - ``aws`` (RDS): the endpoint host name. Resolution ``DNS``, no ``addresses``: Envoy resolves the
      name itself and follows it through a Multi-AZ failover (the name moves to the standby's IP; a
      pinned IP would keep pointing at the old primary). Several such entries on 3306 are told apart by
      the address istiod allocates to each, which the sidecar's DNS proxy (``ISTIO_META_DNS_CAPTURE``,
      set by the mesh) returns to the application.
    - ``gcp`` (Cloud SQL): the instance's private IP, which stays the same for the life of the instance,
      through a regional failover too. Resolution ``NONE`` with that IP as the only address: the
      sidecar passes the connection on to the address the application dialled, and the listener
      exists for exactly that IP:3306. ``hosts`` is a name of our own (required; never resolved).
      STATIC with the same IP as endpoint would only repeat the address.
    """
    name = f"{service}-db"
    if cloud == "aws":
        return ExternalServiceArgs(name=name, namespace=namespace, hosts=[host], port=port, resolution="DNS")
    if cloud == "gcp":
        return ExternalServiceArgs(name=name, namespace=namespace, port=port, resolution="NONE",
                                   hosts=[f"{service}-db.{namespace}.{CLOUDSQL_HOST_DOMAIN}"], addresses=[host])
    raise ValueError(f"no cloud database egress for cloud {cloud!r} (aws or gcp)")


class ExternalService(pulumi.ComponentResource):
    """A destination outside the mesh, reachable under REGISTRY_ONLY egress.

    Pass the Istio charts (``ctx.parts["mesh"].crd_dependencies``) in ``opts.depends_on``.
    """

    hosts: pulumi.Output[list[str]]
    """The registered host names."""

    def __init__(self, name: str, args: ExternalServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("mesh", "ExternalService"), name, None, opts)
        custom_resource(f"{name}-se", service_entry(args), child_opts(self, inherited_depends_on(opts)))
        # from_input unwraps the Outputs inside the list; its typing keeps them (Output[list[Input[str]]]).
        self.hosts = cast(pulumi.Output[list[str]], pulumi.Output.from_input(list(args.hosts)))
        self.register_outputs({"hosts": self.hosts})
