"""A cluster's registries do not depend on how its services get their image (issue #15 item 5).

CI (``ci/jenkins/pin_image.py``) rewrites the stack file so every service runs ``image:`` (the digest it
pushed into the cluster's registry): the next ``pulumi up`` must keep those registries, not delete them.
"""
import importlib.util
from types import ModuleType

import pytest
import yaml

from cnplatform.registry import ServiceImage, ServiceImageArgs, ecr_lifecycle_policy
from cnplatform.testing import capture as capture_module
from stacks.checks import check_config
from stacks.config import PROJECT, raw_from_stack_file, secret_config_keys
from tests.helpers import ROOT, capture_raw, capture_stack, run_program, stack_raw, with_changes

REGISTRY_TYPES = ("aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy",
                  "gcp:artifactregistry/repository:Repository")
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
PINNED = "@sha256:" + "1" * 64


def _pin_image() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pin_image", ROOT / "ci/jenkins/pin_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _registry_urls(cfg) -> dict[str, str]:
    """cluster -> the registry prefix CI pushes to (as ``REGISTRIES`` says)."""
    return {c.name: (f"{ECR}/{c.name}" if c.cloud == "aws" else
                     f"{c.region}-docker.pkg.dev/{c.gcp.project}/platform") for c in cfg.clusters}


