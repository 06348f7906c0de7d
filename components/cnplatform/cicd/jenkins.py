"""Jenkins on Kubernetes: the upstream chart, configured as code, with pod agents and a job-dsl seed.

Everything the chart receives is built by pure functions (:func:`jenkins_values`, :func:`jcasc_scripts`,
:func:`seed_script`, :func:`agent_role_rules`) that the tests and the footprint call directly.
No secret is ever in the values: the admin credentials are a generated Kubernetes Secret given to
the chart as ``controller.admin.existingSecret``; pipeline credentials are Kubernetes Secrets read by
the kubernetes-credentials-provider plugin.
"""
from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from cnplatform.charts import chart_source
from cnplatform.cicd.identity import (
    AGENT_NAMESPACE,
    AGENT_NAMESPACE_LABEL,
    AGENT_NAMESPACE_LABEL_VALUE,
    DEPLOY_NAMESPACE,
    IDENTITIES,
    UNTRUSTED_LABEL,
    agent_namespace_policies,
)
from cnplatform.cicd.identity_resources import agent_identities
from cnplatform.cicd.jcasc import (  # noqa: F401  (re-exported: the module the tests and stacks import)
    authorization_strategy,
    github_repo,
    jcasc_scripts,
    kubernetes_cloud,
    registries_env,
    seed_script,
)
from cnplatform.cicd.settings import (  # noqa: F401
    ADMIN_PASSWORD_KEY,
    ADMIN_PERMISSIONS,
    ADMIN_SECRET,
    ADMIN_USER_KEY,
    AGENT_PORT,
    AGENT_SERVICE_ACCOUNT,
    CHART,
    CHART_REPO,
    CHART_VERSION,
    DEFAULT_CONTROLLER_RESOURCES,
    DEFAULT_RELOAD_RESOURCES,
    DEVELOPER_PERMISSIONS,
    HTTP_PORT,
    INBOUND_AGENT_IMAGE,
    NAMESPACE,
    PIPELINE_CREDENTIALS,
    PLUGINS,
    PREVIEW_CREDENTIALS,
    REGISTRY_SECRET,
    RELEASE,
    RESTRICTED_CONTAINER,
    RESTRICTED_POD,
    STATIC_KEY_CREDENTIALS,
    JenkinsArgs,
    agent_role_rules,
    namespace_labels,
    plugin_versions,
)
from cnplatform.naming import MANAGED_BY, PART_OF, type_token
from cnplatform.netpolicy import create_network_policies, jenkins_policies
from cnplatform.options import as_secret, inherited_depends_on


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
            **({"priorityClassName": args.priority_class_name} if args.priority_class_name else {}),
            "serviceType": "ClusterIP",
            "agentListenerEnabled": True,
            "agentListenerPort": AGENT_PORT,
            "testEnabled": False,
        },
        # JCasC's cloud is ours (defaultConfig false); agent.* still drives the agent NetworkPolicy.
        # agent.namespace: where the chart's schedule-agents Role goes (the others: Jenkins._agent_namespace).
        "agent": {"enabled": True, "namespace": AGENT_NAMESPACE},
        "persistence": persistence,
        "rbac": {"create": True, "readSecrets": True},
        "serviceAccount": {"create": True, "name": RELEASE},
        "serviceAccountAgent": {"create": False, "name": AGENT_SERVICE_ACCOUNT},
        # The controller admits the agent tunnel from agent pods of the labelled agent namespaces.
        "networkPolicy": {"enabled": True, "internalAgents": {
            "allowed": True, "namespaceLabels": {AGENT_NAMESPACE_LABEL: AGENT_NAMESPACE_LABEL_VALUE}}},
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
    identities: dict[str, pulumi.Output[dict[str, str]]]
    """Per agent identity (``preview``, ``deploy``) the cloud-identity annotations of its ServiceAccount
    (IRSA role ARN, GSA email; none on kind), Outputs of the IAM resources: what gives that identity
    access to the clusters (EKS access entries, ``stacks.compose.clusters.aws``) waits for them."""

    def __init__(self, name: str, args: JenkinsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cicd", "Jenkins"), name, None, opts)
        # The component's own depends_on (the cluster, the PriorityClasses) holds for its children too.
        child = pulumi.ResourceOptions(parent=self, depends_on=inherited_depends_on(opts))
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
            string_data=as_secret(password.result).apply(
                lambda pw: {ADMIN_USER_KEY: args.admin_user, ADMIN_PASSWORD_KEY: pw}),
            opts=in_ns,
        )

        identities = self.identities = agent_identities(name, args.cloud, args.cluster_name,
                                                         args.workload_identity, self)
        agents = self._agent_namespace(name, args, AGENT_NAMESPACE, {AGENT_SERVICE_ACCOUNT: {}})
        deployers = self._agent_namespace(name, args, DEPLOY_NAMESPACE, {
            spec["service_account"]: identities.get(kind, {}) for kind, spec in IDENTITIES.items()})
        values = pulumi.Output.from_input(args.registries).apply(lambda r: jenkins_values(args, dict(r or {})))
        chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            **chart_source(CHART, CHART_REPO, args.charts_dir),
            name=RELEASE,
            version=CHART_VERSION,
            namespace=NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, admin, *agents, *deployers]),
        )
        self.chart = chart
        self.namespace = pulumi.Output.from_input(NAMESPACE)
        self.url = pulumi.Output.from_input(f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{HTTP_PORT}")
        self.admin_secret = admin.metadata.apply(lambda m: m["name"])
        self.register_outputs({"namespace": self.namespace, "url": self.url, "admin_secret": self.admin_secret})

    def _agent_namespace(self, name: str, args: JenkinsArgs, namespace: str,
                         service_accounts: dict[str, pulumi.Input[dict[str, str]]]) -> list[pulumi.Resource]:
        """An agent namespace: Pod Security, default-deny + its allows, its ServiceAccounts (no token,
        annotated with their cloud identity), and the controller's right to run pods there."""
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": PART_OF}
        ns = k8s.core.v1.Namespace(f"{name}-{namespace}-ns", metadata={
            "name": namespace, "labels": {**namespace_labels(args), AGENT_NAMESPACE_LABEL: AGENT_NAMESPACE_LABEL_VALUE,
                                          **({UNTRUSTED_LABEL: "true"} if namespace == AGENT_NAMESPACE else {})}},
            opts=pulumi.ResourceOptions(parent=self))
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        create_network_policies(f"{name}-{namespace}", namespace,
                                agent_namespace_policies(NAMESPACE, api_server=namespace == DEPLOY_NAMESPACE), in_ns)
        sas = [k8s.core.v1.ServiceAccount(
            f"{name}-{sa}-sa",
            metadata={"name": sa, "namespace": namespace, "labels": labels, "annotations": annotations},
            automount_service_account_token=False, opts=in_ns) for sa, annotations in service_accounts.items()]
        if namespace == AGENT_NAMESPACE:
            return [ns, *sas]  # the chart's schedule-agents Role covers agent.namespace
        role_name = f"{RELEASE}-schedule-agents"
        role = k8s.rbac.v1.Role(f"{name}-{namespace}-role", metadata={
            "name": role_name, "namespace": namespace, "labels": labels}, rules=agent_role_rules(), opts=in_ns)
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-{namespace}-rolebinding",
            metadata={"name": role_name, "namespace": namespace, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
            subjects=[{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, role]))
        return [ns, *sas, role, binding]
