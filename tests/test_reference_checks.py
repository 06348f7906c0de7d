"""The reference checkers themselves catch what they must (so a green check means something)."""
from tests.reference_checks import chart_version, unknown_values_keys, validate_custom_resource

VS = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "user", "namespace": "shop"},
    "spec": {"hosts": ["user"], "http": [{"route": [{"destination": {"host": "user", "port": {"number": 8080}},
                                                     "weight": 100}], "timeout": "5s"}]},
}


def test_valid_custom_resource_passes():
    assert validate_custom_resource(VS) == []


def test_unknown_field_and_wrong_type_are_caught():
    bad = {**VS, "spec": {**VS["spec"], "hostz": ["x"], "http": [{"timeout": 5}]}}
    errors = validate_custom_resource(bad)
    assert any("hostz" in e for e in errors) and any("timeout" in e for e in errors)


def test_prometheus_rule_schema():
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "x", "namespace": "monitoring"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5m"}]}]}}
    assert validate_custom_resource(rule) == []
    rule["spec"]["groups"][0]["rules"][0]["exprr"] = "x"
    assert validate_custom_resource(rule)


def test_values_keys_checked_against_upstream():
    good = {"pilot": {"autoscaleEnabled": True}, "meshConfig": {"accessLogFile": "x"}}
    assert unknown_values_keys("istiod", good) == []
    assert unknown_values_keys("istiod", {"pilot": {"autoscaleEnabld": True}}) == ["autoscaleEnabld"]
    assert unknown_values_keys("kube-prometheus-stack", {"grafana": {"admin": {"existingSecret": "g"}}}) == []
    assert unknown_values_keys("jenkins", {"controller": {"admnUser": "x"}}) == ["controller.admnUser"]
    assert chart_version("istiod") == "1.29.6" and chart_version("kube-prometheus-stack") == "88.5.3"
