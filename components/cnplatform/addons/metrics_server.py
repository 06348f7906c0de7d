"""metrics-server: the ``metrics.k8s.io`` API that HorizontalPodAutoscalers and ``kubectl top`` read.

Installed from the upstream chart (kubernetes-sigs/metrics-server) with ``helm.v4.Chart``. The Helm
values come from :func:`metrics_server_values`, a pure function the platform's footprint reads too,
so the requests counted against node capacity are exactly the ones the chart gets.
"""

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.charts import chart_source
from cnplatform.cluster.priority import SYSTEM_CLUSTER_CRITICAL, priority_class_name
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on

CHART = "metrics-server"
CHART_VERSION = "3.13.1"
REPOSITORY = "https://kubernetes-sigs.github.io/metrics-server/"
NAMESPACE = "kube-system"
RELEASE = "metrics-server"
#: Node ports the API server calls: the aggregated API (v1beta1.metrics.k8s.io, containerPort 10250).
CONTROL_PLANE_PORTS = (10250,)

#: kind's kubelets serve a self-signed certificate (not signed by the cluster CA), so metrics-server
#: cannot verify it. Only ever set on local clusters: on EKS the kubelet certificates are signed by
#: the cluster CA and verification must stay on.
KUBELET_INSECURE_TLS_ARG = "--kubelet-insecure-tls"


@dataclass
class MetricsServerArgs:
    """Inputs of :class:`MetricsServer`."""

    namespace: str = NAMESPACE
    """Namespace of the release (the chart's APIService points at its Service there)."""
    chart_version: str = CHART_VERSION
    """Pinned chart version."""
    repository: str = REPOSITORY
    """Helm repository of the chart."""
    charts_dir: Optional[str] = None
    """Directory of unpacked charts (air-gapped installs): the chart is loaded from
    ``<charts_dir>/metrics-server`` instead of the repository."""
    replicas: int = 1
    """Pods; above 1 the chart also gets a PodDisruptionBudget (minAvailable 1) and spreads pods over
    nodes and zones."""
    kubelet_insecure_tls: bool = False
    """Skip verifying kubelet serving certificates. Only for kind, whose kubelet certificates are self-signed."""
    cpu_request: str = "50m"
    """CPU request of the metrics-server container (upstream guidance: ~1m per node)."""
    memory_request: str = "64Mi"
    """Memory request of the metrics-server container (upstream guidance: ~2Mi per node)."""
    cpu_limit: str = "250m"
    """CPU limit of the metrics-server container."""
    memory_limit: str = "256Mi"
    """Memory limit of the metrics-server container."""
    priority_class_name: str = SYSTEM_CLUSTER_CRITICAL
    """PriorityClass of the pods: the chart's ``system-cluster-critical`` (a kube-system add-on HPAs depend on)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "namespace": _v.dns_label, "replicas": _v.positive, "cpu_request": _v.quantity,
            "memory_request": _v.quantity, "cpu_limit": _v.quantity, "memory_limit": _v.quantity,
            "priority_class_name": priority_class_name,
        }, checks=[_v.requests_within_limits(("cpu_request", "cpu_limit"), ("memory_request", "memory_limit"))])


def metrics_server_values(args: MetricsServerArgs) -> dict:
    """The chart's Helm values (keys of metrics-server 3.13.1's values.yaml only)."""
    ha = args.replicas > 1
    values: dict = {
        "replicas": args.replicas,
        "resources": {
            "requests": {"cpu": args.cpu_request, "memory": args.memory_request},
            "limits": {"cpu": args.cpu_limit, "memory": args.memory_limit},
        },
        "args": [KUBELET_INSECURE_TLS_ARG] if args.kubelet_insecure_tls else [],
        "podDisruptionBudget": {"enabled": ha, **({"minAvailable": 1} if ha else {})},
        "priorityClassName": args.priority_class_name,
    }
    if ha:
        selector = {"matchLabels": {"app.kubernetes.io/name": CHART, "app.kubernetes.io/instance": RELEASE}}
        # Soft spreading: never blocks scheduling on a small cluster, still separates pods when it can.
        values["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ]
    return values


class MetricsServer(pulumi.ComponentResource):
    """metrics-server from its upstream chart, pinned."""

    namespace: pulumi.Output[str]
    """Namespace of the release."""
    release_name: pulumi.Output[str]
    """Helm release name (also the Deployment/Service name)."""
    chart_version: pulumi.Output[str]
    """Installed chart version."""

    def __init__(self, name: str, args: MetricsServerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("addons", "MetricsServer"), name, None, opts)
        deps = inherited_depends_on(opts)
        #: The Helm chart (depend on it for anything that needs the metrics API). Not a class
        #: annotation: class annotations are the component's schema outputs.
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            **chart_source(CHART, args.repository, args.charts_dir),
            version=args.chart_version,
            name=RELEASE,
            namespace=args.namespace,
            values=metrics_server_values(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps),
        )
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.release_name = pulumi.Output.from_input(RELEASE)
        self.chart_version = pulumi.Output.from_input(args.chart_version)
        self.register_outputs({
            "namespace": self.namespace, "release_name": self.release_name, "chart_version": self.chart_version,
        })
