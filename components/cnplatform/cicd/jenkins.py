"""Jenkins on Kubernetes: the upstream chart, configured as code, with pod agents and a job-dsl seed.

Everything the chart receives is built by pure functions (:func:`jenkins_values`, :func:`jcasc_scripts`,
:func:`seed_script`, :func:`agent_role_rules`) that the tests and the footprint call directly.
No secret is ever in the values: the admin credentials are a generated Kubernetes Secret given to
the chart as ``controller.admin.existingSecret``; pipeline credentials are Kubernetes Secrets read by
the kubernetes-credentials-provider plugin.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from cnplatform import validation as _v
from cnplatform.charts import chart_source
from cnplatform.naming import MANAGED_BY, PART_OF, type_token
from cnplatform.netpolicy import create_network_policies, jenkins_policies

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

#: The pipeline credentials (ids) the Jenkinsfile uses; each is a labelled Kubernetes Secret.
PIPELINE_CREDENTIALS = ("pulumi-access-token", "aws-deploy", "gcp-deploy", "github-token")
#: The read-only identities pull requests preview with (a Pulumi token and cloud roles that can read,
#: not change, the stacks): same kinds as the first three above.
PREVIEW_CREDENTIALS = ("pulumi-preview-token", "aws-preview", "gcp-preview")

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
    """Directory of unpacked charts (air-gapped installs): the chart is loaded from ``<charts_dir>/jenkins`` instead of the repository."""
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
    pod_security: str = "baseline"
    """Pod Security level enforced on the namespace (kaniko agents run as root: baseline)."""
    mesh_injection: bool = False
    """Istio sidecar injection in the namespace (off: sidecars keep agent pods from finishing)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "services": _v.dns_label, "deploy_image": _v.digest_image, "storage": _v.quantity,
            "java_heap_percent": _v.in_range(10, 90),
            "pod_security": _v.one_of("restricted", "baseline", "privileged"),
        })


# ------------------------------------------------------------------------------- pure functions


def plugin_versions(plugins: tuple[str, ...] = PLUGINS) -> dict[str, str]:
    return dict(p.split(":", 1) for p in plugins)


