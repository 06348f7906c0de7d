"""Everything the mesh enforces for one service, as one component: traffic and authorization."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from cnplatform.mesh._resources import child_opts, custom_resource
from cnplatform.mesh.authorization import ServiceAuthorizationArgs, authorization_policy
from cnplatform.mesh.traffic import (ServiceTrafficPolicyArgs, destination_rule, ingress_virtual_service,
                                     service_host, virtual_service)
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on


@dataclass
class ServiceMeshPolicyArgs:
    """Inputs of :class:`ServiceMeshPolicy`."""

    traffic: ServiceTrafficPolicyArgs
    """Routing, timeouts, retries, circuit breaking and canary weights of the service."""
    authorization: Optional[ServiceAuthorizationArgs] = None
    """Who may call it; default: nobody (the namespace's allow-nothing policy applies)."""


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
        super().__init__(type_token("mesh", "ServiceMeshPolicy"), name, None, opts)
        traffic = args.traffic
        authz = args.authorization or ServiceAuthorizationArgs(
            service=traffic.service, namespace=traffic.namespace, port=traffic.port)
        deps = inherited_depends_on(opts)
        custom_resource(f"{name}-dr", destination_rule(traffic), child_opts(self, deps))
        custom_resource(f"{name}-vs", virtual_service(traffic), child_opts(self, deps))
        ingress = ingress_virtual_service(traffic)
        if ingress is not None:
            custom_resource(f"{name}-ingress-vs", ingress, child_opts(self, deps))
        policy = authorization_policy(authz)
        if policy is not None:
            custom_resource(f"{name}-authz", policy, child_opts(self, deps))
        principals = sorted(set(authz.caller_principals) | ({authz.gateway_principal} if authz.gateway_principal else set()))
        self.host = pulumi.Output.from_input(service_host(traffic.service, traffic.namespace, traffic.cluster_domain))
        self.canary_weight = pulumi.Output.from_input(traffic.canary_weight if traffic.canary else 0)
        self.public_path = pulumi.Output.from_input(traffic.exposed_path)
        self.allowed_principals = pulumi.Output.from_input(principals if policy is not None else [])
        self.register_outputs({"host": self.host, "canary_weight": self.canary_weight,
                               "public_path": self.public_path, "allowed_principals": self.allowed_principals})
