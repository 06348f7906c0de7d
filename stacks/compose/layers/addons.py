"""Layer: cluster add-ons — the platform's PriorityClasses, metrics-server and cert-manager with the
cluster's ClusterIssuer.

The PriorityClasses come first (``ctx.priority_classes``): ``ctx.k8s_opts`` makes every later object
of the cluster depend on them, so no pod naming one reaches admission before it exists.

Shares ``ctx.parts["metrics_server"]``, ``ctx.parts["cert_manager"]`` (the CertManager component:
depend on it, or on its ``chart``, for anything using cert-manager's CRDs) and
``ctx.parts["cluster_issuer"]`` (the ClusterIssuer name). Karpenter is the EKS cluster's business.
"""
from __future__ import annotations

from typing import Optional

from cnplatform.addons.cert_manager import (
    ISSUER_ACME,
    ISSUER_CA,
    ISSUER_NAMES,
    CertManager,
    CertManagerArgs,
    cert_manager_values,
    deployment_resources,
)
from cnplatform.addons.metrics_server import (
    MetricsServer,
    MetricsServerArgs,
    metrics_server_values,
)
from cnplatform.cluster.priority import PLATFORM_CRITICAL, PlatformPriorityClasses, PlatformPriorityClassesArgs
from stacks.compose.context import ClusterContext
from stacks.compose.workloads import Workload
from stacks.config import TIERS, ClusterConfig, StackConfig

LAYER = "addons"
#: Clouds whose clusters need metrics-server for the metrics.k8s.io API (HPAs, kubectl top).
#: GKE serves that API itself (its own managed metrics-server): installing a second one would fight
#: over the v1beta1.metrics.k8s.io APIService.
METRICS_SERVER_CLOUDS = ("local", "aws")


def has_metrics_api(cfg: StackConfig, cluster_cfg: ClusterConfig) -> bool:
    """Whether HPAs on this cluster get metrics (from our metrics-server or from the cloud)."""
    return cluster_cfg.cloud == "gcp" or wants_metrics_server(cfg, cluster_cfg)


def wants_metrics_server(cfg: StackConfig, cluster_cfg: ClusterConfig) -> bool:
    return cfg.addons.metrics_server and cluster_cfg.cloud in METRICS_SERVER_CLOUDS


def metrics_server_args(cloud: str, tier: str, charts_dir: Optional[str] = None) -> MetricsServerArgs:
    return MetricsServerArgs(
        charts_dir=charts_dir,
        # HA in prod: two replicas, PodDisruptionBudget, spread (HPAs stall while the metrics API is down).
        replicas=TIERS[tier].addon_replicas,
        # kind only: kind's kubelets serve self-signed certificates that are not signed by the
        # cluster CA, so metrics-server cannot verify them. EKS kubelet certificates are signed by
        # the cluster CA: verification stays on there.
        kubelet_insecure_tls=cloud == "local",
    )


def cert_manager_replicas(tier: str) -> int:
    """Controller, webhook and cainjector pods each: HA in prod (the webhook gates every cert-manager write)."""
    return TIERS[tier].addon_replicas


def issuer_type(cfg: StackConfig, cluster_cfg: ClusterConfig) -> str:
    """``ca`` on local clusters (nothing public to validate), ``acme`` on cloud clusters, unless configured."""
    return cfg.addons.cert_manager.issuer or (ISSUER_CA if cluster_cfg.cloud == "local" else ISSUER_ACME)


def cert_manager_args(cfg: StackConfig, cluster_cfg: ClusterConfig) -> CertManagerArgs:
    cm = cfg.addons.cert_manager
    kind = issuer_type(cfg, cluster_cfg)
    return CertManagerArgs(
        replicas=cert_manager_replicas(cfg.tier),
        issuer=kind,
        issuer_name=ISSUER_NAMES[kind],
        acme_email=cm.acme_email,
        acme_server=cm.acme_server,
        acme_ingress_class=cm.acme_ingress_class,
        charts_dir=cfg.charts_dir,
        # Its webhook gates every Certificate write (the ingress certificate included).
        priority_class_name=PLATFORM_CRITICAL,
    )


def deploy(ctx: ClusterContext) -> None:
    cfg, cluster_cfg = ctx.cfg, ctx.cluster_cfg
    ctx.priority_classes = PlatformPriorityClasses(f"{ctx.name}-priority-classes", PlatformPriorityClassesArgs(),
                                                   opts=ctx.k8s_opts())
    if wants_metrics_server(cfg, cluster_cfg):
        ctx.metrics_server = MetricsServer(
            f"{ctx.name}-metrics-server", metrics_server_args(cluster_cfg.cloud, cfg.tier, cfg.charts_dir),
            opts=ctx.k8s_opts())
    if cfg.addons.cert_manager.enabled:
        cert_manager = CertManager(f"{ctx.name}-cert-manager", cert_manager_args(cfg, cluster_cfg),
                                   opts=ctx.k8s_opts())
        ctx.cert_manager = cert_manager
        ctx.outputs["cluster_issuer"] = cert_manager.issuer_name


def footprint(cfg: StackConfig, cluster_cfg: ClusterConfig) -> list[Workload]:
    """Requests/limits of the add-ons, read from the very values dicts their charts get."""
    out = []
    if wants_metrics_server(cfg, cluster_cfg):
        values = metrics_server_values(metrics_server_args(cluster_cfg.cloud, cfg.tier))
        out.append(Workload.of(LAYER, "metrics-server", values["replicas"], values["resources"]))
    if cfg.addons.cert_manager.enabled:
        args = cert_manager_args(cfg, cluster_cfg)
        values = cert_manager_values(args.replicas, args.priority_class_name)
        for name, (replicas, resources) in deployment_resources(values).items():
            out.append(Workload.of(LAYER, name, replicas, resources))
    return out
