"""The east-west gateway's exposure (issue 19 item 5) and the topology of stateful services (item 15).

Offline a Helm v4 Chart is one resource: :func:`chart_service` builds the Service the istio/gateway
chart (1.29.6, ``templates/service.yaml``) renders from our values, so the policy rule is checked on
what `pulumi up` will register (where the pack sees the chart's children itself).
"""
from __future__ import annotations

import json

import pytest
import yaml

from cnplatform.mesh import values as mv
from cnplatform.mesh.service_policy import ServiceMeshPolicy, ServiceMeshPolicyArgs
from cnplatform.mesh.traffic import ServiceTrafficPolicyArgs, service_host
from cnplatform.testing import unwrap
from cnplatform.validation import ArgsError
from policy import cnplatform_policy as P
from policy import mesh_rules as M
from stacks.compose.layers import mesh as layer
from tests.helpers import capture_stack, config_of

CHART = "kubernetes:helm.sh/v4:Chart"
SERVICE = "kubernetes:core/v1:Service"
#: The chart's own ``service.ports`` default (values.yaml) and its ``networkGateway`` ports (service.yaml).
CHART_DEFAULT_PORTS = [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                       {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
                       {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]
NETWORK_GATEWAY_PORTS = [{"name": "status-port", "port": 15021, "targetPort": 15021},
                         {"name": "tls", "port": 15443, "targetPort": 15443},
                         {"name": "tls-istiod", "port": 15012, "targetPort": 15012},
                         {"name": "tls-webhook", "port": 15017, "targetPort": 15017}]


def chart_service(release: str, namespace: str, values: dict) -> dict:
    """The Service istio/gateway renders (templates/service.yaml): labels = selector labels + ``labels``
    (but app/istio) + the network label of ``networkGateway``; ports = the fixed networkGateway list,
    else ``service.ports``; loadBalancerSourceRanges when non-empty."""
    svc, extra = values.get("service") or {}, values.get("labels") or {}
    selector = {"app": extra.get("app", release), "istio": extra.get("istio", release.removeprefix("istio-"))}
    labels = {**selector, **{k: v for k, v in extra.items() if k not in ("app", "istio")}}
    if values.get("networkGateway"):
        labels[M.NETWORK_LABEL] = values["networkGateway"]
    spec = {"type": svc.get("type", "LoadBalancer"), "selector": selector,
            "ports": NETWORK_GATEWAY_PORTS if values.get("networkGateway") else svc.get("ports", CHART_DEFAULT_PORTS)}
    if svc.get("loadBalancerSourceRanges"):
        spec["loadBalancerSourceRanges"] = svc["loadBalancerSourceRanges"]
    return {"metadata": {"name": release, "namespace": namespace, "labels": labels,
                         "annotations": {**(svc.get("annotations") or {}), **(values.get("annotations") or {})}},
            "spec": spec}


def gateway_releases(capture, cluster):
    """release -> values of the istio/gateway charts of one cluster."""
    out = {}
    for reg in capture.by_type(CHART):
        chart = unwrap(reg.inputs)
        if chart.get("chart") == "gateway" and capture.cluster_of(reg) == cluster:
            out[chart["name"]] = chart.get("values") or {}
    return out


def nat_egress(capture, cluster) -> set[str]:
    """The /32s of a cluster's NAT addresses, read from the mock cloud's outputs (EIPs, GCP addresses)."""
    ips = {reg.outputs.get("publicIp") for reg in capture.by_type("aws:ec2/eip:Eip") if reg.name.startswith(cluster)}
    ips |= {reg.outputs.get("address") for reg in capture.by_type("gcp:compute/address:Address")
            if reg.name.startswith(f"{cluster}-nat")}
    return {f"{ip}/32" for ip in ips if ip}


def pack_violations(props: dict) -> list[tuple[str, str]]:
    from tests.test_policy import run_resource_policies

    return run_resource_policies(SERVICE, props, stack="prod")


# ------------------------------------------------------------------------------ item 5: exposure


@pytest.mark.parametrize("cluster", ["prod-eks", "prod-gke"])
def test_eastwest_service_publishes_cross_network_mtls_only(cluster):
    values = gateway_releases(capture_stack("prod"), cluster)[mv.EASTWEST_GATEWAY_RELEASE]
    assert "networkGateway" not in values  # that mode hard-codes 15012/15017 and ignores service.ports
    svc = chart_service(mv.EASTWEST_GATEWAY_RELEASE, mv.ISTIO_NAMESPACE, values)
    assert [p["port"] for p in svc["spec"]["ports"]] == [15443]
    # What networkGateway did besides the ports, kept: istiod finds the gateway by the network label,
    # the proxy routes to its own network's endpoints.
    network = layer.network_of(next(c for c in config_of("prod").clusters if c.name == cluster))
    assert svc["metadata"]["labels"][mv.NETWORK_LABEL] == network
    assert values["env"] == {mv.REQUESTED_NETWORK_VIEW: network}
    assert set(mv.EASTWEST_GATEWAY_PORTS) >= {p["targetPort"] for p in svc["spec"]["ports"]}


@pytest.mark.parametrize("cluster", ["prod-eks", "prod-gke"])
def test_eastwest_load_balancer_admits_only_the_peers_egress(cluster):
    capture, cfg = capture_stack("prod"), config_of("prod")
    values = gateway_releases(capture, cluster)[mv.EASTWEST_GATEWAY_RELEASE]
    peers = set().union(*(nat_egress(capture, c.name) for c in cfg.clusters if c.name != cluster))
    ranges = values["service"]["loadBalancerSourceRanges"]
    assert peers and set(ranges) == peers and ranges == sorted(ranges)
    assert not set(ranges) & nat_egress(capture, cluster)  # its own NAT never calls it
    # Public on purpose (different clouds, no peering) and still explicit for load-balancer-needs-annotation.
    assert values["service"]["annotations"][mv.PUBLIC_LB_ANNOTATION] == "true"
    assert not mv.internal_load_balancer(values["service"]["annotations"])
    # The ingress gateway stays open to the internet: it serves the public.
    assert "loadBalancerSourceRanges" not in gateway_releases(capture, cluster)[mv.INGRESS_GATEWAY_RELEASE]["service"]


def test_public_eastwest_load_balancer_fails_closed_without_source_ranges():
    cfg = config_of("prod")
    args = layer.mesh_args(cfg, cfg.clusters[0])
    assert args.east_west_gateway and args.gateway_service_type == "LoadBalancer"
    for missing in (None, []):
        args.east_west_source_ranges = missing
        with pytest.raises(ValueError, match="loadBalancerSourceRanges"):
            mv.eastwest_gateway_values(args)
    with pytest.raises(ValueError):
        mv.require_source_ranges([])
    args.east_west_source_ranges = ["198.51.100.7/32", "192.0.2.1/32", "192.0.2.1/32"]
    service = mv.eastwest_gateway_values(args)["service"]
    assert service["loadBalancerSourceRanges"] == ["192.0.2.1/32", "198.51.100.7/32"]
    # Internal (networks peered): the VPC bounds it, no source ranges needed.
    args.east_west_source_ranges = None
    args.load_balancer_annotations = {"networking.gke.io/load-balancer-type": "Internal"}
    assert "loadBalancerSourceRanges" not in mv.eastwest_gateway_values(args)["service"]
    # The footprint counts the pods without needing the Service.
    work = {w.name: w for w in layer.footprint(cfg, cfg.clusters[0])}
    assert work["istio-eastwestgateway"].replicas == mv.gateway_min_replicas(mv.eastwest_gateway_pods(args))


# ------------------------------------------------------------------- item 5: the policy rule


def eastwest_lb(**spec) -> dict:
    return {"metadata": {"name": "istio-eastwestgateway", "namespace": "istio-system",
                         "labels": {"istio": "eastwestgateway", M.NETWORK_LABEL: "network-a"},
                         "annotations": {mv.PUBLIC_LB_ANNOTATION: "true"}},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "tls", "port": 15443, "targetPort": 15443}],
                     "selector": {"app": "istio-eastwestgateway", "istio": "eastwestgateway"}, **spec}}


