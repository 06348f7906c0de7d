"""Services: image or build, port, calls, exposure, database, resources, autoscaling, SLO, canary."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from cnplatform import validation as v
from cnplatform.database.spec import MYSQL_VERSIONS
from cnplatform.monitoring.promql import SLO_AVAILABILITY, SLO_LATENCY_MS, SLO_LATENCY_TARGET
from cnplatform.quantity import parse_quantity
from cnplatform.validation import ENV_NAME, dns_label, quantity
from stacks.config.base import (
    PLATFORM_ROUTES,
    HostName,
    HttpPath,
    PinnedImage,
    Strict,
    _doc,
    build_dir,
)


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
    availability: float = Field(SLO_AVAILABILITY, gt=50, lt=100)
    #: Requests slower than this count against the latency objective.
    latency_ms: int = Field(SLO_LATENCY_MS, gt=0)
    #: Share of requests (percent) that must be faster than ``latency_ms``.
    latency_target: float = Field(SLO_LATENCY_TARGET, gt=50, lt=100)


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
