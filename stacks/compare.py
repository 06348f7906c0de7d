"""How two resources' configurations differ, for ``python -m stacks.diff``: the changed leaves as dotted
paths, set-like lists as members added / removed, and the fields whose change replaces a resource."""
from __future__ import annotations

import fnmatch
import json
import re
from typing import Any, Callable, Optional

MISSING = object()
#: The label the platform selects a service's pods by (``cnplatform.naming.selector_labels``).
NAME_LABEL = "app.kubernetes.io/name"

#: (type glob, field path) pairs: a change at or under such a path replaces the resource. "*" = any input.
#: Kubernetes immutable fields, cloud identity/placement fields, and providers whose every input is ForceNew.
REPLACE_ON: list[tuple[str, str]] = [
    ("kubernetes:*", "metadata.name"),
    ("kubernetes:*", "metadata.namespace"),
    ("kubernetes:apps/v1:Deployment", "spec.selector"),
    ("kubernetes:apps/v1:DaemonSet", "spec.selector"),
    ("kubernetes:apps/v1:ReplicaSet", "spec.selector"),
    ("kubernetes:apps/v1:StatefulSet", "spec.selector"),
    ("kubernetes:apps/v1:StatefulSet", "spec.serviceName"),
    ("kubernetes:apps/v1:StatefulSet", "spec.volumeClaimTemplates"),
    ("kubernetes:apps/v1:StatefulSet", "spec.podManagementPolicy"),
    ("kubernetes:batch/v1:Job", "spec.template"),
    ("kubernetes:batch/v1:Job", "spec.selector"),
    ("kubernetes:core/v1:Service", "spec.clusterIP"),
    ("kubernetes:core/v1:Service", "spec.clusterIPs"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.storageClassName"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.accessModes"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.volumeName"),
    ("kubernetes:core/v1:Secret", "type"),
    ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "roleRef"),
    ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "roleRef"),
    ("kubernetes:helm.sh/v4:Chart", "name"),
    ("kubernetes:helm.sh/v4:Chart", "namespace"),
    ("kubernetes:helm.sh/v3:Release", "name"),
    ("kubernetes:helm.sh/v3:Release", "namespace"),
    ("aws:*", "name"),
    ("aws:*", "namePrefix"),
    ("aws:*", "region"),
    ("aws:*", "availabilityZone"),
    ("aws:*", "cidrBlock"),
    ("aws:*", "vpcId"),
    ("aws:*", "engine"),
    ("aws:*", "identifier"),
    ("aws:*", "bucket"),
    ("aws:*", "clusterName"),
    ("aws:*", "nodeGroupName"),
    ("aws:*", "kmsKeyId"),
    ("gcp:*", "name"),
    ("gcp:*", "project"),
    ("gcp:*", "region"),
    ("gcp:*", "location"),
    ("gcp:*", "zone"),
    ("gcp:*", "network"),
    ("gcp:*", "ipCidrRange"),
    ("gcp:*", "databaseVersion"),
    ("random:*", "*"),
    ("tls:*", "*"),
    ("command:local:Command", "triggers"),
    ("pulumi:providers:*", "*"),
]

#: (type glob, list path with ``[]`` for any index): lists whose order means nothing (OR'ed peers, ports,
#: principals), compared as sets: ``+ item`` / ``- item``. Lists of scalars sorted and unique on both sides
#: are compared so too (their order is the content's), whatever their path.
SET_LIKE: list[tuple[str, str]] = [
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spec.ingress[].from"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spec.ingress[].ports"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spec.egress[].to"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spec.egress[].ports"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spec.policyTypes"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].from"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].to"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].from[].source.principals"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].from[].source.namespaces"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].to[].operation.paths"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].to[].operation.methods"),
    ("kubernetes:security.istio.io/v1:AuthorizationPolicy", "spec.rules[].to[].operation.ports"),
    ("kubernetes:networking.istio.io/v1:*", "spec.hosts"),
    ("kubernetes:networking.istio.io/v1:*", "spec.exportTo"),
    ("kubernetes:rbac.authorization.k8s.io/v1:*", "rules[].verbs"),
    ("kubernetes:rbac.authorization.k8s.io/v1:*", "rules[].resources"),
    ("kubernetes:rbac.authorization.k8s.io/v1:*", "subjects"),
]


SetLike = Callable[[str, list, list], bool]


