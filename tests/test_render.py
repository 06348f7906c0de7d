"""The offline render contract: files, determinism, secrets, and schema-valid manifests."""
import json
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from tests.helpers import ROOT, STACKS, capture_stack, manifests

K8S_VERSION = "1.31"


def run_render(stack, out, *extra):
    return subprocess.run([sys.executable, "-m", "stacks.render", "--stack", stack, "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True)


def tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_render_cli_writes_plan_manifests_and_summary(tmp_path):
    proc = run_render("dev", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert "rendered stack 'dev'" in proc.stdout and "footprint dev (local)" in proc.stdout
    plan = json.loads((tmp_path / "a" / "plan.json").read_text())
    assert plan["project"] == "ecommerce-platform" and plan["stack"] == "dev"
    keys = {"urn", "type", "name", "parent", "provider", "depends_on", "protect", "inputs"}
    assert plan["resources"] and all(set(r) == keys for r in plan["resources"])
    assert plan["outputs"]["kubeconfigs"] == "[secret]"
    assert plan["outputs"]["clusters"]["dev"]["cloud"] == "local"
    assert (tmp_path / "a" / "manifests" / "dev" / "_cluster" / "Namespace-shop.yaml").exists()
    # Two runs give byte-identical output.
    assert run_render("dev", tmp_path / "b").returncode == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_secure_config_values_become_placeholders(tmp_path):
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["ecommerce-platform:monitoring"] = {"receivers": [
        {"name": "oncall", "type": "pagerduty", "severity": "page", "secret_config_key": "pdKey"}]}
    doc["config"]["ecommerce-platform:pdKey"] = {"secure": "v1:AAAAciphertext"}
    cfg = tmp_path / "Pulumi.sec.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    proc = run_render("sec", tmp_path / "out", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    text = "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "AAAAciphertext" not in text
    assert "secret::pdKey" not in (tmp_path / "out" / "plan.json").read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_manifests_pass_kubernetes_validate_strict(rendered, stack):
    docs = manifests(rendered(stack))
    assert docs
    errors = []
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            continue  # custom resources: validated against their CRDs elsewhere
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{path.name}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_placeholder_outside_secret_objects(rendered, stack):
    out = rendered(stack)
    leaks = []
    for path in out.rglob("*"):
        if not path.is_file() or "secret::" not in path.read_text():
            continue
        if "manifests" in path.parts and yaml.safe_load(path.read_text()).get("kind") == "Secret":
            continue
        leaks.append(str(path.relative_to(out)))
    assert not leaks


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_has_explicit_name_and_namespace(rendered, stack):
    from stacks.render import CLUSTER_SCOPED

    for path, doc in manifests(rendered(stack)):
        meta = doc["metadata"]
        assert meta.get("name"), path
        if doc["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace"), path


def test_capture_keeps_outputs_only_when_they_differ_from_the_inputs():
    capture = capture_stack("dev")
    echoed = capture.by_type("kubernetes:core/v1:ServiceAccount")
    assert echoed and all(r.outputs_wire is None and r.outputs == r.inputs for r in echoed)
    computed = capture.by_type("random:index/randomPassword:RandomPassword")
    assert computed and all(r.outputs_wire is not None and "result" in r.outputs and "result" not in r.inputs
                            for r in computed)