@pytest.mark.parametrize("change, expected", [
    ({}, ["without loadBalancerSourceRanges"]),
    ({"loadBalancerSourceRanges": ["0.0.0.0/0"]}, ["admits 0.0.0.0/0"]),
    ({"loadBalancerSourceRanges": ["192.0.2.1/32"], "ports": NETWORK_GATEWAY_PORTS}, ["istiod port(s) 15012, 15017"]),
    ({"loadBalancerSourceRanges": ["192.0.2.1/32"],
      "ports": [{"name": "x", "port": 8443, "targetPort": 15017}]}, ["istiod port(s) 15017"]),
    ({"ports": NETWORK_GATEWAY_PORTS}, ["without loadBalancerSourceRanges", "istiod port(s) 15012, 15017"]),
    ({"loadBalancerSourceRanges": ["192.0.2.1/32", "198.51.100.7/32"]}, []),
])
def test_eastwest_exposure_rule(change, expected):
    caught = [m for name, m in pack_violations(eastwest_lb(**change)) if name == "eastwest-gateway-exposure"]
    assert len(caught) == len(expected) and all(e in m for e, m in zip(expected, caught, strict=True))


def test_eastwest_rule_scope():
    internal = eastwest_lb()
    internal["metadata"]["annotations"] = {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}
    assert M.check_eastwest_exposure(SERVICE, internal) == []  # internal: where the networks peer
    by_selector = eastwest_lb()
    by_selector["metadata"]["labels"] = {}
    assert M.check_eastwest_exposure(SERVICE, by_selector)  # known by its selector too
    network_only = eastwest_lb()
    network_only["metadata"]["labels"] = {M.NETWORK_LABEL: "n"}
    network_only["spec"]["selector"] = {"app": "x"}
    assert M.check_eastwest_exposure(SERVICE, network_only)  # or by the label istiod discovers it by
    ingress = chart_service("gateway", "istio-system", {"labels": {"istio": "ingressgateway"},
                                                        "service": {"annotations": {mv.PUBLIC_LB_ANNOTATION: "true"}}})
    assert M.check_eastwest_exposure(SERVICE, ingress) == []  # the public ingress is not concerned
    node_port = eastwest_lb(type="NodePort")
    assert M.check_eastwest_exposure(SERVICE, node_port) == []
    assert M.check_eastwest_exposure("kubernetes:core/v1:ConfigMap", eastwest_lb()) == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rendered_gateways_pass_and_the_old_values_are_caught(rendered, stack):
    out, checked = rendered(stack), 0
    for charts in sorted(out.glob("helm/*/charts.json")):
        for release in json.loads(charts.read_text())["releases"]:
            if release["chart"] != "gateway":
                continue
            values = yaml.safe_load((charts.parent / release["valuesFile"]).read_text()) or {}
            svc = chart_service(release["name"], release["namespace"], values)
            assert pack_violations(svc) == [], release
            if M.is_eastwest_gateway(svc):
                checked += 1
                # The values before issue 19: networkGateway's ports and no source ranges.
                old = {**values, "networkGateway": values["labels"][M.NETWORK_LABEL],
                       "service": {k: v for k, v in values["service"].items() if k != "loadBalancerSourceRanges"}}
                caught = [m for n, m in pack_violations(chart_service(release["name"], release["namespace"], old))
                          if n == "eastwest-gateway-exposure"]
                assert len(caught) == 2
    assert checked == (2 if stack == "prod" else 0)  # staging is one cluster: no east-west gateway
    assert "eastwest-gateway-exposure" in [p.name for p in P.POLICIES]


