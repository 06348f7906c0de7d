"""cert-manager (jetstack chart, CRDs included) and the cluster's ClusterIssuer.

Two issuer kinds:

- ``ca``: a self-signed bootstrap ClusterIssuer signs a CA Certificate (``isCA``) in the
  cert-manager namespace; the ClusterIssuer ``platform-ca`` signs with that CA. For kind clusters
  (no public DNS, nothing a public CA could reach).
- ``acme``: Let's Encrypt (or any ACME server) with an HTTP-01 solver answered through the Istio
  ingress gateway (an Ingress of class ``istio`` that Istio's ingress controller serves).

Every custom resource depends on the chart: ``helm.v4.Chart`` finishes only when the CRDs exist, the
webhook Deployment is ready and cainjector has injected the webhooks' CA (``wait_for_ca_bundle``), so
one ``pulumi up`` on an empty cluster works.
"""

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from cnplatform import validation as _v
from cnplatform.charts import chart_source, wait_for_ca_bundle
from cnplatform.cluster.baseline import NamespaceSpec, namespace_labels
from cnplatform.cluster.priority import priority_class_name
from cnplatform.manifests import custom_resource
from cnplatform.naming import type_token
from cnplatform.netpolicy import cert_manager_policies, create_network_policies
from cnplatform.options import inherited_depends_on

CHART = "cert-manager"
CHART_VERSION = "v1.21.1"
REPOSITORY = "https://charts.jetstack.io"
NAMESPACE = "cert-manager"
RELEASE = "cert-manager"
#: Node ports the API server calls: the webhook's ``securePort`` (chart default 10250, chosen by the
#: chart so private GKE control planes reach it without a firewall rule).
CONTROL_PLANE_PORTS = (10250,)
API_VERSION = "cert-manager.io/v1"

ISSUER_CA = "ca"
ISSUER_ACME = "acme"
ISSUER_TYPES = (ISSUER_CA, ISSUER_ACME)
#: Default ClusterIssuer names per issuer type.
ISSUER_NAMES = {ISSUER_CA: "platform-ca", ISSUER_ACME: "letsencrypt"}
SELF_SIGNED_ISSUER = "platform-selfsigned"
CA_SECRET = "platform-ca"
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

