"""Rules on the Istio multi-cluster mesh's exposure. Self-contained: the standard library and ``pulumi_policy``.

``eastwest-gateway-exposure``
    The LoadBalancer Service of an Istio east-west gateway (label ``topology.istio.io/network``, what
    istiod discovers network gateways by, or ``istio: eastwestgateway``; on the Service or in its
    selector):

    * admits only the peer clusters: ``spec.loadBalancerSourceRanges`` set, without ``0.0.0.0/0`` or
      ``::/0``, unless the load balancer is internal (:data:`INTERNAL_LB_ANNOTATIONS`: the networks peer);
    * publishes no istiod port (15012 xDS/CA, 15017 webhooks, by ``port`` or ``targetPort``): in a
      multi-primary mesh every cluster has its own istiod, and exposing it is for primary-remote only.

    Without the first, anyone on the internet reaches the gateway that forwards (mTLS, SNI routed) into
    every service of the cluster; without the second, istiod itself is published.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NETWORK_LABEL = "topology.istio.io/network"
EASTWEST_LABEL = ("istio", "eastwestgateway")
#: istiod's ports that only a primary-remote mesh publishes through the east-west gateway.
ISTIOD_PORTS = (15012, 15017)
OPEN_RANGES = ("0.0.0.0/0", "::/0")
#: Annotation -> value that makes a cloud load balancer internal (compared case-insensitively).
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "networking.gke.io/load-balancer-type": "internal",
    "cloud.google.com/load-balancer-type": "internal",
    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
}
SERVICE_TYPE = "kubernetes:core/v1:Service"


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> Sequence:
    return value if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else ()


def is_eastwest_gateway(props: Mapping) -> bool:
    meta, spec = _map(props.get("metadata")), _map(props.get("spec"))
    labels, selector = _map(meta.get("labels")), _map(spec.get("selector"))
    return (NETWORK_LABEL in labels or NETWORK_LABEL in selector
            or any(m.get(EASTWEST_LABEL[0]) == EASTWEST_LABEL[1] for m in (labels, selector)))


def is_internal(annotations: Mapping) -> bool:
    return any(str(annotations.get(k, "")).lower() == v for k, v in INTERNAL_LB_ANNOTATIONS.items())


def _port_numbers(port: Mapping) -> set:
    return {p for p in (port.get("port"), port.get("targetPort")) if isinstance(p, int)}


def check_eastwest_exposure(resource_type: str, props: Mapping) -> list[str]:
    """Violations of ``eastwest-gateway-exposure`` for one resource (none unless it is such a Service)."""
    spec = _map(props.get("spec"))
    if resource_type != SERVICE_TYPE or spec.get("type") != "LoadBalancer" or not is_eastwest_gateway(props):
        return []
    meta = _map(props.get("metadata"))
    where = f"Service {meta.get('namespace', 'default')}/{meta.get('name', '?')} (Istio east-west gateway)"
    out = []
    ranges = [str(r) for r in _seq(spec.get("loadBalancerSourceRanges"))]
    if not is_internal(_map(meta.get("annotations"))):
        if not ranges:
            out.append(f"{where} is a public load balancer without loadBalancerSourceRanges: admit only the "
                       "peer clusters' egress CIDRs, or make it internal where the networks peer")
        elif any(r in OPEN_RANGES for r in ranges):
            out.append(f"{where} admits {', '.join(r for r in ranges if r in OPEN_RANGES)}: admit only the "
                       "peer clusters' egress CIDRs")
    published = sorted({n for p in _seq(spec.get("ports")) for n in _port_numbers(_map(p)) if n in ISTIOD_PORTS})
    if published:
        out.append(f"{where} publishes istiod port(s) {', '.join(map(str, published))}: a multi-primary mesh "
                   "needs 15443 only (istiod is exposed for primary-remote); list service.ports explicitly "
                   "instead of the gateway chart's networkGateway ports")
    return out


def resource_policies():
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

    def validate(args, report_violation) -> None:
        for message in check_eastwest_exposure(args.resource_type, args.props):
            report_violation(message, None)

    return [ResourceValidationPolicy(
        name="eastwest-gateway-exposure",
        description="An Istio east-west gateway's load balancer admits only its peers and publishes no istiod port.",
        validate=validate, enforcement_level=EnforcementLevel.MANDATORY)]
