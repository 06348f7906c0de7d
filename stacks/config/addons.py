"""Platform layers and add-ons: ingress, mesh, monitoring, CI/CD, cert-manager, Karpenter, namespaces."""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from cnplatform import validation as v
from cnplatform.validation import dns_label, quantity
from stacks.config.base import DigestImage, HostName, Strict, _doc


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
    grafana_host: Optional[Annotated[str, AfterValidator(_doc(lambda x: v.hostname(x, wildcard=False),
                                                              'A DNS host name (RFC 1123), no wildcard.'))]] = None
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
            raise ValueError(f"duplicate receiver name(s) {', '.join(dupes)} "
                             "(each names a key of alertmanager-receivers)")
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
    #: Consolidation delay and disruption budget; default by tier (``stacks.config.tiers``).
    consolidate_after: Optional[str] = None
    disruption_budget: Optional[str] = None

    _alias = field_validator("ami_alias")(lambda cls, x: v.ami_alias(x))
    _memory = field_validator("memory_limit")(lambda cls, x: v.quantity(x))
    _after = field_validator("consolidate_after")(lambda cls, x: x if x is None else v.duration(x))
    _budget = field_validator("disruption_budget")(lambda cls, x: x if x is None else v.disruption_budget(x))


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
