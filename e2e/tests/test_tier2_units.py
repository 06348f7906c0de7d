"""Tier 2's pure parts, without a cluster or the CLI: the e2e stack config (overrides, never a layer
switched off), the documented-outputs check, and what a failed CLI run is summarised as."""
from __future__ import annotations

import subprocess

import yaml

from e2e import tier2


def _dev() -> dict:
    return yaml.safe_load((tier2.REPO / "Pulumi.dev.yaml").read_text())["config"]


def test_e2e_config_points_the_dev_stack_at_the_simulated_cluster_and_keeps_every_layer():
    dev = _dev()
    cfg, notes = tier2.e2e_config(dev, context="sim-e2e", kubeconfig="/w/kubeconfig", charts_dir="/charts",
                                  known_keys=tier2.program_config_keys(tier2.REPO))
    ns = "ecommerce-platform:"
    local = cfg[ns + "clusters"][0]["local"]
    assert local == {**dev[ns + "clusters"][0].get("local", {}), "existing_context": "sim-e2e",
                     "kubeconfig_path": "/w/kubeconfig"}
    for svc in cfg[ns + "services"]:
        assert "build" not in svc and svc["image"] == tier2.pinned_image(svc["name"]) and "@sha256:" in svc["image"]
    # everything else as the dev stack declares it: no layer is switched off to get green
    for key in dev:
        if key not in (ns + "clusters", ns + "services"):
            assert cfg[key] == dev[key], key
    assert cfg[ns + "charts_dir"] == "/charts"
    assert any("existing_context" in n for n in notes)
    assert dev[ns + "services"][0].get("build"), "the input is not modified"


def test_charts_dir_only_when_the_program_knows_the_key():
    cfg, notes = tier2.e2e_config(_dev(), context="c", kubeconfig="k", charts_dir="/charts", known_keys={"tier"})
    assert "ecommerce-platform:charts_dir" not in cfg
    assert any("no charts_dir key" in n for n in notes)


def test_the_program_has_the_charts_dir_key():
    assert "charts_dir" in tier2.program_config_keys(tier2.REPO)


def test_pinned_images_are_deterministic_and_distinct():
    assert tier2.pinned_image("user") == tier2.pinned_image("user") != tier2.pinned_image("order")


def test_outputs_check_names_each_missing_output():
    good = {"tier": "dev", "clusters": {"dev": {k: "x" for k in
                                                ("cloud", "region", "zones", "endpoint", "registry_url",
                                                 "workload_identity")}},
            "kubeconfigs": {"dev": "apiVersion: v1\nclusters: []\n"}}
    assert tier2.check_outputs(good, ["dev"]) == []
    bad = {"tier": "dev", "clusters": {"dev": {"cloud": "local"}}, "kubeconfigs": {}}
    problems = tier2.check_outputs(bad, ["dev"])
    assert "output clusters.dev.endpoint missing" in problems
    assert "output kubeconfigs.dev missing or not a kubeconfig" in problems


def test_error_summary_keeps_the_error_lines():
    proc = subprocess.CompletedProcess([], 1, "ok line\n  error: no resource plugin 'pulumi-resource-x' found\n",
                                       "warning: w\n")
    assert tier2.error_summary(proc) == "error: no resource plugin 'pulumi-resource-x' found"


def test_changes_summary_lists_the_resources_a_preview_changes():
    out = (" +- kubernetes:core/v1:ConfigMap stamp replace [diff: ~data]\n"
           "    pulumi:pulumi:Stack p-dev  \n ~  kubernetes:apps/v1:Deployment web update [diff: ~spec]\n")
    summary = tier2.changes_summary(subprocess.CompletedProcess([], 7, out, ""))
    assert "ConfigMap stamp replace" in summary and "Deployment web update" in summary and "Stack" not in summary


def test_policy_violations_are_listed_with_their_message():
    out = ("Policies:\n    ❌ cnplatform-guarantees@v0.1.0 (local: /p)\n"
           "        - [mandatory]  container-resources  (kubernetes:apps/v1:Deployment: web)\n"
           "          Every container sets cpu/memory requests and limits.\n"
           "          Deployment default/web: container 'c' does not set resources requests.cpu\n")
    assert tier2.policy_violations(subprocess.CompletedProcess([], 255, out, "")) == (
        "[mandatory] container-resources (kubernetes:apps/v1:Deployment: web): "
        "Deployment default/web: container 'c' does not set resources requests.cpu")


def test_the_built_versions_are_the_ones_requirements_pins():
    """The e2e tests what users run: CLI and providers at the versions of the Python SDK pins."""
    pins = dict(ln.split("==") for ln in (tier2.REPO / "requirements.txt").read_text().splitlines()
                if "==" in ln and not ln.startswith("#"))
    v = tier2.versions()
    assert v["PULUMI_VERSION"] == f"v{pins['pulumi']}" == v["PULUMI_LANGUAGE_PYTHON_VERSION"]
    for plugin, key in tier2.PROVIDERS.items():
        assert v[key] == pins[f"pulumi-{plugin}"], plugin
