"""docs/components.md is generated from the components (scripts/gen_component_docs.py) and current."""
import importlib.util
import inspect
import sys

import pulumi
import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def gen():
    path = ROOT / "scripts" / "gen_component_docs.py"
    spec = importlib.util.spec_from_file_location("gen_component_docs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def docs(gen):
    return [gen.document(cls) for cls in gen.discover()]


def test_components_md_is_current(gen, docs):
    current = (ROOT / "docs" / "components.md").read_text()
    assert gen.render(docs) == current, "docs/components.md is stale: run python scripts/gen_component_docs.py"


def test_discovers_every_component(gen, docs):
    names = {d.cls.__name__ for d in docs}
    assert {"Microservice", "ClusterBaseline", "LocalCluster"} <= names
    # Every ComponentResource subclass with `args` defined in the library is there, cloud ones included.
    for module in gen.iter_modules():
        for cls in vars(sys.modules[module]).values():
            if (isinstance(cls, type) and cls.__module__ == module and issubclass(cls, pulumi.ComponentResource)
                    and "args" in inspect.signature(cls.__init__).parameters):
                assert cls.__name__ in names
    text = gen.render(docs)
    assert all(f"### {name}\n" in text for name in names)


def test_every_input_and_output_has_a_docstring(gen, docs):
    """The conventions: a docstring after each args field and each output (docs AND other languages read it)."""
    assert gen.undocumented(docs) == []


def test_tables_carry_types_defaults_and_descriptions(docs):
    micro = next(d for d in docs if d.cls.__name__ == "Microservice")
    assert micro.token == "cnplatform:microservice:Microservice"
    rows = {name: row for name, *row in micro.inputs}
    assert rows["name"][1] == "required" and rows["image"][0] == "`pulumi.Input[str]`"
    assert rows["port"] == ["`int`", "`8080`", rows["port"][2]] and rows["port"][2]
    assert {n for n, _, _ in micro.outputs} >= {"url", "service_account", "selector_labels"}
    assert not {"args", "deployment", "k8s_service"} & {n for n, _, _ in micro.outputs}
    assert [t.__name__ for t, _ in micro.types] == ["SecretKeyRef", "Peer"]
    local = next(d for d in docs if d.cls.__name__ == "LocalCluster")
    assert {"kubeconfig", "endpoint", "zones"} <= {n for n, _, _ in local.outputs}  # inherited from Cluster


def test_check_mode(gen, capsys):
    assert gen.main(["--check"]) == 0
