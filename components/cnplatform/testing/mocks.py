"""The mock provider: realistic outputs per resource type and answers to provider function calls.

Every generated secret is the placeholder ``secret::<name>``; ids, ARNs and endpoints are derived
from the resource name, so two runs are identical. The cloud tables (:mod:`.aws`, :mod:`.gcp`) add
theirs on the first resource or call of their cloud. Register your own with :func:`mock_output` /
:func:`mock_call`.
"""
from __future__ import annotations

import base64
import json
from typing import Callable

from pulumi.runtime import mocks as pulumi_mocks

from cnplatform.testing.capture import Secret

ACCOUNT_ID = "123456789012"
STACK_REFERENCE = "pulumi:pulumi:StackReference"


#: type token -> function(name, inputs) returning extra output properties. Cloud modules add theirs.
OUTPUTS: dict[str, Callable[[str, dict], dict]] = {}
#: invoke token -> function(args) returning the result.
CALLS: dict[str, Callable[[dict], dict]] = {}


def mock_output(*tokens: str):
    def register(fn):
        for token in tokens:
            OUTPUTS[token] = fn
        return fn
    return register


def mock_call(*tokens: str):
    def register(fn):
        for token in tokens:
            CALLS[token] = fn
        return fn
    return register


def secret_placeholder(name: str) -> str:
    return f"secret::{name}"


def fake_pem(kind: str, name: str) -> str:
    return f"-----BEGIN {kind}-----\nMOCK{name.replace('-', '')}\n-----END {kind}-----\n"


@mock_output("random:index/randomPassword:RandomPassword")
def _random_password(name: str, inputs: dict) -> dict:
    return {"result": secret_placeholder(name), "bcryptHash": secret_placeholder(name + "-bcrypt")}


@mock_output("random:index/randomString:RandomString", "random:index/randomId:RandomId")
def _random_string(name: str, inputs: dict) -> dict:
    return {"result": f"{name}-rnd", "hex": "abcdef012345", "b64Url": "q83vASNF"}


@mock_output("tls:index/privateKey:PrivateKey")
def _private_key(name: str, inputs: dict) -> dict:
    return {"privateKeyPem": secret_placeholder(name), "publicKeyPem": fake_pem("PUBLIC KEY", name),
            "privateKeyOpenssh": secret_placeholder(name + "-openssh")}


@mock_output("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")
def _cert(name: str, inputs: dict) -> dict:
    return {"certPem": fake_pem("CERTIFICATE", name)}


@mock_output("tls:index/certRequest:CertRequest")
def _csr(name: str, inputs: dict) -> dict:
    return {"certRequestPem": fake_pem("CERTIFICATE REQUEST", name)}


@mock_output("command:local:Command")
def _command(name: str, inputs: dict) -> dict:
    if name.endswith("-kubeconfig"):
        cluster = name.removesuffix("-kubeconfig")
        return {"stdout": mock_kubeconfig(cluster, "https://127.0.0.1:6443"), "stderr": ""}
    return {"stdout": "", "stderr": ""}


@mock_output("docker:index/image:Image")
def _docker_image(name: str, inputs: dict) -> dict:
    image = inputs.get("imageName", name)
    return {"repoDigest": f"{str(image).split(':')[0]}@sha256:{'0' * 64}", "imageName": image}


def mock_kubeconfig(cluster: str, server: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": "TU9DSw=="}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "users": [{"name": cluster, "user": {"token": secret_placeholder(f"{cluster}-token")}}],
    })


class PlatformMocks(pulumi_mocks.Mocks):
    """Echo inputs, add realistic ids/outputs per type, answer provider function calls."""

    def __init__(self, region: str = "us-east-1", stack_references: dict[str, dict] | None = None):
        self.region = region
        self.stack_references = stack_references or {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        if args.typ == STACK_REFERENCE:
            return args.name, stack_reference_state(args.name, self.stack_references)
        state = dict(args.inputs)
        extra = OUTPUTS.get(args.typ)
        if extra is None and args.typ.startswith(("aws:", "gcp:")):
            _load_cloud_mocks(args.typ.split(":")[0])
            extra = OUTPUTS.get(args.typ)
        if extra is not None:
            state.update(extra(args.name, args.inputs))
        if args.typ.startswith("aws:") and "arn" not in state:
            service = args.typ.split(":")[1].split("/")[0]
            state["arn"] = f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{args.name}"
        resource_id = state.pop("__id", None) or f"{args.name}-id"
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs):
        fn = CALLS.get(args.token)
        if fn is None and args.token.startswith(("aws:", "gcp:")):
            _load_cloud_mocks(args.token.split(":")[0])
            fn = CALLS.get(args.token)
        return fn(args.args) if fn else {}


def _load_cloud_mocks(cloud: str) -> None:
    """A cloud's mock table loads on its first resource or call, so a local stack never loads one."""
    if cloud == "aws":
        from cnplatform.testing import aws  # noqa: F401 (registers its mocks)
    elif cloud == "gcp":
        from cnplatform.testing import gcp  # noqa: F401 (registers its mocks)


@mock_output("kubernetes:core/v1:Secret")
def _service_account_token(name: str, inputs: dict) -> dict:
    """The API server fills a ``kubernetes.io/service-account-token`` Secret (mesh remote secrets read it)."""
    if inputs.get("type") != "kubernetes.io/service-account-token":
        return {}
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    ns = (inputs.get("metadata") or {}).get("namespace", "default")
    return {"data": {"token": b64(secret_placeholder(name)), "namespace": b64(ns),
                     "ca.crt": b64(fake_pem("CERTIFICATE", "cluster-ca"))}}


def stack_reference_state(name: str, references: dict[str, dict]) -> dict:
    """The state of a ``StackReference`` to ``name``: its outputs; values wrapped in ``Secret`` are the
    referenced stack's secret outputs (``get_output`` returns them as secrets)."""
    if name not in references:
        raise KeyError(f"StackReference {name!r}: no outputs mocked for it (known: {sorted(references)})")
    outputs = references[name]
    return {"name": name, "outputs": {k: v.value if isinstance(v, Secret) else v for k, v in outputs.items()},
            "secretOutputNames": sorted(k for k, v in outputs.items() if isinstance(v, Secret))}
