"""Services layer: the cluster's registry, then per service on the cluster its image, its database and
its Microservice.

Tier defaults live here (config -> component args): replicas ``cfg.replicas(svc)`` (dev 1,
staging 2, prod 3), HPA min = replicas and max = max(3 * replicas, 3), strict zone spread and a
PDB in prod, cloud databases highly available, deletion-protected and ``protect``-ed in prod.
Cloud SDKs are imported only inside the cloud branches of the components.
"""
from __future__ import annotations

from typing import Any, Optional

import pulumi

from cnplatform.cluster.base import ClusterNetwork
from cnplatform.database import (
    CloudSqlPrivateAccess,
    CloudSqlPrivateAccessArgs,
    MySqlDatabase,
    MySqlDatabaseArgs,
)
from cnplatform.database import spec as db_spec
from cnplatform.mesh.egress import ExternalService, cloud_database_egress
from cnplatform.mesh.istio import IstioMesh
from cnplatform.microservice import Microservice, MicroserviceArgs, Peer, SecretKeyRef
from cnplatform.registry import (
    ArtifactRepository,
    ArtifactRepositoryArgs,
    EcrRepositories,
    EcrRepositoriesArgs,
    ServiceImage,
    ServiceImageArgs,
    image_digest,
)
from cnplatform.registry import context as registry_context
from stacks.compose.context import ClusterContext
from stacks.compose.workloads import Workload
from stacks.config import ROOT, ServiceConfig

