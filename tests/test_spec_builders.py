"""The pure parts split out of the cloud, mesh and monitoring components (issue 18): callable without an
engine, and what the components register is built from them."""
import pytest

from cnplatform.cluster import gke_spec, karpenter_spec
from cnplatform.cluster.base import NodePoolSpec
from cnplatform.cluster.eks_network import SECURITY_GROUP_RULES
from cnplatform.mesh import istio_spec
from cnplatform.mesh.istio import IstioMeshArgs
from cnplatform.monitoring.alerting import ReceiverSpec
from cnplatform.monitoring.stack_spec import (
    MonitoredService,
    MonitoringStackArgs,
    app_namespaces,
    receivers_without_credential,
    service_monitoring_args,
)


def gke_args(**kw):
    return gke_spec.GkeClusterArgs(project="acme", region="europe-west1", **kw)


def test_gke_cluster_settings_zonal_and_regional():
    regional = gke_spec.cluster_settings(gke_args(), ["europe-west1-b", "europe-west1-c"], "europe-west1")
    assert regional["node_locations"] == ["europe-west1-b", "europe-west1-c"]
    assert regional["workload_identity_config"] == {"workload_pool": "acme.svc.id.goog"}
    zonal = gke_spec.cluster_settings(gke_args(regional=False), ["europe-west1-b"], "europe-west1-b")
    assert zonal["node_locations"] is None and zonal["location"] == "europe-west1-b"


def test_gke_node_pool_settings_are_per_zone_with_the_pool_label():
    pool = NodePoolSpec("apps", machine_type="e2-standard-4", min_size=3, max_size=9, desired_size=4)
    common = gke_spec.node_config_common("nodes@acme.iam.gserviceaccount.com")
    settings = gke_spec.node_pool_settings(pool, 3, common, {"team": "shop"})
    assert settings["initial_node_count"] == 2  # ceil(4 / 3) per zone
    assert settings["autoscaling"]["total_max_node_count"] == 9
    assert settings["node_config"]["labels"][gke_spec.NODE_POOL_LABEL] == "apps"
    assert settings["node_config"]["service_account"] == "nodes@acme.iam.gserviceaccount.com"
    assert gke_spec.authorized_networks(["10.0.0.0/8", "192.0.2.1/32"]) == [
        {"cidr_block": "10.0.0.0/8", "display_name": "authorized-0"},
        {"cidr_block": "192.0.2.1/32", "display_name": "authorized-1"}]


def test_gke_subnet_settings_carry_the_secondary_ranges():
    ranges = gke_spec.subnet_settings(gke_args(pods_cidr="10.40.0.0/14"))["secondary_ip_ranges"]
    assert ranges[0] == {"range_name": gke_spec.PODS_RANGE, "ip_cidr_range": "10.40.0.0/14"}


def test_karpenter_names():
    assert karpenter_spec.controller_role_name("prod-eks") == "prod-eks-karpenter-controller"
    assert karpenter_spec.controller_policy_name("prod-eks", "interruption") == "prod-eks-karpenter-interruption"
    assert len(set(karpenter_spec.CONTROLLER_POLICIES)) == 5


def test_eks_security_group_rules_reference_both_groups():
    assert {(group, source) for _, group, *_, source, _ in SECURITY_GROUP_RULES} == {
        ("control_plane", "nodes"), ("nodes", "nodes"), ("nodes", "control_plane")}


def test_istio_ingress_resources_follow_acme_http01():
    plain = istio_spec.ingress_custom_resources("m", IstioMeshArgs(cluster_name="dev"))
    assert [n for n, _ in plain] == ["m-public-gateway"]
    acme = istio_spec.ingress_custom_resources("m", IstioMeshArgs(cluster_name="dev", acme_http01=True))
    assert [n for n, _ in acme] == ["m-public-gateway", "m-public-http-gateway", "m-https-redirect"]
    zero = istio_spec.zero_trust_custom_resources("m", IstioMeshArgs(cluster_name="dev", app_namespaces=["shop"]),
                                                  "istio-system")
    assert [n for n, _ in zero] == ["m-peer-authentication", "m-allow-nothing-shop"]
    assert istio_spec.token_of({"token": "dG9rZW4="}) == "token" and istio_spec.token_of(None) == ""


def test_monitoring_spec():
    args = MonitoringStackArgs(cluster="dev", mesh=True, services=[
        MonitoredService("order", "shop"), MonitoredService("user", "accounts")],
        receivers=[ReceiverSpec(name="oncall", type="slack", severity="page", channel="#oncall")], receiver_secrets={})
    assert receivers_without_credential(args) == ["oncall"]
    assert app_namespaces(args) == ["accounts", "shop"]
    svc_args = service_monitoring_args(args.services[0], args)
    assert svc_args.mtls_scrape_class and svc_args.monitoring_namespace == "monitoring"
    no_mesh = MonitoringStackArgs(cluster="dev", services=args.services)
    assert service_monitoring_args(no_mesh.services[0], no_mesh).mtls_scrape_class is None


@pytest.mark.parametrize("module", [gke_spec, karpenter_spec])
def test_spec_modules_load_no_cloud_sdk(module):
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    # `if TYPE_CHECKING:` imports (the SDK's TypedDicts as return types, for mypy) never run.
    tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")]
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith(("pulumi_aws", "pulumi_gcp"))}
