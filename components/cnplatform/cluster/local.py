"""Local cluster: a kind cluster created and deleted with pulumi-command, or an existing context."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_command as command
import yaml

from cnplatform import validation as _v
from cnplatform.cluster.base import Cluster
from cnplatform.cluster.capacity import NodeCapacity
from cnplatform.naming import type_token
from cnplatform.options import as_secret
from cnplatform.quantity import cpu_millicores, memory_mib

#: The kubeconfig holds cluster-admin credentials: never logged, and secret in the state.
KUBECONFIG_LOGGING = command.local.Logging.NONE
KUBECONFIG_SECRET_OUTPUTS = ["stdout", "stderr"]

#: NodePorts of the ingress gateway that kind maps to the host's http/https ports.
INGRESS_NODE_PORT_HTTP = 30080
INGRESS_NODE_PORT_HTTPS = 30443


@dataclass
class LocalClusterArgs:
    """Inputs of :class:`LocalCluster`."""

    node_image: str = "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"
    """Pinned kind node image (tag AND digest)."""
    workers: int = 0
    """Worker nodes besides the control plane (0: one node runs everything)."""
    http_port: int = 8080
    """Host port mapped to the ingress gateway's HTTP NodePort."""
    https_port: int = 8443
    """Host port mapped to the ingress gateway's HTTPS NodePort."""
    existing_context: Optional[str] = None
    """Use this kubeconfig context instead of creating a kind cluster."""
    kubeconfig_path: str = "~/.kube/config"
    """Kubeconfig file holding ``existing_context`` (``~`` is expanded to the user's home)."""
    node_cpu: str = "4"
    """CPU the kind node(s) may use in total (the host's Docker share)."""
    node_memory: str = "8Gi"
    """Memory the kind node(s) may use in total."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "node_image": _v.digest_image, "workers": _v.in_range(0, 5), "http_port": _v.port,
            "https_port": _v.port, "node_cpu": _v.quantity, "node_memory": _v.quantity,
        })


def kind_config(args: LocalClusterArgs) -> dict:
    """The kind ``Cluster`` config: pinned node image, node count, ingress port mappings."""
    control_plane = {
        "role": "control-plane",
        "image": args.node_image,
        "labels": {"ingress-ready": "true"},
        "extraPortMappings": [
            {"containerPort": INGRESS_NODE_PORT_HTTP, "hostPort": args.http_port, "protocol": "TCP"},
            {"containerPort": INGRESS_NODE_PORT_HTTPS, "hostPort": args.https_port, "protocol": "TCP"},
        ],
    }
    workers = [{"role": "worker", "image": args.node_image} for _ in range(args.workers)]
    return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [control_plane, *workers]}


class LocalCluster(Cluster):
    """A kind cluster on the developer's machine (Docker), or an existing kubeconfig context.

    ``pulumi up`` runs ``kind create cluster``; ``pulumi destroy`` runs ``kind delete cluster``.
    """

    def __init__(self, name: str, args: LocalClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("cluster", "LocalCluster"), name, None, opts)
        self.ready = []
        if args.existing_context:
            read = command.local.Command(
                f"{name}-kubeconfig",
                create=f"kubectl config view --raw --minify --flatten --context {args.existing_context}",
                environment={"KUBECONFIG": os.path.expanduser(args.kubeconfig_path)},
                logging=KUBECONFIG_LOGGING,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=KUBECONFIG_SECRET_OUTPUTS),
            )
        else:
            config = yaml.safe_dump(kind_config(args), sort_keys=False)
            cluster = command.local.Command(
                f"{name}-kind",
                create=f"kind create cluster --name {name} --wait 120s --config -",
                delete=f"kind delete cluster --name {name}",
                stdin=config,
                # A new node image or topology means a new cluster. kind cannot hold two clusters of one
                # name, so the old one goes first (create-before-delete would fail: "already exists").
                triggers=[config],
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )
            read = command.local.Command(
                f"{name}-kubeconfig",
                create=f"kind get kubeconfig --name {name}",
                # Each create gets a new id: a recreated cluster (new CA, new client certificate) is read again.
                triggers=[cluster.id],
                logging=KUBECONFIG_LOGGING,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster],
                                            additional_secret_outputs=KUBECONFIG_SECRET_OUTPUTS),
            )
            self.ready = [cluster]
        kubeconfig = as_secret(read.stdout)
        # A kind cluster is disposable: when it is gone, its objects are gone with it. An existing
        # context may be anything, so an unreachable API there keeps its objects in the state.
        self.provider = self._make_provider(name, kubeconfig, depends_on=[read],
                                            delete_unreachable=not args.existing_context)
        endpoint = read.stdout.apply(_server_of)
        self._finish(
            name=name, cloud="local", region="local", zones=["local"], endpoint=endpoint,
            # kind has no registry (images are loaded into the nodes): nothing can be pushed for it.
            kubeconfig=kubeconfig, registry_url="",
            workload_identity={"type": "none"},
            capacity=NodeCapacity(cpu_millicores(args.node_cpu), memory_mib(args.node_memory)),
        )


def _server_of(kubeconfig: Optional[str]) -> str:
    try:
        doc = yaml.safe_load(kubeconfig or "") or {}
        return doc["clusters"][0]["cluster"]["server"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return ""
