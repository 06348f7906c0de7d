"""team-app's tests run its program with the library's harness (``cnplatform.testing.run_component``):
only what the platform stack exports is mocked here. Self-contained (pulumi + cnplatform only), so the
same tests run from the consumer venv, where only the installed library exists."""
import json

import pytest

from cnplatform.testing import Secret

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


def platform_stack(stack: str) -> dict:
    """The platform stack as a StackReference reads it: ``kubeconfigs`` is a secret output."""
    outputs = platform_outputs(stack)
    return {**outputs, "kubeconfigs": Secret(outputs["kubeconfigs"])}


@pytest.fixture
def quiet_asyncio():
    """For runs that fail on purpose: their failed applies' tasks are reported as "never retrieved"
    when the interpreter exits. Asyncio's logger stays off for the rest of this session."""
    import logging

    logging.getLogger("asyncio").disabled = True
    yield
