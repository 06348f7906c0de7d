"""Policy rule ``kubernetes-object-size`` (issue 17: "a Deployment larger than the API server accepts").

Crafted objects over each limit fail (through the pure check and the real pack objects); objects at
the limit and every object of our renders pass (tests/test_policy.py runs the whole pack on them).
"""
from __future__ import annotations

import base64
import json

import pytest

from policy import size_rules as S
from tests.test_policy import plan_of, run_resource_policies

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def configmap(data: dict, **meta) -> dict:
    return {"metadata": {"name": "dashboards", "namespace": "monitoring", **meta}, "data": data}


def test_configmap_data_over_one_mib_is_refused_and_at_the_limit_passes():
    key = "dash.json"
    at_limit = configmap({key: "x" * (S.MAX_DATA_BYTES - len(key))})
    assert S.data_bytes("ConfigMap", at_limit) == S.MAX_DATA_BYTES
    assert S.check_object_size(CONFIGMAP, at_limit) == []
    over = configmap({key: "x" * (S.MAX_DATA_BYTES - len(key) + 1)})
    [message] = S.check_object_size(CONFIGMAP, over)
    assert "ConfigMap monitoring/dashboards" in message and "1 MiB" in message and "split" in message


def test_secret_data_is_counted_decoded_and_string_data_as_is():
    raw = b"\0" * (S.MAX_DATA_BYTES // 2)
    encoded = base64.b64encode(raw).decode()  # 4/3 larger as JSON: must not count as more than 1 MiB
    secret = {"metadata": {"name": "s", "namespace": "shop"}, "data": {"k": encoded}}
    assert S.data_bytes("Secret", secret) == len(raw) + 1
    assert S.check_object_size(SECRET, secret) == []
    secret["stringData"] = {"more": "y" * (S.MAX_DATA_BYTES // 2)}
    assert any("its data is" in m for m in S.check_object_size(SECRET, secret))


def test_annotations_over_256_kib_are_refused():
    obj = configmap({}, annotations={"a": "z" * S.MAX_ANNOTATION_BYTES})
    [message] = S.check_object_size(CONFIGMAP, obj)
    assert "annotations" in message and "256 KiB" in message


def test_a_deployment_too_large_for_etcd_is_refused():
    env = [{"name": f"V{i}", "value": "v" * 1024} for i in range(1600)]
    deployment = {"metadata": {"name": "big", "namespace": "shop"},
                  "spec": {"template": {"spec": {"containers": [{"name": "app", "env": env}]}}}}
    assert S.object_bytes(deployment) > S.MAX_OBJECT_BYTES
    [message] = S.check_object_size(DEPLOYMENT, deployment)
    assert "Deployment shop/big" in message and "1.5 MiB" in message


def test_non_kubernetes_resources_are_not_measured():
    assert S.check_object_size("aws:s3/bucket:Bucket", {"policy": "x" * (2 * S.MAX_OBJECT_BYTES)}) == []


def test_the_pack_reports_the_violation():
    over = configmap({"d": "x" * (S.MAX_DATA_BYTES + 1)})
    assert [name for name, _ in run_resource_policies(CONFIGMAP, over)] == ["kubernetes-object-size"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_our_largest_objects_are_measured_and_fit(rendered, stack):
    """Not vacuous: the rule sees our ConfigMaps (the Grafana dashboards are the largest)."""
    plan = plan_of(rendered, stack)
    configmaps = [r for r in plan["resources"] if r["type"] == CONFIGMAP]
    assert configmaps
    largest = max(configmaps, key=lambda r: S.data_bytes("ConfigMap", r["inputs"]))
    assert 0 < S.data_bytes("ConfigMap", largest["inputs"]) <= S.MAX_DATA_BYTES
    assert all(S.check_object_size(r["type"], r["inputs"]) == [] for r in plan["resources"]), \
        json.dumps([r["name"] for r in plan["resources"] if S.check_object_size(r["type"], r["inputs"])])