#: Requests/limits of an in-cluster (kind, i.e. dev) MySQL pod; the footprint counts the same values.
#: Sized for MySQL without the Performance Schema (a laptop database needs no instrumentation; it is
#: most of an idle server's memory): docs/footprint.md gives the source of each figure.
LOCAL_MYSQL_RESOURCES = {"requests": {"cpu": "25m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
LOCAL_MYSQL_PERFORMANCE_SCHEMA = False
KEEP_IMAGES = 20


def _network(ctx: ClusterContext, purpose: str) -> ClusterNetwork:
    """The cloud network of the cluster (``Cluster.network``), with a clear error when it has none."""
    network = ctx.cluster.network
    if network is None or network.cloud != ctx.cluster_cfg.cloud:
        raise AttributeError(
            f"cluster {ctx.name!r} ({ctx.cluster_cfg.cloud}) declares no {ctx.cluster_cfg.cloud} network, needed "
            f"for {purpose}: its component ({type(ctx.cluster).__name__}) must set `self.network`")
    return network


def _required(value: Any, ctx: ClusterContext, what: str, purpose: str) -> Any:
    if value is None:
        raise AttributeError(f"cluster {ctx.name!r}: its network has no {what}, needed for {purpose}")
    return value


def build_context(build: str) -> tuple[str, str, dict[str, str]]:
    """``services/user`` -> (context ``services``, dockerfile, build args), project-relative
    (:func:`cnplatform.registry.context.build_context`)."""
    return registry_context.build_context(build, ROOT)


def autoscaling_bounds(cfg, svc) -> tuple[int, int]:
    """(min, max) of the HPA: min = configured or replicas; max = configured or max(3 * replicas, 3)."""
    replicas = cfg.replicas(svc)
    low = svc.autoscaling.min_replicas or replicas
    high = svc.autoscaling.max_replicas or max(3 * replicas, 3)
    return low, max(low, high)


def _cloud_only_opts(ctx: ClusterContext, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
    """Cloud resources that need nothing on the cluster (registry, images, the VPC peering, databases): the
    cloud provider only, so they are created alongside the cluster instead of after its node pools. The
    in-cluster objects of such a component get the cluster's provider and waits through its args."""
    providers = [ctx.cluster.cloud_provider] if ctx.cluster.cloud_provider is not None else None
    return pulumi.ResourceOptions(providers=providers, depends_on=list(depends_on) or None)


def _registry_repository(ctx: ClusterContext) -> str:
    """The GKE cluster's repository id (its ``registry_url`` ends with it; its nodes may pull from it)."""
    return ctx.cluster.registry_repository or "platform"


def _artifact_repository(ctx: ClusterContext) -> ArtifactRepository:
    """GCP: the cluster's Docker repository (``cluster.registry_repository``), created once per cluster."""
    if ctx.artifact_repository is None:
        cc = ctx.cluster_cfg
        ctx.artifact_repository = ArtifactRepository(f"{ctx.name}-registry", ArtifactRepositoryArgs(
            project=cc.gcp.project, region=cc.region,
            repository=_registry_repository(ctx), keep_images=KEEP_IMAGES,
        ), opts=_cloud_only_opts(ctx))
    return ctx.artifact_repository


def _registry(ctx: ClusterContext, services: list[ServiceConfig]) -> Optional[pulumi.Resource]:
    """The cluster's registry for every service running on it, built here (``build:``) or not (``image:``,
    which CI pins after pushing into it): ECR repositories on aws, the Artifact Registry repository on
    gcp, none on kind. How a service gets its image must not decide whether its registry exists."""
    cc = ctx.cluster_cfg
    if cc.cloud == "gcp":
        return _artifact_repository(ctx)
    if cc.cloud == "aws":
        return EcrRepositories(f"{ctx.name}-registry", EcrRepositoriesArgs(
            cluster=ctx.name, services=[s.name for s in services], region=cc.region,
            keep_images=KEEP_IMAGES, force_delete=not ctx.cfg.protect,
        ), opts=_cloud_only_opts(ctx))
    return None


def _image(ctx: ClusterContext, svc: ServiceConfig,
           registry: Optional[pulumi.Resource]) -> tuple[Any, list[pulumi.Resource]]:
    """(image reference the Deployment runs, resources to wait for): the configured image, or a build
    pushed into the cluster's ``registry``."""
    if svc.image_for(ctx.name):
        return svc.image_for(ctx.name), []
    cc = ctx.cluster_cfg
    context, dockerfile, build_args = build_context(svc.build)
    args = ServiceImageArgs(
        service=svc.name, context=context, dockerfile=dockerfile, build_args=build_args,
        tag=image_digest(ROOT / context, ROOT / dockerfile, build_args=build_args),
        cloud=cc.cloud, cluster=ctx.name, kind_load=not cc.local.existing_context,
        region=cc.region if cc.cloud != "local" else None,
        cluster_ready=list(ctx.cluster.ready),  # kind load only: builds and pushes need no cluster
    )
    depends: list[pulumi.Resource] = []
    if isinstance(registry, EcrRepositories):
        args.repository_url = registry.repositories[svc.name].repository_url  # the push waits for it
    elif isinstance(registry, ArtifactRepository):
        args.project = cc.gcp.project
        args.repository = _registry_repository(ctx)
        depends.append(registry)
    image = ServiceImage(f"{ctx.name}-{svc.name}-image", args, opts=_cloud_only_opts(ctx, *depends))
    return image.image_ref, image.ready


def _private_access(ctx: ClusterContext) -> tuple[Optional[pulumi.Resource], Any]:
    """GCP: the private services access of the cluster's network (Cloud SQL), created once per cluster."""
    if ctx.cloudsql_private_access is None:
        purpose = "Cloud SQL private IP (private services access)"
        network_id = _required(_network(ctx, purpose).network_id, ctx, "network_id", purpose)
        access = CloudSqlPrivateAccess(f"{ctx.name}-cloudsql-psa", CloudSqlPrivateAccessArgs(
            network_id=network_id, project=ctx.cluster_cfg.gcp.project), opts=_cloud_only_opts(ctx))
        ctx.cloudsql_private_access = (access.connection, access.cidr)
    return ctx.cloudsql_private_access


def _database(ctx: ClusterContext, svc: ServiceConfig) -> tuple[MySqlDatabase, list]:
    """The service's database and the CIDRs its pods must reach it at (empty in cluster)."""
    cfg, cc = ctx.cfg, ctx.cluster_cfg
    args = MySqlDatabaseArgs(
        service=svc.name, namespace=svc.namespace, cloud=cc.cloud, database=svc.database.name,
        storage=svc.database.storage, mysql_version=svc.database.mysql_version, cluster=ctx.name,
        cpu_request=LOCAL_MYSQL_RESOURCES["requests"]["cpu"],
        memory_request=LOCAL_MYSQL_RESOURCES["requests"]["memory"],
        cpu_limit=LOCAL_MYSQL_RESOURCES["limits"]["cpu"], memory_limit=LOCAL_MYSQL_RESOURCES["limits"]["memory"],
        performance_schema=LOCAL_MYSQL_PERFORMANCE_SCHEMA,
        region=cc.region if cc.cloud != "local" else None,
        high_availability=cfg.defaults.strict_zone_spread, deletion_protection=cfg.protect, protect=cfg.protect,
        backup_retention_days=cfg.defaults.backup_retention_days,
    )
    # The cloud instance needs only its network; the Secret and CA ConfigMap wait for the cluster.
    args.cluster_provider = ctx.cluster.provider
    args.cluster_ready = ctx.k8s_waits(ctx.baseline.namespaces[svc.namespace])
    depends: list[pulumi.Resource] = []
    cidrs: list = []
    if cc.cloud == "aws":
        purpose = f"the RDS database of {svc.name!r}"
        network = _network(ctx, purpose)
        args.vpc_id = _required(network.vpc_id, ctx, "vpc_id", purpose)
        args.subnet_ids = _required(network.private_subnet_ids, ctx, "private_subnet_ids", purpose)
        vpc_cidr = network.vpc_cidr or cc.aws.vpc_cidr
        args.allowed_cidrs = [vpc_cidr]
        args.instance_class = cfg.defaults.rds_instance_class
        cidrs = [vpc_cidr]
    elif cc.cloud == "gcp":
        args.project = cc.gcp.project
        purpose = f"the Cloud SQL database of {svc.name!r}"
        network = _network(ctx, purpose)
        args.network_id = network.network_self_link or _required(network.network_id, ctx, "network_id", purpose)
        args.tier = cfg.defaults.cloudsql_tier
        connection, cidr = _private_access(ctx)
        depends.append(connection)
        cidrs = [cidr]
    db = MySqlDatabase(f"{ctx.name}-{svc.name}-db", args, opts=_cloud_only_opts(ctx, *depends))
    return db, cidrs


def _database_egress(ctx: ClusterContext, svc: ServiceConfig, database: MySqlDatabase,
                     mesh: Optional[IstioMesh]) -> Optional[ExternalService]:
    """A cloud database is outside the mesh registry: with the mesh on, its ServiceEntry (in the service's
    namespace, visible there only) lets the sidecars reach it, which prod's REGISTRY_ONLY requires."""
    cloud = ctx.cluster_cfg.cloud
    if not ctx.cfg.mesh.enabled or cloud not in ("aws", "gcp") or mesh is None:
        return None
    crds = list(mesh.crd_dependencies)  # Istio CRDs + validation webhook
    return ExternalService(
        f"{ctx.name}-{svc.name}-db-egress",
        cloud_database_egress(svc.name, svc.namespace, cloud, database.host, db_spec.MYSQL_PORT),
        opts=ctx.k8s_opts(*crds, ctx.baseline.namespaces[svc.namespace]))


def multi_network(cfg) -> bool:
    """The mesh spans networks (east-west gateways): configured, or on when the stack has > 1 cluster."""
    if not cfg.mesh.enabled:
        return False
    configured = cfg.mesh.east_west_gateway
    return configured if configured is not None else len(cfg.clusters) > 1


def service_args(cfg, svc, *, image: Any, mesh_enabled: bool,
                 monitoring_namespace: Optional[str], gateway_labels: Optional[dict] = None,
                 database: Optional[MySqlDatabase] = None, database_cidrs: Optional[list] = None) -> MicroserviceArgs:
    """Config -> MicroserviceArgs with the tier defaults (pure apart from reading ``database``).

    Calls and callers are not filtered by cluster: in a multi-cluster mesh a peer may run in another
    cluster (reached through the east-west gateways), and a selector matching no local pod is harmless.
    """
    replicas = cfg.replicas(svc)
    low, high = autoscaling_bounds(cfg, svc)
    callers = cfg.callers.get(svc.name, [])
    res = cfg.resources(svc)
    args = MicroserviceArgs(
        name=svc.name, namespace=svc.namespace, image=image, port=svc.port, replicas=replicas,
        cpu_request=res["requests"]["cpu"], memory_request=res["requests"]["memory"],
        cpu_limit=res["limits"]["cpu"], memory_limit=res["limits"]["memory"],
        env=dict(svc.env),
        secret_env={k: SecretKeyRef(v.secret, v.key) for k, v in svc.secret_env.items()},
        calls=[Peer(c, cfg.service(c).namespace, cfg.service(c).port) for c in svc.calls],
        callers=[*(Peer(c, cfg.service(c).namespace, cfg.service(c).port) for c in callers),
                 *(Peer(c.name, c.namespace) for c in svc.external_callers)],
        liveness_path=svc.health.liveness, readiness_path=svc.health.readiness, startup_path=svc.health.startup,
        autoscaling_enabled=svc.autoscaling.enabled, autoscaling_min=low, autoscaling_max=high,
        cpu_target=svc.autoscaling.cpu_target,
        expose_path=svc.expose.path if svc.expose else None,
        slo_availability=svc.slo.availability, slo_latency_ms=svc.slo.latency_ms,
        slo_latency_target=svc.slo.latency_target,
        canary_image=svc.canary.image if svc.canary else None,
        canary_weight=svc.canary.weight if svc.canary else 0,
        mesh_enabled=mesh_enabled, east_west_gateway=mesh_enabled and multi_network(cfg),
        monitoring_namespace=monitoring_namespace,
        strict_zone_spread=cfg.defaults.strict_zone_spread,
    )
    if gateway_labels:
        args.ingress_gateway_labels = dict(gateway_labels)
    if database is not None:
        args.database_host = database.host
        args.database_name = database.database_name
        args.database_user = database.user_name
        args.database_secret = database.secret
        args.database_pod_labels = dict(database.pod_labels)
        args.database_cidrs = list(database_cidrs or [])
        # TLS required by the server (MySqlDatabaseArgs.require_tls): the service verifies its CA.
        args.database_ca_file = database.ca_file
        args.database_ca_configmap = database.ca_configmap
        args.database_verify_identity = database.verify_identity
    return args


def deploy(ctx: ClusterContext) -> None:
    cfg = ctx.cfg
    services = cfg.services_on(ctx.name)
    if not services:
        return
    mesh = ctx.mesh
    gateway_labels = mesh.ingress_gateway_labels if mesh is not None else None
    mesh_ready = list(mesh.ready) if mesh is not None else []
    created: dict[str, Microservice] = {}
    registry = _registry(ctx, services)
    for svc in services:
        namespace = ctx.baseline.namespaces[svc.namespace]
        image, image_ready = _image(ctx, svc, registry)
        database, cidrs, egress = (None, [], None)
        if svc.database is not None:
            database, cidrs = _database(ctx, svc)
            egress = _database_egress(ctx, svc, database, mesh)
        args = service_args(
            cfg, svc, image=image, mesh_enabled=cfg.mesh.enabled,
            monitoring_namespace="monitoring" if cfg.monitoring.enabled else None,
            gateway_labels=gateway_labels,
            database=database, database_cidrs=cidrs)
        depends = [namespace, *image_ready, *(database.ready if database else []), *([egress] if egress else [])]
        if cfg.mesh.enabled and mesh is not None:
            # Pods created before the sidecar injector is up would run without a sidecar.
            depends.extend(mesh_ready)
        created[svc.name] = Microservice(f"{ctx.name}-{svc.name}", args, opts=ctx.k8s_opts(*depends))
    ctx.services = created
    ctx.outputs["services"] = {name: {"url": m.url, "image": m.args.image} for name, m in created.items()}


def footprint(cfg, cluster_cfg) -> list[Workload]:
    """In-cluster databases (services and their sidecars are counted by stacks.checks.footprint)."""
    if cluster_cfg.cloud != "local":
        return []
    return [Workload.of("databases", db_spec.workload_name(s.name), 1, LOCAL_MYSQL_RESOURCES)
            for s in cfg.services_on(cluster_cfg.name) if s.database is not None]
