"""``MySqlDatabase``: the MySQL database one service owns, on the cluster's cloud.

* ``local``: an in-cluster MySQL StatefulSet (pinned official image, PVC, restricted pod), a
  headless Service and a NetworkPolicy admitting only the owning service on 3306.
* ``aws``: RDS MySQL in the cluster VPC's private subnets (subnet group), encrypted, never public,
  a security group admitting 3306 from the VPC CIDR only; Multi-AZ and deletion protection for HA.
* ``gcp``: Cloud SQL MySQL on a private IP only (VPC peering), REGIONAL for HA, backups + binlogs.

In every case the password is a ``random.RandomPassword`` stored in the Kubernetes Secret
``<service>-db`` (keys ``password``, ``host``, ``port``, ``user``, ``database``) in the service's
namespace; the service reads it with ``secretKeyRef``. Cloud SDKs are imported in their branch only.

``require_tls`` (default on): the server refuses plaintext and the service verifies the server's
CA (``ca_file``, from the ConfigMap ``ca_configmap`` or the image): see :mod:`cnplatform.database.tls`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from cnplatform import validation as _v
from cnplatform.database import spec
from cnplatform.database import tls as dbtls
from cnplatform.naming import selector_labels, type_token
from cnplatform.options import as_secret, inherited_depends_on


@dataclass
class MySqlDatabaseArgs:
    """Inputs of :class:`MySqlDatabase`."""

    service: str
    """Owning service (Secret ``<service>-db``; only its pods may connect)."""
    namespace: str = "shop"
    """The service's namespace (Secret and in-cluster objects)."""
    cloud: str = "local"
    """``local`` (in-cluster StatefulSet), ``aws`` (RDS) or ``gcp`` (Cloud SQL)."""
    database: Optional[str] = None
    """Database name; default the service name (``-`` -> ``_``)."""
    user: Optional[str] = None
    """Application user; default ``<service>_svc``."""
    storage: str = "10Gi"
    """Storage (PVC size; cloud disk size, rounded up to GiB, at least 10)."""
    mysql_version: str = "8.4"
    """MySQL major.minor version."""
    client_labels: dict[str, str] = field(default_factory=dict)
    """Pod labels of the clients admitted on 3306 in cluster; default the service's selector labels."""
    image: Optional[str] = None
    """local: MySQL image (default: the pinned official image of ``mysql_version``)."""
    storage_class: Optional[str] = None
    """local: StorageClass of the PVC (default: the cluster's default class)."""
    cpu_request: str = "100m"
    """local: CPU request."""
    memory_request: str = "512Mi"
    """local: memory request."""
    cpu_limit: str = "1"
    """local: CPU limit."""
    memory_limit: str = "1Gi"
    """local: memory limit."""
    performance_schema: bool = True
    """local: run MySQL's Performance Schema (its memory is most of an idle server's: off for a laptop database)."""
    cluster: str = "dev"
    """Cluster name (prefix of cloud instance names)."""
    region: Optional[str] = None
    """aws/gcp: region of the instance (the cluster's region)."""
    high_availability: bool = False
    """aws: Multi-AZ; gcp: REGIONAL availability (prod)."""
    deletion_protection: bool = False
    """Cloud deletion protection + final snapshot (prod)."""
    backup_retention_days: int = 7
    """aws: automated backup retention days; gcp: number of daily backups kept."""
    protect: bool = False
    """Pulumi ``protect`` on the cloud instance and its password (prod)."""
    require_tls: bool = True
    """Refuse plaintext connections (local ``--require-secure-transport``, aws ``require_secure_transport=1``,
    gcp ``ENCRYPTED_ONLY``) and give the service the server's CA to verify (``ca_file``)."""
    vpc_id: Optional[pulumi.Input[str]] = None
    """aws: VPC of the cluster."""
    subnet_ids: Optional[pulumi.Input[list[str]]] = None
    """aws: the cluster VPC's PRIVATE subnet ids (DB subnet group)."""
    allowed_cidrs: list[pulumi.Input[str]] = field(default_factory=list)
    """aws: CIDRs admitted on 3306 by the security group (the VPC CIDR: nodes and pods)."""
    instance_class: str = "db.t4g.micro"
    """aws: RDS instance class."""
    project: Optional[str] = None
    """gcp: project."""
    network_id: Optional[pulumi.Input[str]] = None
    """gcp: VPC network id / self link for the private IP (needs private service access)."""
    tier: str = "db-custom-1-3840"
    """gcp: Cloud SQL machine tier (ENTERPRISE edition)."""
    cluster_provider: Optional[k8s.Provider] = None
    """Kubernetes provider of the in-cluster objects (Secret, CA ConfigMap, local MySQL); default: the one
    in ``opts``. Given here instead (with ``cluster_ready``), a cloud database is created alongside the
    cluster: a component waits for every provider in its ``opts``, and a cluster's provider for its nodes."""
    cluster_ready: list[pulumi.Resource] = field(default_factory=list)
    """What the in-cluster objects wait for (the cluster, the service's namespace); the cloud instance,
    its network objects and the passwords do not."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "service": _v.dns_label, "namespace": _v.dns_label, "cloud": _v.one_of("local", "aws", "gcp"),
            "database": _v.database_name, "storage": _v.quantity,
            "mysql_version": _v.one_of(*spec.MYSQL_VERSIONS), "image": _v.pinned_image,
            "cpu_request": _v.quantity, "memory_request": _v.quantity, "cpu_limit": _v.quantity,
            "memory_limit": _v.quantity, "cluster": _v.dns_label, "backup_retention_days": _v.in_range(0, 35),
            "allowed_cidrs": _v.cidr,
        }, checks=[_v.requests_within_limits(("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")),
                   _v.derived("service", ["-mysql", "-db-root"])])


class MySqlDatabase(pulumi.ComponentResource):
    """A MySQL database for one service, plus the Secret the service reads."""

    host: pulumi.Output[str]
    """Host the service connects to (in-cluster DNS name, RDS address or Cloud SQL private IP)."""
    port: pulumi.Output[int]
    """MySQL port."""
    database: pulumi.Output[str]
    """Database name."""
    user: pulumi.Output[str]
    """Application user."""
    secret_name: pulumi.Output[str]
    """Kubernetes Secret (in the service's namespace) with ``password``, ``host``, ``port``, ``user``, ``database``."""

    #: Plain values known at program time (the service's Microservice args need them).
    database_name: str
    user_name: str
    secret: str
    #: local: labels of the MySQL pods (egress target of the service); empty for cloud databases.
    pod_labels: dict[str, str]
    #: Resources the service's Deployment should wait for.
    ready: list[pulumi.Resource]
    #: TLS (``require_tls``): CA bundle file the service verifies the server with (``MYSQL_SSL_CA``), the
    #: ConfigMap (in the service's namespace, key ``ca.pem``) to mount at ``tls.CA_MOUNT`` for it (None:
    #: the file is in the image, aws), and whether the server's certificate names ``host``.
    ca_file: Optional[str]
    ca_configmap: Optional[str]
    verify_identity: bool

    def __init__(self, name: str, args: MySqlDatabaseArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("database", "MySqlDatabase"), name, None, opts)
        self._deps = deps = inherited_depends_on(opts)
        self.database_name = args.database or spec.sql_identifier(args.service)
        self.user_name = args.user or spec.default_user(args.service)
        self.secret = spec.secret_name(args.service)
        self.pod_labels = {}
        self.ca_file, self.ca_configmap, self.verify_identity = None, None, False
        self._cluster = pulumi.ResourceOptions(parent=self, provider=args.cluster_provider,
                                               depends_on=[*deps, *args.cluster_ready])
        password = random.RandomPassword(
            f"{name}-password", length=32, special=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect or None))
        self._password = as_secret(password.result)
        if args.cloud == "local":
            host, ready = spec.local_host(args.service, args.namespace), []
        elif args.cloud == "aws":
            host, ready = self._aws(name, args)
        elif args.cloud == "gcp":
            host, ready = self._gcp(name, args)
        else:
            raise ValueError(f"MySqlDatabase {name!r}: unknown cloud {args.cloud!r}")
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": self.secret, "namespace": args.namespace, "labels": spec.labels(args.service)},
            type="Opaque",
            string_data={"password": self._password, "host": host, "port": str(spec.MYSQL_PORT),
                         "user": self.user_name, "database": self.database_name},
            opts=self._cluster,
        )
        if args.cloud == "local":
            ready = self._local(name, args, secret)
        self.ready = [secret, *ready]
        self.host = pulumi.Output.from_input(host)
        self.port = pulumi.Output.from_input(spec.MYSQL_PORT)
        self.database = pulumi.Output.from_input(self.database_name)
        self.user = pulumi.Output.from_input(self.user_name)
        self.secret_name = secret.metadata.name
        self.register_outputs({"host": self.host, "port": self.port, "database": self.database,
                               "user": self.user, "secret_name": self.secret_name})

    # ------------------------------------------------------------------------------ in cluster

    def _local(self, name: str, args: MySqlDatabaseArgs, secret: k8s.core.v1.Secret) -> list[pulumi.Resource]:
        svc, ns = args.service, args.namespace
        workload = spec.workload_name(svc)
        child = self._cluster
        meta = {"name": workload, "namespace": ns, "labels": spec.labels(svc)}
        key_material = pulumi.ResourceOptions(parent=self)  # passwords and certificates need no cluster
        root = random.RandomPassword(f"{name}-root-password", length=32, special=False, opts=key_material)
        root_secret = k8s.core.v1.Secret(
            f"{name}-root-secret",
            metadata={**meta, "name": spec.root_secret_name(svc)},
            type="Opaque", string_data={"root-password": as_secret(root.result)}, opts=child)
        mounted: list[pulumi.Resource] = [root_secret, secret]
        if args.require_tls:
            ca, cert, key = dbtls.local_certificates(name, spec.local_host(svc, ns), 10, key_material)
            mounted.append(k8s.core.v1.Secret(
                f"{name}-tls-secret", metadata={**meta, "name": dbtls.server_tls_secret_name(svc)},
                type="kubernetes.io/tls", string_data={"tls.crt": cert, "tls.key": key, "ca.pem": ca}, opts=child))
            mounted.append(self._ca_configmap(name, args, ca, verify_identity=True))
        sa = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta, automount_service_account_token=False,
                                        opts=child)
        headless = k8s.core.v1.Service(f"{name}-service", metadata=meta, spec=spec.headless_service_spec(svc),
                                       opts=child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta,
            spec=spec.network_policy_spec(svc, args.client_labels or selector_labels(svc)), opts=child)
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset", metadata=meta, spec=spec.statefulset_spec(args),
            # The pod mounts the Secrets.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[sa, headless, *mounted])))
        self.pod_labels = spec.pod_labels(svc)
        return [statefulset, *mounted[2:]]

    # ----------------------------------------------------------------------------------- aws

    def _aws(self, name: str, args: MySqlDatabaseArgs):
        import pulumi_aws as aws

        missing = [k for k in ("vpc_id", "subnet_ids", "region") if getattr(args, k) is None]
        if missing or not args.allowed_cidrs:
            missing += [] if args.allowed_cidrs else ["allowed_cidrs"]
            raise ValueError(f"MySqlDatabase {name!r} (aws) needs vpc_id, subnet_ids (private), region and "
                             f"allowed_cidrs; missing: {', '.join(missing)}")
        ident = f"{args.cluster}-{args.service}"
        child = pulumi.ResourceOptions(parent=self, depends_on=self._deps)
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets", name=ident, region=args.region, subnet_ids=args.subnet_ids,
            description=f"private subnets of {args.cluster} for {args.service}'s MySQL", opts=child)
        group = aws.ec2.SecurityGroup(
            f"{name}-sg", name=f"{ident}-mysql", region=args.region, vpc_id=args.vpc_id,
            description=f"MySQL of {args.service}: 3306 from the cluster VPC only",
            ingress=[{"protocol": "tcp", "from_port": spec.MYSQL_PORT, "to_port": spec.MYSQL_PORT,
                      "cidr_blocks": args.allowed_cidrs, "description": "MySQL from the cluster VPC"}],
            egress=[],  # a database initiates nothing
            tags={"Name": f"{ident}-mysql"}, opts=child)
        params = aws.rds.ParameterGroup(
            f"{name}-params", name=f"{ident}-mysql", region=args.region,
            family=dbtls.rds_parameter_family(args.mysql_version), parameters=dbtls.rds_parameters(args.require_tls),
            description=f"MySQL of {args.service}: TLS {'required' if args.require_tls else 'optional'}",
            tags={"service": args.service, "cluster": args.cluster}, opts=child)
        protected = args.deletion_protection
        instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=ident,
            region=args.region,
            engine="mysql",
            engine_version=args.mysql_version,
            auto_minor_version_upgrade=True,
            instance_class=args.instance_class,
            allocated_storage=spec.storage_gib(args.storage),
            max_allocated_storage=4 * spec.storage_gib(args.storage),
            storage_type="gp3",
            storage_encrypted=True,
            db_name=self.database_name,
            username=self.user_name,
            password=self._password,
            port=spec.MYSQL_PORT,
            db_subnet_group_name=subnets.name,
            parameter_group_name=params.name,
            ca_cert_identifier=dbtls.RDS_CA_IDENTIFIER,
            vpc_security_group_ids=[group.id],
            publicly_accessible=False,
            multi_az=args.high_availability,
            deletion_protection=protected,
            backup_retention_period=args.backup_retention_days,
            backup_window="03:00-04:00",
            maintenance_window="sun:04:30-sun:05:30",
            copy_tags_to_snapshot=True,
            skip_final_snapshot=not protected,
            final_snapshot_identifier=f"{ident}-final" if protected else None,
            enabled_cloudwatch_logs_exports=["error", "slowquery"],
            apply_immediately=not protected,
            tags={"service": args.service, "cluster": args.cluster},
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._deps, protect=args.protect or None),
        )
        if args.require_tls:
            # The image carries the AWS RDS bundle; the certificate names the endpoint (host name verified).
            self.ca_file, self.verify_identity = dbtls.RDS_CA_BUNDLE_PATH, True
        return instance.address, [instance]

    # ----------------------------------------------------------------------------------- gcp

    def _gcp(self, name: str, args: MySqlDatabaseArgs):
        import pulumi_gcp as gcp

        missing = [k for k in ("network_id", "region", "project") if getattr(args, k) is None]
        if missing:
            raise ValueError(f"MySqlDatabase {name!r} (gcp) needs network_id, region and project; "
                             f"missing: {', '.join(missing)}")
        ident = f"{args.cluster}-{args.service}"
        root = random.RandomPassword(f"{name}-root-password", length=32, special=False,
                                     opts=pulumi.ResourceOptions(parent=self, protect=args.protect or None))
        protected = pulumi.ResourceOptions(parent=self, depends_on=self._deps, protect=args.protect or None)
        instance = gcp.sql.DatabaseInstance(
            f"{name}-instance",
            name=ident,
            project=args.project,
            region=args.region,
            database_version="MYSQL_" + args.mysql_version.replace(".", "_"),
            deletion_protection=args.deletion_protection,
            root_password=as_secret(root.result),
            settings={
                "tier": args.tier,
                "edition": "ENTERPRISE",
                "availability_type": "REGIONAL" if args.high_availability else "ZONAL",
                "disk_type": "PD_SSD",
                "disk_size": spec.storage_gib(args.storage),
                "disk_autoresize": True,
                "deletion_protection_enabled": args.deletion_protection,
                "backup_configuration": {
                    "enabled": True,
                    "binary_log_enabled": True,
                    "start_time": "03:00",
                    "transaction_log_retention_days": 7,
                    "backup_retention_settings": {"retained_backups": args.backup_retention_days,
                                                  "retention_unit": "COUNT"},
                },
                "ip_configuration": {
                    "ipv4_enabled": False,
                    "private_network": args.network_id,
                    "ssl_mode": dbtls.cloudsql_ssl_mode(args.require_tls),
                    # A CA per instance: its certificates verify this instance and no other.
                    "server_ca_mode": "GOOGLE_MANAGED_INTERNAL_CA",
                },
                "maintenance_window": {"day": 7, "hour": 4, "update_track": "stable"},
                "user_labels": {"service": args.service, "cluster": args.cluster},
            },
            opts=protected,
        )
        database = gcp.sql.Database(
            f"{name}-database", name=self.database_name, instance=instance.name, project=args.project,
            charset="utf8mb4", collation="utf8mb4_0900_ai_ci", opts=protected)
        user = gcp.sql.User(
            f"{name}-user", name=self.user_name, host="%", instance=instance.name, project=args.project,
            password=self._password, opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._deps, database]))
        ready: list[pulumi.Resource] = [instance, database, user]
        if args.require_tls:
            ready.append(self._ca_configmap(name, args, instance.server_ca_certs.apply(dbtls.ca_bundle),
                                            verify_identity=False))
        return instance.private_ip_address, ready

    def _ca_configmap(self, name: str, args: MySqlDatabaseArgs, ca: pulumi.Input[str],
                      verify_identity: bool) -> k8s.core.v1.ConfigMap:
        """The server's CA for the service (public: a ConfigMap), mounted at ``tls.CA_MOUNT``."""
        self.ca_configmap = dbtls.ca_configmap_name(args.service)
        self.ca_file, self.verify_identity = f"{dbtls.CA_MOUNT}/{dbtls.CA_KEY}", verify_identity
        return k8s.core.v1.ConfigMap(
            f"{name}-ca", metadata={"name": self.ca_configmap, "namespace": args.namespace,
                                    "labels": spec.labels(args.service)},
            data={dbtls.CA_KEY: ca}, opts=self._cluster)


