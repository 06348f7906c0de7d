"""The typed stack config: defaults per tier, and bad configs rejected with every error and its key path."""
import copy
import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError

from stacks.checks import check_config
from stacks.config import ConfigError, StackConfig
from tests.helpers import ROOT, STACKS, stack_raw

GOOD = {
    "tier": "dev",
    "clusters": [{"name": "dev", "cloud": "local"}],
    "services": [
        {"name": "user", "image": "ghcr.io/acme/user:1.0"},
        {"name": "order", "image": "ghcr.io/acme/order:1.0", "calls": ["user"]},
    ],
}


def errors_of(raw, secret_keys=None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        check_config(raw, secret_keys=secret_keys)
    return exc.value.errors


def bad(change) -> dict:
    raw = copy.deepcopy(GOOD)
    change(raw)
    return raw


def paths(errors):
    return [p for p, _ in errors]


@pytest.mark.parametrize("stack", STACKS)
def test_checked_in_stacks_are_valid(stack):
    cfg = check_config(stack_raw(stack)[0])
    assert cfg.tier == stack


def test_tier_defaults():
    dev = check_config(GOOD)
    assert [dev.replicas(s) for s in dev.services] == [1, 1]
    prod = check_config({**GOOD, "tier": "prod", "mesh": {"ingress": {"hosts": ["shop.example.com"]}}, "clusters": [
        {"name": "p", "cloud": "aws", "region": "eu-west-1",
         "aws": {"deployer_role_arns": ["arn:aws:iam::111111111111:role/d"]},
         "node_pools": [{"name": "w", "machine_type": "m6i.xlarge", "min_size": 3, "max_size": 6}]}]})
    assert [prod.replicas(s) for s in prod.services] == [3, 3]
    assert prod.protect and not dev.protect
    assert dev.clusters[0].region == "local"


def test_unknown_key_with_did_you_mean():
    errs = errors_of(bad(lambda r: r["services"][0].update(replcas=2)))
    assert paths(errs) == ["services[0].replcas"]
    assert "did you mean 'replicas'?" in errs[0][1]


def test_unknown_top_level_key():
    errs = errors_of(bad(lambda r: r.update(monitorin={"enabled": True})))
    assert paths(errs) == ["monitorin"] and "did you mean 'monitoring'?" in errs[0][1]


def test_wrong_type():
    errs = errors_of(bad(lambda r: r["services"][0].update(port="http")))
    assert paths(errs) == ["services[0].port"]


def test_port_out_of_range():
    errs = errors_of(bad(lambda r: r["services"][0].update(port=70000)))
    assert paths(errs) == ["services[0].port"] and "65535" in errs[0][1]


def test_invalid_dns1123_name():
    errs = errors_of(bad(lambda r: r["services"][0].update(name="User_Service")))
    assert "services[0].name" in paths(errs)
    assert "DNS-1123" in dict(errs)["services[0].name"]


def test_calls_unknown_service_with_hint():
    errs = errors_of(bad(lambda r: r["services"][1].update(calls=["usr"])))
    assert paths(errs) == ["services[1].calls[0]"]
    assert "unknown service 'usr'" in errs[0][1] and "did you mean 'user'?" in errs[0][1]


def test_duplicate_service_names():
    errs = errors_of(bad(lambda r: r["services"].append({"name": "user", "image": "x:1"})))
    assert paths(errs) == ["services[2].name"] and "duplicate" in errs[0][1]


def test_duplicate_cluster_names():
    errs = errors_of(bad(lambda r: r["clusters"].append({"name": "dev", "cloud": "local"})))
    assert paths(errs) == ["clusters[1].name"]


def test_bad_quantity():
    errs = errors_of(bad(lambda r: r["services"][0].update(
        resources={"requests": {"cpu": "100m", "memory": "512mb"}, "limits": {"cpu": "1", "memory": "1Gi"}})))
    assert paths(errs) == ["services[0].resources.requests.memory"] and "512mb" in errs[0][1]


def test_limits_below_requests():
    errs = errors_of(bad(lambda r: r["services"][0].update(
        resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}})))
    assert paths(errs) == ["services[0].resources"] and "limits.cpu" in errs[0][1]


def test_prod_with_one_replica():
    raw = bad(lambda r: r.update(tier="prod", clusters=[{"name": "p", "cloud": "gcp", "region": "europe-west1"}],
                                 mesh={"ingress": {"hosts": ["shop.example.com"]}}))
    raw["services"][0]["replicas"] = 1
    errs = errors_of(raw)
    assert paths(errs) == ["services[0].replicas"] and "at least 3" in errs[0][1]


