"""examples/team-app, another team's stack consuming cnplatform and the platform's outputs.

Its own tests run as a separate project (as in the consumer venv of `make test-consumer`); here it
also runs against the REAL outputs of the platform's renders (StackReference mocked with them) and
its objects go through the same policy pack as the platform.
"""
import runpy
import subprocess
import sys

import pytest

from cnplatform.testing import Secret, unwrap
from policy import cnplatform_policy as P
from tests.helpers import ROOT, capture_stack, run_program

APP = ROOT / "examples" / "team-app"
IMAGE = "ghcr.io/example/reviews:1.4.0@sha256:" + "4f" * 32


def load(name: str) -> dict:
    return runpy.run_path(str(APP / name), run_name=name.removesuffix(".py").replace("/", "_"))


@pytest.fixture(scope="module")
def team_app():
    return load("team_app.py")


def render_app(team_app, monkeypatch, platform_stack: str, cluster: str):
    """Run team-app under the offline runner; its StackReference reads the platform render's outputs
    (secret ones stay secret: the platform's kubeconfigs)."""
    platform = capture_stack(platform_stack).outputs
    assert isinstance(platform["kubeconfigs"], Secret)
    reference = f"organization/ecommerce-platform/{platform_stack}"
    settings = team_app["Settings"](platform_stack=reference, cluster=cluster, image=IMAGE)
    capture = run_program(lambda: team_app["deploy"](settings), stack=platform_stack, project="team-app",
                          stack_references={reference: platform})
    return capture, unwrap(platform)


def test_example_tests_pass_as_their_own_project():
    proc = subprocess.run([sys.executable, "-m", "pytest"], cwd=APP, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


def test_example_is_its_own_pulumi_project():
    import yaml

    project = yaml.safe_load((APP / "Pulumi.yaml").read_text())
    assert project["name"] == "team-app" and project["runtime"]["name"] == "python"
    config = yaml.safe_load((APP / "Pulumi.dev.yaml").read_text())["config"]
    assert config["team-app:platformStack"].endswith("/ecommerce-platform/dev")
    requirements = (APP / "requirements.txt").read_text().splitlines()
    assert "../.." in requirements and "pulumi==3.260.0" in requirements
    assert not any(line.startswith("-e") for line in requirements), "consumers get a real install, not a link"


def test_renders_on_the_platform_cluster_with_its_provider(team_app, monkeypatch):
    capture, outputs = render_app(team_app, monkeypatch, "dev", "dev")
    assert capture.project == "team-app"
    [provider] = capture.by_type("pulumi:providers:kubernetes")
    assert provider.name == "dev-k8s"
    assert isinstance(provider.inputs["kubeconfig"], Secret)
    assert unwrap(provider.inputs["kubeconfig"]) == outputs["kubeconfigs"]["dev"]
    objects = [r for r in capture.resources if r.type.startswith("kubernetes:") and r.custom
               and not r.type.startswith("pulumi:providers")]
    kinds = {r.type.rsplit(":", 1)[-1] for r in objects}
    assert {"Namespace", "NetworkPolicy", "Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler"} <= kinds
    assert all(r.provider_urn == provider.urn for r in objects)
    assert {capture.cluster_of(r) for r in objects} == {"dev"}
    assert capture.outputs["platform_tier"] == "dev"
    assert capture.outputs["cluster"]["endpoint"] == outputs["clusters"]["dev"]["endpoint"]
    micro = capture.by_type("cnplatform:microservice:Microservice")
    assert [m.name for m in micro] == ["reviews"]


@pytest.mark.parametrize("platform_stack, cluster", [("dev", "dev"), ("prod", "prod-eks"), ("prod", "prod-gke")])
def test_rendered_objects_pass_the_policy_pack(team_app, monkeypatch, platform_stack, cluster):
    capture, _ = render_app(team_app, monkeypatch, platform_stack, cluster)
    resources = [(r.urn, r.type, unwrap(r.inputs)) for r in capture.resources]
    violations = []
    for _, type_, props in resources:
        for check in (P.check_container_security, P.check_container_resources, P.check_secret_env,
                      P.check_load_balancer):
            violations += check(type_, props)
    violations += [m for _, m in P.check_prod_availability(P.k8s_objects(resources), platform_stack)]
    assert not violations
    if platform_stack == "prod":
        assert capture.by_type("kubernetes:policy/v1:PodDisruptionBudget")


def test_example_fixture_has_the_shape_of_the_platform_outputs():
    """The consumer-venv tests mock the platform with a fixture: it must read what the platform exports."""
    fixture = load("tests/conftest.py")["platform_outputs"]("dev")
    real = unwrap(capture_stack("dev").outputs)
    assert set(fixture) <= set(real)
    assert set(fixture["clusters"]) == set(real["clusters"]) == set(fixture["kubeconfigs"])
    for name, cluster in fixture["clusters"].items():
        missing = set(cluster) - set(real["clusters"][name])
        assert not missing, f"the fixture reads {missing} that the platform does not export"
