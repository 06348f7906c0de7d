"""Register a Kubernetes custom resource from a manifest built by a pure function."""
from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def custom_resource(name: str, doc: dict, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """``doc`` is the whole manifest (apiVersion, kind, metadata, spec), as the pure builders return it."""
    return k8s.apiextensions.CustomResource(
        name, api_version=doc["apiVersion"], kind=doc["kind"], metadata=doc["metadata"],
        spec=doc.get("spec", {}), opts=opts,
    )
