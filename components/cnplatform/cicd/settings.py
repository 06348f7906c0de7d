"""Jenkins: what is pinned (chart, plugins, agent image), the names the pieces share, and the typed args.

Pure data and :class:`JenkinsArgs`; :mod:`cnplatform.cicd.jcasc` builds the configuration-as-code from
them and :mod:`cnplatform.cicd.jenkins` wires the chart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.naming import MANAGED_BY, PART_OF, pod_security_labels

CHART = "jenkins"
CHART_VERSION = "5.9.53"
CHART_REPO = "https://charts.jenkins.io"
NAMESPACE = "jenkins"
#: Release name; the chart's "fullname" is then ``jenkins`` (StatefulSet, Service, controller SA).
RELEASE = "jenkins"
ADMIN_SECRET = "jenkins-admin"
ADMIN_USER_KEY = "jenkins-admin-user"
ADMIN_PASSWORD_KEY = "jenkins-admin-password"
AGENT_SERVICE_ACCOUNT = "jenkins-agent"
#: dockerconfigjson Secret kaniko pushes with (created out of band: docs/cicd.md).
REGISTRY_SECRET = "jenkins-registry-push"
#: Pinned agent (remoting) image: the chart's default for 5.9.53.
INBOUND_AGENT_IMAGE = "jenkins/inbound-agent:3385.vf1123fb_515da_-1"
HTTP_PORT = 8080
AGENT_PORT = 50000

#: Plugins with exact versions (installLatestPlugins false: dependencies resolve to the minimum the
#: pinned plugins require). The first four are the chart 5.9.53 defaults.
PLUGINS: tuple[str, ...] = (
    "kubernetes:4540.v612369217f87",
    "workflow-aggregator:608.v67378e9d3db_1",
    "git:5.10.1",
    "configuration-as-code:2115.vf6de120eef70",
    "job-dsl:1.93",
    "kubernetes-credentials-provider:1.262.v2670ef7ea_0c5",
    "credentials-binding:687.v619cb_57e983f",
    "github-branch-source:1834.v857721ea_74c6",
    "lockable-resources:1385.v089dd83a_b_a_11",
    "matrix-auth:3.2.9",
)

#: Global matrix permissions (matrix-auth): administrators get everything, developers read and build.
ADMIN_PERMISSIONS = ("Overall/Administer",)
DEVELOPER_PERMISSIONS = ("Overall/Read", "Job/Discover", "Job/Read", "Job/Build", "Job/Cancel", "View/Read")

#: The pipeline credentials (ids) the Jenkinsfile uses; each is a labelled Kubernetes Secret in
#: ``jenkins``, read by the controller only. Cloud access is no credential: the preview/deploy pods'
#: ServiceAccounts carry short-lived identities (IRSA / Workload Identity, cicd/identity.py).
PIPELINE_CREDENTIALS = ("pulumi-access-token", "github-token")
#: The read-only Pulumi token pull requests preview with.
PREVIEW_CREDENTIALS = ("pulumi-preview-token",)
#: Static cloud keys (``<cloud>-deploy`` / ``<cloud>-preview``), only for a cloud the Jenkins
#: cluster's identity does not reach (``JenkinsArgs.static_key_clouds``: the cross-cloud gap).
STATIC_KEY_CREDENTIALS = {"aws": ("aws-deploy", "aws-preview"), "gcp": ("gcp-deploy", "gcp-preview")}

DEFAULT_CONTROLLER_RESOURCES = {"requests": {"cpu": "250m", "memory": "1Gi"},
                                "limits": {"cpu": "1500m", "memory": "2Gi"}}
DEFAULT_RELOAD_RESOURCES = {"requests": {"cpu": "20m", "memory": "96Mi"},
                            "limits": {"cpu": "100m", "memory": "192Mi"}}

#: Container securityContext meeting the "restricted" Pod Security profile (chart default + drop ALL).
RESTRICTED_CONTAINER = {
    "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
}
RESTRICTED_POD = {
    "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "fsGroup": 1000,
    "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass
class JenkinsArgs:
    """Inputs of :class:`Jenkins`."""

    services: list[str] = field(default_factory=list)
    """Services that get a pipeline job each (the job-dsl seed creates one per name)."""
    repo_url: str = "https://github.com/example/ecommerce-platform.git"
    """Git repository holding the services and the root ``Jenkinsfile``."""
    branch: str = "main"
    """Branch that deploys (``pulumi up``); pull requests run ``pulumi preview``."""
    charts_dir: Optional[str] = None
    """Directory of unpacked charts (air-gapped installs): the chart is loaded from
    ``<charts_dir>/jenkins`` instead of the repository."""
    registries: pulumi.Input[dict[str, str]] = field(default_factory=dict)
    """Per cluster the pipelines deploy to, the registry prefix its nodes pull from (``REGISTRIES`` in
    every build, as ``cluster=prefix`` words): each image is pushed to every one, by digest."""
    deploy_image: Optional[str] = None
    """Image of the preview/deploy agents: the Pulumi CLI plus the exec credential plugins of the
    clusters' kubeconfigs (built from ci/images/deploy/Dockerfile). Required when ``deploy_stacks``."""
    deploy_stacks: list[str] = field(default_factory=list)
    """Pulumi stacks the deploy branch deploys to, in order (none: test, build and preview only)."""
    approval_stacks: list[str] = field(default_factory=lambda: ["prod"])
    """Stacks whose deployment waits for a manual approval."""
    admin_user: str = "admin"
    """Name of the local admin user (its password is generated)."""
    admins: list[str] = field(default_factory=list)
    """More users (of the security realm) with Overall/Administer; ``admin_user`` always has it."""
    developers: list[str] = field(default_factory=list)
    """Users who may read and build jobs (no configure, no replay, no script console)."""
    storage: str = "8Gi"
    """Size of the Jenkins home volume."""
    storage_class: Optional[str] = None
    """StorageClass of the Jenkins home volume (the cluster default when unset)."""
    controller_resources: dict[str, dict[str, str]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_CONTROLLER_RESOURCES.items()})
    """Requests/limits of the controller container (the layer derives them from the tier)."""
    reload_resources: dict[str, dict[str, str]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_RELOAD_RESOURCES.items()})
    """Requests/limits of the chart's JCasC config-reload sidecar."""
    java_heap_percent: int = 70
    """Maximum JVM heap as a percentage of the container memory limit."""
    priority_class_name: Optional[str] = None
    """PriorityClass of the controller pod (it must exist; none: no class). Agents get none."""
    pod_security: str = "baseline"
    """Pod Security level enforced on the namespace (kaniko agents run as root: baseline)."""
    mesh_injection: bool = False
    """Istio sidecar injection in the namespace (off: sidecars keep agent pods from finishing)."""
    cloud: str = "local"
    """Cloud of the cluster Jenkins runs in: ``aws`` (IRSA roles), ``gcp`` (Workload Identity), ``local`` (none)."""
    cluster_name: str = "local"
    """Name of that cluster (prefix of the cloud identities' names)."""
    workload_identity: Optional[pulumi.Input[dict[str, str]]] = None
    """The cluster's ``workload_identity`` output (``oidc_provider_arn``/``oidc_issuer_url`` on EKS,
    ``pool``/``project`` on GKE): what the agents' identities trust."""
    static_key_clouds: list[str] = field(default_factory=list)
    """Clouds deployed to that the Jenkins cluster's identity does not reach (prod: ``gcp`` from EKS):
    the pipelines bind the static ``<cloud>-deploy``/``<cloud>-preview`` credentials for them only."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "services": _v.dns_label, "deploy_image": _v.digest_image, "storage": _v.quantity,
            "java_heap_percent": _v.in_range(10, 90),
            "pod_security": _v.one_of("restricted", "baseline", "privileged"),
            "cloud": _v.one_of("aws", "gcp", "local"),
        })
        bad = sorted(set(self.static_key_clouds) - {"aws", "gcp"})
        if bad:
            raise ValueError(f"JenkinsArgs.static_key_clouds: unknown clouds {bad}")


# ------------------------------------------------------------------------------- pure functions


def plugin_versions(plugins: tuple[str, ...] = PLUGINS) -> dict[str, str]:
    return dict(p.split(":", 1) for p in plugins)


def namespace_labels(args: JenkinsArgs) -> dict[str, str]:
    """Pod Security enforced at ``args.pod_security``, audited at restricted; explicit injection label."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
        **pod_security_labels(args.pod_security, audit="restricted"),
        "istio-injection": "enabled" if args.mesh_injection else "disabled",
    }


def agent_role_rules() -> list[dict[str, Any]]:
    """What the controller may do in an agent namespace: run, inspect and exec into agent pods
    (the chart's ``schedule-agents`` Role, repeated in the namespaces the chart does not cover).
    Agents themselves get no RBAC at all."""
    return [
        {"apiGroups": [""], "resources": ["pods", "pods/exec", "pods/log", "persistentvolumeclaims", "events"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods", "pods/exec", "persistentvolumeclaims"],
         "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
    ]
