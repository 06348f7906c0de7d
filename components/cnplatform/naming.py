"""Pure naming and labelling helpers shared by every component."""
from __future__ import annotations

from cnplatform import PACKAGE

MANAGED_BY = "pulumi"
PART_OF = "ecommerce-platform"


def type_token(module: str, type_name: str) -> str:
    """``cnplatform:<module>:<Type>``, the token Pulumi uses for a component and its schema."""
    return f"{PACKAGE}:{module}:{type_name}"


def app_labels(name: str, component: str = "service", version: str | None = None,
               part_of: str = PART_OF) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels (plus ``app`` for Istio telemetry)."""
    labels = {
        "app": name,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if version:
        labels["app.kubernetes.io/version"] = version
        labels["version"] = version
    return labels


def pod_security_labels(level: str, audit: str | None = None) -> dict[str, str]:
    """The Pod Security Admission labels of a namespace: ``level`` enforced (latest policy version) and
    warned, audited at ``audit`` (default: the same level). The one definition every namespace uses."""
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": audit or level,
        "pod-security.kubernetes.io/warn": level,
    }


def selector_labels(name: str) -> dict[str, str]:
    """The stable subset used in selectors (never includes the version)."""
    return {"app.kubernetes.io/name": name}


def service_account_principal(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """The SPIFFE-style principal Istio authorization policies match on."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"
