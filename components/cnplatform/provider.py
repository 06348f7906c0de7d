"""cnplatform as a Pulumi component package: its components usable from every Pulumi language.

``components/PulumiPlugin.yaml`` and ``components/__main__.py`` make the library's source folder
(and the installed ``cnplatform`` package, ``python -m cnplatform``) a source-based Pulumi plugin.
``pulumi package add`` runs it to get the package schema and generates an SDK for the consumer's
language (TypeScript, Go, C#, Java, YAML, Python); at ``pulumi up`` the engine asks it to construct
the components, which run this Python code.

The schema is inferred by ``pulumi.provider.experimental`` from type annotations. The library's
components follow the repo conventions (dataclass args with defaults, postponed annotations,
Python-only handles such as ``Microservice.deployment`` next to the outputs), which that inference
reads differently from what a Python user means. :func:`portable` bridges the two without touching
a component:

* annotations are resolved: ``from __future__ import annotations`` turns them into strings, which
  the Analyzer cannot read;
* a field with a default is an optional input: the Analyzer infers "optional" only from
  ``Optional[...]``, so every defaulted field would otherwise be required in other languages;
* only ``pulumi.Output[T]`` class annotations are outputs: handles (``args``, ``deployment``...)
  stay Python-only instead of leaking into the schema; so are wait lists among the args
  (``list[pulumi.Resource]``, e.g. ``MySqlDatabaseArgs.cluster_ready``): other languages use ``dependsOn``;
* ``construct`` receives the inputs as a dict (schema names mapped back to Python names): they are
  turned back into the component's args dataclass (nested dataclasses, ints sent as floats).

The resource token other languages use is ``cnplatform:index:<Type>`` (the Python host serves only
the ``index`` module); the constructed component registers itself with its own token
(``cnplatform:<module>:<Type>``), so state, policies and aliases see the same type whichever
language created it.
"""
import dataclasses
import importlib.util
import inspect
import json
import sys
import types
import typing
from collections import abc
from typing import Any, Callable, Optional, Union

import pulumi

from cnplatform import PACKAGE, __version__

_PULUMI_BASES = (pulumi.ComponentResource, pulumi.Resource, object)


# ------------------------------------------------------------------------------------ hosting


def hosted_classes() -> list[type[pulumi.ComponentResource]]:
    """Components served to other languages: every public component of the library.

    Those on the base dependencies (Kubernetes, random, TLS, command) are always hosted: the plugin's
    venv (``components/requirements.txt``) has exactly these. A component that needs a cloud SDK is
    hosted when that SDK (its pip extra, :data:`cnplatform.extras.EXTRAS`) is installed in the venv the
    plugin runs in: EKS, Karpenter and ECR repositories with ``[aws]``, GKE, Cloud SQL private access and
    Artifact Registry with ``[gcp]``. ``MySqlDatabase`` and ``ServiceImage`` are on the base dependencies; their cloud
    modes load the cloud SDK when constructed (a missing one names its extra)."""
    from cnplatform.addons.cert_manager import CertManager
    from cnplatform.addons.certificate import TlsCertificate
    from cnplatform.addons.metrics_server import MetricsServer
    from cnplatform.cicd.jenkins import Jenkins
    from cnplatform.cluster.baseline import ClusterBaseline
    from cnplatform.cluster.local import LocalCluster
    from cnplatform.cluster.priority import PlatformPriorityClasses
    from cnplatform.database.mysql import MySqlDatabase
    from cnplatform.mesh.ca import MeshRootCa
    from cnplatform.mesh.consul import ConsulCatalogSync
    from cnplatform.mesh.egress import ExternalService
    from cnplatform.mesh.istio import IstioMesh
    from cnplatform.mesh.multicluster import RemoteSecret
    from cnplatform.mesh.service_policy import ServiceMeshPolicy
    from cnplatform.microservice import Microservice
    from cnplatform.monitoring.service import ServiceMonitoring
    from cnplatform.monitoring.stack import MonitoringStack
    from cnplatform.registry.image import ServiceImage

    hosted: list[type[pulumi.ComponentResource]] = [
        ClusterBaseline, Microservice, LocalCluster, PlatformPriorityClasses, CertManager, TlsCertificate,
        MetricsServer, IstioMesh, MeshRootCa, RemoteSecret, ServiceMeshPolicy, ExternalService, ConsulCatalogSync,
        MonitoringStack, ServiceMonitoring, Jenkins, MySqlDatabase, ServiceImage,
    ]
    if sdk_installed("pulumi_aws"):
        from cnplatform.cluster.eks import EksCluster
        from cnplatform.cluster.karpenter import Karpenter
        from cnplatform.registry.ecr import EcrRepositories

        hosted += [EksCluster, Karpenter, EcrRepositories]
    if sdk_installed("pulumi_gcp"):
        from cnplatform.cluster.gke import GkeCluster
        from cnplatform.database.mysql import CloudSqlPrivateAccess
        from cnplatform.registry.image import ArtifactRepository

        hosted += [GkeCluster, CloudSqlPrivateAccess, ArtifactRepository]
    return hosted


