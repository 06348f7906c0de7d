"""The offline render contract: files, determinism, secrets, and schema-valid manifests."""
import json
import re
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
    keys = {"urn", "type", "name", "parent", "cluster", "provider", "depends_on", "protect", "inputs"}
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


# ------------------------------------------------------------------------- what the render prints


def _main(capsys, *argv):
    from stacks import render

    code = render.main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


def test_summary_leads_with_each_cluster_then_the_detail(tmp_path, capsys):
    """prod: first per cluster its resources, requests against allocatable and warnings (what a reviewer
    needs), then the footprint by layer; the type counts only with --verbose."""
    from stacks.summary import footprint_data
    from tests.helpers import config_of

    out, err = _main(capsys, "--stack", "prod", "--out", str(tmp_path / "prod"))
    lines = out.splitlines()
    plan = json.loads((tmp_path / "prod" / "plan.json").read_text())
    footprint = json.loads((tmp_path / "prod" / "footprint.json").read_text())
    assert footprint == footprint_data(config_of("prod"))
    head = re.fullmatch(r"rendered stack 'prod' in \d+\.\ds: (\d+) resources -> (.*)", lines[0])
    assert head and int(head[1]) == len(plan["resources"]) and head[2] == str(tmp_path / "prod")
    for i, (name, fp) in enumerate(footprint["clusters"].items(), start=1):
        req, cap = fp["requests"], fp["allocatable"]
        assert lines[i].startswith(f"  {name} ({fp['cloud']}) "), lines[i]
        assert (f"requests {req['cpu_m']}m CPU / {req['memory_mi']}Mi of {cap['cpu_m']}m / {cap['memory_mi']}Mi "
                f"({100 * req['cpu_m'] / cap['cpu_m']:.0f}% / {100 * req['memory_mi'] / cap['memory_mi']:.0f}%)") \
            in lines[i]
    assert "warning" not in lines[1] and "warning" not in lines[2]  # prod pins its Karpenter AMI: no cluster warning
    warnings = out.index("warnings:\n")
    assert "  stack: secret 'slackWebhookUrl' is not set" in out[warnings:]
    assert warnings < out.index("footprint prod-eks (aws): allocatable") < out.index("footprint prod-gke (gcp)")
    assert lines[-1] == "(resources by type: --verbose)" and "kubernetes:apps/v1:Deployment" not in out
    assert len(lines) < 40 and err == ""  # was 150 lines, mostly type counts; warnings were on stderr, unattributed
    # The resource counts of the headline are the type counts' totals.
    verbose, _ = _main(capsys, "--stack", "prod", "--out", str(tmp_path / "v"), "--verbose")
    by_type = verbose[verbose.index("resources by type:\n"):]
    for name in footprint["clusters"]:
        count = re.search(rf"^  {name} \(\w+\) +(\d+) resources", out, re.M)[1]
        assert f"\n  {name}: {count}\n" in by_type
    assert "kubernetes:apps/v1:Deployment" in by_type
    assert tree(tmp_path / "prod") == tree(tmp_path / "v")  # the printed time is in no file


def test_quiet_prints_only_the_warnings_on_stderr(tmp_path, capsys):
    out, err = _main(capsys, "--stack", "staging", "--out", str(tmp_path / "s"), "-q")
    assert out == ""
    assert err.splitlines() == ["warning: secret 'slackWebhookUrl' is not set (pulumi config set --secret "
                                "slackWebhookUrl ...): rendered as a placeholder"]
