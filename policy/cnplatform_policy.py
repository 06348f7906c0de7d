"""The cnplatform guarantees as CrossGuard policies, enforceable on ANY Pulumi stack.

The library's components produce workloads that already satisfy these rules; the pack makes them
hold for everything else too (hand-written resources, other teams' stacks, charts' children at
``pulumi up``). Two layers:

* pure ``check_*`` functions over plain data (a resource type token, its properties as a dict,
  ``protect``, the stack name): what the tests call directly;
* :data:`POLICIES`: the ``pulumi_policy`` objects wrapping them (``__main__.py`` serves them).

The module is self-contained (only ``pulumi_policy``) so the pack runs on a stack that does not use
cnplatform at all.

Rules (each a policy name; every violation message says what to change):

``no-privileged-containers``
    Every container (init containers too) of a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
    Job, CronJob runs as non-root (``runAsNonRoot: true`` or a ``runAsUser`` other than 0, from the
    container's or the pod's securityContext; never ``runAsUser: 0``), is not ``privileged`` and sets
    ``allowPrivilegeEscalation: false``.
``container-resources``
    Every container sets ``requests`` and ``limits`` for both ``cpu`` and ``memory``.

    Both container rules skip the node agents in :data:`NODE_AGENT_EXEMPTIONS` (by namespace, kind
    and name, each with its reason; e.g. the Istio CNI DaemonSet) and those listed in the policy
    config ``exemptWorkloads``.
``no-literal-secrets-in-env``
    An env var whose NAME looks secret (PASSWORD, PASSWD, SECRET, TOKEN, CREDENTIAL(S), API_KEY,
    PRIVATE_KEY, ACCESS_KEY, ``*_KEY``...) takes its value from ``valueFrom.secretKeyRef``; names
    ending in _FILE, _PATH, _DIR, _NAME, _REF point at a secret rather than hold it and are allowed.
``load-balancer-needs-annotation``
    A Service of type LoadBalancer declares its exposure explicitly (:data:`EXPOSURE_ANNOTATIONS`):
    ``cnplatform.io/public-load-balancer: "true"`` (public on purpose, any cloud), AWS
    ``service.beta.kubernetes.io/aws-load-balancer-scheme: internal|internet-facing``, or an
    internal load balancer (``networking.gke.io/load-balancer-type: Internal``, ...). A cloud's
    default (public on GKE, EKS, AKS) is never taken silently: no accidental public endpoint.
``prod-protected-stateful-resources``
    In prod, databases, clusters and encryption keys (:data:`PROTECTED_TYPES`) have
    ``protect: true`` (``pulumi destroy`` / a replacement cannot delete them).
``prod-deployment-availability`` (stack policy)
    In prod, every Deployment runs at least 3 replicas (``spec.replicas``, or the ``minReplicas`` of
    the HorizontalPodAutoscaler that owns it) and a PodDisruptionBudget in its namespace selects its
    pods. Canary Deployments (pod label ``version: canary``) are exempt: the stable one carries it.
``private-gke-webhook-ports``, ``eks-network-policy-enforced``, ``image-from-reachable-registry``
    (stack policies) tie objects to their cloud cluster: see ``cluster_rules.py``.
``rds-mysql-requires-tls`` (stack policy), ``cloudsql-requires-tls``
    Cloud MySQL refuses plaintext connections: see ``database_rules.py``.
``ci-untrusted-namespace-has-no-credentials`` (stack policy)
    No Secret or cloud identity where CI runs untrusted code: see ``cicd_rules.py``.
``eastwest-gateway-exposure``
    An Istio east-west gateway's load balancer admits only its peers, no istiod port: see ``mesh_rules.py``.
``kubernetes-object-size``
    Objects fit the API server's limits (ConfigMap/Secret data, annotations, etcd): see ``size_rules.py``.

"prod": the stack name (from the resource URN) matches :data:`PROD_STACK_PATTERN` (``prod``,
``production``, ``eu-prod``, ``prod-2``; not ``non-prod``, ``pre-prod``, ``product``), or the object
carries ``cnplatform.io/tier: prod`` (or ``environment``/``env``: ``prod``/``production``) on itself or
its pod template. The pattern can be overridden with the policy config ``prodStackPattern``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

try:  # the pack runs with policy/ as its working directory; tests import it as ``policy.*``
    from cicd_rules import policies as cicd_policies
    from cluster_rules import ObjectMeta
    from cluster_rules import stack_policies as cluster_stack_policies
    from database_rules import policies as database_policies
    from mesh_rules import resource_policies as mesh_policies
    from size_rules import policies as size_policies
except ImportError:  # pragma: no cover - depends on how the module is loaded
    from policy.cicd_rules import policies as cicd_policies
    from policy.cluster_rules import ObjectMeta
    from policy.cluster_rules import stack_policies as cluster_stack_policies
    from policy.database_rules import policies as database_policies
    from policy.mesh_rules import resource_policies as mesh_policies
    from policy.size_rules import policies as size_policies

PACK_NAME = "cnplatform-guarantees"

WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
                  "ReplicationController")
MIN_PROD_REPLICAS = 3
CANARY_LABEL = ("version", "canary")

PUBLIC_LB_ANNOTATION = "cnplatform.io/public-load-balancer"
#: Annotation -> values that state a load balancer's exposure explicitly (compared case-insensitively).
EXPOSURE_ANNOTATIONS = {
    PUBLIC_LB_ANNOTATION: {"true"},
    "service.beta.kubernetes.io/aws-load-balancer-scheme": {"internal", "internet-facing"},
    "service.beta.kubernetes.io/aws-load-balancer-internal": {"true"},
    "networking.gke.io/load-balancer-type": {"internal"},
    "cloud.google.com/load-balancer-type": {"internal"},
    "service.beta.kubernetes.io/azure-load-balancer-internal": {"true"},
}

#: Stateful cloud resources that must be ``protect``-ed in prod.
PROTECTED_TYPES = (
    "aws:rds/instance:Instance",
    "aws:rds/cluster:Cluster",
    "aws:eks/cluster:Cluster",
    "aws:kms/key:Key",
    "gcp:sql/databaseInstance:DatabaseInstance",
    "gcp:container/cluster:Cluster",
    "gcp:kms/cryptoKey:CryptoKey",
    "gcp:kms/keyRing:KeyRing",
)

PROD_STACK_PATTERN = r"(?<![a-z])(?<!non[-_])(?<!pre[-_])prod(uction)?(?![a-z])"
TIER_LABELS = ("cnplatform.io/tier", "environment", "env")
PROD_VALUES = ("prod", "production")

#: Name tokens (split on ``_``) that make an env var secret-like.
SECRET_TOKENS = {"PASSWORD", "PASSWD", "PWD", "SECRET", "SECRETS", "TOKEN", "CREDENTIAL", "CREDENTIALS",
                 "APIKEY", "PASSPHRASE"}
SECRET_PAIRS = {("API", "KEY"), ("PRIVATE", "KEY"), ("ACCESS", "KEY"), ("SECRET", "KEY"),
                ("CLIENT", "SECRET"), ("SIGNING", "KEY"), ("ENCRYPTION", "KEY")}
#: A trailing token that means "where the secret is", not the secret itself.
POINTER_SUFFIXES = {"FILE", "PATH", "DIR", "NAME", "REF"}


# ------------------------------------------------------------------------------------- helpers


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> Sequence:
    return value if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else ()


def kind_of(resource_type: str) -> Optional[str]:
    """``kubernetes:apps/v1:Deployment`` -> ``Deployment`` (None for non-Kubernetes objects)."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or parts[1].startswith(("helm.sh", "yaml", "kustomize")):
        return None
    return parts[2]


