"""What one offline run registered: every resource with its inputs, options and dependencies.

Inputs keep Pulumi's secret marking (:class:`Secret`); :func:`unwrap` gives plain data.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc


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
    #: Every resource it waits for (the request's ``dependencies``: explicit ``depends_on`` and the
    #: resources whose Outputs feed its inputs, local components expanded to their resources).
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
    #: Those of ``depends_on`` that feed an input (the request's ``propertyDependencies``, every
    #: property's); the others are explicit ``depends_on``.
    property_dependencies: tuple[str, ...] = ()
    #: A remote component (e.g. a Helm v4 ``Chart``): its provider creates its children, and its
    #: registration returns once they exist.
    remote: bool = False

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


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also records parent, provider, dependencies and protect of each resource."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}
        self.reads: list[str] = []

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
            property_dependencies=tuple(sorted({sys.intern(u) for deps in request.propertyDependencies.values()
                                                for u in deps.urns})),
            remote=request.remote,
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


    def ReadResource(self, request):
        self.reads.append(request.type)
        return super().ReadResource(request)


@dataclass
class Capture:
    """Everything one offline run of the program registered."""

    project: str
    stack: str
    #: What the caller ran the program with (the stacks' typed config), for the caller's own use.
    config: Any
    resources: list[Registration]
    #: The program's outputs, resolved (secrets as :class:`Secret`).
    outputs: dict
    #: Type tokens of the resources the program read (``StackReference``, ``.get`` lookups), in order.
    reads: list[str] = field(default_factory=list)

    def by_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registration:
        """The resource of that type and name (an error names what exists when it is not exactly one)."""
        found = [r for r in self.by_type(type_) if r.name == name]
        if len(found) != 1:
            names = sorted(r.name for r in self.by_type(type_))
            raise LookupError(f"{len(found)} {type_} named {name!r}; registered: {names}")
        return found[0]

    def cluster_of(self, reg: Registration) -> str:
        """The cluster a resource belongs to: the cluster owning its provider (Kubernetes objects), else
        its nearest ancestor's (a cluster component among them being its own), else, for a component
        that passes its cluster's provider to its children only (a cloud database), its children's;
        ``_stack`` when none."""
        if not hasattr(self, "_clusters"):
            self._clusters: dict[str, str] = {}
        if reg.urn not in self._clusters:
            index = self._index()
            parent = index.get(reg.parent)
            found = self._own_cluster(reg, index) or (self.cluster_of(parent) if parent else "_stack")
            if found == "_stack" and not reg.custom and reg.type != "pulumi:pulumi:Stack":
                found = self._children_cluster(reg, index) or found
            self._clusters[reg.urn] = found
        return self._clusters[reg.urn]

    def _own_cluster(self, reg: Registration, index: dict[str, Registration]) -> Optional[str]:
        if reg.type.startswith("cnplatform:cluster:") and reg.type.endswith("Cluster"):
            return reg.name
        provider = index.get(reg.provider_urn)
        if provider is None or provider.urn == reg.urn:
            return None
        return self._owning_cluster(provider, index) or provider.name.removesuffix("-k8s")

    def _children_cluster(self, reg: Registration, index: dict[str, Registration]) -> Optional[str]:
        if not hasattr(self, "_by_parent"):
            self._by_parent: dict[str, list[Registration]] = {}
            for r in self.resources:
                self._by_parent.setdefault(r.parent, []).append(r)
        for child in self._by_parent.get(reg.urn, []):
            if found := self._own_cluster(child, index) or self._children_cluster(child, index):
                return found
        return None

    def _index(self) -> dict[str, Registration]:
        if not hasattr(self, "_by_urn"):
            self._by_urn = {r.urn: r for r in self.resources}
        return self._by_urn

    @staticmethod
    def _owning_cluster(reg: Registration, index: dict[str, Registration]) -> Optional[str]:
        node: Optional[Registration] = reg
        while node is not None:
            if node.type.startswith("cnplatform:cluster:") and node.type.endswith("Cluster"):
                return node.name
            node = index.get(node.parent)
        return None