# ------------------------------------------------------------ item 15: stateful services stay local


def expected_cluster_local(cfg) -> set[str]:
    """The rule, from the config: a service with a database that runs on several clusters (one
    unreplicated database per cluster) is cluster-local; stateless ones fail over."""
    return {service_host(s.name, s.namespace) for s in cfg.services
            if s.database is not None and sum(s in cfg.services_on(c.name) for c in cfg.clusters) > 1}


def cluster_local_of(istiod_values: dict) -> set[str]:
    settings = istiod_values["meshConfig"].get("serviceSettings", [])
    return {h for entry in settings if entry["settings"].get("clusterLocal") for h in entry["hosts"]}


@pytest.mark.parametrize("cluster", ["prod-eks", "prod-gke"])
def test_prod_stateful_services_never_fail_over_to_the_peer_cluster(cluster):
    cfg, capture = config_of("prod"), capture_stack("prod")
    istiod = next(unwrap(r.inputs)["values"] for r in capture.by_type(CHART)
                  if capture.cluster_of(r) == cluster and unwrap(r.inputs)["name"] == "istiod")
    local = cluster_local_of(istiod)
    assert local == expected_cluster_local(cfg) and local  # prod: order, user and payment
    stateless = {service_host(s.name, s.namespace) for s in cfg.services if s.database is None}
    assert stateless and not stateless & local  # product is load-balanced and fails over across clusters


def test_single_cluster_and_single_writer_are_not_cluster_local():
    staging = config_of("staging")
    assert len(staging.clusters) == 1
    assert cluster_local_of(mv.istiod_values(layer.mesh_args(staging, staging.clusters[0]))) == set()
    cfg = config_of("prod")
    writer = next(s for s in cfg.services if s.database is not None)
    writer.clusters = [cfg.clusters[0].name]  # its one database: the others call it across the mesh
    assert not layer.cluster_local(cfg, writer)
    for cluster in cfg.clusters:
        local = cluster_local_of(mv.istiod_values(layer.mesh_args(cfg, cluster)))
        assert service_host(writer.name, writer.namespace) not in local
        assert local == {h for h in expected_cluster_local(cfg)
                         if any(service_host(s.name, s.namespace) == h for s in cfg.services_on(cluster.name))}


def test_cluster_local_is_a_mesh_setting_not_a_standalone_policy():
    args = ServiceMeshPolicyArgs(traffic=ServiceTrafficPolicyArgs(service="order", cluster_local=True))
    with pytest.raises(ArgsError, match="cluster_local"):
        ServiceMeshPolicy("order", args)