#: The chart's three Deployments: values key prefix ("" = top level) -> component label.
DEPLOYMENTS = {"controller": "", "webhook": "webhook", "cainjector": "cainjector"}
#: Modest requests; limits leave room for bursts (cainjector caches Secrets, the controller
#: caches Certificates and Secrets, the webhook only validates).
RESOURCES = {
    "controller": {"requests": {"cpu": "25m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "webhook": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
    "cainjector": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
}


@dataclass
class CertManagerArgs:
    """Inputs of :class:`CertManager`."""

    namespace: str = NAMESPACE
    """Namespace created for cert-manager (also its cluster resource namespace: the CA and ACME account Secrets)."""
    chart_version: str = CHART_VERSION
    """Pinned chart version."""
    repository: str = REPOSITORY
    """Helm repository of the chart."""
    charts_dir: Optional[str] = None
    """Directory of unpacked charts (air-gapped installs): the chart is loaded from
    ``<charts_dir>/cert-manager`` instead of the repository."""
    replicas: int = 1
    """Pods of each of controller, webhook and cainjector; above 1 each gets a PodDisruptionBudget and
    spreads over nodes and zones."""
    issuer: str = ISSUER_CA
    """ClusterIssuer kind: ``ca`` (self-signed CA) or ``acme`` (Let's Encrypt, HTTP-01 through the Istio ingress)."""
    issuer_name: str = ISSUER_NAMES[ISSUER_CA]
    """Name of the ClusterIssuer certificates refer to."""
    acme_email: str = "platform@example.com"
    """ACME account e-mail (expiry notices)."""
    acme_server: str = LETSENCRYPT
    """ACME directory URL (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory)."""
    acme_ingress_class: str = "istio"
    """Ingress class of the HTTP-01 solver's temporary Ingress (``kubernetes.io/ingress.class``)."""
    priority_class_name: Optional[str] = None
    """PriorityClass of the controller, webhook and cainjector pods (it must exist; none: no class)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "namespace": _v.dns_label, "replicas": _v.positive, "issuer": _v.one_of("ca", "acme"),
            "issuer_name": _v.dns_label, "priority_class_name": priority_class_name,
        })


def cert_manager_values(replicas: int, priority_class: Optional[str] = None) -> dict:
    """The chart's Helm values (keys of cert-manager v1.21.1's values.yaml, valid against its schema).
    ``priority_class``: ``global.priorityClassName``, which the chart gives all three Deployments."""
    ha = replicas > 1

    def deployment(component: str) -> dict:
        out: dict = {
            "replicaCount": replicas,
            "resources": RESOURCES[component],
            "podDisruptionBudget": {"enabled": ha, **({"minAvailable": 1} if ha else {})},
        }
        if ha:
            selector = {"matchLabels": {"app.kubernetes.io/instance": RELEASE,
                                        "app.kubernetes.io/component": component}}
            out["topologySpreadConstraints"] = [
                {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}
                for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
            ]
        return out

    return {
        # The chart installs and upgrades the CRDs; `keep` annotates them so removing the release
        # does not cascade-delete every Certificate in the cluster.
        "crds": {"enabled": True, "keep": True},
        **deployment("controller"),
        "webhook": deployment("webhook"),
        "cainjector": deployment("cainjector"),
        # A post-install Helm hook, which helm.v4.Chart does not run as one: instead the chart's webhook
        # configurations wait for cainjector's CA (cnplatform.charts.wait_for_ca_bundle), so the issuers
        # that depend on the chart are sent once the webhook can be called.
        "startupapicheck": {"enabled": False},
        **({"global": {"priorityClassName": priority_class}} if priority_class else {}),
    }


def deployment_resources(values: dict) -> dict[str, tuple[int, dict]]:
    """Deployment name -> (replicas, resources) read back from :func:`cert_manager_values` output."""
    out = {}
    for component, key in DEPLOYMENTS.items():
        section = values.get(key, {}) if key else values
        name = "cert-manager" if component == "controller" else f"cert-manager-{component}"
        out[name] = (int(section.get("replicaCount", 1)), section.get("resources", {}))
    return out


def _issuer_ref(name: str) -> dict:
    return {"name": name, "kind": "ClusterIssuer", "group": "cert-manager.io"}


def cluster_issuer_manifests(args: CertManagerArgs) -> list[dict]:
    """The issuer objects, in creation order (each later one may rely on the earlier ones)."""
    if args.issuer not in ISSUER_TYPES:
        raise ValueError(f"issuer must be one of {ISSUER_TYPES}, got {args.issuer!r}")
    if args.issuer == ISSUER_ACME:
        return [{
            "apiVersion": API_VERSION, "kind": "ClusterIssuer",
            "metadata": {"name": args.issuer_name},
            "spec": {"acme": {
                "email": args.acme_email,
                "server": args.acme_server,
                # Account key, created by cert-manager in its cluster resource namespace.
                "privateKeySecretRef": {"name": f"{args.issuer_name}-account-key"},
                # HTTP-01 only: names must resolve publicly to the gateway; no wildcards.
                "solvers": [{"http01": {"ingress": {"class": args.acme_ingress_class}}}],
            }},
        }]
    return [
        {"apiVersion": API_VERSION, "kind": "ClusterIssuer", "metadata": {"name": SELF_SIGNED_ISSUER},
         "spec": {"selfSigned": {}}},
        {"apiVersion": API_VERSION, "kind": "Certificate",
         "metadata": {"name": CA_SECRET, "namespace": args.namespace},
         "spec": {
             "isCA": True,
             "commonName": f"{args.issuer_name} root CA",
             "subject": {"organizations": ["ecommerce-platform"]},
             "secretName": CA_SECRET,
             "duration": "87600h",  # 10 years: a dev CA a developer may import into a browser once
             "renewBefore": "720h",
             "privateKey": {"algorithm": "ECDSA", "size": 256},
             "issuerRef": _issuer_ref(SELF_SIGNED_ISSUER),
         }},
        {"apiVersion": API_VERSION, "kind": "ClusterIssuer", "metadata": {"name": args.issuer_name},
         "spec": {"ca": {"secretName": CA_SECRET}}},
    ]


class CertManager(pulumi.ComponentResource):
    """cert-manager from its upstream chart (CRDs included), pinned, with the cluster's ClusterIssuer."""

    namespace: pulumi.Output[str]
    """Namespace of cert-manager."""
    cluster_issuer: pulumi.Output[str]
    """Name of the ClusterIssuer certificates should refer to."""
    chart_version: pulumi.Output[str]
    """Installed chart version."""

    def __init__(self, name: str, args: CertManagerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("addons", "CertManager"), name, None, opts)
        manifests = cluster_issuer_manifests(args)  # validates args.issuer before anything is registered
        deps = inherited_depends_on(opts)
        # Handles for callers (plain attributes, not class annotations: those are the schema outputs):
        # ``chart`` (custom resources of cert-manager's CRDs depend on it), ``issuers`` (the issuer
        # objects in creation order), ``issuer_type`` (``ca``/``acme``) and ``issuer_name``.
        self.issuer_type = args.issuer
        self.issuer_name = args.issuer_name
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": args.namespace,
                      "labels": namespace_labels(NamespaceSpec(args.namespace, "restricted"), mesh_injection=False)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps),
        )
        create_network_policies(name, args.namespace, cert_manager_policies(),
                                pulumi.ResourceOptions(parent=self, depends_on=[ns]))
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            **chart_source(CHART, args.repository, args.charts_dir),
            version=args.chart_version,
            name=RELEASE,
            namespace=args.namespace,
            values=cert_manager_values(args.replicas, args.priority_class_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*deps, ns], transforms=[wait_for_ca_bundle]),
        )
        self.issuers: list[k8s.apiextensions.CustomResource] = []
        for manifest in manifests:
            meta = manifest["metadata"]
            self.issuers.append(custom_resource(
                f"{name}-{manifest['kind'].lower()}-{meta['name']}", manifest,
                pulumi.ResourceOptions(parent=self, depends_on=[*deps, self.chart, *self.issuers]),
            ))
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.cluster_issuer = pulumi.Output.from_input(args.issuer_name)
        self.chart_version = pulumi.Output.from_input(args.chart_version)
        self.register_outputs({
            "namespace": self.namespace, "cluster_issuer": self.cluster_issuer, "chart_version": self.chart_version,
        })
