"""cnplatform as a Pulumi component package: the schema other languages get, inferred offline.

The schema comes from ``pulumi.provider.experimental`` (the same Analyzer ``pulumi package add``
runs); the plugin process itself is started once and asked for it over gRPC, like the CLI does.
"""
import dataclasses
import json
import os
import subprocess
import sys
import sysconfig

import grpc
import pulumi
import pytest
import tomllib
import yaml
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from cnplatform import __version__
from cnplatform.microservice import Microservice, MicroserviceArgs, Peer, SecretKeyRef
from cnplatform.provider import component_provider, from_inputs, output_annotations, package_schema
from cnplatform.testing import unwrap
from tests.helpers import ROOT, run_program

TOKEN = "cnplatform:index:Microservice"
HANDLES = {"args", "deployment", "canaryDeployment", "k8sService"}


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p.title() for p in rest)


@pytest.fixture(scope="module")
def schema():
    return package_schema()


@pytest.fixture(scope="module")
def resource(schema):
    return schema["resources"][TOKEN]


def test_package_identity(schema):
    assert schema["name"] == "cnplatform" and schema["version"] == __version__
    assert {"cnplatform:index:ClusterBaseline", TOKEN} <= set(schema["resources"])  # all: test_component_hosting
    assert all(r["isComponent"] is True for r in schema["resources"].values())
    assert schema["resources"][TOKEN]["description"] == Microservice.__doc__.strip()


def test_baseline_is_hosted_too(schema):
    """A team's namespace with the platform's guarantees (Pod Security, default-deny), any language."""
    baseline = schema["resources"]["cnplatform:index:ClusterBaseline"]
    assert baseline["requiredInputs"] == []
    ns = baseline["inputProperties"]["namespaces"]
    assert ns["type"] == "array" and ns["items"]["$ref"] == "#/types/cnplatform:index:NamespaceSpec"
    assert set(baseline["inputProperties"]) == {"namespaces", "meshInjection", "defaultDeny"}
    assert set(baseline["properties"]) == {"namespaceNames"}  # the `namespaces` handle stays Python-only
    assert schema["types"]["cnplatform:index:NamespaceSpec"]["required"] == ["name"]


def test_inputs_are_the_args_fields_with_descriptions(resource):
    fields = {camel(f.name): f for f in dataclasses.fields(MicroserviceArgs)}
    inputs = resource["inputProperties"]
    assert set(inputs) == set(fields)
    missing = [k for k, v in inputs.items() if not v.get("description")]
    assert not missing, f"fields without a docstring (documented nowhere for other languages): {missing}"


