"""Pure builders and naming for ``MySqlDatabase`` (tests call them directly)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from cnplatform.database import tls
from cnplatform.naming import app_labels, selector_labels
from cnplatform.quantity import parse_quantity

if TYPE_CHECKING:  # pragma: no cover
    from cnplatform.database.mysql import MySqlDatabaseArgs

MYSQL_PORT = 3306
#: The official image's ``mysql`` user (owns the image's directories); the pod runs as it, never root.
MYSQL_UID = 999
#: Official images pinned by tag AND digest (multi-arch index), per supported MySQL minor version.
LOCAL_IMAGES = {
    "8.4": "mysql:8.4.7@sha256:0426ec38c7a10aa45ba383887df7878f74ee70e2fd589c7b69207f3577901903",
}
#: MySQL versions the platform supports: a pinned local image, and offered by RDS and Cloud SQL.
MYSQL_VERSIONS = tuple(LOCAL_IMAGES)
SECRET_MOUNT = "/run/secrets/mysql"


def workload_name(service: str) -> str:
    """In-cluster MySQL StatefulSet / headless Service / NetworkPolicy name."""
    return f"{service}-mysql"


def local_host(service: str, namespace: str) -> str:
    """DNS name of the in-cluster MySQL (headless Service with one pod)."""
    return f"{workload_name(service)}.{namespace}.svc.cluster.local"


def secret_name(service: str) -> str:
    """Secret the service reads (keys ``password``, ``host``, ``port``, ``user``, ``database``)."""
    return f"{service}-db"


def root_secret_name(service: str) -> str:
    """Secret with the in-cluster MySQL root password (mounted by the MySQL pod only)."""
    return f"{service}-db-root"


def sql_identifier(text: str) -> str:
    """``order-history`` -> ``order_history`` (MySQL/RDS/Cloud SQL database and user names)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return ident if ident[:1].isalpha() else f"db_{ident}"


def default_user(service: str) -> str:
    """``<service>_svc`` (at most 16 characters: the RDS master user limit); what the services expect."""
    return sql_identifier(service)[:12] + "_svc"


def storage_gib(storage: str) -> int:
    """A storage quantity in whole GiB (at least 10, the smallest Cloud SQL disk)."""
    return max(10, -(-int(parse_quantity(storage)) // 2**30))


def local_image(mysql_version: str, image: Optional[str] = None) -> str:
    if image:
        return image
    try:
        return LOCAL_IMAGES[mysql_version]
    except KeyError:
        raise ValueError(f"no pinned local MySQL image for version {mysql_version!r} "
                         f"(known: {', '.join(sorted(LOCAL_IMAGES))}); set 'image'") from None


def pod_labels(service: str) -> dict[str, str]:
    """Selector labels of the in-cluster database pods (the owning service's egress target)."""
    return selector_labels(workload_name(service))


def labels(service: str) -> dict[str, str]:
    return app_labels(workload_name(service), component="database")


def statefulset_spec(args: "MySqlDatabaseArgs") -> dict:
    """A single-replica MySQL StatefulSet: restricted pod, read-only root filesystem, PVC for data.

    Passwords are files (``MYSQL_*_PASSWORD_FILE``, read by the image's entrypoint), not env values.
    With ``require_tls`` the server loads its key pair from the Secret ``<service>-mysql-tls`` and
    refuses plaintext connections (``--require-secure-transport=ON``).
    The pod stays out of the mesh: MySQL is server-first (no protocol sniffing) and only the owning
    service may reach it anyway (NetworkPolicy).
    """
    svc, name = args.service, workload_name(args.service)
    user = args.user or default_user(svc)
    database = args.database or sql_identifier(svc)
    writable = {"run": "/var/run/mysqld", "tmp": "/tmp", "files": "/var/lib/mysql-files"}
    container = {
        "name": "mysql",
        "image": local_image(args.mysql_version, args.image),
        "imagePullPolicy": "IfNotPresent",
        "args": ["--skip-name-resolve", *([] if args.performance_schema else ["--performance-schema=OFF"]),
                 *(tls.local_server_args() if args.require_tls else [])],
        "ports": [{"name": "mysql", "containerPort": MYSQL_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "MYSQL_DATABASE", "value": database},
            {"name": "MYSQL_USER", "value": user},
            {"name": "MYSQL_PASSWORD_FILE", "value": f"{SECRET_MOUNT}/password"},
            {"name": "MYSQL_ROOT_PASSWORD_FILE", "value": f"{SECRET_MOUNT}/root-password"},
        ],
        "resources": {"requests": {"cpu": args.cpu_request, "memory": args.memory_request},
                      "limits": {"cpu": args.cpu_limit, "memory": args.memory_limit}},
        # First start initializes the data directory (a minute or more): startup gates the others.
        "startupProbe": {"tcpSocket": {"port": "mysql"}, "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {"tcpSocket": {"port": "mysql"}, "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 6},
        "readinessProbe": {"tcpSocket": {"port": "mysql"}, "periodSeconds": 5, "timeoutSeconds": 3},
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": MYSQL_UID, "runAsGroup": MYSQL_UID,
            "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"},
                         *({"name": k, "mountPath": v} for k, v in writable.items()),
                         {"name": "secrets", "mountPath": SECRET_MOUNT, "readOnly": True},
                         *([{"name": "tls", "mountPath": tls.SERVER_TLS_MOUNT, "readOnly": True}]
                           if args.require_tls else [])],
    }
    secrets = {"projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": secret_name(svc), "items": [{"key": "password", "path": "password"}]}},
        {"secret": {"name": root_secret_name(svc), "items": [{"key": "root-password", "path": "root-password"}]}},
    ]}}
    claim_spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": args.storage}}}
    if args.storage_class:
        claim_spec["storageClassName"] = args.storage_class
    return {
        "serviceName": name,
        "replicas": 1,
        "selector": {"matchLabels": pod_labels(svc)},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "template": {
            "metadata": {"labels": {**labels(svc), "sidecar.istio.io/inject": "false"},
                         "annotations": {"kubectl.kubernetes.io/default-container": "mysql"}},
            "spec": {
                "serviceAccountName": name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 60,
                "securityContext": {"runAsNonRoot": True, "runAsUser": MYSQL_UID, "runAsGroup": MYSQL_UID,
                                    "fsGroup": MYSQL_UID, "fsGroupChangePolicy": "OnRootMismatch",
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
                "volumes": [*({"name": k, "emptyDir": {"sizeLimit": "256Mi" if k == "tmp" else "16Mi"}}
                              for k in writable), {"name": "secrets", **secrets},
                            *([{"name": "tls", "secret": {"secretName": tls.server_tls_secret_name(svc),
                                                          "defaultMode": 0o440}}] if args.require_tls else [])],
            },
        },
        "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels(svc)}, "spec": claim_spec}],
    }


def headless_service_spec(service: str) -> dict:
    """Headless Service; port ``tcp-mysql`` / appProtocol ``tcp`` so client sidecars pass MySQL through."""
    return {
        "clusterIP": "None",
        "selector": pod_labels(service),
        "ports": [{"name": "tcp-mysql", "port": MYSQL_PORT, "targetPort": "mysql", "protocol": "TCP",
                   "appProtocol": "tcp"}],
    }


def network_policy_spec(service: str, client_labels: dict[str, str]) -> dict:
    """Only the owning service's pods reach MySQL (3306); MySQL itself needs no egress."""
    return {
        "podSelector": {"matchLabels": pod_labels(service)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": dict(client_labels)}}],
                     "ports": [{"protocol": "TCP", "port": MYSQL_PORT}]}],
        "egress": [],
    }