@dataclass
class CloudSqlPrivateAccessArgs:
    """Inputs of :class:`CloudSqlPrivateAccess`."""

    network_id: pulumi.Input[str]
    """VPC network id / self link of the cluster."""
    project: str
    """Project of the network."""
    prefix_length: int = 20
    """Size of the range Google allocates for Cloud SQL (``/20`` = 4096 addresses)."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"prefix_length": _v.in_range(8, 24)})


class CloudSqlPrivateAccess(pulumi.ComponentResource):
    """Private services access for Cloud SQL: a reserved range peered into the cluster VPC (once per network)."""

    cidr: pulumi.Output[str]
    """The reserved range (Cloud SQL private IPs come from it): the services' egress ipBlock."""

    connection: pulumi.Resource

    def __init__(self, name: str, args: CloudSqlPrivateAccessArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("database", "CloudSqlPrivateAccess"), name, None, opts)
        import pulumi_gcp as gcp

        child = pulumi.ResourceOptions(parent=self, depends_on=inherited_depends_on(opts))
        address = gcp.compute.GlobalAddress(
            f"{name}-range", name=name, project=args.project, network=args.network_id,
            purpose="VPC_PEERING", address_type="INTERNAL", prefix_length=args.prefix_length, opts=child)
        self.connection = gcp.servicenetworking.Connection(
            f"{name}-peering", network=args.network_id, service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[address.name],
            # Deleting the peering fails while Cloud SQL instances are being deleted; the VPC owns it.
            deletion_policy="ABANDON", opts=child)
        self.cidr = pulumi.Output.concat(address.address, "/", str(args.prefix_length))
        self.register_outputs({"cidr": self.cidr})
