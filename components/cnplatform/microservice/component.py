"""``Microservice``: one HTTP service on Kubernetes, secure and observable by default."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.microservice import spec
from cnplatform.monitoring.promql import SLO_AVAILABILITY, SLO_LATENCY_MS, SLO_LATENCY_TARGET
from cnplatform.naming import app_labels, selector_labels, type_token
from cnplatform.options import inherited_depends_on


@dataclass
class Peer:
    """Another service this one calls or is called by."""

    name: str
    """Service name (its Service, ServiceAccount and ``app.kubernetes.io/name`` label)."""
    namespace: Optional[str] = None
    """Its namespace; None means the same namespace as this service."""
    port: int = 8080
    """Its Service port (used for calls: egress rule and ``<NAME>_SERVICE_URL``)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"name": _v.dns_label, "namespace": _v.dns_label, "port": _v.port})


@dataclass
class SecretKeyRef:
    """An environment variable read from a key of a Kubernetes Secret (never a literal)."""

    secret: str
    """Secret name, in the service's namespace."""
    key: str
    """Key inside the Secret."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"secret": _v.dns_label, "key": _v.secret_key})


@dataclass
class MicroserviceArgs:
    """Inputs of :class:`Microservice`. Defaults are the dev-tier defaults; the stack sets tier values."""

    name: str
    """Service name (DNS-1123): Deployment, Service, ServiceAccount, NetworkPolicy, HPA, PDB names."""
    image: pulumi.Input[str]
    """Image reference (cloud: by digest ``repo@sha256:...``; dev: a local tag loaded into kind)."""
    namespace: str = "shop"
    """Namespace (must exist: the stack's baseline creates it)."""
    port: int = 8080
    """Container and Service port (named ``http``); the app also serves ``/metrics`` there."""
    replicas: int = 1
    """Replicas (tier default: dev 1, staging 2, prod 3). The HPA floor when autoscaling."""
    cpu_request: str = "100m"
    """CPU request per pod."""
    memory_request: str = "128Mi"
    """Memory request per pod."""
    cpu_limit: str = "500m"
    """CPU limit per pod."""
    memory_limit: str = "256Mi"
    """Memory limit per pod."""
    env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    """Plain environment variables (never secrets). Win over derived ones (upstream URLs, MYSQL_*)."""
    secret_env: dict[str, SecretKeyRef] = field(default_factory=dict)
    """Environment variables read from Secrets with ``secretKeyRef``."""
    calls: list[Peer] = field(default_factory=list)
    """Services this one calls: egress rules and ``<CALLEE>_SERVICE_URL`` env vars."""
    callers: list[Peer] = field(default_factory=list)
    """Services that call this one (``cnplatform.topology.callers_of``): the only pods admitted."""
    liveness_path: str = "/healthz"
    """HTTP path of the liveness probe."""
    readiness_path: str = "/readyz"
    """HTTP path of the readiness probe."""
    startup_path: str = "/healthz"
    """HTTP path of the startup probe."""
    autoscaling_enabled: bool = True
    """Create a HorizontalPodAutoscaler (autoscaling/v2, CPU utilization)."""
    autoscaling_min: Optional[int] = None
    """HPA minReplicas; default ``replicas``."""
    autoscaling_max: Optional[int] = None
    """HPA maxReplicas; default ``max(3 * replicas, 3)``."""
    cpu_target: int = 70
    """HPA target average CPU utilization (percent of requests)."""
    expose_path: Optional[str] = None
    """Public path on the mesh ingress gateway; when set (and mesh on) the gateway pods are admitted."""
    database_host: Optional[pulumi.Input[str]] = None
    """MySQL host; when set, ``MYSQL_HOST/PORT/USER/DATABASE`` are injected."""
    database_port: int = 3306
    """MySQL port."""
    database_name: Optional[str] = None
    """MySQL database (``MYSQL_DATABASE``)."""
    database_user: Optional[str] = None
    """MySQL user (``MYSQL_USER``)."""
    database_secret: Optional[str] = None
    """Secret holding the MySQL password under key ``password`` (``MYSQL_PASSWORD`` via secretKeyRef)."""
    database_pod_labels: dict[str, str] = field(default_factory=dict)
    """Labels of an in-cluster database's pods (same namespace): egress to them on ``database_port``."""
    database_cidrs: list[pulumi.Input[str]] = field(default_factory=list)
    """CIDRs of a cloud database (RDS subnets / Cloud SQL private range): egress on ``database_port``."""
    database_ca_file: Optional[str] = None
    """CA bundle the service verifies its MySQL server with (``MYSQL_SSL_CA``: TLS required and verified)."""
    database_ca_configmap: Optional[str] = None
    """ConfigMap (key ``ca.pem``) mounted read-only at ``/etc/mysql-ca`` holding that bundle (None: in the image)."""
    database_verify_identity: bool = False
    """The server certificate names ``database_host``: verify the host name too (``MYSQL_SSL_VERIFY_IDENTITY``)."""
    slo_availability: float = SLO_AVAILABILITY
    """Availability objective, percent over 30 days (output for monitoring)."""
    slo_latency_ms: int = SLO_LATENCY_MS
    """Latency threshold in ms (output for monitoring)."""
    slo_latency_target: float = SLO_LATENCY_TARGET
    """Percent of requests that must be faster than ``slo_latency_ms`` (output for monitoring)."""
    canary_image: Optional[pulumi.Input[str]] = None
    """Image of a canary; with ``canary_weight`` > 0 a ``<name>-canary`` Deployment (1 replica) runs it."""
    canary_weight: int = 0
    """Percent of traffic for the canary (routed by the mesh); 0 = rollback: no canary Deployment."""
    mesh_enabled: bool = False
    """Pods get an Istio sidecar: admit Envoy metrics ports, allow egress to istiod."""
    mesh_namespace: str = "istio-system"
    """Namespace of istiod and the ingress gateway."""
    ingress_gateway_labels: dict[str, str] = field(default_factory=lambda: {"istio": "ingressgateway"})
    """Pod labels of the mesh ingress gateway."""
    east_west_gateway: bool = False
    """Multi-network mesh: admit callers via the east-west gateway, allow egress to remote ones (15443)."""
    east_west_gateway_labels: dict[str, str] = field(default_factory=lambda: {"istio": "eastwestgateway"})
    """Pod labels of the east-west gateway."""
    monitoring_namespace: Optional[str] = "monitoring"
    """Namespace whose pods (Prometheus) may scrape the metrics port; None: no scraping allowed."""
    zone_spread: bool = True
    """Spread replicas over zones and nodes (only when more than one replica)."""
    strict_zone_spread: bool = False
    """Zone spread is ``DoNotSchedule`` instead of ``ScheduleAnyway`` (prod)."""
    pdb: Optional[bool] = None
    """PodDisruptionBudget (maxUnavailable 1); default: when more than one replica."""
    image_pull_policy: str = "IfNotPresent"
    """Image pull policy (images are immutable: digests in the cloud, content-hash tags in dev)."""
    revision_history_limit: int = 5
    """Old ReplicaSets kept for ``kubectl rollout undo``."""
    termination_grace_period_seconds: int = 30
    """Time between SIGTERM and SIGKILL (the app drains in-flight requests)."""
    run_as_user: int = spec.RUN_AS_USER
    """UID and GID of the container (non-root)."""
    tmp_size: str = "64Mi"
    """Size limit of the writable ``/tmp`` emptyDir (the root filesystem is read-only)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "name": _v.dns1035_label, "namespace": _v.dns_label, "image": _v.image_reference, "port": _v.port,
            "replicas": _v.positive, "cpu_request": _v.quantity, "memory_request": _v.quantity,
            "cpu_limit": _v.quantity, "memory_limit": _v.quantity, "env": _v.keys(_v.env_name),
            "secret_env": _v.keys(_v.env_name), "liveness_path": _v.http_path, "readiness_path": _v.http_path,
            "startup_path": _v.http_path, "autoscaling_min": _v.positive, "autoscaling_max": _v.positive,
            "cpu_target": _v.in_range(10, 100), "expose_path": _v.expose_path, "database_port": _v.port,
            "database_secret": _v.dns_label, "database_cidrs": _v.cidr,
            "database_ca_configmap": _v.dns_label, "slo_availability": _v.in_range(50, 100),
            "slo_latency_ms": _v.positive, "slo_latency_target": _v.in_range(50, 100),
            "canary_image": _v.image_reference, "canary_weight": _v.percent, "mesh_namespace": _v.dns_label,
            "monitoring_namespace": _v.dns_label,
        }, checks=[_v.requests_within_limits(("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")),
                   _v.not_above("autoscaling_min", "autoscaling_max"), _v.derived("name", ["-canary"]),
                   _v.no_secret_literals("env", "secret_env")])


class Microservice(pulumi.ComponentResource):
    """ServiceAccount, Deployment (+ canary), Service, HPA, PDB and NetworkPolicy of one service."""

    service_account: pulumi.Output[str]
    """ServiceAccount name (the mesh identity: ``<trust-domain>/ns/<ns>/sa/<name>``)."""
    namespace: pulumi.Output[str]
    """Namespace of every object."""
    service_name: pulumi.Output[str]
    """Service name (port name ``http``)."""
    port: pulumi.Output[int]
    """Service port."""
    selector_labels: pulumi.Output[dict[str, str]]
    """Labels selecting the service's pods (stable and canary)."""
    slo: pulumi.Output[dict[str, float]]
    """Service level objectives: ``availability`` (%), ``latency_ms``, ``latency_target`` (%)."""
    url: pulumi.Output[str]
    """In-cluster URL ``http://<name>.<ns>.svc.cluster.local:<port>``."""
    canary_weight: pulumi.Output[int]
    """Traffic percent for the canary (0 when no canary runs)."""

    #: Inputs as given (other layers read them at program time: mesh routes, monitoring rules).
    args: MicroserviceArgs
    deployment: k8s.apps.v1.Deployment
    canary_deployment: Optional[k8s.apps.v1.Deployment]
    k8s_service: k8s.core.v1.Service

    def __init__(self, name: str, args: MicroserviceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("microservice", "Microservice"), name, None, opts)
        self.args = args
        svc, ns = args.name, args.namespace
        deps = inherited_depends_on(opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=deps)

        def meta(obj_name: str = svc, version: Optional[str] = None) -> dict:
            return {"name": obj_name, "namespace": ns, "labels": app_labels(svc, version=version)}

        sa = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=meta(), automount_service_account_token=False, opts=child)
        workload = pulumi.ResourceOptions(parent=self, depends_on=[*deps, sa])
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=meta(version=spec.STABLE),
            spec=spec.deployment_spec(args, version=spec.STABLE), opts=workload)
        self.canary_deployment = None
        if spec.canary_enabled(args):
            self.canary_deployment = k8s.apps.v1.Deployment(
                f"{name}-canary", metadata=meta(f"{svc}-canary", version=spec.CANARY),
                spec=spec.deployment_spec(args, version=spec.CANARY), opts=workload)
        self.k8s_service = k8s.core.v1.Service(f"{name}-service", metadata=meta(), spec=spec.service_spec(args),
                                               opts=child)
        hpa = spec.hpa_spec(args)
        if hpa is not None:
            # Not after the Deployment: the HPA controller retries a scale target that does not exist yet,
            # and waiting for the rollout only made the HPA the last link of every cluster's critical path.
            k8s.autoscaling.v2.HorizontalPodAutoscaler(f"{name}-hpa", metadata=meta(), spec=hpa, opts=child)
        pdb = spec.pdb_spec(args)
        if pdb is not None:
            k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=meta(), spec=pdb, opts=child)
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata=meta(), spec=spec.network_policy_spec(args),
                                        opts=child)

        self.service_account = sa.metadata.name
        self.namespace = pulumi.Output.from_input(ns)
        self.service_name = pulumi.Output.from_input(svc)
        self.port = pulumi.Output.from_input(args.port)
        self.selector_labels = pulumi.Output.from_input(selector_labels(svc))
        self.slo = pulumi.Output.from_input({"availability": args.slo_availability,
                                             "latency_ms": args.slo_latency_ms,
                                             "latency_target": args.slo_latency_target})
        self.url = pulumi.Output.from_input(spec.service_url(svc, ns, args.port))
        self.canary_weight = pulumi.Output.from_input(args.canary_weight if spec.canary_enabled(args) else 0)
        self.register_outputs({
            "service_account": self.service_account, "namespace": self.namespace,
            "service_name": self.service_name, "port": self.port, "selector_labels": self.selector_labels,
            "slo": self.slo, "url": self.url, "canary_weight": self.canary_weight,
        })
