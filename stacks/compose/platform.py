"""The composition: per cluster, the layers of the platform in dependency order.

``stacks.program`` (``pulumi up``) and the offline render both call :func:`build_platform`. The layers
are ``stacks.compose.layers.LAYERS``; each deploys onto one cluster and records what later layers use
on the typed :class:`~stacks.compose.context.ClusterContext`.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pulumi

from cnplatform.cluster.base import Cluster, api_allow_list
from cnplatform.cluster.baseline import (
    ClusterBaseline,
    ClusterBaselineArgs,
    NamespaceSpec,
)
from stacks.compose.clusters import api_client_clusters, create_cluster
from stacks.compose.context import ClusterContext, StackShared
from stacks.compose.layers import LAYERS
from stacks.config import ClusterConfig, StackConfig


def build_cluster(cfg: StackConfig, cluster_cfg: ClusterConfig, cluster: Cluster,
                  shared: StackShared) -> ClusterContext:
    baseline = ClusterBaseline(
        f"{cluster_cfg.name}-baseline",
        ClusterBaselineArgs(
            namespaces=[NamespaceSpec(ns.name, ns.pod_security) for ns in cfg.namespaces],
            mesh_injection=cfg.mesh.enabled,
        ),
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=cluster.ready),
    )
    ctx = ClusterContext(cfg=cfg, cluster_cfg=cluster_cfg, cluster=cluster, baseline=baseline, shared=shared)
    for layer in LAYERS:
        layer.deploy(ctx)
    return ctx


def deferred() -> tuple[pulumi.Output, asyncio.Future]:
    """An Output whose value is given later through the future (``future.set_result(value_or_output)``):
    nothing that takes it registers before that, so the engine's order is unchanged. The program must
    settle the future on every path: an unsettled one would keep the run waiting forever."""
    future = asyncio.get_event_loop().create_future()
    return pulumi.Output.from_input(future).apply(lambda value: value), future


def build_platform(cfg: StackConfig) -> dict[str, Any]:
    """Create every cluster of the stack, then on each its platform; return the stack outputs.

    All clusters come first, so a layer of one cluster can use what every cluster provides (CI pushes
    each image to the registry of every cluster: ``StackShared.registries``)."""
    # A cluster's API allow-list admits the egress of the peer clusters that read it; those are created
    # after it, so it takes a deferred value, given once every cluster exists (no cycle between the
    # resources: the NAT addresses do not depend on any cluster).
    clients = {c.name: deferred() for c in cfg.clusters}
    try:
        created = {c.name: create_cluster(cfg, c, clients[c.name][0]) for c in cfg.clusters}
    except BaseException as exc:  # a failing cluster must fail the run, not leave it waiting
        for _, future in clients.values():
            future.set_exception(exc)
        raise
    for name, (_, future) in clients.items():
        peers = [created[p].egress_cidrs for p in api_client_clusters(cfg, name)]
        future.set_result(api_allow_list(*peers))
    shared = StackShared(registries=pulumi.Output.all(**{n: c.registry_url for n, c in created.items()})
                         .apply(lambda urls: {n: u for n, u in urls.items() if u}),
                         egress_cidrs={n: c.egress_cidrs for n, c in created.items()})
    clusters, kubeconfigs = {}, {}
    for cluster_cfg in cfg.clusters:
        ctx = build_cluster(cfg, cluster_cfg, created[cluster_cfg.name], shared)
        c = ctx.cluster
        clusters[cluster_cfg.name] = {
            "cloud": c.cloud, "region": c.region, "zones": c.zones, "endpoint": c.endpoint,
            "registry_url": c.registry_url, "workload_identity": c.workload_identity, **ctx.outputs,
        }
        kubeconfigs[cluster_cfg.name] = c.kubeconfig
    # Kubeconfigs apart, so a StackReference reads the rest of a cluster's outputs as plain values.
    return {"tier": cfg.tier, "clusters": clusters, "kubeconfigs": pulumi.Output.secret(kubeconfigs)}
