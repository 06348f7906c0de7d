"""Multi-primary endpoint discovery: the remote secrets ``istioctl create-remote-secret`` would make.

Each istiod watches the API servers of the other clusters with the token of their
``istio-reader-service-account``; the Secret is labelled ``istio/multiCluster=true`` in istio-system.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from cnplatform import validation as _v
from cnplatform.mesh._resources import child_opts, metadata
from cnplatform.mesh.values import ISTIO_NAMESPACE
from cnplatform.naming import type_token
from cnplatform.options import as_secret, inherited_depends_on

MULTICLUSTER_LABEL = {"istio/multiCluster": "true"}


def remote_secret_name(cluster: str) -> str:
    return f"istio-remote-secret-{cluster}"


def remote_kubeconfig(cluster: str, server: str, ca_data: str, token: str) -> str:
    """A kubeconfig for istiod to read ``cluster`` (same shape as istioctl create-remote-secret)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "users": [{"name": cluster, "user": {"token": token}}],
    }, sort_keys=False)


def ca_data_of(kubeconfig: Optional[str]) -> str:
    """certificate-authority-data of the first cluster of a kubeconfig (JSON or YAML)."""
    try:
        doc = yaml.safe_load(kubeconfig or "") or {}
        return doc["clusters"][0]["cluster"].get("certificate-authority-data", "")
    except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
        return ""


@dataclass
class RemoteSecretArgs:
    """Inputs of :class:`RemoteSecret` (created in the cluster whose istiod reads ``remote_cluster``)."""

    remote_cluster: str
    """Name of the cluster to read (its ``global.multiCluster.clusterName``)."""
    server: pulumi.Input[str]
    """API server URL of the remote cluster (must be reachable from this cluster's istiod)."""
    ca_data: pulumi.Input[str]
    """Base64 CA bundle of the remote API server."""
    token: pulumi.Input[str]
    """Token of the remote cluster's istio-reader-service-account (secret)."""
    namespace: str = ISTIO_NAMESPACE
    """Mesh namespace of this cluster."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"remote_cluster": _v.dns_label, "namespace": _v.dns_label})


class RemoteSecret(pulumi.ComponentResource):
    """``istio-remote-secret-<remote>``: lets this cluster's istiod discover the remote's endpoints."""

    secret_name: pulumi.Output[str]
    """Name of the remote secret."""

    def __init__(self, name: str, args: RemoteSecretArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("mesh", "RemoteSecret"), name, None, opts)
        cluster = args.remote_cluster
        kubeconfig = pulumi.Output.all(args.server, args.ca_data, args.token).apply(
            lambda t: remote_kubeconfig(cluster, t[0] or "", t[1] or "", t[2] or ""))
        k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=metadata(remote_secret_name(cluster), args.namespace, labels=MULTICLUSTER_LABEL,
                              annotations={"networking.istio.io/cluster": cluster}),
            type="Opaque",
            string_data=as_secret(kubeconfig.apply(lambda k: {cluster: k})),
            opts=child_opts(self, inherited_depends_on(opts)))
        self.secret_name = pulumi.Output.from_input(remote_secret_name(cluster))
        self.register_outputs({"secret_name": self.secret_name})
