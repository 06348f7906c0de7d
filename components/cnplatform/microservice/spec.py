"""Pure builders of a microservice's Kubernetes objects (plain dicts; tests call them directly).

Every function takes the component's :class:`~cnplatform.microservice.component.MicroserviceArgs`
(or plain values) and returns the ``spec`` (or a fragment) the component hands to Kubernetes.
Values that are Pulumi outputs (a cloud image digest, a database host) pass through untouched.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Optional

from cnplatform.naming import app_labels, selector_labels

if TYPE_CHECKING:  # pragma: no cover
    from cnplatform.microservice.component import MicroserviceArgs, Peer

#: UID/GID the service containers run as (non-root, > 10000 so it never maps to a host system user).
RUN_AS_USER = 10001
#: Istio sidecar port the monitoring namespace scrapes when the mesh is on: 15090, Envoy's own
#: ``/stats/prometheus`` (the envoy-stats PodMonitor). The app's metrics are scraped on the app port
#: through the sidecar (mTLS, authorised); istio-agent's merged-metrics port 15020 is not scraped, so
#: it stays closed (and ``enablePrometheusMerge`` is off).
ENVOY_METRICS_PORTS = (15090,)
#: istiod's xDS + certificate (CA) port that every sidecar dials (mTLS gRPC).
#: 15017 is NOT here: it is istiod's webhook listener, dialled by the API server (ingress to istiod),
#: never by application pods, so an app egress rule for it would only widen the policy.
ISTIOD_PORTS = (15012,)
ISTIOD_LABELS = {"app": "istiod"}
#: Port of the east-west gateway (multi-network mesh: cross-network mTLS, SNI auto-passthrough).
EAST_WEST_PORT = 15443
#: CoreDNS / kube-dns pods (same label on kind, EKS and GKE).
DNS_LABELS = {"k8s-app": "kube-dns"}
DNS_NAMESPACE = "kube-system"
MYSQL_PORT = 3306
#: Where a database CA ConfigMap is mounted (``cnplatform.database.tls.CA_MOUNT``).
DATABASE_CA_MOUNT = "/etc/mysql-ca"
STABLE, CANARY = "stable", "canary"


def ns_selector(namespace: str) -> dict:
    """A namespaceSelector on the immutable ``kubernetes.io/metadata.name`` label."""
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


def env_prefix(service: str) -> str:
    """``order-history`` -> ``ORDER_HISTORY`` (environment variable prefix of a callee)."""
    return re.sub(r"[^A-Za-z0-9]", "_", service).upper()


def service_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def service_url(name: str, namespace: str, port: int) -> str:
    return f"http://{service_host(name, namespace)}:{port}"


def upstream_env(calls: "list[Peer]", namespace: str) -> dict[str, str]:
    """``<CALLEE>_SERVICE_URL`` = ``http://<callee>.<ns>.svc.cluster.local:<port>`` for every call."""
    return {f"{env_prefix(p.name)}_SERVICE_URL": service_url(p.name, p.namespace or namespace, p.port)
            for p in calls}


def database_env(args: "MicroserviceArgs") -> dict[str, Any]:
    """``MYSQL_HOST/PORT/USER/DATABASE`` when the service has a database (password: see secret env)."""
    if args.database_host is None:
        return {}
    env: dict[str, Any] = {"MYSQL_HOST": args.database_host, "MYSQL_PORT": str(args.database_port)}
    if args.database_user:
        env["MYSQL_USER"] = args.database_user
    if args.database_name:
        env["MYSQL_DATABASE"] = args.database_name
    if args.database_ca_file:
        env["MYSQL_SSL_CA"] = args.database_ca_file
        env["MYSQL_SSL_VERIFY_IDENTITY"] = "true" if args.database_verify_identity else "false"
    return env


