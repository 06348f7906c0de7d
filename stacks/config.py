"""Typed stack configuration: one pydantic model for everything a stack declares.

Only this module (and the render) reads Pulumi config; components receive plain typed values.
Every structural error (unknown key, wrong type, bad name or quantity) and every cross-reference
error (unknown service in ``calls``, duplicate names, tier rules) is collected and reported
together with its key path, before any resource is registered.
"""
from __future__ import annotations

import difflib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from cnplatform import validation as v
from cnplatform.database.spec import MYSQL_VERSIONS
from cnplatform.monitoring.values import GRAFANA_SUBPATH
from cnplatform.quantity import parse_quantity
from cnplatform.validation import DNS1123_LABEL, ENV_NAME, dns_label, quantity  # noqa: F401 (re-exported)
from cnplatform.versions import ISTIO_KUBERNETES_RANGE, KUBERNETES_SUPPORTED
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stacks.config_checks import MIN_PROD_REPLICAS, TIER_REPLICAS, cross_errors

PROJECT = "ecommerce-platform"
ROOT = Path(__file__).resolve().parent.parent
#: Paths the platform routes on the public gateway besides the services' (ACME is under /.well-known).
PLATFORM_ROUTES = (GRAFANA_SUBPATH, "/jenkins")


def build_dir(value: str) -> str:
    """A directory under the repository that holds a Dockerfile."""
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or any(c.isspace() for c in value):
        raise ValueError(f"build {value!r} must be a relative path inside the repository (e.g. services/user)")
    if not (ROOT / path).resolve().is_relative_to(ROOT):
        raise ValueError(f"build {value!r} leads outside the repository (a symbolic link)")
    if not (ROOT / path).is_dir():
        raise ValueError(f"build directory {value!r} does not exist in the repository")
    if not (ROOT / path / "Dockerfile").is_file():
        raise ValueError(f"build directory {value!r} has no Dockerfile")
    return value

def _doc(fn, doc: str):
    """``fn`` with ``doc`` as its docstring (the configuration reference shows it as the key's rule)."""
    fn.__doc__ = doc
    return fn


#: Typed values checked by the shared rules of ``cnplatform.validation`` (the components use the same).
Cidr = Annotated[str, AfterValidator(v.cidr)]
HostName = Annotated[str, AfterValidator(v.hostname)]
HttpPath = Annotated[str, AfterValidator(v.http_path)]
PinnedImage = Annotated[str, AfterValidator(v.pinned_image)]
DigestImage = Annotated[str, AfterValidator(v.digest_image)]

Tier = Literal["dev", "staging", "prod"]
Cloud = Literal["local", "aws", "gcp"]


