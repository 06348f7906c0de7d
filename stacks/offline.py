"""Run the real composition under Pulumi mocks and capture everything it would create.

Used by the offline render (``python -m stacks.render``) and by the tests, so both exercise the
exact code path of ``pulumi up``. Mock outputs are realistic (ids, ARNs, endpoints, provider
calls such as availability zones); every generated secret is the placeholder ``secret::<name>``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cnplatform import gc_tuning, sdk_patches
from stacks.config import PROJECT, StackConfig

ACCOUNT_ID = "123456789012"


class Secret:
    """Marks a value Pulumi would treat as secret (the render masks it in plan.json)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __repr__(self) -> str:
        return "Secret(***)"


def unwrap(value: Any, *, mask: Optional[str] = None) -> Any:
    """Plain data from captured values: secrets unwrapped (or replaced by ``mask``), integral floats as ints."""
    if isinstance(value, Secret):
        return mask if mask is not None else unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v, mask=mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v, mask=mask) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _capture(value: Any) -> Any:
    """Deserialized RPC values -> plain values with :class:`Secret` markers."""
    if rpc.is_rpc_secret(value):
        return Secret(_capture(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    if isinstance(value, dict):
        return {k: _capture(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_capture(v) for v in value]
    return value


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    providers: dict[str, str]
    depends_on: list[str]
    protect: bool
    #: The inputs as sent (serialized protobuf Struct) and the mock state the monitor holds, decoded
    #: on first read through ``inputs`` / ``outputs``: a capture of hundreds of services stays small.
    #: ``outputs_wire`` is None when the outputs equal the inputs (the mocks echo inputs).
    inputs_wire: bytes = field(repr=False, default=b"")
    outputs_wire: Optional[bytes] = field(repr=False, default=None)
    id: str = ""
    #: Resource options the engine acts on beyond dependencies (empty / False when not set).
    delete_before_replace: bool = False
    additional_secret_outputs: tuple[str, ...] = ()
    #: Registration order (the program's own order; ``Capture.resources`` is sorted by URN).
    seq: int = 0

    @cached_property
    def inputs(self) -> dict:
        """Inputs with :class:`Secret` markers where Pulumi would treat a value as secret."""
        return _capture(rpc.deserialize_properties(struct_pb2.Struct.FromString(self.inputs_wire), keep_unknowns=True))

    @cached_property
    def outputs(self) -> dict:
        """The mock provider's outputs (what the resource's Output properties resolve to)."""
        return _capture(rpc.deserialize_properties(struct_pb2.Struct.FromString(self.outputs_state_wire),
                                                   keep_unknowns=True))

    @property
    def outputs_state_wire(self) -> bytes:
        return self.inputs_wire if self.outputs_wire is None else self.outputs_wire

    @property
    def provider_urn(self) -> str:
        ref = self.provider or self.providers.get("kubernetes", "")
        return ref.split("::" + ref.rsplit("::", 1)[-1])[0] if ref else ""


# --------------------------------------------------------------------------------------- mocks

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

    def __init__(self, region: str = "us-east-1"):
        self.region = region

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
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
    """Cloud mock tables live beside their cloud code and load only when a cloud is used."""
    import importlib

    try:
        importlib.import_module(f"stacks.mocks_{cloud}")
    except ModuleNotFoundError:
        pass


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also records parent, provider, dependencies and protect of each resource."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        urn = response.urn
        if request.type == "pulumi:pulumi:Stack":
            return response
        # Most mock outputs echo the inputs: then only the inputs are kept (``outputs`` decodes them).
        inputs_wire = request.object.SerializeToString(deterministic=True)
        outputs_wire = response.object.SerializeToString(deterministic=True)
        self.registrations[urn] = Registration(
            urn=urn, type=request.type, name=request.name, parent=request.parent,
            custom=request.custom, provider=request.provider, providers=dict(request.providers),
            depends_on=sorted({sys.intern(d) for d in request.dependencies}), protect=request.protect,
            inputs_wire=inputs_wire, outputs_wire=None if outputs_wire == inputs_wire else outputs_wire,
            id=response.id, seq=len(self.registrations),
            delete_before_replace=request.deleteBeforeReplace,
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
        )
        # The state lives on as wire bytes above (a fraction of the dicts' size at hundreds of services).
        self.resources[urn] = self.resources[urn]._replace(state={})
        return response

    def Invoke(self, request):
        if request.tok == "pulumi:pulumi:getResource":  # serve the state kept as wire bytes
            args = rpc.deserialize_properties(request.args)
            reg = self.registrations.get(args["urn"])
            if reg is not None:
                self.resources[reg.urn] = self.resources[reg.urn]._replace(
                    state=rpc.deserialize_properties(struct_pb2.Struct.FromString(reg.outputs_state_wire)))
        return super().Invoke(request)


@mock_output("kubernetes:core/v1:Secret")
def _service_account_token(name: str, inputs: dict) -> dict:
    """The API server fills a ``kubernetes.io/service-account-token`` Secret (mesh remote secrets read it)."""
    if inputs.get("type") != "kubernetes.io/service-account-token":
        return {}
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    ns = (inputs.get("metadata") or {}).get("namespace", "default")
    return {"data": {"token": b64(secret_placeholder(name)), "namespace": b64(ns),
                     "ca.crt": b64(fake_pem("CERTIFICATE", "cluster-ca"))}}


# -------------------------------------------------------------------------------------- runner


@dataclass
class Capture:
    """Everything one offline run of the program registered."""

    project: str
    stack: str
    config: StackConfig
    resources: list[Registration]
    outputs: dict

    def by_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def cluster_of(self, reg: Registration) -> str:
        """The cluster a resource belongs to: for Kubernetes objects the cluster owning their provider,
        otherwise the cluster component among its ancestors; ``_stack`` when none."""
        index = self._index()
        if reg.provider_urn in index:
            provider = index[reg.provider_urn]
            return self._owning_cluster(provider, index) or provider.name.removesuffix("-k8s")
        return self._owning_cluster(reg, index) or "_stack"

    def _index(self) -> dict[str, Registration]:
        if not hasattr(self, "_by_urn"):
            self._by_urn = {r.urn: r for r in self.resources}
        return self._by_urn

    @staticmethod
    def _owning_cluster(reg: Registration, index: dict) -> Optional[str]:
        node = reg
        while node is not None:
            if node.type.startswith("cnplatform:cluster:") and node.type.endswith("Cluster"):
                return node.name
            node = index.get(node.parent)
        return None


def flatten_config(raw: dict, secure: dict[str, str], project: str = PROJECT) -> tuple[dict, list[str]]:
    """Pulumi's flat config map: objects JSON-encoded, ``secure:`` values as ``secret::<key>``."""
    flat = {f"{project}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    secret_keys = []
    for key in secure:
        flat[f"{project}:{key}"] = secret_placeholder(key)
        secret_keys.append(f"{project}:{key}")
    return flat, secret_keys


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        inner = await value.future(with_unknowns=True)
        resolved = await _resolve(inner)
        return Secret(resolved) if await value.is_secret() else resolved
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [await _resolve(v) for v in value]
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    return value


def run_program(program: Callable[[], dict], *, stack: str, raw: dict, secure: Optional[dict] = None,
                project: str = PROJECT, config: Optional[StackConfig] = None) -> Capture:
    """Run ``program`` (returns the stack outputs) under mocks with the given stack config."""
    secure = secure or {}
    sdk_patches.apply()  # as __main__.py does
    monitor = RecordingMonitor(PlatformMocks())
    pulumi_mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    flat, secret_keys = flatten_config(raw, secure, project)
    set_all_config(flat, secret_keys)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    result: dict = {}

    def body():
        outputs = program()

        async def collect():
            result.update(await _resolve(outputs))
        return _sync_await(collect())

    with gc_tuning.batch_thresholds():  # as __main__.py sets them
        _sync_await(run_pulumi_func(body))
    return Capture(project=project, stack=stack, config=config, outputs=result,
                   resources=sorted(monitor.registrations.values(), key=lambda r: r.urn))


def run_stack(cfg: StackConfig, *, stack: str, raw: dict, secure: Optional[dict] = None) -> Capture:
    """Run the platform composition exactly as ``__main__.py`` does (config read through pulumi.Config)."""
    from stacks.config import load_stack_config
    from stacks.platform import build_platform

    return run_program(lambda: build_platform(load_stack_config()), stack=stack, raw=raw,
                       secure=secure, config=cfg)