def namespace_labels(args: JenkinsArgs) -> dict[str, str]:
    """Pod Security enforced at ``args.pod_security``, audited at restricted; explicit injection label."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
        "pod-security.kubernetes.io/enforce": args.pod_security,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": args.pod_security,
        "pod-security.kubernetes.io/audit": "restricted",
        "istio-injection": "enabled" if args.mesh_injection else "disabled",
    }


def agent_role_rules(registry_secret: str = REGISTRY_SECRET) -> list[dict[str, Any]]:
    """What a pipeline's pod may do in ``jenkins``: run and inspect pods, read the push secret only
    (no ``pods/exec``: the controller execs into agent containers with its own Role)."""
    return [
        {"apiGroups": [""], "resources": ["pods", "pods/log"],
         "verbs": ["create", "delete", "get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [registry_secret], "verbs": ["get"]},
    ]


def github_repo(repo_url: str) -> Optional[tuple[str, str]]:
    """(owner, repository) of a github.com URL, else None."""
    m = re.match(r"^(?:https://github\.com/|git@github\.com:)([^/]+)/([^/]+?)(?:\.git)?/?$", repo_url)
    return (m.group(1), m.group(2)) if m else None


def _groovy(text: str) -> str:
    """A single-quoted Groovy string literal (no interpolation, so JCasC's ``${}`` is never involved)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def seed_script(services: list[str], repo_url: str, branch: str) -> str:
    """Job DSL: one multibranch pipeline per service, building the root Jenkinsfile.

    The job is named after the service; the Jenkinsfile takes ``SERVICE`` from its parameter or,
    when empty, from that name. Discovers ``branch`` and pull requests (which set ``CHANGE_ID``).
    """
    gh = github_repo(repo_url)
    blocks = []
    for name in services:
        if gh:
            source = "\n".join([
                "        github {",
                f"          id({_groovy('svc-' + name)})",
                f"          repoOwner({_groovy(gh[0])})",
                f"          repository({_groovy(gh[1])})",
                f"          repositoryUrl({_groovy(repo_url)})",
                "          configuredByUrl(true)",
                "          credentialsId('github-token')",
                "          traits {",
                "            gitHubBranchDiscovery { strategyId(1) }",
                "            gitHubPullRequestDiscovery { strategyId(1) }",
                f"            headWildcardFilter {{ includes({_groovy(branch + ' PR-*')}); excludes('') }}",
                "          }",
                "        }",
            ])
        else:
            source = "\n".join([
                "        git {",
                f"          id({_groovy('svc-' + name)})",
                f"          remote({_groovy(repo_url)})",
                "          credentialsId('github-token')",
                "          traits {",
                "            gitBranchDiscovery()",
                f"            headWildcardFilter {{ includes({_groovy(branch)}); excludes('') }}",
                "          }",
                "        }",
            ])
        blocks.append("\n".join([
            f"multibranchPipelineJob({_groovy(name)}) {{",
            f"  displayName({_groovy(name + ' service')})",
            f"  description({_groovy(f'Test, build and deploy the {name} service (Jenkinsfile, SERVICE={name}).')})",
            "  branchSources {",
            "    branchSource {",
            "      source {",
            source,
            "      }",
            "    }",
            "  }",
            "  factory {",
            "    workflowBranchProjectFactory { scriptPath('Jenkinsfile') }",
            "  }",
            "  orphanedItemStrategy {",
            "    discardOldItems { numToKeep(10) }",
            "  }",
            "  triggers {",
            "    periodicFolderTrigger { interval('5m') }",
            "  }",
            "}",
        ]))
    return "\n".join(blocks) + "\n"


def kubernetes_cloud(namespace: str = NAMESPACE) -> dict[str, Any]:
    """JCasC ``jenkins.clouds[0]``: pod agents in ``namespace`` with the agent ServiceAccount."""
    return {"kubernetes": {
        "name": "kubernetes",
        "serverUrl": "https://kubernetes.default",
        "namespace": namespace,
        "jenkinsUrl": f"http://{RELEASE}.{namespace}.svc.cluster.local:{HTTP_PORT}",
        "jenkinsTunnel": f"{RELEASE}-agent.{namespace}.svc.cluster.local:{AGENT_PORT}",
        "containerCapStr": "10",
        "connectTimeout": 5,
        "readTimeout": 15,
        "retentionTimeout": 5,
        "waitForPodSec": 600,
        # The chart's NetworkPolicy lets pods with this label reach the agent port.
        "podLabels": [{"key": f"jenkins/{RELEASE}-jenkins-agent", "value": "true"}],
        "templates": [{
            "name": "default",
            "label": "jenkins-agent",
            "namespace": namespace,
            "serviceAccount": AGENT_SERVICE_ACCOUNT,
            "nodeUsageMode": "NORMAL",
            "idleMinutes": 0,
            "containers": [{
                "name": "jnlp",
                "image": INBOUND_AGENT_IMAGE,
                "resourceRequestCpu": "50m", "resourceRequestMemory": "256Mi",
                "resourceLimitCpu": "500m", "resourceLimitMemory": "512Mi",
                "runAsUser": "1000", "runAsGroup": "1000",
                "workingDir": "/home/jenkins/agent",
            }],
        }],
    }}


class _BlockDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml: the seed script grows with N
    """Multi-line strings (the Job DSL script) as literal blocks, readable in the ConfigMap."""


_BlockDumper.add_representer(str, lambda d, v: d.represent_scalar(
    "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=200)


def registries_env(registries: dict[str, str]) -> str:
    """``REGISTRIES``: ``cluster=prefix`` words, sorted (clusters without a registry are left out)."""
    return " ".join(f"{cluster}={url}" for cluster, url in sorted(registries.items()) if url)


def authorization_strategy(admins: list[str], developers: list[str]) -> dict[str, Any]:
    """matrix-auth ``globalMatrix``: the chart admin and ``admins`` administer, ``developers`` read and
    build; anyone else (logged in or not) gets no permission at all."""
    entries = [{"user": {"name": name, "permissions": list(ADMIN_PERMISSIONS)}}
               for name in ["${chart-admin-username}", *sorted(set(admins))]]
    entries += [{"user": {"name": name, "permissions": list(DEVELOPER_PERMISSIONS)}}
                for name in sorted(set(developers) - set(admins))]
    return {"globalMatrix": {"entries": entries}}


def jcasc_scripts(args: JenkinsArgs, registries: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``controller.JCasC.configScripts``: one YAML document per concern."""
    security = {
        "jenkins": {
            "securityRealm": {"local": {
                "allowsSignup": False,
                "enableCaptcha": False,
                # Files the chart mounts from the admin Secret (controller.admin.existingSecret).
                "users": [{"id": "${chart-admin-username}", "name": "Jenkins Admin",
                           "password": "${chart-admin-password}"}],
            }},
            "authorizationStrategy": authorization_strategy(args.admins, args.developers),
            "disableRememberMe": True,
            "numExecutors": 0,
            "mode": "EXCLUSIVE",
            "slaveAgentPort": AGENT_PORT,
            "markupFormatter": "plainText",
        },
        "security": {"apiToken": {"creationOfLegacyTokenEnabled": False,
                                  "tokenGenerationOnCreationEnabled": False,
                                  "usageStatisticsEnabled": False}},
        "unclassified": {"location": {"url": f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{HTTP_PORT}/"}},
    }
    cloud = {"jenkins": {"clouds": [kubernetes_cloud()]}}
    env = {"jenkins": {"globalNodeProperties": [{"envVars": {"env": [
        {"key": "REGISTRIES", "value": registries_env(registries or {})},
        {"key": "DEPLOY_IMAGE", "value": args.deploy_image or ""},
        {"key": "DEPLOY_BRANCH", "value": args.branch},
        {"key": "DEPLOY_STACKS", "value": " ".join(args.deploy_stacks)},
        {"key": "APPROVAL_STACKS", "value": " ".join(args.approval_stacks)},
    ]}}]}}
    jobs = {"jobs": [{"script": seed_script(args.services, args.repo_url, args.branch)}]}
    return {"security": _dump(security), "cloud": _dump(cloud), "env": _dump(env), "jobs": _dump(jobs)}


def jenkins_values(args: JenkinsArgs, registries: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Helm values for the jenkins chart (every key exists in the chart's values.yaml)."""
    java_opts = (f"-XX:+UseContainerSupport -XX:MaxRAMPercentage={args.java_heap_percent} "
                 "-Djenkins.install.runSetupWizard=false")
    persistence: dict[str, Any] = {"enabled": True, "size": args.storage, "accessMode": "ReadWriteOnce"}
    if args.storage_class:
        persistence["storageClass"] = args.storage_class
    return {
        "fullnameOverride": RELEASE,
        "controller": {
            "image": {"pullPolicy": "IfNotPresent"},
            "admin": {
                "createSecret": True,  # with existingSecret: mount that Secret, create none
                "existingSecret": ADMIN_SECRET,
                "userKey": ADMIN_USER_KEY,
                "passwordKey": ADMIN_PASSWORD_KEY,
            },
            "resources": args.controller_resources,
            "javaOpts": java_opts,
            "numExecutors": 0,
            "executorMode": "EXCLUSIVE",
            "disableRememberMe": True,
            "installPlugins": list(PLUGINS),
            "installLatestPlugins": False,
            "installLatestSpecifiedPlugins": False,
            "overwritePlugins": True,
            "podSecurityContextOverride": dict(RESTRICTED_POD),
            "containerSecurityContext": dict(RESTRICTED_CONTAINER),
            "JCasC": {
                "defaultConfig": False,
                "overwriteConfiguration": True,
                "configScripts": jcasc_scripts(args, registries),
            },
            "sidecars": {"configAutoReload": {
                "enabled": True,
                "resources": args.reload_resources,
                "containerSecurityContext": {
                    "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                },
            }},
            "serviceType": "ClusterIP",
            "agentListenerEnabled": True,
            "agentListenerPort": AGENT_PORT,
            "testEnabled": False,
        },
        # JCasC's cloud is ours (defaultConfig false); agent.* still drives the agent NetworkPolicy.
        "agent": {"enabled": True, "namespace": NAMESPACE},
        "persistence": persistence,
        "rbac": {"create": True, "readSecrets": True},
        "serviceAccount": {"create": True, "name": RELEASE},
        "serviceAccountAgent": {"create": False, "name": AGENT_SERVICE_ACCOUNT},
        "networkPolicy": {"enabled": True, "internalAgents": {"allowed": True}},
    }


def footprint_resources(args: JenkinsArgs) -> dict[str, dict[str, dict[str, str]]]:
    """Requests/limits of the controller pod's long-running containers, read from the values."""
    controller = jenkins_values(args)["controller"]
    return {"controller": controller["resources"],
            "config-reload": controller["sidecars"]["configAutoReload"]["resources"]}


# ------------------------------------------------------------------------------------- component


class Jenkins(pulumi.ComponentResource):
    """Jenkins controller (upstream chart) with pod agents, JCasC, a job-dsl seed and namespaced RBAC."""

    namespace: pulumi.Output[str]
    """Namespace Jenkins and its agents run in."""
    url: pulumi.Output[str]
    """In-cluster URL of the controller."""
    admin_secret: pulumi.Output[str]
    """Name of the Kubernetes Secret holding the admin user and password."""

    def __init__(self, name: str, args: JenkinsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cicd", "Jenkins"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": PART_OF}

        ns = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": NAMESPACE, "labels": namespace_labels(args)}, opts=child)
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        create_network_policies(name, NAMESPACE, jenkins_policies(), in_ns)

        password = random.RandomPassword(
            f"{name}-admin-password", length=24, special=False,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"]))
        admin = k8s.core.v1.Secret(
            f"{name}-admin",
            metadata={"name": ADMIN_SECRET, "namespace": NAMESPACE, "labels": labels},
            type="Opaque",
            string_data=pulumi.Output.secret(password.result).apply(
                lambda pw: {ADMIN_USER_KEY: args.admin_user, ADMIN_PASSWORD_KEY: pw}),
            opts=in_ns,
        )

        agent_sa = k8s.core.v1.ServiceAccount(
            f"{name}-agent-sa",
            metadata={"name": AGENT_SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": labels},
            automount_service_account_token=False,
            opts=in_ns,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-agent-role",
            metadata={"name": AGENT_SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": labels},
            rules=agent_role_rules(),
            opts=in_ns,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-agent-rolebinding",
            metadata={"name": AGENT_SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT_SERVICE_ACCOUNT},
            subjects=[{"kind": "ServiceAccount", "name": AGENT_SERVICE_ACCOUNT, "namespace": NAMESPACE}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, role, agent_sa]),
        )

        values = pulumi.Output.from_input(args.registries).apply(lambda r: jenkins_values(args, dict(r or {})))
        chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            **chart_source(CHART, CHART_REPO, args.charts_dir),
            name=RELEASE,
            version=CHART_VERSION,
            namespace=NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, admin, agent_sa]),
        )
        self.chart = chart
        self.namespace = pulumi.Output.from_input(NAMESPACE)
        self.url = pulumi.Output.from_input(f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{HTTP_PORT}")
        self.admin_secret = admin.metadata.apply(lambda m: m["name"])
        self.register_outputs({"namespace": self.namespace, "url": self.url, "admin_secret": self.admin_secret})