def database_ca_volume(args: "MicroserviceArgs") -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) of the database CA ConfigMap, mounted read-only at ``DATABASE_CA_MOUNT``."""
    if not args.database_ca_configmap:
        return [], []
    return ([{"name": "db-ca", "configMap": {"name": args.database_ca_configmap, "defaultMode": 0o444}}],
            [{"name": "db-ca", "mountPath": DATABASE_CA_MOUNT, "readOnly": True}])


def effective_secret_env(args: "MicroserviceArgs") -> dict[str, tuple[str, str]]:
    """Secret env var -> (secret, key): declared ones, plus ``MYSQL_PASSWORD`` from the database Secret."""
    out = {k: (v.secret, v.key) for k, v in args.secret_env.items()}
    if args.database_secret and "MYSQL_PASSWORD" not in out:
        out["MYSQL_PASSWORD"] = (args.database_secret, "password")
    return out


def container_env(args: "MicroserviceArgs") -> list[dict]:
    """The container's env: PORT, upstream URLs, database, declared env (wins), then secretKeyRefs.

    Order is deterministic (PORT first, then sorted) so a re-run never shows a spurious diff.
    """
    plain: dict[str, Any] = {**upstream_env(args.calls, args.namespace), **database_env(args), **args.env}
    secret = effective_secret_env(args)
    for name in secret:
        plain.pop(name, None)
    env: list[dict[str, Any]] = [{"name": "PORT", "value": str(args.port)}]
    env += [{"name": k, "value": plain[k]} for k in sorted(plain) if k != "PORT"]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}}
            for k, (s, key) in sorted(secret.items())]
    return env


# ------------------------------------------------------------------------------ replicas / scaling


def min_replicas(args: "MicroserviceArgs") -> int:
    """HPA lower bound: ``autoscaling_min`` or, by default, ``replicas``."""
    return args.autoscaling_min if args.autoscaling_min is not None else args.replicas


def max_replicas(args: "MicroserviceArgs") -> int:
    """HPA upper bound: ``autoscaling_max`` or, by default, ``max(3 * replicas, 3)`` (never below the min)."""
    high = args.autoscaling_max if args.autoscaling_max is not None else max(3 * args.replicas, 3)
    return max(high, min_replicas(args))


def steady_replicas(args: "MicroserviceArgs") -> int:
    """Replicas the service runs with at rest (the HPA floor when autoscaling)."""
    return min_replicas(args) if args.autoscaling_enabled else args.replicas


def canary_enabled(args: "MicroserviceArgs") -> bool:
    """A canary runs only with an image AND a weight > 0: weight 0 is the rollback (Deployment removed)."""
    return bool(args.canary_image) and args.canary_weight > 0


def hpa_spec(args: "MicroserviceArgs") -> Optional[dict]:
    if not args.autoscaling_enabled:
        return None
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.name},
        "minReplicas": min_replicas(args),
        "maxReplicas": max_replicas(args),
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": args.cpu_target}}}],
    }


def pdb_spec(args: "MicroserviceArgs") -> Optional[dict]:
    """At most one stable pod voluntarily disrupted at a time, when the service runs > 1 replica."""
    enabled = args.pdb if args.pdb is not None else steady_replicas(args) > 1
    if not enabled:
        return None
    return {
        "maxUnavailable": 1,
        "selector": {"matchLabels": pod_selector(args.name, STABLE)},
        # A crash-looping pod must not block node drains.
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


# ------------------------------------------------------------------------------------- pod spec


def pod_selector(name: str, version: str) -> dict[str, str]:
    """A Deployment's selector: the service selector plus ``version`` (stable and canary never overlap)."""
    return {**selector_labels(name), "version": version}


