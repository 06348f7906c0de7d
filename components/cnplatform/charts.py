"""Where a Helm chart comes from: its chart repository, or a directory of unpacked charts.

Every chart-installing component takes an optional ``charts_dir`` (stack config key
``ecommerce-platform:charts_dir``): when set, ``helm.v4.Chart`` loads the chart from
``<charts_dir>/<directory>`` (an unpacked chart, e.g. ``e2e/charts/``) instead of fetching it from
the repository, for air-gapped installs. The pinned chart version still applies to the repository;
a local directory is taken as it is (its ``Chart.yaml`` says which version it is).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, cast

import pulumi
import pulumi_kubernetes as k8s


def chart_source(chart: str, repository: str, charts_dir: Optional[str] = None,
                 directory: Optional[str] = None) -> dict[str, Any]:
    """The ``chart`` and ``repository_opts`` arguments of a ``helm.v4.Chart``: ``chart`` from
    ``repository``, or with ``charts_dir`` the unpacked chart in ``<charts_dir>/<directory or chart>``."""
    if charts_dir:
        return {"chart": os.path.join(os.path.expanduser(charts_dir), directory or chart)}
    return {"chart": chart, "repository_opts": k8s.helm.v4.RepositoryOptsArgs(repo=repository)}


#: Webhook configurations whose ``caBundle`` a controller in the cluster injects after it starts.
WEBHOOK_TYPES = ("kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration",
                 "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration")
#: ``pulumi.com/waitFor`` value (pulumi-kubernetes >= 4.18 user-defined await, any resource type):
#: the object is ready once its first webhook has a ``caBundle``.
CA_BUNDLE_WAIT = "jsonpath={.webhooks[0].clientConfig.caBundle}"


def wait_for_ca_bundle(args: pulumi.ResourceTransformArgs) -> Optional[pulumi.ResourceTransformResult]:
    """``helm.v4.Chart`` transform: the chart's webhook configurations are ready only once their CA has
    been injected (``pulumi.com/waitFor``), so whatever depends on the chart is sent to a callable
    webhook. A webhook created with ``failurePolicy: Fail`` and no ``caBundle`` yet rejects every
    request it matches with an x509 error: cert-manager's (cainjector injects it) and Istio's
    (istiod patches its own validator and injector at start) on a first ``pulumi up``.

    Only for a chart whose webhooks are patched by something that does not wait for the chart itself
    (the chart's own workload, or one installed before it): else the chart never finishes."""
    if args.type_ not in WEBHOOK_TYPES:
        return None
    props = dict(args.props)
    # A chart child's props are plain values here; the SDK types them as Inputs (Output/Awaitable too).
    metadata = dict(cast(Mapping[str, Any], props.get("metadata") or {}))
    metadata["annotations"] = {**(metadata.get("annotations") or {}), "pulumi.com/waitFor": CA_BUNDLE_WAIT}
    props["metadata"] = metadata
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)