#: Components hosted only with a cloud SDK installed: class name -> the SDK module (its extra: EXTRAS).
CLOUD_HOSTED = {"EksCluster": "pulumi_aws", "Karpenter": "pulumi_aws", "EcrRepositories": "pulumi_aws",
                "GkeCluster": "pulumi_gcp",
                "CloudSqlPrivateAccess": "pulumi_gcp", "ArtifactRepository": "pulumi_gcp"}


def sdk_installed(module: str) -> bool:
    """Whether a cloud SDK is importable here (without importing it)."""
    return importlib.util.find_spec(module) is not None


def hosted_table() -> list[str]:
    """Markdown table of the hosted components (docs/components.md): token, Python class, what it needs."""
    from cnplatform.extras import EXTRAS

    rows = ["| Token (other languages) | Python class | Hosted |", "| --- | --- | --- |"]
    for cls in hosted_classes():
        sdk = CLOUD_HOSTED.get(cls.__name__)
        needs = f"with `cnplatform[{EXTRAS[sdk]}]` in the plugin's venv" if sdk else "always (base dependencies)"
        rows.append(f"| `{PACKAGE}:index:{cls.__name__}` | `{cls.__module__}.{cls.__name__}` | {needs} |")
    return rows


def hosted_components() -> list[type[pulumi.ComponentResource]]:
    """The portable view of every component of :func:`hosted_classes`."""
    return [portable(cls) for cls in hosted_classes()]


def component_provider(components: Optional[list[type[pulumi.ComponentResource]]] = None):
    """The provider ``pulumi package add`` talks to (schema inference happens here, offline)."""
    from pulumi.provider.experimental.component import ComponentProvider

    return ComponentProvider(components or hosted_components(), PACKAGE, None, __version__)


def package_schema() -> dict:
    """The package schema exactly as the plugin serves it (``pulumi package get-schema``)."""
    return json.loads(component_provider().schema)


def main() -> None:
    """Plugin entry point (``components/__main__.py``, ``python -m cnplatform``)."""
    from pulumi.provider.experimental import component_provider_host

    component_provider_host(components=hosted_components(), name=PACKAGE, version=__version__)


# ------------------------------------------------------------------------ the portable view