def pinned_raw(stack: str) -> dict:
    """The stack's config after CI's pin_image: every service on ``image:`` (a digest in each cluster's registry)."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    cfg = check_config(stack_raw(stack)[0])
    urls = _registry_urls(cfg)
    deployed = {s.name: {c: f"{urls[c]}/{s.name}{PINNED}" for c in urls} for s in cfg.services}
    _pin_image().pin(doc, cfg.services[0].name, {}, deployed)
    raw = raw_from_stack_file(doc, PROJECT)[0]
    assert all(not s.get("build") for s in raw["services"])  # what CI deploys: no build left
    return raw


def capture(raw: dict, stack: str):
    secure = {**{k: "unset" for k in secret_config_keys(check_config(raw))}, **stack_raw(stack)[1]}
    return capture_raw(raw, stack, secure)


def registries(cap) -> dict[str, dict]:
    """urn -> inputs of every registry resource of a capture."""
    return {r.urn: r.inputs for r in cap.resources if r.type in REGISTRY_TYPES}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_pinning_every_image_keeps_every_cluster_registry(stack):
    built, pinned = capture_stack(stack), capture(pinned_raw(stack), stack)
    assert registries(built), "the stack has cloud registries"
    assert registries(pinned) == registries(built)  # same URNs, same inputs (lifecycle / cleanup policies)
    cfg = check_config(stack_raw(stack)[0])
    for cluster in cfg.clusters:
        repos = [r for r in pinned.resources if r.type in REGISTRY_TYPES[::2] and pinned.cluster_of(r) == cluster.name]
        if cluster.cloud == "aws":  # one repository + lifecycle policy per service running there
            names = sorted(r.inputs["name"] for r in repos)
            assert names == sorted(f"{cluster.name}/{s.name}" for s in cfg.services_on(cluster.name))
            assert len([r for r in pinned.by_type(REGISTRY_TYPES[1]) if pinned.cluster_of(r) == cluster.name]) \
                == len(names)
        else:
            assert [r.inputs["repositoryId"] for r in repos] == ["platform"]


def test_a_mixed_stack_has_the_same_registries_as_a_built_one():
    """One service pinned by CI, the others still built: nothing to delete either."""
    def pin_user(raw):
        user = next(s for s in raw["services"] if s["name"] == "user")
        user.pop("build")
        user["image"] = {"prod-eks": f"{ECR}/prod-eks/user{PINNED}",
                         "prod-gke": f"europe-west1-docker.pkg.dev/acme-shop-prod/platform/user{PINNED}"}
    assert registries(capture(with_changes("prod", pin_user), "prod")) == registries(capture_stack("prod"))


#: URNs a prod stack deployed before the registry was per cluster holds its ECR repositories under.
DEPLOYED = [f"urn:pulumi:prod::ecommerce-platform::cnplatform:registry:ServiceImage$aws:{t}::prod-eks-{s}-image-{n}"
            for s in ("user", "product", "payment", "order")
            for t, n in (("ecr/repository:Repository", "repo"), ("ecr/lifecyclePolicy:LifecyclePolicy", "lifecycle"))]


@pytest.fixture
def aliases(monkeypatch) -> dict[str, list[str]]:
    """urn -> the alias URNs its registration sent (the engine moves a resource found under one)."""
    seen: dict[str, list[str]] = {}
    register = capture_module.RecordingMonitor.RegisterResource

    def recording(self, request):
        response = register(self, request)
        seen[response.urn] = [a.urn for a in request.aliases if a.urn]
        return response
    monkeypatch.setattr(capture_module.RecordingMonitor, "RegisterResource", recording)
    return seen


@pytest.mark.parametrize("pinned", [False, True], ids=["built", "pinned"])
def test_deployed_ecr_repositories_are_kept_not_replaced(aliases, pinned):
    """Each repository / lifecycle policy a deployed stack has is still in the program, at its URN or
    aliased to it: ``pulumi up`` neither deletes it (its images) nor creates it again."""
    raw = pinned_raw("prod") if pinned else stack_raw("prod")[0]
    cap = capture(raw, "prod")
    claimed = {r.urn: r for r in cap.resources}
    claimed.update({alias: claimed[urn] for urn, urns in aliases.items() if urn in claimed for alias in urns})
    missing = [urn for urn in DEPLOYED if urn not in claimed]
    assert not missing
    for urn in DEPLOYED:
        assert claimed[urn].type in urn and claimed[urn].name.endswith(urn.rsplit("-", 1)[1])


def test_ecr_repositories_component_and_image_push_into_them():
    from cnplatform.registry import EcrRepositories, EcrRepositoriesArgs

    def program():
        registry = EcrRepositories("reg", EcrRepositoriesArgs(cluster="prod-eks", services=["order"],
                                                              region="us-east-1", keep_images=12))
        image = ServiceImage("img", ServiceImageArgs(
            service="order", tag="abc123", cloud="aws", cluster="prod-eks", region="us-east-1",
            repository_url=registry.repositories["order"].repository_url))
        return {"ref": image.image_ref, "urls": registry.urls}

    cap = run_program(program, stack="prod", raw={})
    (repo,) = cap.by_type("aws:ecr/repository:Repository")
    assert repo.inputs["name"] == "prod-eks/order" and repo.inputs["forceDelete"] is False
    (policy,) = cap.by_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert policy.inputs["policy"] == ecr_lifecycle_policy(12)
    (image,) = cap.by_type("docker:index/image:Image")
    assert repo.urn in image.depends_on  # the push waits for its repository
    url = f"{ECR}/prod-eks/order"
    assert cap.outputs["urls"] == {"order": url} and cap.outputs["ref"].startswith(url + "@sha256:")


def test_an_aws_image_needs_the_repository_it_pushes_into():
    def program():
        ServiceImage("img", ServiceImageArgs(service="order", cloud="aws", cluster="prod-eks", region="us-east-1"))
        return {}
    with pytest.raises(Exception, match="repository_url"):
        run_program(program, stack="prod", raw={})


def test_ecr_repositories_args_validate():
    from cnplatform.registry import EcrRepositoriesArgs
    from cnplatform.validation import ArgsError

    with pytest.raises(ArgsError) as err:
        EcrRepositoriesArgs(cluster="Prod", services=["user", "user", "Bad_1"], keep_images=0)
    text = str(err.value)
    assert "cluster" in text and "services[2]" in text and "more than once: user" in text and "keep_images" in text
    assert EcrRepositoriesArgs(cluster="c", services=[]).moved_from == "{cluster}-{service}-image"
