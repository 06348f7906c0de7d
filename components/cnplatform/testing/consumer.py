"""A team's test of its own stack or component in a few lines: run it under the library's mocks, then read
its resolved outputs and the resources it registered.

::

    from cnplatform.testing import Secret, run_component
    from cnplatform.microservice import Microservice, MicroserviceArgs

    def test_reviews():
        run = run_component(lambda: Microservice("reviews", MicroserviceArgs(
            name="reviews", image="ghcr.io/acme/reviews:1.0@sha256:" + "0" * 64, port=8080)))
        assert run.outputs["url"] == "http://reviews.default.svc.cluster.local:8080"
        assert run.manifest("Deployment", "reviews-deployment")["spec"]["replicas"] == 1
        assert "HorizontalPodAutoscaler" in run.kinds()

``build`` returns either a component (its ``pulumi.Output`` attributes are the outputs) or a dict of
stack outputs (a whole program, e.g. ``lambda: team_app.deploy(settings)``). A program that reads
another stack gets ``stack_references={"org/platform/dev": {...outputs, "kubeconfigs": Secret({...})}}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import pulumi

from cnplatform.testing.capture import Capture, Registration, unwrap
from cnplatform.testing.runner import run_program

_URN = "__component_urn__"


@dataclass
class ComponentRun:
    """What one run registered, read the way a consumer's test asks."""

    capture: Capture
    #: URN of the component ``build`` returned (None for a program returning its outputs).
    component_urn: Optional[str] = None

    @property
    def outputs(self) -> dict:
        """The resolved outputs (secret values wrapped in :class:`~cnplatform.testing.Secret`)."""
        return self.capture.outputs

    @property
    def plain_outputs(self) -> dict:
        """The outputs as plain data (secrets unwrapped, integral floats as ints)."""
        return unwrap(self.capture.outputs)

    @property
    def reads(self) -> list[str]:
        """Type tokens of what the program read (``pulumi:pulumi:StackReference``, ``.get`` lookups)."""
        return self.capture.reads

    @property
    def resources(self) -> list[Registration]:
        """Every registered resource: the component's descendants when ``build`` returned a component."""
        if self.component_urn is None:
            return list(self.capture.resources)
        by_urn = {r.urn: r for r in self.capture.resources}

        def under(reg: Registration) -> bool:
            parent = by_urn.get(reg.parent)
            return reg.parent == self.component_urn or (parent is not None and under(parent))
        return [r for r in self.capture.resources if under(r)]

    def of(self, type_: str) -> list[Registration]:
        """Resources of a type: a full token (``kubernetes:apps/v1:Deployment``) or its last part
        (``Deployment``); ``kubernetes`` alone gives the Kubernetes providers."""
        if type_ == "kubernetes":
            return [r for r in self.resources if r.type == "pulumi:providers:kubernetes"]
        return [r for r in self.resources if r.type == type_ or r.type.endswith(":" + type_)]

    def one(self, type_: str, name: str) -> Registration:
        """The one resource of that type (as in :meth:`of`) and Pulumi name; an error lists what exists."""
        found = [r for r in self.of(type_) if r.name == name]
        if len(found) != 1:
            names = sorted(r.name for r in self.of(type_))
            raise LookupError(f"{len(found)} {type_} named {name!r}; registered: {names}")
        return found[0]

    def manifest(self, type_: str, name: str) -> dict:
        """That resource's inputs as plain data (for a Kubernetes object: its manifest)."""
        return unwrap(self.one(type_, name).inputs)

    def kinds(self) -> set[str]:
        """The kinds of the Kubernetes objects registered (``Deployment``, ``NetworkPolicy``...)."""
        return {r.type.rsplit(":", 1)[-1] for r in self.resources
                if r.type.startswith("kubernetes:") and r.custom}


def run_component(build: Callable[[], Union[pulumi.ComponentResource, dict]], *, project: str = "consumer",
                  stack: str = "test", config: Optional[dict] = None, secrets: Optional[dict] = None,
                  stack_references: Optional[dict[str, dict]] = None) -> ComponentRun:
    """Run ``build`` under mocks (no CLI, cluster or cloud) and return a :class:`ComponentRun`.

    ``config``: this project's config (``pulumi.Config()`` reads it); ``secrets``: secret config keys;
    ``stack_references``: outputs of the stacks it reads, by stack name (``Secret(...)`` values are secret
    outputs). An error raised while building (or in an apply) propagates.
    """
    def program() -> dict:
        built = build()
        if isinstance(built, pulumi.ComponentResource):
            outputs = {name: getattr(built, name) for name in _output_names(type(built)) if hasattr(built, name)}
            return {_URN: built.urn, **outputs}
        return dict(built or {})

    capture = run_program(program, project=project, stack=stack, raw=config, secure=secrets,
                          stack_references=stack_references)
    urn = capture.outputs.pop(_URN, None)
    return ComponentRun(capture, urn)


def _output_names(component: type) -> list[str]:
    """The component's declared outputs: its ``pulumi.Output[...]`` class annotations (bases too)."""
    names: list[str] = []
    for cls in reversed(component.__mro__):
        for name, annotation in vars(cls).get("__annotations__", {}).items():
            text = annotation if isinstance(annotation, str) else repr(annotation)
            if not name.startswith("_") and "Output[" in text and name not in names:
                names.append(name)
    return names