def pod_security_context(run_as: int = RUN_AS_USER) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as,
        "runAsGroup": run_as,
        "fsGroup": run_as,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(run_as: int = RUN_AS_USER) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as,
        "runAsGroup": run_as,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def probes(args: "MicroserviceArgs") -> dict:
    """Startup (up to 60 s to boot), then liveness (restart) and readiness (traffic) on the health paths."""
    def http(path: str) -> dict:
        return {"httpGet": {"path": path, "port": "http", "scheme": "HTTP"}}
    return {
        "startupProbe": {**http(args.startup_path), "periodSeconds": 2, "timeoutSeconds": 2,
                         "failureThreshold": 30},
        "livenessProbe": {**http(args.liveness_path), "periodSeconds": 10, "timeoutSeconds": 2,
                          "failureThreshold": 3},
        "readinessProbe": {**http(args.readiness_path), "periodSeconds": 5, "timeoutSeconds": 2,
                           "failureThreshold": 3},
    }


def topology_spread(args: "MicroserviceArgs", version: str, replicas: int) -> list[dict]:
    """Spread over zones and nodes when there is more than one replica.

    Zones: ``DoNotSchedule`` when ``strict_zone_spread`` (prod: losing a zone must not lose the
    service), else ``ScheduleAnyway``; nodes: always ``ScheduleAnyway`` (best effort).
    ``matchLabelKeys: [pod-template-hash]`` computes the skew per ReplicaSet so rollouts stay spread.
    """
    if replicas <= 1 or not args.zone_spread:
        return []
    selector = {"matchLabels": pod_selector(args.name, version)}
    return [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "DoNotSchedule" if args.strict_zone_spread else "ScheduleAnyway",
         "labelSelector": selector, "matchLabelKeys": ["pod-template-hash"]},
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": selector, "matchLabelKeys": ["pod-template-hash"]},
    ]


def pod_annotations(args: "MicroserviceArgs") -> dict[str, str]:
    annotations = {"kubectl.kubernetes.io/default-container": args.name}
    if args.mesh_enabled:
        # The app dials upstreams and MySQL at start: wait until its sidecar is ready to carry them.
        annotations["proxy.istio.io/config"] = '{"holdApplicationUntilProxyStarts": true}'
    return annotations


def deployment_spec(args: "MicroserviceArgs", *, version: str = STABLE, image: Any = None) -> dict:
    """The Deployment ``spec`` of the stable (or canary) workload.

    ``replicas`` is omitted when an HPA owns the Deployment (stable + autoscaling): with server-side
    apply, a ``replicas`` in our manifest would conflict with (or reset) what the HPA set.
    """
    canary = version == CANARY
    replicas = 1 if canary else args.replicas
    spread_for = 1 if canary else steady_replicas(args)
    ca_volumes, ca_mounts = database_ca_volume(args)
    container = {
        "name": args.name,
        "image": image if image is not None else (args.canary_image if canary else args.image),
        "imagePullPolicy": args.image_pull_policy,
        "ports": [{"name": "http", "containerPort": args.port, "protocol": "TCP"}],
        "env": container_env(args),
        "resources": {
            "requests": {"cpu": args.cpu_request, "memory": args.memory_request},
            "limits": {"cpu": args.cpu_limit, "memory": args.memory_limit},
        },
        **probes(args),
        "securityContext": container_security_context(args.run_as_user),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *ca_mounts],
    }
    pod: dict = {
        "serviceAccountName": args.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": args.termination_grace_period_seconds,
        "securityContext": pod_security_context(args.run_as_user),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": args.tmp_size}}, *ca_volumes],
    }
    spread = topology_spread(args, version, spread_for)
    if spread:
        pod["topologySpreadConstraints"] = spread
    spec: dict = {
        "selector": {"matchLabels": pod_selector(args.name, version)},
        "revisionHistoryLimit": args.revision_history_limit,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": app_labels(args.name, version=version), "annotations": pod_annotations(args)},
            "spec": pod,
        },
    }
    if canary or not args.autoscaling_enabled:
        spec["replicas"] = replicas
    return spec


