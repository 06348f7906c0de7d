"""stacks.compare: which lists the plan diff compares as sets, and how it names their members."""
from stacks.compare import MISSING, field_changes, member_label, set_like_for

NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def peer(name: str, namespace: str = "") -> dict:
    out: dict = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}
    if namespace:
        out["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return out


def changes(type_: str, old, new):
    return field_changes({"inputs": old}, {"inputs": new}, set_like=set_like_for(type_))


def test_a_peer_inserted_first_is_one_member_added():
    old = {"spec": {"ingress": [{"from": [peer("order")]}]}}
    new = {"spec": {"ingress": [{"from": [peer("cart"), peer("order")]}]}}
    assert changes(NETPOL, old, new) == [("inputs.spec.ingress[0].from[+]", MISSING, peer("cart"))]
    # Without the table the same lists compare by position: what the diff used to say.
    assert [p for p, _, _ in field_changes(old, new)] == [
        "spec.ingress[0].from[0].podSelector.matchLabels.app.kubernetes.io/name", "spec.ingress[0].from[1]"]


def test_a_peer_replaced_is_one_removed_and_one_added():
    old = {"spec": {"ingress": [{"from": [peer("order")]}]}}
    new = {"spec": {"ingress": [{"from": [peer("cart")]}]}}
    assert changes(NETPOL, old, new) == [("inputs.spec.ingress[0].from[-]", peer("order"), MISSING),
                                         ("inputs.spec.ingress[0].from[+]", MISSING, peer("cart"))]


def test_reordered_set_members_are_no_change():
    old = {"spec": {"policyTypes": ["Ingress", "Egress"], "ingress": [{"from": [peer("a"), peer("b")]}]}}
    new = {"spec": {"policyTypes": ["Egress", "Ingress"], "ingress": [{"from": [peer("b"), peer("a")]}]}}
    assert changes(NETPOL, old, new) == []


def test_ordered_lists_stay_positional():
    """Container args and env are ordered: a changed value is a change at its index, a reorder is a change."""
    old = {"spec": {"template": {"spec": {"containers": [{"args": ["--b", "--a"]}]}}}}
    new = {"spec": {"template": {"spec": {"containers": [{"args": ["--a", "--b"]}]}}}}
    assert [p for p, _, _ in changes(DEPLOYMENT, old, new)] == [
        "inputs.spec.template.spec.containers[0].args[0]", "inputs.spec.template.spec.containers[0].args[1]"]
    # Sorted scalars of the same length: a value changed in place, not "- x, + y".
    assert changes(DEPLOYMENT, {"x": ["a", "b"]}, {"x": ["a", "c"]}) == [("inputs.x[1]", "b", "c")]
    # Sorted, unique scalars with one more: a member added, whatever the resource.
    assert changes(DEPLOYMENT, {"x": ["a", "c"]}, {"x": ["a", "b", "c"]}) == [("inputs.x[+]", MISSING, "b")]


def test_a_member_changed_inside_is_compared_field_by_field():
    """One more principal in the only `from` of a rule: the principal added, not the whole `from` replaced."""
    rule = {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/order"]}}]}
    more = {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/cart", "cluster.local/ns/shop/sa/order"]}}]}
    assert changes("kubernetes:security.istio.io/v1:AuthorizationPolicy", {"spec": {"rules": [rule]}},
                   {"spec": {"rules": [more]}}) == [
        ("inputs.spec.rules[0].from[0].source.principals[+]", MISSING, "cluster.local/ns/shop/sa/cart")]


def test_member_labels():
    assert member_label(peer("cart")) == "cart"
    assert member_label(peer("reviews", "reviews")) == "reviews/reviews"
    assert member_label({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}) \
        == "monitoring/*"
    assert member_label({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}) == "kube-system/k8s-app=kube-dns"
    block = {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
    assert member_label(block) == "10.0.0.0/8 except 10.1.0.0/16"
    assert member_label({"port": 8080, "protocol": "TCP"}) == "8080/TCP"
    assert member_label({"port": 3306}) == "3306/TCP"
    assert member_label("cluster.local/ns/shop/sa/cart") == "cluster.local/ns/shop/sa/cart"
    assert member_label({"source": {"namespaces": ["monitoring"]}}) == '{"source": {"namespaces": ["monitoring"]}}'