def test_only_fields_without_default_are_required(resource):
    required = sorted(camel(f.name) for f in dataclasses.fields(MicroserviceArgs)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    assert resource["requiredInputs"] == required == ["image", "name"]


def test_input_types(resource):
    p = resource["inputProperties"]
    assert p["name"]["type"] == "string" and p["name"]["plain"] is True
    # pulumi.Input[str]: other languages may pass an Output (e.g. a built image's digest).
    assert p["image"]["type"] == "string" and "plain" not in p["image"]
    assert p["databaseHost"]["type"] == "string" and "plain" not in p["databaseHost"]
    assert p["port"]["type"] == "integer" and p["replicas"]["type"] == "integer"
    assert p["sloAvailability"]["type"] == "number" and p["autoscalingEnabled"]["type"] == "boolean"
    assert p["env"]["type"] == "object" and p["env"]["additionalProperties"]["type"] == "string"
    assert p["calls"]["type"] == "array" and p["calls"]["items"]["$ref"] == "#/types/cnplatform:index:Peer"
    assert p["secretEnv"]["additionalProperties"]["$ref"] == "#/types/cnplatform:index:SecretKeyRef"
    assert p["databaseCidrs"]["items"]["type"] == "string"


def test_nested_types(schema):
    peer = schema["types"]["cnplatform:index:Peer"]
    assert set(peer["properties"]) == {"name", "namespace", "port"} and peer["required"] == ["name"]
    ref = schema["types"]["cnplatform:index:SecretKeyRef"]
    assert ref["required"] == ["key", "secret"]
    assert all(p.get("description") for t in (peer, ref) for p in t["properties"].values())


def test_outputs_are_the_output_annotations_only(resource):
    declared = {camel(n) for n in output_annotations(Microservice)}
    outputs = resource["properties"]
    assert set(outputs) == declared and set(resource["required"]) == declared
    assert {"url", "serviceAccount", "selectorLabels", "slo", "port"} <= declared
    assert not HANDLES & set(outputs), "Python-only handles must not become outputs"
    assert all(v.get("description") for v in outputs.values())
    assert outputs["port"]["type"] == "integer" and outputs["slo"]["additionalProperties"]["type"] == "number"


def _construct(inputs: dict):
    def program():
        result = component_provider().construct("reviews", TOKEN, inputs, None)
        return {"urn": result.urn, **result.state}
    return run_program(program, stack="dev", raw={}, project="team-app")


def test_construct_from_schema_inputs_builds_the_python_component():
    """What a TypeScript/Go program sends (camelCase, numbers as floats) builds the same objects."""
    image = "registry.example.com/reviews@sha256:" + "0" * 64
    capture = _construct({
        "name": "reviews", "image": pulumi.Output.from_input(image), "namespace": "reviews",
        "replicas": 3.0, "calls": [{"name": "product", "namespace": "shop", "port": 8080.0}],
        "secretEnv": {"API_TOKEN": {"secret": "reviews", "key": "token"}},
    })
    # The component registers its own token: state and policies see one type whatever the language.
    assert capture.outputs["urn"].endswith("$cnplatform:microservice:Microservice::reviews")
    assert capture.outputs["url"] == "http://reviews.reviews.svc.cluster.local:8080"
    assert capture.outputs["port"] == 8080
    direct = run_program(lambda: {"m": Microservice("reviews", MicroserviceArgs(
        name="reviews", image=image, namespace="reviews", replicas=3,
        calls=[Peer("product", "shop", 8080)], secret_env={"API_TOKEN": SecretKeyRef("reviews", "token")}))},
        stack="dev", raw={}, project="team-app")

    def objects(cap):
        return {(r.type, r.name): unwrap(r.inputs) for r in cap.resources if r.type.startswith("kubernetes:")}
    assert objects(capture) == objects(direct)
    assert ("kubernetes:policy/v1:PodDisruptionBudget", "reviews-pdb") in objects(capture)


def test_from_inputs_restores_dataclasses_and_integers():
    args = from_inputs(MicroserviceArgs, {"name": "a", "image": "i", "port": 8081.0,
                                          "calls": [{"name": "b", "port": 9090.0}],
                                          "secret_env": {"X_TOKEN": {"secret": "s", "key": "k"}}})
    assert args == MicroserviceArgs(name="a", image="i", port=8081, calls=[Peer("b", None, 9090)],
                                    secret_env={"X_TOKEN": SecretKeyRef("s", "k")})
    assert isinstance(args.port, int) and isinstance(args.calls[0].port, int)


def test_plugin_manifest_and_dependencies():
    manifest = yaml.safe_load((ROOT / "components" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (ROOT / "components" / "__main__.py").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [line.strip() for line in (ROOT / "components" / "requirements.txt").read_text().splitlines()]
    assert sorted(line for line in lines if line and not line.startswith("#")) == sorted(project["dependencies"])


def test_plugin_process_serves_the_schema(schema, tmp_path):
    """``python components/ <engine>``, as Pulumi runs it, from a venv WITHOUT the library installed
    (``-S``: site-packages on PYTHONPATH but not the editable install's finder)."""
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    proc = subprocess.Popen([sys.executable, "-S", str(ROOT / "components"), "127.0.0.1:1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), proc.stderr.read().decode() if proc.poll() is not None else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            served = json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(), timeout=20).schema)
    finally:
        proc.terminate()
        proc.wait(10)
    assert served == schema


def test_construct_baseline_from_schema_inputs():
    def program():
        result = component_provider().construct(
            "team", "cnplatform:index:ClusterBaseline", {"namespaces": [{"name": "reviews"}], "meshInjection": True},
            None)
        return {"urn": result.urn, **result.state}
    capture = run_program(program, stack="dev", raw={}, project="team-app")
    assert capture.outputs["urn"].endswith("$cnplatform:cluster:Baseline::team")
    assert capture.outputs["namespaceNames"] == ["reviews"]
    [ns] = capture.by_type("kubernetes:core/v1:Namespace")
    labels = unwrap(ns.inputs)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted" and labels["istio-injection"] == "enabled"
    assert capture.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