def service_spec(args: "MicroserviceArgs") -> dict:
    """ClusterIP Service selecting stable AND canary pods (no version in the selector)."""
    return {
        "type": "ClusterIP",
        "selector": selector_labels(args.name),
        "ports": [{"name": "http", "port": args.port, "targetPort": "http", "protocol": "TCP",
                   "appProtocol": "http"}],
    }


# ------------------------------------------------------------------------------- network policy


def pod_peer(name: str, peer_namespace: Optional[str], own_namespace: str) -> dict:
    """A NetworkPolicy peer for a service's pods (namespaceSelector added only across namespaces)."""
    peer: dict = {"podSelector": {"matchLabels": selector_labels(name)}}
    if peer_namespace and peer_namespace != own_namespace:
        peer["namespaceSelector"] = ns_selector(peer_namespace)
    return peer


def _tcp(*ports: Any) -> list[dict]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def network_policy_spec(args: "MicroserviceArgs") -> dict:
    """Least-privilege ingress and egress of the service's pods (stable and canary).

    Ingress: its callers' pods on the service port; the mesh ingress gateway when exposed; the
    east-west gateway when the mesh spans networks and the service has callers; the monitoring
    namespace on the metrics port (plus Envoy's stats port 15090 with the mesh).
    Egress: its callees' pods on their ports; its database on 3306 (pods in cluster, CIDRs for a
    cloud database); DNS (kube-dns, UDP+TCP 53); istiod 15012 with the mesh (sidecars fetch
    config and certificates there); remote east-west gateways on 15443 in a multi-network mesh.
    The namespace's default-deny policy blocks everything else.
    """
    ns = args.namespace
    ingress: list[dict] = []
    callers = [pod_peer(p.name, p.namespace, ns) for p in args.callers]
    if callers:
        ingress.append({"from": callers, "ports": _tcp(args.port)})
    if args.expose_path and args.mesh_enabled:
        ingress.append({"from": [{"namespaceSelector": ns_selector(args.mesh_namespace),
                                  "podSelector": {"matchLabels": dict(args.ingress_gateway_labels)}}],
                        "ports": _tcp(args.port)})
    if callers and args.mesh_enabled and args.east_west_gateway:
        # Multi-network mesh: callers in the other clusters arrive through this cluster's east-west gateway.
        ingress.append({"from": [{"namespaceSelector": ns_selector(args.mesh_namespace),
                                  "podSelector": {"matchLabels": dict(args.east_west_gateway_labels)}}],
                        "ports": _tcp(args.port)})
    if args.monitoring_namespace:
        ports = [args.port, *(ENVOY_METRICS_PORTS if args.mesh_enabled else ())]
        ingress.append({"from": [{"namespaceSelector": ns_selector(args.monitoring_namespace)}],
                        "ports": _tcp(*ports)})

    egress: list[dict] = []
    for p in args.calls:
        egress.append({"to": [pod_peer(p.name, p.namespace, ns)], "ports": _tcp(p.port)})
    if args.database_pod_labels:
        egress.append({"to": [{"podSelector": {"matchLabels": dict(args.database_pod_labels)}}],
                       "ports": _tcp(args.database_port)})
    if args.database_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in args.database_cidrs],
                       "ports": _tcp(args.database_port)})
    egress.append({"to": [{"namespaceSelector": ns_selector(DNS_NAMESPACE),
                           "podSelector": {"matchLabels": DNS_LABELS}}],
                   "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    if args.mesh_enabled:
        egress.append({"to": [{"namespaceSelector": ns_selector(args.mesh_namespace),
                               "podSelector": {"matchLabels": ISTIOD_LABELS}}],
                       "ports": _tcp(*ISTIOD_PORTS)})
    if args.calls and args.mesh_enabled and args.east_west_gateway:
        # Callees in another network are reached through that network's east-west gateway (mTLS on
        # 15443, an address outside this cluster, e.g. a load balancer): that port only, anywhere.
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _tcp(EAST_WEST_PORT)})
    return {
        "podSelector": {"matchLabels": selector_labels(args.name)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