class Strict(BaseModel):
    """Base: unknown keys are errors (with a "did you mean" hint), values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


# ----------------------------------------------------------------------------------- clusters


class NodePoolConfig(Strict):
    name: str = "workload"
    machine_type: str = "m6i.large"
    min_size: int = Field(1, ge=0)
    max_size: int = Field(3, ge=1)
    desired_size: Optional[int] = Field(None, ge=0)
    spot: bool = False
    #: Allocatable capacity of ONE node; when unset it is looked up from the machine type.
    cpu: Optional[str] = None
    memory: Optional[str] = None
    disk_gb: int = Field(50, ge=20)
    labels: dict[str, str] = {}

    _name = field_validator("name")(lambda cls, v: dns_label(v))

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else quantity(v)

    @model_validator(mode="after")
    def _sizes(self) -> "NodePoolConfig":
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is greater than max_size ({self.max_size})")
        if self.desired_size is not None and not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("desired_size must lie between min_size and max_size")
        return self


class LocalClusterOptions(Strict):
    #: Pinned kind node image (the kind v0.31.0 release image for Kubernetes 1.35; docs/versions.md).
    node_image: DigestImage = (
        "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"
    )
    workers: int = Field(0, ge=0, le=5)
    http_port: int = Field(8080, ge=1, le=65535)
    https_port: int = Field(8443, ge=1, le=65535)
    #: Use an existing kubeconfig context instead of creating a kind cluster.
    existing_context: Optional[str] = None
    kubeconfig_path: str = "~/.kube/config"


class AwsClusterOptions(Strict):
    #: The VPC's range: private (RFC 1918), /16 to /28 (AWS limits).
    vpc_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 16, 28), 'A private (RFC 1918) IPv4 range, /16 to /28.'))] = "10.0.0.0/16"
    #: CIDRs allowed to reach the public API endpoint (private access is always on). A world-open
    #: entry (0.0.0.0/0) in prod needs ``allow_world_open_control_plane: true`` on the cluster.
    public_access_cidrs: list[Cidr] = Field(["203.0.113.0/24"], min_length=1)
    #: IAM principals (role ARNs) granted cluster-admin through access entries.
    admin_role_arns: list[str] = []
    #: IAM roles that run `pulumi up` (CI deploy role, workstation role): cluster-admin from the first up.
    #: Required: the cluster creator is never an implicit admin (that would replace the cluster later).
    deployer_role_arns: list[str] = []
    system_machine_type: str = "t3.large"
    #: The tainted system node group (CoreDNS, Karpenter): 2+ nodes so the controller spreads over zones.
    system_min_size: int = Field(2, ge=1)
    system_max_size: int = Field(3, ge=1)
    #: One NAT gateway per zone (zone-independent egress) or one per VPC; defaults to per zone in prod.
    nat_per_zone: Optional[bool] = None
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653] = 90


class GcpClusterOptions(Strict):
    project: str = "my-gcp-project"
    #: Primary range of the subnet (nodes), pods and services secondary ranges: private, not overlapping.
    network_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 8, 29), 'A private (RFC 1918) IPv4 range, /8 to /29.'))] = "10.10.0.0/20"
    pods_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 8, 24), 'A private (RFC 1918) IPv4 range, /8 to /24.'))] = "10.20.0.0/14"
    services_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 8, 27), 'A private (RFC 1918) IPv4 range, /8 to /27.'))] = "10.24.0.0/20"
    #: The private control plane's range: a private /28 (GKE's rule).
    master_cidr: Annotated[str, AfterValidator(_doc(lambda x: v.private_cidr(x, 28, 28), 'A private (RFC 1918) IPv4 /28.'))] = "172.16.0.0/28"
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    #: Regional control plane + nodes over the zones; zonal (first zone) when false. Prod is regional.
    regional: Optional[bool] = None
    #: CIDRs allowed to reach the public control-plane endpoint. A world-open entry (0.0.0.0/0) in prod
    #: needs ``allow_world_open_control_plane: true`` on the cluster.
    master_authorized_networks: list[Cidr] = Field(["203.0.113.0/24"], min_length=1)
    autoscaling_profile: Literal["BALANCED", "OPTIMIZE_UTILIZATION"] = "OPTIMIZE_UTILIZATION"
    #: Node auto-provisioning (GKE creates node pools by itself within these limits).
    auto_provisioning: bool = False
    auto_provisioning_max_cpu: int = 64
    auto_provisioning_max_memory_gb: int = 256

    @model_validator(mode="after")
    def _ranges_disjoint(self) -> "GcpClusterOptions":
        """network_cidr, pods_cidr, services_cidr and master_cidr do not overlap."""
        clash = v.overlapping({k: getattr(self, k) for k in ("network_cidr", "pods_cidr", "services_cidr", "master_cidr")})
        if clash:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in clash))
        return self


class ClusterConfig(Strict):
    name: str
    cloud: Cloud
    region: Optional[str] = None
    zones: list[str] = []
    kubernetes_version: str = "1.35"
    node_pools: list[NodePoolConfig] = []
    local: LocalClusterOptions = LocalClusterOptions()
    aws: AwsClusterOptions = AwsClusterOptions()
    gcp: GcpClusterOptions = GcpClusterOptions()
    #: Istio network name for multi-network meshes (defaults to ``network-<name>``).
    mesh_network: Optional[str] = None
    #: Explicit opt-in to a control plane reachable from the whole internet (0.0.0.0/0 in
    #: ``aws.public_access_cidrs`` / ``gcp.master_authorized_networks``), refused in prod without it.
    allow_world_open_control_plane: bool = False

    _name = field_validator("name")(lambda cls, v: dns_label(v))

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not re.match(r"^1\.\d{2}$", str(v)):
            raise ValueError(f"{v!r} is not a Kubernetes minor version like '1.35'")
        if str(v) not in KUBERNETES_SUPPORTED:
            raise ValueError(f"Kubernetes {v} is not supported by the platform (supported: "
                             f"{', '.join(KUBERNETES_SUPPORTED)}; Istio supports {ISTIO_KUBERNETES_RANGE[0]}-"
                             f"{ISTIO_KUBERNETES_RANGE[1]}, see docs/versions.md)")
        return str(v)

    @model_validator(mode="after")
    def _region(self) -> "ClusterConfig":
        if self.cloud != "local" and not self.region:
            raise ValueError(f"region is required for a {self.cloud} cluster")
        if self.region is None:
            self.region = "local"
        return self


# ----------------------------------------------------------------------------------- services


class ResourceList(Strict):
    cpu: str
    memory: str
    _q = field_validator("cpu", "memory", mode="before")(lambda cls, v: quantity(v))


DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_LIMITS = {"cpu": "500m", "memory": "256Mi"}


class Resources(Strict):
    """Per-pod requests and limits; each key not set keeps its default (a limit not set is at least the request)."""

    requests: ResourceList = ResourceList(**DEFAULT_REQUESTS)
    limits: ResourceList = ResourceList(**DEFAULT_LIMITS)

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """Partial overrides are merged with the defaults (``requests: {memory: 512Mi}`` keeps cpu 100m)."""
        if not isinstance(data, dict):
            return data
        requests, limits = data.get("requests", {}), data.get("limits", {})
        if not isinstance(requests, dict) or not isinstance(limits, dict):
            return data
        requests = {**DEFAULT_REQUESTS, **requests}
        merged_limits = dict(limits)
        for key, default in DEFAULT_LIMITS.items():
            if key not in limits:
                req = requests.get(key)
                bigger = v.is_quantity(req) and parse_quantity(req) > parse_quantity(default)
                merged_limits[key] = str(req) if bigger else default
        return {**data, "requests": requests, "limits": merged_limits}

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> "Resources":
        """Each limit is at least its request."""
        errors = v.limits_cover_requests(self.requests.model_dump(), self.limits.model_dump(), prefix="")
        if errors:
            raise ValueError("; ".join(m for _, m in errors))
        return self


class SecretRef(Strict):
    """An environment variable read from a Kubernetes Secret (never a literal)."""

    secret: str
    key: Annotated[str, AfterValidator(v.secret_key)]
    _s = field_validator("secret")(lambda cls, v: dns_label(v))


class Exposure(Strict):
    """A public path on the mesh ingress gateway."""

    #: A prefix, not ``/``, not a platform route (``/metrics``, ``/healthz``, ``/.well-known``, ``/grafana``,
    #: ``/jenkins``) and not overlapping another service's path on the same host.
    path: Annotated[str, AfterValidator(_doc(lambda x: v.expose_path(x, PLATFORM_ROUTES), v.expose_path.__doc__))]
    host: HostName = "*"


class DatabaseSpec(Strict):
    """A MySQL database owned by the service."""

    #: Database name (letters, digits, '_' and '-'; default: the service name).
    name: Optional[Annotated[str, AfterValidator(v.database_name)]] = None
    storage: str = "10Gi"
    #: A MySQL version the platform has a pinned image for (and RDS / Cloud SQL offer).
    mysql_version: Literal[MYSQL_VERSIONS] = "8.4"  # type: ignore[valid-type]
    _st = field_validator("storage")(lambda cls, v: quantity(v))


class Slo(Strict):
    #: Availability objective in percent over 30 days (e.g. 99.9).
    availability: float = Field(99.9, gt=50, lt=100)
    #: Requests slower than this count against the latency objective.
    latency_ms: int = Field(300, gt=0)
    #: Share of requests (percent) that must be faster than ``latency_ms``.
    latency_target: float = Field(99.0, gt=50, lt=100)


class Autoscaling(Strict):
    enabled: bool = True
    min_replicas: Optional[int] = Field(None, ge=1)
    max_replicas: Optional[int] = Field(None, ge=1)
    cpu_target: int = Field(70, ge=10, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> "Autoscaling":
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is greater than max_replicas ({self.max_replicas})")
        return self


class HealthPaths(Strict):
    liveness: HttpPath = "/healthz"
    readiness: HttpPath = "/readyz"
    startup: HttpPath = "/healthz"


class Canary(Strict):
    #: Pinned like every image: a digest or a version tag (never ``latest``).
    image: PinnedImage
    #: Percent of traffic routed to the canary; 0 (or removing ``canary``) rolls back.
    weight: int = Field(10, ge=0, le=100)


class TrafficPolicy(Strict):
    """Timeouts, retries and circuit breaking (Istio DestinationRule/VirtualService)."""

    timeout: str = "5s"
    retries: int = Field(2, ge=0, le=10)
    per_try_timeout: str = "2s"
    max_connections: int = Field(100, ge=1)
    max_pending_requests: int = Field(100, ge=1)
    max_requests_per_connection: int = Field(0, ge=0)
    consecutive_5xx_errors: int = Field(5, ge=1)
    ejection_interval: str = "10s"
    base_ejection_time: str = "30s"
    max_ejection_percent: int = Field(50, ge=1, le=100)

    @field_validator("timeout", "per_try_timeout", "ejection_interval", "base_ejection_time")
    @classmethod
    def _duration(cls, v: str) -> str:
        if not re.match(r"^\d+(\.\d+)?(ms|s|m|h)$", v):
            raise ValueError(f"{v!r} is not a duration like 500ms, 5s, 1m")
        return v


class ExternalCaller(Strict):
    """A workload of another stack (another team) allowed to call this service."""

    name: str
    """Its ServiceAccount and ``app.kubernetes.io/name`` (cnplatform's Microservice uses the service name)."""
    namespace: str
    _n = field_validator("name", "namespace")(lambda cls, v: dns_label(v))


class ServiceConfig(Strict):
    name: str
    namespace: str = "shop"
    #: A pushed image reference, or one per cluster (``{cluster: ref}``: each cluster pulls from its own
    #: registry, e.g. ECR for EKS, Artifact Registry for GKE; what CI writes); or ``build`` (a path under
    #: the repo) to build it with Docker.
    #: Every reference is pinned: a digest (``@sha256:...``) or a version tag, never ``latest`` or no tag.
    image: Optional[PinnedImage | dict[str, PinnedImage]] = None
    #: A directory under the repository holding a ``Dockerfile`` (e.g. ``services/user``).
    build: Optional[Annotated[str, AfterValidator(build_dir)]] = None
    port: int = Field(8080, ge=1, le=65535)
    replicas: Optional[int] = Field(None, ge=1)
    resources: Resources = Resources()
    env: dict[str, str] = {}
    secret_env: dict[str, SecretRef] = {}
    calls: list[str] = []
    #: Callers outside this stack (e.g. another team's service deployed with the library): admitted
    #: by the NetworkPolicy and the AuthorizationPolicy like the callers declared here.
    external_callers: list[ExternalCaller] = []
    expose: Optional[Exposure] = None
    database: Optional[DatabaseSpec] = None
    slo: Slo = Slo()
    autoscaling: Autoscaling = Autoscaling()
    health: HealthPaths = HealthPaths()
    canary: Optional[Canary] = None
    traffic: TrafficPolicy = TrafficPolicy()
    #: Limit the service to some clusters (default: every cluster of the stack).
    clusters: Optional[list[str]] = None

    _name = field_validator("name")(lambda cls, value: v.dns1035_label(value))
    _namespace = field_validator("namespace")(lambda cls, v: dns_label(v))

    @field_validator("env", "secret_env")
    @classmethod
    def _env_names(cls, v: dict) -> dict:
        bad = [k for k in v if not ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {', '.join(bad)}")
        return v

    @model_validator(mode="after")
    def _image_or_build(self) -> "ServiceConfig":
        if bool(self.image) == bool(self.build):
            raise ValueError("set exactly one of 'image' or 'build'")
        return self

    def image_for(self, cluster: str) -> Optional[str]:
        """The image reference this service runs on ``cluster`` (None: built by the program)."""
        if isinstance(self.image, dict):
            return self.image.get(cluster)
        return self.image


# ------------------------------------------------------------------------------------- add-ons


class IngressConfig(Strict):
    enabled: bool = True
    #: Host names the public gateway serves (``*``, ``*.example.com`` or a name).
    hosts: list[HostName] = Field(["*"], min_length=1)
    #: TLS Secret (in istio-system) for the gateway; generated (dev) or issued by cert-manager when unset.
    tls_secret_name: Optional[Annotated[str, AfterValidator(dns_label)]] = None


class MeshConfig(Strict):
    enabled: bool = True
    ingress: IngressConfig = IngressConfig()
    access_logs: bool = True
    #: REGISTRY_ONLY blocks egress to unknown hosts; defaults to REGISTRY_ONLY in prod.
    outbound_traffic_policy: Optional[Literal["ALLOW_ANY", "REGISTRY_ONLY"]] = None
    mesh_id: Annotated[str, AfterValidator(dns_label)] = "ecommerce-mesh"
    #: Render the east-west gateway for multi-primary, multi-network (on when a stack has >1 cluster).
    east_west_gateway: Optional[bool] = None
    consul: bool = False


class Receiver(Strict):
    name: str
    type: Literal["slack", "pagerduty", "email", "webhook"]
    #: ``deadman``: a dead man's switch (e.g. a webhook of healthchecks.io / PagerDuty's dead man's
    #: snitch) that gets only the always-firing Watchdog, every minute.
    severity: Literal["page", "ticket", "deadman"]
    #: Stack secret (``pulumi config set --secret KEY``) holding the webhook URL / routing key / password.
    secret_config_key: str
    channel: Optional[str] = None
    to: Optional[str] = None
    smarthost: Optional[str] = None
    from_: Optional[str] = Field(None, alias="from")
    _n = field_validator("name")(lambda cls, v: dns_label(v))

    @model_validator(mode="after")
    def _email(self) -> "Receiver":
        missing = [k for k, v in (("to", self.to), ("smarthost", self.smarthost), ("from", self.from_)) if not v]
        if self.type == "email" and missing:
            raise ValueError(f"an email receiver needs {', '.join(missing)}")
        return self


class MonitoringConfig(Strict):
    enabled: bool = True
    retention: str = "7d"
    storage: str = "20Gi"
    storage_class: Optional[str] = None
    grafana_host: Optional[Annotated[str, AfterValidator(_doc(lambda x: v.hostname(x, wildcard=False), 'A DNS host name (RFC 1123), no wildcard.'))]] = None
    #: Expose Grafana through the mesh ingress at this path prefix (otherwise port-forward).
    expose_grafana: bool = False
    receivers: list[Receiver] = []
    _st = field_validator("storage")(lambda cls, v: quantity(v))

    @field_validator("receivers")
    @classmethod
    def _unique_receivers(cls, v: list[Receiver]) -> list[Receiver]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate receiver name(s) {', '.join(dupes)} (each names a key of alertmanager-receivers)")
        return v

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: str) -> str:
        if not re.match(r"^\d+(ms|s|m|h|d|w|y)$", v):
            raise ValueError(f"{v!r} is not a Prometheus duration like 15d")
        return v


class CicdConfig(Strict):
    enabled: bool = True
    admin_user: str = "admin"
    #: More Jenkins administrators (users of the security realm); ``admin_user`` always is one.
    admins: list[str] = []
    #: Jenkins users who may read and build jobs (nothing else; anyone not listed gets no permission).
    developers: list[str] = []
    storage: str = "8Gi"
    #: StorageClass of the Jenkins home volume (the cluster's default when unset).
    storage_class: Optional[str] = None
    repo_url: str = "https://github.com/example/ecommerce-platform.git"
    branch: str = "main"
    #: Container registry prefix the pipelines push to for every cluster (default: each cluster's own
    #: registry, so each cluster pulls from a registry its nodes can reach).
    registry: Optional[str] = None
    #: Image of the preview/deploy agents (ci/images/deploy/Dockerfile: Pulumi CLI + aws +
    #: gke-gcloud-auth-plugin, the kubeconfigs' exec plugins), pinned by digest.
    deploy_image: Optional[DigestImage] = None
    #: Cluster Jenkins runs on (default: the stack's first cluster): one Jenkins per stack.
    cluster: Optional[str] = None
    #: Stacks this Jenkins deploys on ``branch``, in order (``pulumi up``), e.g. [dev, staging, prod]
    #: for one promoting Jenkins. Default: the stack itself; none for tier dev (laptop state).
    deploy_stacks: Optional[list[str]] = None
    #: Stacks that wait for a manual approval (Jenkins ``input``) before ``pulumi up``.
    approval_stacks: list[str] = ["prod"]
    _st = field_validator("storage")(lambda cls, v: quantity(v))

    @model_validator(mode="after")
    def _stacks(self) -> "CicdConfig":
        bad = [s for s in [*(self.deploy_stacks or []), *self.approval_stacks]
               if not re.match(r"^[A-Za-z0-9_.-]+$", s)]
        if bad:
            raise ValueError(f"{bad} are not Pulumi stack names")
        if self.cluster is not None:
            dns_label(self.cluster)
        return self


class KarpenterConfig(Strict):
    enabled: bool = True
    instance_categories: list[Literal["c", "m", "r", "t"]] = ["c", "m", "r"]
    capacity_types: list[Literal["spot", "on-demand"]] = ["spot", "on-demand"]
    cpu_limit: int = Field(200, ge=1)
    memory_limit: str = "800Gi"
    consolidation: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmptyOrUnderutilized"
    #: EC2NodeClass AMI alias, e.g. ``al2023@v20251103``; prod should pin a version (``@latest`` rolls
    #: every node to each new AMI release, untested).
    ami_alias: str = "al2023@latest"
    #: Consolidation delay and disruption budget; default by tier (``KARPENTER_DISRUPTION``).
    consolidate_after: Optional[str] = None
    disruption_budget: Optional[str] = None


#: Karpenter (consolidateAfter, disruption budget) per tier: prod consolidates slowly, one node in
#: twenty at a time, so spot churn and consolidation do not keep rescheduling the HA replicas.
KARPENTER_DISRUPTION = {"dev": ("1m", "10%"), "staging": ("5m", "10%"), "prod": ("15m", "5%")}


class CertManagerConfig(Strict):
    enabled: bool = True
    #: ClusterIssuer kind: ``ca`` (self-signed CA, ``platform-ca``) or ``acme`` (Let's Encrypt, ``letsencrypt``).
    #: Default: ``ca`` on local clusters, ``acme`` on cloud clusters.
    issuer: Optional[Literal["ca", "acme"]] = None
    acme_email: str = "platform@example.com"
    acme_server: str = "https://acme-v02.api.letsencrypt.org/directory"
    #: Ingress class of the ACME HTTP-01 solver (Istio's ingress controller answers through the gateway).
    acme_ingress_class: str = "istio"

    @field_validator("acme_email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v):
            raise ValueError(f"{v!r} is not an e-mail address (Let's Encrypt sends expiry notices to it)")
        return v

    @field_validator("acme_server")
    @classmethod
    def _server(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError(f"{v!r} is not an https:// ACME directory URL")
        return v


class AddonsConfig(Strict):
    metrics_server: bool = True
    cert_manager: CertManagerConfig = CertManagerConfig()
    karpenter: KarpenterConfig = KarpenterConfig()


class NamespaceConfig(Strict):
    name: str
    #: Pod Security Standards level enforced on the namespace.
    pod_security: Literal["restricted", "baseline", "privileged"] = "restricted"
    _n = field_validator("name")(lambda cls, v: dns_label(v))


# --------------------------------------------------------------------------------------- stack


class StackConfig(Strict):
    tier: Tier
    clusters: list[ClusterConfig] = Field(min_length=1)
    namespaces: list[NamespaceConfig] = [NamespaceConfig(name="shop")]
    services: list[ServiceConfig] = []
    mesh: MeshConfig = MeshConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    cicd: CicdConfig = CicdConfig()
    addons: AddonsConfig = AddonsConfig()
    #: Directory of unpacked Helm charts (air-gapped installs, e.g. e2e/charts): every chart is installed from
    #: its subdirectory there instead of its chart repository. Unset: charts come from their repositories.
    charts_dir: Optional[str] = None

    # Derived, tier-aware views (the single place tier defaults live).
    @property
    def protect(self) -> bool:
        return self.tier == "prod"

    def replicas(self, svc: ServiceConfig) -> int:
        return svc.replicas if svc.replicas is not None else TIER_REPLICAS[self.tier]

    def services_on(self, cluster: str) -> list[ServiceConfig]:
        return [s for s in self.services if s.clusters is None or cluster in s.clusters]

    def service(self, name: str) -> ServiceConfig:
        return self.services_by_name[name]

    # Computed once per config (configs are not changed after validation): layers ask per service.
    @cached_property
    def services_by_name(self) -> dict[str, ServiceConfig]:
        return {s.name: s for s in self.services}

    @cached_property
    def callers(self) -> dict[str, list[str]]:
        """service -> the services that declare it in ``calls`` (the source of every traffic policy)."""
        from cnplatform.topology import callers_of

        return callers_of({s.name: s.calls for s in self.services})


# -------------------------------------------------------------------------------- error report


class ConfigError(Exception):
    """Every problem of a stack config, each with its key path."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in errors))

    def report(self, stack: str) -> str:
        lines = [f"stack {stack!r}: invalid configuration ({len(self.errors)} error(s)):"]
        lines += [f"  - {path or '<root>'}: {msg}" for path, msg in self.errors]
        return "\n".join(lines)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple) -> Optional[type[BaseModel]]:
    """The model class that owns the last key of ``loc`` (for "did you mean")."""
    import typing

    model: Any = StackConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        for _ in range(3):  # unwrap Optional[...] / list[...] / dict[str, ...]
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            ann = args[-1] if args else ann
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _structural_errors(exc: ValidationError) -> list[tuple[str, str]]:
    errors, mismatches = [], set()
    for err in exc.errors():
        # drop pydantic's validator and union-branch tags (``function-after[...]``, ``dict[str,...]``, ``str``)
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
            p.startswith("function-") or "[" in p or p in ("str", "int", "list", "dict"))))
        if err["type"] in ("string_type", "dict_type", "list_type"):
            mismatches.add(_path(loc))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = _model_at(loc)
            known = [f.alias or n for n, f in model.model_fields.items()] if model else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "") + (
                f" (known keys: {', '.join(sorted(known))})" if known else "")
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        errors.append((_path(loc), msg))
    # a union (``image: str | {cluster: ref}``): report the branch that matched the shape, not the other one
    deeper = {p for p, _ in errors}
    return [(p, m) for p, m in errors if not (p in mismatches and m.startswith("Input should be a valid") and any(
        d.startswith(p + ".") or d.startswith(p + "[") for d in deeper))]


def parse_config(raw: dict, secret_keys: Optional[set[str]] = None) -> StackConfig:
    """Validate raw stack config (keys without the project prefix); raise ConfigError with all errors.

    ``secret_keys``: the stack's secret config keys; when given, every secret the config refers to
    must be one of them.
    """
    errors: list[tuple[str, str]] = []
    cfg = None
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as exc:
        errors += _structural_errors(exc)
    errors += cross_errors(raw if isinstance(raw, dict) else {})
    if cfg is not None and secret_keys is not None:
        for i, receiver in enumerate(cfg.monitoring.receivers):
            if receiver.secret_config_key not in secret_keys:
                errors.append((f"monitoring.receivers[{i}].secret_config_key", (
                    f"no stack secret {receiver.secret_config_key!r}: run "
                    f"`pulumi config set --secret {receiver.secret_config_key} <value>`")))
    if cfg is not None and not errors:
        from stacks.footprint import capacity_errors  # noqa: PLC0415 (avoids an import cycle)
        from stacks.platform import layer_modules  # noqa: PLC0415

        for module in layer_modules():  # rules that need a layer's knowledge (e.g. certificate issuance)
            if hasattr(module, "config_errors"):
                errors += module.config_errors(cfg)

        errors += capacity_errors(cfg)
    if errors:
        raise ConfigError(errors)
    assert cfg is not None
    return cfg


# --------------------------------------------------------------------------- reading the stack


def raw_from_stack_file(doc: dict, project: str = PROJECT) -> tuple[dict, dict[str, str]]:
    """Split a ``Pulumi.<stack>.yaml`` document into (raw config for the model, secure values).

    Keys of other namespaces (``aws:region``, ``gcp:project``...) are ignored here. ``secure:``
    values cannot be decrypted offline; they are returned separately by key.
    """
    raw: dict = {}
    secure: dict[str, str] = {}
    for key, value in ((doc or {}).get("config") or {}).items():
        ns, _, name = key.partition(":")
        if not name:
            ns, name = project, key
        if ns != project:
            continue
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure[name] = value["secure"]
            continue
        raw[name] = value
    return raw, secure


def load_stack_config() -> StackConfig:
    """Read the running stack's config through ``pulumi.Config`` (used by ``__main__.py``)."""
    import sys

    import pulumi

    config = pulumi.Config()
    raw: dict = {}
    for field, info in StackConfig.model_fields.items():
        value = config.get(field)
        if value is None:
            continue
        try:
            raw[field] = json.loads(value) if info.annotation is not str else value
        except json.JSONDecodeError:
            raw[field] = value
    for key in _unknown_project_keys(set(StackConfig.model_fields)):
        raw[key] = config.get(key)
    from pulumi.runtime.config import CONFIG, is_config_secret

    secrets = {k.split(":", 1)[1] for k in CONFIG.get() if k.startswith(PROJECT + ":") and is_config_secret(k)}
    from stacks.stack_file import namespace_errors  # noqa: PLC0415 (stack_file imports this module)

    errors = namespace_errors(sorted(CONFIG.get()))
    try:
        cfg = parse_config(raw, secret_keys=secrets)
    except ConfigError as err:
        errors += err.errors
    if errors:
        print(ConfigError(errors).report(pulumi.get_stack()), file=sys.stderr)
        raise SystemExit(2) from None
    return cfg


def _unknown_project_keys(known: set[str]) -> list[str]:
    """Non-secret project config keys the model does not know, so a typo is reported, not ignored.

    Secret keys (``pulumi config set --secret``) are stack secrets referred to by name
    (e.g. ``monitoring.receivers[].secret_config_key``), not model data.
    """
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    return sorted(
        k.split(":", 1)[1] for k in set(CONFIG.get()) | set(get_config_env())
        if k.startswith(PROJECT + ":") and k.split(":", 1)[1] not in known and not is_config_secret(k)
    )


def secret_config_keys(cfg: StackConfig) -> set[str]:
    """The stack secrets (config keys set with ``--secret``) a valid config refers to."""
    return {r.secret_config_key for r in cfg.monitoring.receivers}