def set_like_for(type_: str) -> SetLike:
    """Whether a list at ``path`` (of the inputs of a resource of ``type_``) is compared as a set:
    :data:`SET_LIKE`, or scalars sorted and unique on both sides with a member more or less."""
    shapes = {shape for pattern, shape in SET_LIKE if fnmatch.fnmatchcase(type_, pattern)}

    def set_like(path: str, old: list, new: list) -> bool:
        shape = re.sub(r"\[\d+\]", "[]", path.removeprefix("inputs."))
        return shape in shapes or (len(old) != len(new) and _canonical(old) and _canonical(new))
    return set_like


def _canonical(items: list) -> bool:
    """Scalars of one kind, sorted and unique: the order carries nothing."""
    kinds = {type(x) for x in items}
    if len(kinds) > 1 or not kinds <= {str, int, float}:
        return False
    return all(items[i] < items[i + 1] for i in range(len(items) - 1))


def field_changes(old: Any, new: Any, path: str = "", set_like: Optional[SetLike] = None) -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) of every leaf that differs; MISSING marks an absent side. Lists that
    ``set_like`` names are compared as sets: a member added is ``(path[+], MISSING, item)``, removed
    ``(path[-], item, MISSING)``; members changed inside are compared field by field."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            here = f"{path}.{key}" if path else str(key)
            out += field_changes(old.get(key, MISSING), new.get(key, MISSING), here, set_like)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if set_like is not None and set_like(path, old, new):
            return _set_changes(old, new, path, set_like)
        out = []
        for i in range(max(len(old), len(new))):
            out += field_changes(old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING,
                                 f"{path}[{i}]", set_like)
        return out
    return [] if old == new else [(path or "(root)", old, new)]


def _set_changes(old: list, new: list, path: str, set_like: SetLike) -> list[tuple[str, Any, Any]]:
    added = list(new)
    removed = []
    for item in old:
        if item in added:
            added.remove(item)
        else:
            removed.append(item)
    if removed and len(removed) == len(added) and all(isinstance(x, dict) for x in removed + added):
        # As many members gone as came, all objects, and they differ only by members of lists inside (one
        # more principal in the only `from` of a rule): the same members, changed inside at their position.
        inner = [field_changes(a, b, f"{path}[{new.index(b)}]", set_like) for a, b in zip(removed, added, strict=True)]
        if all(member_change(p) for changes in inner for p, _, _ in changes):
            return [c for changes in inner for c in changes]
    return [(f"{path}[-]", x, MISSING) for x in removed] + [(f"{path}[+]", MISSING, x) for x in added]


def member_change(path: str) -> Optional[tuple[str, str]]:
    """(list path, "+" or "-") for a set member change, else None."""
    if path.endswith(("[+]", "[-]")):
        return path[:-3], path[-2]
    return None


def member_label(item: Any) -> str:
    """A set member in a few words: a NetworkPolicy peer by its selectors (``cart`` for the pods of service
    ``cart``, ``monitoring/*``, ``kube-system/k8s-app=kube-dns``, a CIDR), a port as ``8080/TCP``."""
    if not isinstance(item, dict):
        return str(item)
    if set(item) <= {"podSelector", "namespaceSelector"} and item:
        pods = _selector(item.get("podSelector"))
        if "namespaceSelector" not in item:
            return pods or "*"
        namespace = _selector(item["namespaceSelector"], "kubernetes.io/metadata.name")
        return f"{namespace or '*'}/{pods or '*'}"
    if set(item) == {"ipBlock"}:
        block = item["ipBlock"]
        return block.get("cidr", "?") + (f" except {', '.join(block['except'])}" if block.get("except") else "")
    if set(item) <= {"port", "protocol", "endPort"} and "port" in item:
        span = f"{item['port']}-{item['endPort']}" if "endPort" in item else f"{item['port']}"
        return f"{span}/{item.get('protocol', 'TCP')}"
    return json.dumps(item, sort_keys=True, ensure_ascii=False)


def _selector(selector: Optional[dict], name_key: str = NAME_LABEL) -> str:
    """``value`` of a selector on ``name_key`` alone, else ``k=v,...``; empty for "every one"."""
    labels = (selector or {}).get("matchLabels") or {}
    if set(selector or {}) - {"matchLabels"}:
        return json.dumps(selector, sort_keys=True)
    if set(labels) == {name_key}:
        return str(labels[name_key])
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _path_under(path: str, prefix: str) -> bool:
    return prefix == "*" or path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def replacement_fields(type_: str, paths: list[str]) -> list[str]:
    """The changed paths of a resource of ``type_`` that force its replacement (set member paths
    ``x[+]``/``x[-]`` count as under ``x``)."""
    rules = [prefix for pattern, prefix in REPLACE_ON if fnmatch.fnmatchcase(type_, pattern)]
    return [p for p in paths if any(_path_under(p, prefix) for prefix in rules)]