def test_unknown_cloud():
    errs = errors_of(bad(lambda r: r["clusters"][0].update(cloud="azure")))
    assert paths(errs) == ["clusters[0].cloud"] and "'azure'" in errs[0][1]


def test_missing_region_for_cloud_cluster():
    deployer = {"deployer_role_arns": ["arn:aws:iam::111111111111:role/d"]}
    errs = errors_of(bad(lambda r: r["clusters"][0].update(cloud="aws", aws=deployer)))
    assert paths(errs) == ["clusters[0]"] and "region is required" in errs[0][1]


def test_min_greater_than_max_replicas():
    errs = errors_of(bad(lambda r: r["services"][0].update(autoscaling={"min_replicas": 5, "max_replicas": 2})))
    assert paths(errs) == ["services[0].autoscaling"]


def test_secret_env_without_key():
    errs = errors_of(bad(lambda r: r["services"][0].update(secret_env={"DB_PASSWORD": {"secret": "db"}})))
    assert paths(errs) == ["services[0].secret_env.DB_PASSWORD.key"]


def test_image_and_build_exclusive():
    errs = errors_of(bad(lambda r: r["services"][0].update(build="services/user")))
    assert paths(errs) == ["services[0]"] and "exactly one" in errs[0][1]


def test_missing_tier_and_clusters():
    errs = errors_of({"services": []})
    assert set(paths(errs)) == {"tier", "clusters"}


def test_undeclared_namespace():
    errs = errors_of(bad(lambda r: r["services"][0].update(namespace="payments")))
    assert paths(errs) == ["services[0].namespace"]


def test_receiver_secret_must_exist():
    raw = bad(lambda r: r.update(monitoring={"receivers": [
        {"name": "oncall", "type": "pagerduty", "severity": "page", "secret_config_key": "pagerdutyKey"}]}))
    errs = errors_of(raw, secret_keys=set())
    assert paths(errs) == ["monitoring.receivers[0].secret_config_key"]
    check_config(raw, secret_keys={"pagerdutyKey"})


def test_every_error_is_listed_at_once():
    def many(r):
        r["services"][0].update(name="Bad_Name", port=0, replcas=1)
        r["services"][1]["calls"] = ["nope"]
        r["clusters"][0]["cloud"] = "azure"
    errs = errors_of(bad(many))
    assert {"services[0].name", "services[0].port", "services[0].replcas",
            "services[1].calls[0]", "clusters[0].cloud"} <= set(paths(errs))


def test_requests_over_capacity_rejected():
    raw = bad(lambda r: r["services"][0].update(replicas=40, resources={
        "requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}))
    errs = errors_of(raw)
    assert paths(errs) == ["clusters[0]"] and "allocatable" in errs[0][1]


def test_model_is_typed():
    cfg = check_config(GOOD)
    assert isinstance(cfg, StackConfig)
    with pytest.raises(ValidationError):
        cfg.tier = "qa"


def test_render_exits_2_listing_errors_and_writes_nothing(tmp_path):
    raw = bad(lambda r: (r["services"][0].update(port=0), r["services"][1].update(calls=["ghost"])))
    file = tmp_path / "Pulumi.bad.yaml"
    file.write_text(yaml.safe_dump({"config": {f"ecommerce-platform:{k}": v for k, v in raw.items()}}))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "stacks.render", "--stack", "bad", "--config", str(file),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "services[0].port" in proc.stderr and "services[1].calls[0]" in proc.stderr
    assert not out.exists()


def test_unsupported_kubernetes_minor_is_a_config_error():
    raw = {"tier": "dev", "clusters": [{"name": "dev", "cloud": "local", "kubernetes_version": "1.31"}]}
    with pytest.raises(ConfigError) as err:
        check_config(raw)
    assert "clusters[0].kubernetes_version" in str(err.value) and "supported: 1.35" in str(err.value)


def test_partial_resources_keep_the_other_defaults():
    cfg = check_config(bad(lambda r: r["services"][0].update(resources={"requests": {"memory": "512Mi"}})))
    res = cfg.services[0].resources
    assert (res.requests.cpu, res.requests.memory) == ("100m", "512Mi")
    assert (res.limits.cpu, res.limits.memory) == ("500m", "512Mi")


def test_env_literals_too_big_for_the_api_server():
    from cnplatform.validation import MAX_ENV_BYTES

    errs = errors_of(bad(lambda r: r["services"][0].update(env={"BLOB": "x" * (MAX_ENV_BYTES + 1)})))
    assert "services[0].env" in paths(errs) and "object size limit" in dict(errs)["services[0].env"]
