"""Everything the mesh enforces for one service, as one component: traffic and authorization."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.manifests import custom_resource
from cnplatform.mesh._resources import child_opts
from cnplatform.mesh.authorization import ServiceAuthorizationArgs, authorization_policy
from cnplatform.mesh.traffic import (
    ServiceTrafficPolicyArgs,
    destination_rule,
    ingress_virtual_service,
    service_host,
    virtual_service,
)
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on


@dataclass
class ServiceMeshPolicyArgs:
    """Inputs of :class:`ServiceMeshPolicy`."""

    traffic: ServiceTrafficPolicyArgs
    """Routing, timeouts, retries, circuit breaking and canary weights of the service."""
    authorization: Optional[ServiceAuthorizationArgs] = None
    """Who may call it; default: nobody (the namespace's allow-nothing policy applies)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {})


@dataclass(frozen=True)
class ServiceMeshObjects:
    """What :func:`create_service_mesh_policy` registered, and the values the component exports."""

    resources: tuple[pulumi.Resource, ...]
    host: str
    canary_weight: int
    public_path: Optional[str]
    allowed_principals: list[str]


def create_service_mesh_policy(name: str, args: ServiceMeshPolicyArgs,
                               opts: pulumi.ResourceOptions) -> ServiceMeshObjects:
    """Register one service's mesh objects with ``opts`` (parent and dependencies included).

    Used by :class:`ServiceMeshPolicy` and by :class:`~cnplatform.mesh.istio.IstioMesh` for each of its
    ``services`` (there without a component per service: each would add a registration, with its URN,
    stack trace and outputs, to every service's few objects, in every preview).
    """
    traffic = args.traffic
    authz = args.authorization or ServiceAuthorizationArgs(
        service=traffic.service, namespace=traffic.namespace, port=traffic.port)
    created = [custom_resource(f"{name}-dr", destination_rule(traffic), opts),
               custom_resource(f"{name}-vs", virtual_service(traffic), opts)]
    ingress = ingress_virtual_service(traffic)
    if ingress is not None:
        created.append(custom_resource(f"{name}-ingress-vs", ingress, opts))
    policy = authorization_policy(authz)
    if policy is not None:
        created.append(custom_resource(f"{name}-authz", policy, opts))
    gateway = {authz.gateway_principal} if authz.gateway_principal else set()
    principals = sorted(set(authz.caller_principals) | gateway)
    return ServiceMeshObjects(
        resources=tuple(created),
        host=service_host(traffic.service, traffic.namespace, traffic.cluster_domain),
        canary_weight=traffic.canary_weight if traffic.canary else 0,
        public_path=traffic.exposed_path,
        allowed_principals=principals if policy is not None else [],
    )


class ServiceMeshPolicy(pulumi.ComponentResource):
    """One service in the mesh: DestinationRule (ISTIO_MUTUAL, connection pool, outlier detection),
    in-mesh VirtualService (timeouts, retries, canary weights), the public VirtualService when exposed,
    and the ALLOW AuthorizationPolicy for exactly its callers.

    Pass the Istio charts (base: CRDs, istiod: validation webhook) in ``opts.depends_on``: every
    custom resource created here depends on them, so a first ``pulumi up`` works on an empty cluster.
    """

    host: pulumi.Output[str]
    """In-mesh host name of the service."""
    canary_weight: pulumi.Output[int]
    """Percent of traffic routed to the canary (0 when there is none)."""
    public_path: pulumi.Output[Optional[str]]
    """Public path prefix on the ingress gateway, if exposed."""
    allowed_principals: pulumi.Output[list[str]]
    """Every principal that may call the service (callers, and the ingress gateway when exposed)."""

    def __init__(self, name: str, args: ServiceMeshPolicyArgs, opts: Optional[pulumi.ResourceOptions] = None):
        if args.traffic.cluster_local:
            raise _v.ArgsError("ServiceMeshPolicy", [(
                "traffic.cluster_local",
                "a mesh-wide setting (meshConfig.serviceSettings): pass the service in IstioMeshArgs.services")])
        super().__init__(type_token("mesh", "ServiceMeshPolicy"), name, None, opts)
        made = create_service_mesh_policy(name, args, child_opts(self, inherited_depends_on(opts)))
        self.host = pulumi.Output.from_input(made.host)
        self.canary_weight = pulumi.Output.from_input(made.canary_weight)
        self.public_path = pulumi.Output.from_input(made.public_path)
        self.allowed_principals = pulumi.Output.from_input(made.allowed_principals)
        self.register_outputs({"host": self.host, "canary_weight": self.canary_weight,
                               "public_path": self.public_path, "allowed_principals": self.allowed_principals})