def stack_of(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::...`` -> ``<stack>``."""
    parts = urn.split(":", 2)
    return parts[2].split("::", 1)[0] if len(parts) == 3 and urn.startswith("urn:pulumi:") else ""


def is_prod(stack: str, *label_sets: Mapping, pattern: str = PROD_STACK_PATTERN) -> bool:
    """Prod by stack name, or by a tier label on the object (or its pod template)."""
    if stack and re.search(pattern, stack.lower()):
        return True
    for labels in label_sets:
        for key in TIER_LABELS:
            if str(_map(labels).get(key, "")).lower() in PROD_VALUES:
                return True
    return False


def labels_of(props: Mapping) -> list[Mapping]:
    """The object's labels and, for workloads, its pod template's labels."""
    meta = _map(props.get("metadata"))
    template = _map(_map(props.get("spec")).get("template"))
    return [_map(meta.get("labels")), _map(_map(template.get("metadata")).get("labels"))]


def pod_spec(kind: str, props: Mapping) -> Optional[Mapping]:
    """The pod spec of a workload object (None for other kinds)."""
    spec = _map(props.get("spec"))
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return _map(_map(_map(_map(spec.get("jobTemplate")).get("spec")).get("template")).get("spec"))
    if kind in WORKLOAD_KINDS:
        return _map(_map(spec.get("template")).get("spec"))
    return None


def containers(pod: Mapping, *, include_ephemeral: bool = True) -> list[tuple[str, Mapping]]:
    """``(label, container)`` of every init, regular (and ephemeral) container."""
    sections = ["initContainers", "containers"] + (["ephemeralContainers"] if include_ephemeral else [])
    out = []
    for section in sections:
        for c in _seq(pod.get(section)):
            c = _map(c)
            prefix = "init container" if section == "initContainers" else (
                "ephemeral container" if section == "ephemeralContainers" else "container")
            out.append((f"{prefix} {c.get('name', '?')!r}", c))
    return out


def _where(kind: str, props: Mapping) -> str:
    meta = _map(props.get("metadata"))
    ns = meta.get("namespace")
    return f"{kind} {(ns + '/') if ns else ''}{meta.get('name', '?')}"


# -------------------------------------------------------------------------------- pure checks


def check_container_security(resource_type: str, props: Mapping) -> list[str]:
    """Non-root, not privileged, no privilege escalation, for every container of a workload."""
    kind = kind_of(resource_type)
    pod = pod_spec(kind, props) if kind else None
    if pod is None:
        return []
    pod_ctx = _map(pod.get("securityContext"))
    out = []
    for label, c in containers(pod):
        ctx = _map(c.get("securityContext"))
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        where = f"{_where(kind, props)}: {label}"
        if user is not None and int(user) == 0:
            out.append(f"{where} runs as root (runAsUser: 0): set a non-zero runAsUser")
        elif non_root is not True and user is None:
            out.append(f"{where} may run as root: set securityContext.runAsNonRoot: true "
                       "(and a non-zero runAsUser) on the container or the pod")
        if ctx.get("privileged") is True:
            out.append(f"{where} is privileged: set securityContext.privileged: false")
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where} may escalate privileges: set securityContext.allowPrivilegeEscalation: false")
    return out


def check_container_resources(resource_type: str, props: Mapping) -> list[str]:
    """``requests`` and ``limits`` of ``cpu`` and ``memory`` on every (init) container."""
    kind = kind_of(resource_type)
    pod = pod_spec(kind, props) if kind else None
    if pod is None:
        return []
    out = []
    for label, c in containers(pod, include_ephemeral=False):
        resources = _map(c.get("resources"))
        missing = [f"{section}.{key}" for section in ("requests", "limits") for key in ("cpu", "memory")
                   if _map(resources.get(section)).get(key) in (None, "")]
        if missing:
            out.append(f"{_where(kind, props)}: {label} does not set resources {', '.join(missing)}")
    return out


def is_secret_like(env_name: str) -> bool:
    """Whether an environment variable's NAME says it holds a secret."""
    tokens = [t for t in re.split(r"[^A-Z0-9]+", env_name.upper()) if t]
    if not tokens or tokens[-1] in POINTER_SUFFIXES:
        return False
    if any(t in SECRET_TOKENS for t in tokens) or tokens[-1] == "KEY" or tokens == ["KEY"]:
        return True
    return any(pair in SECRET_PAIRS for pair in zip(tokens, tokens[1:], strict=False))


def check_secret_env(resource_type: str, props: Mapping) -> list[str]:
    """Secret-like env vars must come from ``valueFrom.secretKeyRef``."""
    kind = kind_of(resource_type)
    pod = pod_spec(kind, props) if kind else None
    if pod is None:
        return []
    out = []
    for label, c in containers(pod):
        for var in _seq(c.get("env")):
            var = _map(var)
            name = str(var.get("name", ""))
            if is_secret_like(name) and not _map(_map(var.get("valueFrom")).get("secretKeyRef")):
                source = "a literal value" if "value" in var else "not a Secret"
                out.append(f"{_where(kind, props)}: {label} env {name} is {source}: "
                           "use valueFrom.secretKeyRef (a Kubernetes Secret)")
    return out


def check_load_balancer(resource_type: str, props: Mapping) -> list[str]:
    """A LoadBalancer Service states its exposure (public on purpose or internal)."""
    if kind_of(resource_type) != "Service" or _map(props.get("spec")).get("type") != "LoadBalancer":
        return []
    annotations = _map(_map(props.get("metadata")).get("annotations"))
    if any(str(annotations.get(key, "")).lower() in values for key, values in EXPOSURE_ANNOTATIONS.items()):
        return []
    return [f"{_where('Service', props)} is a LoadBalancer without an explicit exposure annotation: add "
            f"{PUBLIC_LB_ANNOTATION}: \"true\" (public on purpose) or its cloud's scheme / internal load "
            f"balancer annotation ({', '.join(sorted(set(EXPOSURE_ANNOTATIONS) - {PUBLIC_LB_ANNOTATION}))})"]


def check_protected(resource_type: str, protect: bool, prod: bool, name: str = "") -> list[str]:
    """Stateful cloud resources are ``protect``-ed in prod."""
    if prod and resource_type in PROTECTED_TYPES and not protect:
        return [f"{resource_type} {name}: stateful resource in prod without protect: "
                "pass pulumi.ResourceOptions(protect=True)"]
    return []


@dataclass
class K8sObject(ObjectMeta):
    """A Kubernetes object of a stack, as the stack policy sees it."""

    urn: str
    kind: str
    props: Mapping

    @property
    def spec(self) -> Mapping:
        return _map(self.props.get("spec"))

    @property
    def template_labels(self) -> Mapping:
        return _map(_map(_map(self.spec.get("template")).get("metadata")).get("labels"))


def k8s_objects(resources: Iterable[tuple[str, str, Mapping]]) -> list[K8sObject]:
    """``(urn, type, props)`` -> the Kubernetes objects among them."""
    return [K8sObject(urn, kind, props) for urn, type_, props in resources
            if (kind := kind_of(type_)) is not None]


def selector_matches(selector: Mapping, labels: Mapping) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; an empty selector matches all."""
    selector = _map(selector)
    for key, value in _map(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in _seq(selector.get("matchExpressions")):
        expr = _map(expr)
        key, op, values = expr.get("key"), expr.get("operator"), list(_seq(expr.get("values")))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def effective_replicas(deployment: K8sObject, hpas: list[K8sObject]) -> int:
    """``spec.replicas``, else the owning HPA's ``minReplicas``, else Kubernetes' default 1."""
    for hpa in hpas:
        ref = _map(hpa.spec.get("scaleTargetRef"))
        if (hpa.namespace == deployment.namespace and ref.get("kind") == "Deployment"
                and ref.get("name") == deployment.name):
            return int(hpa.spec.get("minReplicas") or 1)
    replicas = deployment.spec.get("replicas")
    return 1 if replicas is None else int(replicas)


def check_prod_availability(objects: list[K8sObject], stack: str,
                            pattern: str = PROD_STACK_PATTERN) -> list[tuple[str, str]]:
    """``(urn, message)`` for prod Deployments under 3 replicas or without a PDB selecting them."""
    hpas = [o for o in objects if o.kind == "HorizontalPodAutoscaler"]
    pdbs = [o for o in objects if o.kind == "PodDisruptionBudget"]
    out = []
    for d in (o for o in objects if o.kind == "Deployment"):
        labels = d.template_labels
        if labels.get(CANARY_LABEL[0]) == CANARY_LABEL[1]:
            continue
        if not is_prod(stack, *labels_of(d.props), pattern=pattern):
            continue
        where = _where("Deployment", d.props)
        replicas = effective_replicas(d, hpas)
        if replicas < MIN_PROD_REPLICAS:
            out.append((d.urn, f"{where} runs {replicas} replica(s) in prod: at least {MIN_PROD_REPLICAS} "
                               "(spec.replicas or the HorizontalPodAutoscaler's minReplicas)"))
        if not any(p.namespace == d.namespace and selector_matches(p.spec.get("selector"), labels)
                   for p in pdbs):
            out.append((d.urn, f"{where} has no PodDisruptionBudget selecting its pods in prod"))
    return out


# ------------------------------------------------------------------------------ policy objects


def _pattern(args) -> str:
    return str((args.get_config() or {}).get("prodStackPattern") or PROD_STACK_PATTERN)


#: Workloads that cannot meet the container rules by design, as "<namespace>/<Kind>/<name>" -> why.
#: Extend with the policy config ``exemptWorkloads`` (a list of the same strings).
NODE_AGENT_EXEMPTIONS = {
    "kube-system/DaemonSet/istio-cni-node": (
        "the Istio CNI node agent installs the CNI plugin on the host and rewrites pod networking: "
        "it runs privileged as root by design, and its chart accepts requests but no limits"),
}


def exempt_workload(resource_type: str, props: Mapping, extra: Iterable[str] = ()) -> bool:
    """Is this workload one of the node agents the container rules do not apply to?"""
    meta = _map(_map(props).get("metadata"))
    key = f"{meta.get('namespace', 'default')}/{kind_of(resource_type)}/{meta.get('name', '')}"
    return key in NODE_AGENT_EXEMPTIONS or key in set(extra)


def _resource_policy(name: str, description: str, check, exemptable: bool = False) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        extra = ((args.get_config() or {}).get("exemptWorkloads") or []) if exemptable else []
        if exemptable and exempt_workload(args.resource_type, args.props, extra):
            return
        for message in check(args.resource_type, args.props):
            report_violation(message, None)
    schema = PolicyConfigSchema(properties={"exemptWorkloads": {
        "type": "array", "items": {"type": "string"},
        "description": "More workloads the rule does not apply to, as <namespace>/<Kind>/<name>."}}) \
        if exemptable else None
    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY, config_schema=schema)


def _validate_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in PROTECTED_TYPES:
        return
    prod = is_prod(stack_of(args.urn), pattern=_pattern(args))
    protect = bool(args.opts.protect) if args.opts is not None else False
    for message in check_protected(args.resource_type, protect, prod, args.name):
        report_violation(message, None)


def _validate_availability(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    objects = k8s_objects((r.urn, r.resource_type, r.props) for r in args.resources)
    stack = next((stack_of(r.urn) for r in args.resources if r.urn), "")
    for urn, message in check_prod_availability(objects, stack, _pattern(args)):
        report_violation(message, urn)


_PATTERN_SCHEMA = PolicyConfigSchema(properties={"prodStackPattern": {
    "type": "string", "description": "Regular expression (on the lower-cased stack name) of prod stacks."}})

POLICIES = [
    _resource_policy("no-privileged-containers",
                     "Containers run as non-root, unprivileged, without privilege escalation.",
                     check_container_security, exemptable=True),
    _resource_policy("container-resources", "Every container sets cpu/memory requests and limits.",
                     check_container_resources, exemptable=True),
    _resource_policy("no-literal-secrets-in-env",
                     "Secret-like environment variables come from a Kubernetes Secret (secretKeyRef).",
                     check_secret_env),
    _resource_policy("load-balancer-needs-annotation",
                     "LoadBalancer Services declare public-on-purpose or internal exposure.",
                     check_load_balancer),
    ResourceValidationPolicy(
        name="prod-protected-stateful-resources",
        description="In prod, databases, clusters and encryption keys have protect: true.",
        validate=_validate_protected, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_PATTERN_SCHEMA),
    StackValidationPolicy(
        name="prod-deployment-availability",
        description="In prod, Deployments run >= 3 replicas and a PodDisruptionBudget selects them.",
        validate=_validate_availability, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_PATTERN_SCHEMA),
]
POLICIES += cluster_stack_policies()
POLICIES += database_policies()
POLICIES += cicd_policies()
POLICIES += mesh_policies()
POLICIES += size_policies()
