"""Callers from other stacks (another team's service built with the library) are admitted explicitly,
by both the NetworkPolicy (L3/4) and the AuthorizationPolicy (L7), and by nothing else."""
import pytest

from stacks.checks import check_config
from stacks.config import ConfigError
from tests.helpers import capture_raw, objects, with_changes


def _admit_reviews(raw):
    product = next(s for s in raw["services"] if s["name"] == "product")
    product["external_callers"] = [{"name": "reviews", "namespace": "reviews"}]


@pytest.fixture(scope="module")
def capture():
    return capture_raw(with_changes("dev", _admit_reviews), stack="dev-ext")


def _policy(capture, kind, name):
    return next(o for o in objects(capture, kind) if o["metadata"]["name"] == name)


def test_authorization_policy_admits_the_external_caller_and_the_declared_ones(capture):
    rules = _policy(capture, "AuthorizationPolicy", "product")["spec"]["rules"]
    principals = {p for r in rules for s in r["from"] for p in s.get("source", {}).get("principals", [])}
    assert "cluster.local/ns/reviews/sa/reviews" in principals
    assert "cluster.local/ns/shop/sa/order" in principals
    # Nobody else gained access.
    user_rules = _policy(capture, "AuthorizationPolicy", "user")["spec"]["rules"]
    assert not any("reviews" in str(r) for r in user_rules)


def test_network_policy_admits_the_external_caller_from_its_namespace(capture):
    ingress = _policy(capture, "NetworkPolicy", "product")["spec"]["ingress"]
    peers = [p for rule in ingress for p in rule.get("from", [])]
    assert any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "reviews"
               and p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "reviews"
               for p in peers), peers


def test_external_caller_names_are_validated():
    raw = with_changes("dev", lambda r: r["services"][1].update(external_callers=[{"name": "Reviews"}]))
    with pytest.raises(ConfigError) as exc:
        check_config(raw)
    paths = [p for p, _ in exc.value.errors]
    assert "services[1].external_callers[0].name" in paths and "services[1].external_callers[0].namespace" in paths
