"""Run team-app's program under Pulumi mocks, with the platform stack's outputs mocked.

Self-contained (pulumi + cnplatform only): the same tests run from the consumer venv, where only
the installed library exists. A StackReference is a read of ``pulumi:pulumi:StackReference``; the
mock answers with the platform's ``outputs`` and ``secretOutputNames``.
"""
import json
from dataclasses import dataclass, field

import pulumi
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ZONES = {"dev": ["local"], "prod-eks": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
         "prod-gke": ["europe-west4-a", "europe-west4-b", "europe-west4-c"]}


def kubeconfig(cluster: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": cluster,
                       "clusters": [{"name": cluster, "cluster": {"server": f"https://{cluster}.example:6443"}}],
                       "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
                       "users": [{"name": cluster, "user": {"token": "secret-token"}}]})


def platform_outputs(stack: str) -> dict:
    """What ``ecommerce-platform`` exports (the shape tests/test_consumer_example.py checks)."""
    names = ["dev"] if stack == "dev" else ["prod-eks", "prod-gke"]
    clusters = {name: {
        "cloud": "local" if name == "dev" else name.split("-")[1].replace("eks", "aws").replace("gke", "gcp"),
        "region": "local" if name == "dev" else "eu-west-1", "zones": ZONES[name],
        "endpoint": f"https://{name}.example:6443", "registry_url": "registry.example.com/shop",
        "workload_identity": {"type": "none"},
        "mesh": {"istio_version": "1.29.6", "network": f"network-{name}"},
        "monitoring": {"namespace": "monitoring"},
    } for name in names}
    return {"tier": stack, "clusters": clusters, "kubeconfigs": {n: kubeconfig(n) for n in names}}


class Secret:
    def __init__(self, value):
        self.value = value


def _capture(value):
    if rpc.is_rpc_secret(value):
        return Secret(_capture(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {k: _capture(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_capture(v) for v in value]
    return value


def plain(value):
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    provider: str
    inputs: dict

    @property
    def manifest(self) -> dict:
        return plain(self.inputs)


@dataclass
class Run:
    resources: list[Resource] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def of(self, type_suffix: str) -> list[Resource]:
        return [r for r in self.resources if r.type.endswith(":" + type_suffix)]

    def one(self, type_suffix: str, name: str) -> Resource:
        [found] = [r for r in self.of(type_suffix) if r.name == name]
        return found


class PlatformMocks(pulumi_mocks.Mocks):
    def __init__(self, outputs: dict):
        self.outputs = outputs

    def new_resource(self, args):
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {"name": args.name, "outputs": self.outputs, "secretOutputNames": ["kubeconfigs"]}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        return {}


class Monitor(pulumi_mocks.MockMonitor):
    """Records every registration with its provider and secret-marked inputs."""

    def __init__(self, mocks, run: Run):
        super().__init__(mocks)
        self.run = run

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = _capture(rpc.deserialize_properties(request.object, keep_unknowns=True))
            self.run.resources.append(Resource(request.type, request.name, response.urn, request.provider, inputs))
        return response

    def ReadResource(self, request):
        self.run.reads.append(request.type)
        return super().ReadResource(request)


@pytest.fixture
def run_app():
    """run_app(settings, platform_stack="dev") -> Run (resources + resolved stack outputs)."""
    def run(settings, platform_stack: str = "dev") -> Run:
        import team_app

        result = Run()
        mocks = PlatformMocks(platform_outputs(platform_stack))
        pulumi_mocks.set_mocks(mocks, project="team-app", stack="dev", preview=False,
                               monitor=Monitor(mocks, result))

        @pulumi.runtime.test
        def program():
            outputs = team_app.deploy(settings)
            return pulumi.Output.all(**outputs).apply(result.outputs.update)

        program()
        return result
    return run


@pytest.fixture(autouse=True)
def _fresh_event_loop():
    """Each program run gets its own event loop (the Pulumi SDK caches one per thread)."""
    import asyncio

    asyncio.set_event_loop(asyncio.new_event_loop())
    yield


@pytest.fixture
def quiet_asyncio():
    """For runs that fail on purpose: their failed applies' tasks are reported as "never retrieved"
    when the interpreter exits. Asyncio's logger stays off for the rest of this session."""
    import logging

    logging.getLogger("asyncio").disabled = True
    yield