def portable(component: type[pulumi.ComponentResource]) -> type[pulumi.ComponentResource]:
    """A class the schema Analyzer reads as intended, constructing the real ``component``.

    Same name, module, qualname and docstring as ``component`` (so the Analyzer finds the field
    and output docstrings in its source); ``__init__`` annotated with a resolved view of the args
    class; class annotations = the resolved ``pulumi.Output[T]`` outputs only. Instantiating it
    builds the real component from the dict the provider passes.
    """
    hints = inspect.get_annotations(component.__init__, eval_str=True)
    if "args" not in hints:
        raise TypeError(f"{component.__name__}.__init__ needs a parameter `args` with a type annotation")
    args_type = hints["args"]
    view = _SchemaView()
    args_view = view.resolve(args_type)
    outputs = {name: view.resolve(tp) for name, tp in output_annotations(component).items()}

    # A component's constructor is (name, args, opts), not ComponentResource's (type, name, props, opts).
    construct: Callable[..., pulumi.ComponentResource] = component

    def __new__(cls, name: str, args: Any, opts: Optional[pulumi.ResourceOptions] = None):
        return construct(name, from_inputs(args_type, args), opts)

    def __init__(self, name: str, args: Any, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """Never runs: ``__new__`` returns the real component."""

    __init__.__annotations__ = {"name": str, "args": args_view, "opts": Optional[pulumi.ResourceOptions],
                                "return": None}
    namespace = {
        "__new__": __new__, "__init__": __init__, "__doc__": component.__doc__,
        "__module__": component.__module__, "__qualname__": component.__qualname__,
        "__annotations__": outputs, "__wrapped__": component,
    }
    if hasattr(component, "__firstlineno__"):  # Python >= 3.13 finds class source by line number
        namespace["__firstlineno__"] = component.__firstlineno__
    return type(component.__name__, (pulumi.ComponentResource,), namespace)


def output_annotations(component: type) -> dict[str, Any]:
    """``{name: pulumi.Output[T]}`` declared on the component and its own bases (resolved)."""
    out: dict[str, Any] = {}
    for cls in reversed(component.__mro__):
        if cls in _PULUMI_BASES:
            continue
        for name, tp in _own_annotations(cls).items():
            if not name.startswith("_") and typing.get_origin(tp) is pulumi.Output:
                out[name] = tp
    return out


def field_annotations(cls: type) -> dict[str, Any]:
    """A dataclass's field annotations, resolved in their modules (bases first).

    Not ``typing.get_type_hints``: it would also evaluate the ``"Output[T]"`` forward reference
    inside ``pulumi.Input[...]``, which the schema Analyzer expects to find unevaluated.
    """
    hints: dict[str, Any] = {}
    for cls_ in reversed(cls.__mro__):
        if cls_ is not object:
            hints.update(inspect.get_annotations(cls_, eval_str=True))
    return hints


def _own_annotations(cls: type) -> dict[str, Any]:
    """A class's own annotations, strings evaluated in its module (unresolvable ones skipped)."""
    raw = cls.__dict__.get("__annotations__", {})
    module = sys.modules.get(cls.__module__)
    globalns = dict(vars(module)) if module else {}
    resolved = {}
    for name, tp in raw.items():
        if isinstance(tp, str):
            try:
                tp = eval(tp, globalns, dict(vars(cls)))  # noqa: S307 - annotations of our own source
            except Exception:  # noqa: BLE001 - a handle whose type is only known to type checkers
                continue
        resolved[name] = tp
    return resolved


def _subscript(generic: Any, params: Any) -> Any:
    """``generic[params]``: a type built at run time from resolved arguments (not a static annotation)."""
    return generic[params]


class _SchemaView:
    """Resolved, schema-shaped stand-ins for the args dataclasses (memoized, recursion-safe)."""

    def __init__(self) -> None:
        self._views: dict[type, type] = {}

    def resolve(self, tp: Any) -> Any:
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._dataclass(tp)
        origin = typing.get_origin(tp)
        if origin is None:
            return tp
        args = tuple(self.resolve(a) for a in typing.get_args(tp))
        if origin in (Union, types.UnionType):
            return Union[args]
        if origin is abc.Awaitable:
            return _subscript(abc.Awaitable, args[0])
        if origin in (list, abc.Sequence, abc.MutableSequence):
            return _subscript(list, args[0])
        if origin in (dict, abc.Mapping, abc.MutableMapping):
            return _subscript(dict, (args[0], args[1]))
        return origin[args if len(args) > 1 else args[0]]

    def _dataclass(self, cls: type) -> type:
        if cls in self._views:
            return self._views[cls]
        namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                     "__doc__": cls.__doc__, "__annotations__": {}}
        if hasattr(cls, "__firstlineno__"):
            namespace["__firstlineno__"] = cls.__firstlineno__
        view = type(cls.__name__, (), namespace)
        self._views[cls] = view
        hints = field_annotations(cls)
        for f in dataclasses.fields(cls):
            if _is_wait_list(hints[f.name]):
                continue
            tp = self.resolve(hints[f.name])
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if has_default and not _is_optional(tp):
                tp = Optional[tp]
            view.__annotations__[f.name] = tp
        return view


def _is_wait_list(tp: Any) -> bool:
    """``list[pulumi.Resource]``: what some of a component's children wait for (``cluster_ready``). A
    schema has no type for "any resource", so such a field is Python-only; other languages make the whole
    component wait with ``dependsOn``."""
    return typing.get_origin(tp) in (list, abc.Sequence) and typing.get_args(tp) == (pulumi.Resource,)


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


# ------------------------------------------------------------------------ inputs -> dataclasses


def from_inputs(tp: Any, value: Any) -> Any:
    """Turn provider inputs (dicts keyed by Python field names) into ``tp``; Outputs pass through.

    >>> from_inputs(list[int], [1.0, 2.0])
    [1, 2]
    """
    if value is None or isinstance(value, pulumi.Output):
        return value
    tp = _plain(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        hints = field_annotations(tp)
        kwargs = {f.name: from_inputs(hints[f.name], value[f.name]) for f in dataclasses.fields(tp)
                  if f.init and value.get(f.name) is not None}
        return tp(**kwargs)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, abc.Sequence, abc.MutableSequence) and isinstance(value, (list, tuple)):
        return [from_inputs(args[0], v) for v in value]
    if origin in (dict, abc.Mapping, abc.MutableMapping) and isinstance(value, abc.Mapping):
        return {k: from_inputs(args[1], v) for k, v in value.items()}
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _plain(tp: Any) -> Any:
    """``Optional[X]`` / ``Input[X]`` -> ``X``."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)
                   and typing.get_origin(a) not in (abc.Awaitable, pulumi.Output)
                   and not isinstance(a, typing.ForwardRef)]
        if len(members) == 1:
            return _plain(members[0])
    return tp
