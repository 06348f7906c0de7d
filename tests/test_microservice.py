"""The Microservice component and the services layer: objects, every default per tier, policies, canary."""
import copy

import pytest

from cnplatform.microservice import MicroserviceArgs, Peer, SecretKeyRef, spec
from cnplatform.naming import app_labels
from cnplatform.testing import Secret
from stacks.checks import check_config
from stacks.config import ConfigError
from tests.helpers import capture_raw, capture_stack, config_of, objects, run_program

DEV_SERVICES = ("user", "product", "payment", "order")
LOCAL = {"name": "dev", "cloud": "local"}
#: A small config without the heavy layers, for fast focused runs.
SMALL = {
    "tier": "dev", "clusters": [LOCAL],
    "services": [{"name": "web", "image": "ghcr.io/acme/web:1.0"}],
    "mesh": {"enabled": False}, "monitoring": {"enabled": False}, "cicd": {"enabled": False},
}


def by_name(items):
    return {o["metadata"]["name"]: o for o in items}


def shop(cap, kind):
    return by_name(o for o in objects(cap, kind, "dev") if o["metadata"].get("namespace") == "shop")


@pytest.fixture(scope="module")
def dev():
    return capture_stack("dev")


def small(change=None, stack="small"):
    raw = copy.deepcopy(SMALL)
    if change:
        change(raw)
    return capture_raw(raw, stack)


def pod(deployment):
    return deployment["spec"]["template"]["spec"]


def container(deployment):
    (c,) = pod(deployment)["containers"]
    return c


# ----------------------------------------------------------------------------------- objects


def test_dev_creates_every_object_of_every_service(dev):
    for kind in ("ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"):
        assert set(DEV_SERVICES) <= set(shop(dev, kind)), kind
    assert not [d for d in shop(dev, "Deployment") if d.endswith("-canary")]
    # dev: one replica, so no PodDisruptionBudget.
    assert not objects(dev, "PodDisruptionBudget", "dev")
    types = [r.type for r in dev.resources if r.type == "cnplatform:microservice:Microservice"]
    assert len(types) == len(DEV_SERVICES)


def test_service_account_never_mounts_a_token(dev):
    accounts = shop(dev, "ServiceAccount")
    deployments = shop(dev, "Deployment")
    for name in DEV_SERVICES:
        assert accounts[name]["automountServiceAccountToken"] is False
        assert pod(deployments[name])["serviceAccountName"] == name
        assert pod(deployments[name])["automountServiceAccountToken"] is False


