"""team-app under mocks: what it reads from the platform stack, and what it deploys where."""
import pytest
import team_app
from conftest import platform_outputs, platform_stack
from team_app import Settings, settings_from_config

from cnplatform.microservice import Peer
from cnplatform.testing import Secret, run_component

IMAGE = "ghcr.io/example/reviews:1.4.0@sha256:" + "4f" * 32


def settings(**changes) -> Settings:
    return Settings(**{"platform_stack": "organization/ecommerce-platform/dev", "cluster": "dev", "image": IMAGE,
                       **changes})


def run_app(s: Settings, platform: str = "dev"):
    """team-app's program against a mocked platform stack."""
    return run_component(lambda: team_app.deploy(s), project="team-app", stack="dev",
                         stack_references={s.platform_stack: platform_stack(platform)})


def test_reads_the_platform_stack_and_deploys_reviews():
    run = run_app(settings())
    assert run.reads == ["pulumi:pulumi:StackReference"]
    assert run.outputs["url"] == "http://reviews.reviews.svc.cluster.local:8080"
    assert run.outputs["cluster"] == {"cloud": "local", "region": "local", "zones": ["local"],
                                      "endpoint": "https://dev.example:6443"}
    assert run.outputs["platform_tier"] == "dev"
    assert {"Namespace", "NetworkPolicy", "ServiceAccount", "Deployment", "Service",
            "HorizontalPodAutoscaler"} <= run.kinds()
    assert "PodDisruptionBudget" not in run.kinds()  # dev: one replica


def test_everything_goes_through_the_teams_provider_with_the_platform_kubeconfig():
    run = run_app(settings())
    [provider] = run.of("kubernetes")
    assert provider.name == "dev-k8s"
    assert isinstance(provider.inputs["kubeconfig"], Secret), "the kubeconfig must stay secret"
    assert run.manifest("kubernetes", "dev-k8s")["kubeconfig"] == platform_outputs("dev")["kubeconfigs"]["dev"]
    objects = [r for r in run.resources if r.type.startswith("kubernetes:") and r.custom]
    assert objects and all(r.provider.startswith(provider.urn + "::") for r in objects)


def test_same_guarantees_as_the_platform():
    run = run_app(settings())
    ns = run.manifest("Namespace", "reviews-baseline-ns-reviews")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    deny = run.manifest("NetworkPolicy", "reviews-baseline-default-deny-reviews")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    [container] = run.manifest("Deployment", "reviews-deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    netpol = run.manifest("NetworkPolicy", "reviews-netpol")["spec"]
    product = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "product"}},
               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}
    assert {"to": [product], "ports": [{"protocol": "TCP", "port": 8080}]} in netpol["egress"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PRODUCT_SERVICE_URL"] == "http://product.shop.svc.cluster.local:8080"


def test_prod_tier_defaults():
    run = run_app(settings(platform_stack="organization/ecommerce-platform/prod", cluster="prod-eks"), "prod")
    hpa = run.manifest("HorizontalPodAutoscaler", "reviews-hpa")["spec"]
    assert hpa["minReplicas"] == 3 and hpa["maxReplicas"] == 9
    assert run.manifest("PodDisruptionBudget", "reviews-pdb")["spec"]["maxUnavailable"] == 1
    spread = run.manifest("Deployment", "reviews-deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert run.of("kubernetes")[0].name == "prod-eks-k8s"


def test_unknown_cluster_is_a_clear_error(quiet_asyncio):
    with pytest.raises(Exception, match="'nope' is not a cluster of organization/ecommerce-platform/dev"):
        run_app(settings(cluster="nope"))


def test_tier_must_match_the_platform(quiet_asyncio):
    with pytest.raises(Exception, match="this stack uses tier 'prod' but organization/ecommerce-platform/dev"):
        run_app(settings(tier="prod"))
    with pytest.raises(ValueError, match="tier 'qa' is not one of"):
        _ = settings(platform_stack="org/ecommerce-platform/qa").effective_tier


def test_settings_from_stack_config():
    import pulumi

    run = run_component(lambda: {"settings": settings_from_config(pulumi.Config())}, project="team-app", config={
        "platformStack": "organization/ecommerce-platform/dev", "cluster": "dev", "image": IMAGE,
        "calls": [{"name": "product", "namespace": "shop", "port": 8080}]})
    s = run.outputs["settings"]
    assert (s.platform_stack, s.cluster, s.effective_tier, s.mesh) == ("organization/ecommerce-platform/dev", "dev",
                                                                       "dev", True)
    assert s.calls == [Peer("product", "shop", 8080)]
    assert team_app.service_args(s, IMAGE).replicas == 1