def test_restricted_security_context_at_pod_and_container_level(dev):
    for name in DEV_SERVICES:
        d = shop(dev, "Deployment")[name]
        assert pod(d)["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}}
        assert container(d)["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "allowPrivilegeEscalation": False,
            "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}
        # The read-only root filesystem gets a writable, size-limited /tmp (and, with a database, its
        # CA read-only: tests/test_db_tls.py).
        ca = [] if name == "product" else [{"name": "db-ca", "mountPath": "/etc/mysql-ca", "readOnly": True}]
        assert container(d)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, *ca]
        ca_volume = [] if name == "product" else [
            {"name": "db-ca", "configMap": {"name": f"{name}-db-ca", "defaultMode": 0o444}}]
        assert pod(d)["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *ca_volume]


def test_probes_on_the_health_paths_and_named_port(dev):
    for name in DEV_SERVICES:
        c = container(shop(dev, "Deployment")[name])
        assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        paths = {p: c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
        assert paths == {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
        assert all(c[p]["httpGet"]["port"] == "http" for p in paths)
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 60


def test_custom_health_paths_reach_the_probes():
    cap = small(lambda r: r["services"][0].update(health={"liveness": "/live", "readiness": "/ready",
                                                          "startup": "/started"}))
    c = container(shop(cap, "Deployment")["web"])
    assert [c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")] == [
        "/live", "/ready", "/started"]


def test_recommended_labels_and_selectors(dev):
    for name in DEV_SERVICES:
        d = shop(dev, "Deployment")[name]
        assert d["metadata"]["labels"] == app_labels(name, version="stable")
        assert d["spec"]["template"]["metadata"]["labels"] == app_labels(name, version="stable")
        assert d["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": name, "version": "stable"}}
        service = shop(dev, "Service")[name]
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": name}


def test_service_is_cluster_ip_with_port_named_http(dev):
    for name in DEV_SERVICES:
        s = shop(dev, "Service")[name]["spec"]
        assert s["type"] == "ClusterIP"
        assert s["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP",
                               "appProtocol": "http"}]


def test_dev_tier_defaults(dev):
    for name in DEV_SERVICES:
        d = shop(dev, "Deployment")[name]
        c = container(d)
        # The HPA owns the replica count (min = dev's 1): no replicas in the manifest.
        assert "replicas" not in d["spec"]
        hpa = shop(dev, "HorizontalPodAutoscaler")[name]["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["metrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
        assert "topologySpreadConstraints" not in pod(d)
        # The dev tier's service_resources (measured: docs/footprint.md).
        assert c["resources"] == {"requests": {"cpu": "25m", "memory": "64Mi"},
                                  "limits": {"cpu": "500m", "memory": "256Mi"}}
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert d["spec"]["revisionHistoryLimit"] == 5
        assert pod(d)["terminationGracePeriodSeconds"] == 30
        assert d["spec"]["strategy"] == {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        assert pod(d)["enableServiceLinks"] is False
        # Mesh on in dev: the app waits for its sidecar.
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert "holdApplicationUntilProxyStarts" in annotations["proxy.istio.io/config"]


def test_staging_tier_spreads_and_guards_replicas():
    """A staging-tier stack on a local cluster: 2 replicas by default, a PDB, zone + node spread."""
    cap = small(lambda r: r.update(tier="staging"), stack="staging-local")
    d = shop(cap, "Deployment")["web"]
    hpa = shop(cap, "HorizontalPodAutoscaler")["web"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    spread = {c["topologyKey"]: c for c in pod(d)["topologySpreadConstraints"]}
    assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    assert all(c["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "web", "version": "stable"}}
               and c["matchLabelKeys"] == ["pod-template-hash"] and c["maxSkew"] == 1 for c in spread.values())
    pdb = shop(cap, "PodDisruptionBudget")["web"]["spec"]
    assert pdb == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                   "selector": {"matchLabels": {"app.kubernetes.io/name": "web", "version": "stable"}}}


def test_three_replicas_without_autoscaling_sets_replicas():
    cap = small(lambda r: r["services"][0].update(replicas=3, autoscaling={"enabled": False}))
    d = shop(cap, "Deployment")["web"]
    assert d["spec"]["replicas"] == 3
    assert not shop(cap, "HorizontalPodAutoscaler")
    assert "web" in shop(cap, "PodDisruptionBudget")
    assert len(pod(d)["topologySpreadConstraints"]) == 2


PROD = {
    "tier": "prod",
    "clusters": [{"name": "p", "cloud": "aws", "region": "eu-west-1",
                  "aws": {"deployer_role_arns": ["arn:aws:iam::111111111111:role/d"]},
                  "node_pools": [{"name": "w", "machine_type": "m6i.xlarge", "min_size": 3, "max_size": 6}]}],
    "services": [{"name": "api", "image": "ghcr.io/acme/api@sha256:" + "a" * 64},
                 {"name": "web", "image": "ghcr.io/acme/web@sha256:" + "b" * 64, "calls": ["api"]}],
    "mesh": {"ingress": {"hosts": ["shop.example.com"]}},
}


def prod_args(name="api", raw=PROD):
    from stacks.compose.layers.services import service_args

    cfg = check_config(raw)
    return service_args(cfg, cfg.service(name), image=cfg.service(name).image, mesh_enabled=True,
                        monitoring_namespace="monitoring")


def test_prod_tier_defaults_from_the_layer():
    args = prod_args()
    assert args.replicas == 3 and args.strict_zone_spread
    hpa = spec.hpa_spec(args)
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    assert spec.pdb_spec(args)["maxUnavailable"] == 1
    spread = {c["topologyKey"]: c["whenUnsatisfiable"]
              for c in spec.deployment_spec(args)["template"]["spec"]["topologySpreadConstraints"]}
    assert spread == {"topology.kubernetes.io/zone": "DoNotSchedule", "kubernetes.io/hostname": "ScheduleAnyway"}
    assert "replicas" not in spec.deployment_spec(args)
    assert args.callers == [Peer("web", "shop", 8080)]


def test_autoscaling_bounds_from_config():
    from stacks.compose.layers.services import autoscaling_bounds

    cfg = check_config({**PROD, "services": [
        {"name": "api", "image": "x:1", "autoscaling": {"min_replicas": 4, "max_replicas": 10, "cpu_target": 55}},
        {"name": "web", "image": "x:1", "replicas": 5}]})
    assert autoscaling_bounds(cfg, cfg.service("api")) == (4, 10)
    assert autoscaling_bounds(cfg, cfg.service("web")) == (5, 15)
    args = prod_args("api", {**PROD, "services": cfg.model_dump()["services"]})
    assert spec.hpa_spec(args)["metrics"][0]["resource"]["target"]["averageUtilization"] == 55


def test_pure_defaults_of_the_args():
    args = MicroserviceArgs(name="a", image="x:1")
    assert (spec.min_replicas(args), spec.max_replicas(args)) == (1, 3)
    assert spec.pdb_spec(args) is None and spec.topology_spread(args, "stable", 1) == []
    three = MicroserviceArgs(name="a", image="x:1", replicas=3, autoscaling_max=2)
    assert (spec.min_replicas(three), spec.max_replicas(three)) == (3, 3)  # max never below min
    assert MicroserviceArgs(name="a", image="x:1", pdb=False, replicas=3).pdb is False
    assert spec.pdb_spec(MicroserviceArgs(name="a", image="x:1", pdb=False, replicas=3)) is None


# ---------------------------------------------------------------------------- network policy


def ns(name):
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def pods(name):
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}


TCP8080 = [{"protocol": "TCP", "port": 8080}]
GATEWAY = {"from": [{"namespaceSelector": ns("istio-system"),
                     "podSelector": {"matchLabels": {"istio": "ingressgateway"}}}],
           "ports": TCP8080}
MONITORING = {"from": [{"namespaceSelector": ns("monitoring")}],
              "ports": [{"protocol": "TCP", "port": p} for p in (8080, 15090)]}
DNS = {"to": [{"namespaceSelector": ns("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
ISTIOD = {"to": [{"namespaceSelector": ns("istio-system"), "podSelector": {"matchLabels": {"app": "istiod"}}}],
          "ports": [{"protocol": "TCP", "port": 15012}]}


def mysql(name):
    return {"to": [pods(f"{name}-mysql")], "ports": [{"protocol": "TCP", "port": 3306}]}


def test_network_policies_exact_peers_for_dev(dev):
    """order calls user/product/payment: each of them admits order only; order admits no service."""
    expected = {
        "user": ([{"from": [pods("order")], "ports": TCP8080}, GATEWAY, MONITORING], [mysql("user"), DNS, ISTIOD]),
        "product": ([{"from": [pods("order")], "ports": TCP8080}, GATEWAY, MONITORING], [DNS, ISTIOD]),
        "payment": ([{"from": [pods("order")], "ports": TCP8080}, MONITORING], [mysql("payment"), DNS, ISTIOD]),
        "order": ([GATEWAY, MONITORING],
                  [*({"to": [pods(c)], "ports": TCP8080} for c in ("user", "product", "payment")),
                   mysql("order"), DNS, ISTIOD]),
    }
    policies = shop(dev, "NetworkPolicy")
    for name, (ingress, egress) in expected.items():
        p = policies[name]["spec"]
        assert p["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
        assert p["policyTypes"] == ["Ingress", "Egress"]
        assert p["ingress"] == ingress, name
        assert p["egress"] == egress, name
    # istiod's webhook port is for the API server, never for app pods.
    assert all(15017 not in [port["port"] for rule in p["spec"].get("egress", []) for port in rule.get("ports", [])]
               for p in policies.values())


def test_network_policy_without_mesh_or_monitoring_and_across_namespaces():
    args = MicroserviceArgs(
        name="cart", namespace="shop", image="x:1", port=9000, expose_path="/cart",
        calls=[Peer("pricing", "billing", 7000)], callers=[Peer("web", None), Peer("admin", "ops")],
        monitoring_namespace=None, database_cidrs=["10.0.0.0/16"], database_host="db.example")
    policy = spec.network_policy_spec(args)
    assert policy["ingress"] == [{"from": [pods("web"), {**pods("admin"), "namespaceSelector": ns("ops")}],
                                  "ports": [{"protocol": "TCP", "port": 9000}]}]  # no mesh: no gateway rule
    assert policy["egress"] == [
        {"to": [{**pods("pricing"), "namespaceSelector": ns("billing")}], "ports": [{"protocol": "TCP", "port": 7000}]},
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 3306}]},
        DNS]
    assert spec.upstream_env(args.calls, "shop") == {
        "PRICING_SERVICE_URL": "http://pricing.billing.svc.cluster.local:7000"}


def test_multi_network_mesh_admits_the_east_west_gateway():
    args = MicroserviceArgs(name="api", image="x:1", callers=[Peer("web")], calls=[Peer("db-api")],
                            mesh_enabled=True, east_west_gateway=True)
    policy = spec.network_policy_spec(args)
    assert {"from": [{"namespaceSelector": ns("istio-system"),
                      "podSelector": {"matchLabels": {"istio": "eastwestgateway"}}}],
            "ports": TCP8080} in policy["ingress"]
    assert {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "ports": [{"protocol": "TCP", "port": 15443}]} in policy["egress"]
    assert spec.upstream_env(args.calls, "shop") == {
        "DB_API_SERVICE_URL": "http://db-api.shop.svc.cluster.local:8080"}
    # Two clusters in prod: the layer turns it on.
    gke = {"name": "g", "cloud": "gcp", "region": "europe-west1",
           "node_pools": [{"name": "w", "machine_type": "e2-standard-4", "min_size": 3, "max_size": 6}]}
    two = {**PROD, "clusters": [*PROD["clusters"], gke]}
    assert prod_args("api", two).east_west_gateway and not prod_args("api").east_west_gateway


# ------------------------------------------------------------------------------ environment


def env_of(deployment):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def test_order_env_upstream_urls_database_and_secret_ref(dev):
    env = env_of(shop(dev, "Deployment")["order"])
    assert env == {
        "PORT": "8080",
        "USER_SERVICE_URL": "http://user.shop.svc.cluster.local:8080",
        "PRODUCT_SERVICE_URL": "http://product.shop.svc.cluster.local:8080",
        "PAYMENT_SERVICE_URL": "http://payment.shop.svc.cluster.local:8080",
        "MYSQL_HOST": "order-mysql.shop.svc.cluster.local", "MYSQL_PORT": "3306",
        "MYSQL_USER": "order_svc", "MYSQL_DATABASE": "orders",
        "MYSQL_SSL_CA": "/etc/mysql-ca/ca.pem", "MYSQL_SSL_VERIFY_IDENTITY": "true",
        "MYSQL_PASSWORD": {"secretKeyRef": {"name": "order-db", "key": "password"}},
    }
    assert env_of(shop(dev, "Deployment")["payment"]) == {
        "PORT": "8080",
        "MYSQL_HOST": "payment-mysql.shop.svc.cluster.local", "MYSQL_PORT": "3306",
        "MYSQL_USER": "payment_svc", "MYSQL_DATABASE": "payments",
        "MYSQL_SSL_CA": "/etc/mysql-ca/ca.pem", "MYSQL_SSL_VERIFY_IDENTITY": "true",
        "MYSQL_PASSWORD": {"secretKeyRef": {"name": "payment-db", "key": "password"}},
    }


def test_env_from_config_and_secret_env_use_secret_key_ref():
    cap = small(lambda r: r["services"][0].update(
        env={"LOG_LEVEL": "debug"}, secret_env={"API_TOKEN": {"secret": "web-token", "key": "token"}}))
    env = container(shop(cap, "Deployment")["web"])["env"]
    assert env == [{"name": "PORT", "value": "8080"}, {"name": "LOG_LEVEL", "value": "debug"},
                   {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-token", "key": "token"}}}]


def test_secret_env_wins_over_a_plain_value_of_the_same_name():
    with pytest.raises(ValueError, match="MYSQL_PASSWORD looks like a secret"):  # refused when constructed
        MicroserviceArgs(name="a", image="x:1", env={"MYSQL_PASSWORD": "oops"})
    args = MicroserviceArgs(name="a", image="x:1", database_host="h",
                            database_secret="a-db", secret_env={"TOKEN": SecretKeyRef("t", "k")})
    args.env = {"MYSQL_PASSWORD": "oops"}  # set afterwards: the spec still lets the Secret win
    env = spec.container_env(args)
    assert {"name": "MYSQL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "a-db", "key": "password"}}} in env
    assert not [e for e in env if e.get("value") == "oops"]


def test_no_secret_placeholder_outside_secret_objects(dev):
    from stacks.render import is_k8s_object, manifest_of

    for reg in dev.resources:
        if is_k8s_object(reg) and manifest_of(reg)["kind"] != "Secret":
            assert "secret::" not in repr(manifest_of(reg)), reg.name
    # And the Secrets themselves hold them as Pulumi secrets.
    for secret in shop(dev, "Secret").values():
        assert {"password", "root-password", "tls.key"} & set(secret["stringData"])
    db_secret = next(r for r in dev.resources if r.name == "dev-order-db-secret")
    assert isinstance(db_secret.inputs["stringData"], Secret)


# ----------------------------------------------------------------------------------- canary


def with_canary(weight):
    return lambda r: r["services"][0].update(canary={"image": "ghcr.io/acme/web:1.1", "weight": weight})


def test_canary_runs_next_to_stable_with_weight():
    cap = small(with_canary(20))
    deployments = shop(cap, "Deployment")
    assert set(deployments) == {"web", "web-canary"}
    canary = deployments["web-canary"]
    assert canary["spec"]["replicas"] == 1
    assert container(canary)["image"] == "ghcr.io/acme/web:1.1"
    assert container(deployments["web"])["image"] == "ghcr.io/acme/web:1.0"
    assert canary["spec"]["template"]["metadata"]["labels"] == app_labels("web", version="canary")
    assert canary["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "web", "version": "canary"}}
    assert pod(canary)["serviceAccountName"] == "web"
    assert pod(canary)["securityContext"] == pod(deployments["web"])["securityContext"]
    # The Service selects both; the HPA scales the stable Deployment only.
    assert shop(cap, "Service")["web"]["spec"]["selector"] == {"app.kubernetes.io/name": "web"}
    assert shop(cap, "HorizontalPodAutoscaler")["web"]["spec"]["scaleTargetRef"]["name"] == "web"


@pytest.mark.parametrize("change", [with_canary(0), None], ids=["weight-0", "removed"])
def test_canary_weight_zero_or_removed_means_no_canary_deployment(change):
    cap = small(change)
    assert set(shop(cap, "Deployment")) == {"web"}
    assert not spec.canary_enabled(MicroserviceArgs(name="web", image="x:1", canary_image="x:2", canary_weight=0))


# ---------------------------------------------------------------------------------- outputs


def test_component_outputs():
    from cnplatform.microservice import Microservice

    def program():
        m = Microservice("cart", MicroserviceArgs(
            name="cart", namespace="shop", image="x:1", port=9000, slo_availability=99.5, slo_latency_ms=250,
            canary_image="x:2", canary_weight=10))
        return {"sa": m.service_account, "ns": m.namespace, "svc": m.service_name, "port": m.port,
                "selector": m.selector_labels, "slo": m.slo, "url": m.url, "canary": m.canary_weight}

    out = run_program(program, stack="t", raw={}).outputs
    assert out == {"sa": "cart", "ns": "shop", "svc": "cart", "port": 9000,
                   "selector": {"app.kubernetes.io/name": "cart"},
                   "slo": {"availability": 99.5, "latency_ms": 250, "latency_target": 99},
                   "url": "http://cart.shop.svc.cluster.local:9000", "canary": 10}


def test_layer_outputs_urls_and_images_per_cluster(dev):
    services = dev.outputs["clusters"]["dev"]["services"]
    assert {k: v["url"] for k, v in services.items()} == {
        s: f"http://{s}.shop.svc.cluster.local:8080" for s in DEV_SERVICES}
    deployments = shop(dev, "Deployment")
    assert all(services[s]["image"] == container(deployments[s])["image"] for s in DEV_SERVICES)
    assert [s.name for s in config_of("dev").services] == list(DEV_SERVICES)


# -------------------------------------------------------------------------------- bad input


def errors_of(raw):
    with pytest.raises(ConfigError) as exc:
        check_config(raw)
    return dict(exc.value.errors)


def svc_change(**kw):
    raw = copy.deepcopy(SMALL)
    raw["services"][0].update(kw)
    return raw


@pytest.mark.parametrize("change, path, text", [
    ({"canary": {"image": "x:2", "weight": 101}}, "services[0].canary.weight", "100"),
    ({"canary": {"weight": 10}}, "services[0].canary.image", "required"),
    ({"secret_env": {"TOKEN": {"secret": "Bad_Secret", "key": "k"}}}, "services[0].secret_env.TOKEN.secret",
     "DNS-1123"),
    ({"env": {"1BAD": "x"}}, "services[0].env", "1BAD"),
    ({"expose": {"path": "api"}}, "services[0].expose.path", "must start with '/'"),
    ({"autoscaling": {"cpu_target": 5}}, "services[0].autoscaling.cpu_target", "10"),
    ({"autoscaling": {"min_replica": 2}}, "services[0].autoscaling.min_replica", "did you mean 'min_replicas'"),
    ({"health": {"liveliness": "/x"}}, "services[0].health.liveliness", "did you mean 'liveness'"),
    ({"database": {"storage": "10GB"}}, "services[0].database.storage", "10GB"),
    ({"name": "a" * 64}, "services[0].name", "at most 63"),
    ({"replicas": 0}, "services[0].replicas", "greater than or equal to 1"),
    ({"port": 0}, "services[0].port", "greater than or equal to 1"),
])
def test_bad_service_config_is_rejected_with_its_path(change, path, text):
    errors = errors_of(svc_change(**change))
    assert path in errors, errors
    assert text in errors[path]


def test_prod_autoscaling_floor_below_three_is_rejected():
    raw = copy.deepcopy(PROD)
    raw["services"][0]["autoscaling"] = {"min_replicas": 2}
    errors = errors_of(raw)
    assert "at least 3" in errors["services[0].autoscaling.min_replicas"]
