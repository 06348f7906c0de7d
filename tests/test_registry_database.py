"""Service images (kind load / ECR / Artifact Registry, by digest) and MySQL databases (StatefulSet / RDS /
Cloud SQL)."""
import copy
import json
from types import SimpleNamespace

import pulumi
import pytest

from cnplatform.database import MySqlDatabase, MySqlDatabaseArgs
from cnplatform.database import spec as db_spec
from cnplatform.registry import (
    ArtifactRepository,
    ArtifactRepositoryArgs,
    EcrRepositories,
    EcrRepositoriesArgs,
    ServiceImage,
    ServiceImageArgs,
    artifact_cleanup_policies,
    context_digest,
    dockerfile_sources,
    ecr_lifecycle_policy,
    image_digest,
)
from cnplatform.testing import Secret, unwrap
from tests.helpers import ROOT, capture_raw, capture_stack, config_of, objects, run_program

BUILT = ("user", "product", "payment", "order")
DIGEST = "@sha256:" + "0" * 64


@pytest.fixture(scope="module")
def dev():
    return capture_stack("dev")


def regs(cap, type_):
    return {r.name: r for r in cap.by_type(type_)}


def shop(cap, kind, cluster="dev"):
    return {o["metadata"]["name"]: o for o in objects(cap, kind, cluster) if o["metadata"].get("namespace") == "shop"}


def run(program):
    return run_program(program, stack="t", raw={})


# ------------------------------------------------------------------------------- pure helpers


def test_context_digest_is_deterministic_and_content_addressed(tmp_path):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "app.py").write_text("print(1)\n")
    first = context_digest(tmp_path)
    assert first == context_digest(tmp_path) and len(first) == 12
    (tmp_path / "svc" / "__pycache__").mkdir()
    (tmp_path / "svc" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert context_digest(tmp_path) == first  # caches do not change the image
    (tmp_path / "svc" / "app.py").write_text("print(2)\n")
    assert context_digest(tmp_path) != first
    (tmp_path / "svc" / "app.py").write_text("print(1)\n")
    (tmp_path / "svc" / "app.py").rename(tmp_path / "svc" / "main.py")
    assert context_digest(tmp_path) != first  # names count too


def test_context_digest_ignores_what_dockerignore_keeps_out_of_the_build(tmp_path):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "app.py").write_text("print(1)\n")
    (tmp_path / ".dockerignore").write_text("# comment\ntests/\n**/*.md\n!keep.md\n")
    first = context_digest(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text("def test(): pass\n")
    (tmp_path / "svc" / "README.md").write_text("docs\n")
    assert context_digest(tmp_path) == first
    (tmp_path / "keep.md").write_text("in the image\n")  # re-included by "!keep.md"
    assert context_digest(tmp_path) != first


def test_ecr_lifecycle_policy_keeps_the_n_most_recent_images():
    (rule,) = json.loads(ecr_lifecycle_policy(15))["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 15}
    assert rule["action"] == {"type": "expire"} and rule["rulePriority"] == 1


def test_artifact_registry_cleanup_keeps_recent_versions():
    keep, delete = artifact_cleanup_policies(7)
    assert keep == {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": 7}}
    assert delete["action"] == "DELETE" and delete["condition"] == {"tag_state": "ANY"}


def test_database_naming():
    assert db_spec.default_user("order") == "order_svc"
    assert len(db_spec.default_user("very-long-service-name")) <= 16
    assert db_spec.sql_identifier("order-history") == "order_history"
    assert db_spec.sql_identifier("9lives") == "db_9lives"
    assert db_spec.storage_gib("10Gi") == 10 and db_spec.storage_gib("1Gi") == 10 and db_spec.storage_gib("25G") == 24
    with pytest.raises(ValueError, match="no pinned local MySQL image for version '5.7'"):
        db_spec.local_image("5.7")


# -------------------------------------------------------------------------------- dev images


def service_tag(svc: str) -> str:
    return image_digest(ROOT / "services", ROOT / "services" / "Dockerfile", build_args={"SERVICE": svc})


def test_dev_builds_every_service_image_locally_with_a_content_tag(dev):
    commands = regs(dev, "command:local:Command")
    # No Docker provider on the dev path: a plain `docker build`, without the attestations that make
    # Docker Desktop's containerd store produce an index `kind load` cannot export.
    assert not regs(dev, "docker:index/image:Image")
    for svc in BUILT:
        build = commands[f"dev-{svc}-image-build"]
        image = f"ecommerce-platform/{svc}:{service_tag(svc)}"
        assert build.inputs["create"] == (f"docker build --provenance=false --sbom=false -t {image} "
                                           f"-f services/Dockerfile --build-arg SERVICE={svc} services")
        assert build.inputs["triggers"] == [image]


def test_each_service_tag_hashes_exactly_what_its_image_contains(tmp_path):
    """Editing one service rebuilds, pushes and rolls out that service only (issue #15 item 15)."""
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "lib.py").write_text("x = 1\n")
    for svc in ("a", "b"):
        (tmp_path / svc).mkdir()
        (tmp_path / svc / "app.py").write_text(f"print('{svc}')\n")
        (tmp_path / svc / "Dockerfile").write_text(
            "FROM python:3.11-slim AS builder\nCOPY --from=builder /opt /opt\n"
            f"COPY common/ /app/common/\nCOPY [\"{svc}/app.py\", \"/app/app.py\"]\n")
    (tmp_path / ".dockerignore").write_text("**/*.md\n")
    tag = {svc: image_digest(tmp_path, tmp_path / svc / "Dockerfile") for svc in ("a", "b")}
    (tmp_path / "a" / "app.py").write_text("print('a2')\n")
    assert image_digest(tmp_path, tmp_path / "a" / "Dockerfile") != tag["a"]
    assert image_digest(tmp_path, tmp_path / "b" / "Dockerfile") == tag["b"]  # b does not copy a/
    (tmp_path / "common" / "README.md").write_text("ignored\n")
    assert image_digest(tmp_path, tmp_path / "b" / "Dockerfile") == tag["b"]
    (tmp_path / "common" / "lib.py").write_text("x = 2\n")
    assert image_digest(tmp_path, tmp_path / "b" / "Dockerfile") != tag["b"]  # both copy common/
    assert dockerfile_sources((ROOT / "services/Dockerfile").read_text(), {"SERVICE": "order"}) == [
        "order/requirements.txt", "image/fetch_ca_bundle.py", "common/svc_common/", "order/app.py"]


def test_one_parameterised_dockerfile_tags_each_service_by_what_it_copies(tmp_path):
    """services/Dockerfile with SERVICE=<name>: each tag hashes its own files (issue #18)."""
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "lib.py").write_text("x = 1\n")
    (tmp_path / "Dockerfile").write_text("ARG SERVICE\nFROM python:3.11-slim\nARG SERVICE\n"
                                         "COPY common/ /app/common/\nCOPY ${SERVICE}/app.py /app/app.py\n")
    for svc in ("a", "b"):
        (tmp_path / svc).mkdir()
        (tmp_path / svc / "app.py").write_text(f"print('{svc}')\n")
    tag = {svc: image_digest(tmp_path, tmp_path / "Dockerfile", build_args={"SERVICE": svc}) for svc in "ab"}
    assert tag["a"] != tag["b"]  # same Dockerfile, different build argument and files
    (tmp_path / "a" / "app.py").write_text("print('a2')\n")
    assert image_digest(tmp_path, tmp_path / "Dockerfile", build_args={"SERVICE": "a"}) != tag["a"]
    assert image_digest(tmp_path, tmp_path / "Dockerfile", build_args={"SERVICE": "b"}) == tag["b"]


def test_dev_images_are_loaded_into_kind_before_the_deployment(dev):
    commands = regs(dev, "command:local:Command")
    deployments = {r.name: r for r in dev.by_type("kubernetes:apps/v1:Deployment")}
    kind = commands["dev-kind"]
    for svc in BUILT:
        load = commands[f"dev-{svc}-image-kind-load"]
        image = f"ecommerce-platform/{svc}:{service_tag(svc)}"
        assert load.inputs["create"] == f"kind load docker-image {image} --name dev"
        assert load.inputs["triggers"] == [image]
        assert kind.urn in load.depends_on  # after the cluster exists
        assert commands[f"dev-{svc}-image-build"].urn in load.depends_on
        deployment = deployments[f"dev-{svc}-deployment"]
        assert load.urn in deployment.depends_on
        assert deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == image


SMALL = {"tier": "dev", "clusters": [{"name": "dev", "cloud": "local", "local": {"existing_context": "kind-dev"}}],
         "services": [{"name": "web", "build": "services/user"}, {"name": "api", "image": "ghcr.io/acme/api:2.0"}],
         "mesh": {"enabled": False}, "monitoring": {"enabled": False}, "cicd": {"enabled": False}}


def test_existing_context_skips_kind_load_and_prebuilt_images_are_used_as_is():
    cap = capture_raw(copy.deepcopy(SMALL), "ctx")
    assert "dev-web-image-build" in regs(cap, "command:local:Command")
    assert "dev-web-image-kind-load" not in regs(cap, "command:local:Command")
    images = {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in shop(cap, "Deployment").items()}
    assert images["api"] == "ghcr.io/acme/api:2.0"
    assert images["web"].startswith("ecommerce-platform/web:")


# ------------------------------------------------------------------------------ cloud images


def test_aws_image_goes_to_an_immutable_scanned_ecr_repository_and_deploys_by_digest():
    def program():
        registry = EcrRepositories("reg", EcrRepositoriesArgs(cluster="prod-eks", services=["order"],
                                                              region="us-east-1", keep_images=12))
        image = ServiceImage("img", ServiceImageArgs(service="order", tag="abc123", cloud="aws", cluster="prod-eks",
                                                     region="us-east-1",
                                                     repository_url=registry.repositories["order"].repository_url))
        return {"ref": image.image_ref, "repo": image.repository_url}

    cap = run(program)
    (repo,) = cap.by_type("aws:ecr/repository:Repository")
    assert repo.inputs["name"] == "prod-eks/order" and repo.inputs["region"] == "us-east-1"
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    (policy,) = cap.by_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert json.loads(policy.inputs["policy"]) == json.loads(ecr_lifecycle_policy(12))
    (image,) = cap.by_type("docker:index/image:Image")
    url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-eks/order"
    assert image.inputs["imageName"] == f"{url}:abc123"
    assert image.inputs.get("skipPush") in (None, False)
    assert isinstance(image.inputs["registry"], Secret)  # it holds the ECR token
    assert unwrap(image.inputs["registry"])["server"] == url
    assert cap.outputs == {"ref": url + DIGEST, "repo": url}


def test_gcp_image_goes_to_the_cluster_artifact_registry_and_deploys_by_digest():
    def program():
        repo = ArtifactRepository("reg", ArtifactRepositoryArgs(project="acme", region="europe-west1", keep_images=9))
        image = ServiceImage("img", ServiceImageArgs(service="user", tag="t1", cloud="gcp", cluster="prod-gke",
                                                     region="europe-west1", project="acme"),
                             opts=pulumi.ResourceOptions(depends_on=[repo]))
        return {"ref": image.image_ref, "url": repo.url}

    cap = run(program)
    (repo,) = cap.by_type("gcp:artifactregistry/repository:Repository")
    expected = {"repositoryId": "platform", "format": "DOCKER", "location": "europe-west1", "project": "acme",
                "dockerConfig": {"immutableTags": True}, "cleanupPolicyDryRun": False}
    assert {k: unwrap(repo.inputs).get(k) for k in expected} == expected
    assert {p["id"] for p in repo.inputs["cleanupPolicies"]} == {"keep-recent", "delete-older"}
    (image,) = cap.by_type("docker:index/image:Image")
    url = "europe-west1-docker.pkg.dev/acme/platform"
    assert image.inputs["imageName"] == f"{url}/user:t1"
    assert isinstance(image.inputs["registry"], Secret)  # it holds the access token
    registry = unwrap(image.inputs["registry"])
    assert (registry["server"], registry["username"]) == ("europe-west1-docker.pkg.dev", "oauth2accesstoken")
    assert repo.urn in image.depends_on
    assert cap.outputs == {"ref": f"{url}/user{DIGEST}", "url": url}


# ------------------------------------------------------------------------------ dev database


def test_dev_mysql_statefulset_pinned_restricted_and_persistent(dev):
    for svc, database in (("user", "users"), ("order", "orders")):
        sts = shop(dev, "StatefulSet")[f"{svc}-mysql"]
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        (c,) = pod["containers"]
        assert c["image"].startswith("mysql:8.4.") and "@sha256:" in c["image"]
        assert spec["replicas"] == 1 and spec["serviceName"] == f"{svc}-mysql"
        (claim,) = spec["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "data"
        assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                                          "fsGroupChangePolicy": "OnRootMismatch",
                                          "seccompProfile": {"type": "RuntimeDefault"}}
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert mounts == {"/var/lib/mysql": "data", "/var/run/mysqld": "run", "/tmp": "tmp",
                          "/var/lib/mysql-files": "files", "/run/secrets/mysql": "secrets",
                          "/run/secrets/mysql-tls": "tls"}  # its key pair (TLS required: tests/test_db_tls.py)
        assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == f"{svc}-mysql"
        # Passwords are files, never env values; the root password lives in its own Secret.
        env = {e["name"]: e for e in c["env"]}
        assert all("valueFrom" not in e for e in env.values())
        assert env["MYSQL_DATABASE"]["value"] == database and env["MYSQL_USER"]["value"] == f"{svc}_svc"
        assert env["MYSQL_PASSWORD_FILE"]["value"] == "/run/secrets/mysql/password"
        sources = [s["secret"]["name"] for s in next(v for v in pod["volumes"] if v["name"] == "secrets")
                   ["projected"]["sources"]]
        assert sources == [f"{svc}-db", f"{svc}-db-root"]
        assert spec["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
        assert all(c[p]["tcpSocket"] == {"port": "mysql"} for p in ("startupProbe", "livenessProbe", "readinessProbe"))
        assert c["resources"] == {"requests": {"cpu": "25m", "memory": "256Mi"},
                                  "limits": {"cpu": "1", "memory": "1Gi"}}
        assert c["args"][:2] == ["--skip-name-resolve", "--performance-schema=OFF"]
        assert "--require-secure-transport=ON" in c["args"]


def test_dev_mysql_service_policy_and_secret(dev):
    for svc in ("user", "order"):
        service = shop(dev, "Service")[f"{svc}-mysql"]["spec"]
        assert service["clusterIP"] == "None"
        assert service["ports"] == [{"name": "tcp-mysql", "port": 3306, "targetPort": "mysql", "protocol": "TCP",
                                     "appProtocol": "tcp"}]
        policy = shop(dev, "NetworkPolicy")[f"{svc}-mysql"]["spec"]
        assert policy == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": f"{svc}-mysql"}},
                          "policyTypes": ["Ingress", "Egress"], "egress": [],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": svc}}}],
                                       "ports": [{"protocol": "TCP", "port": 3306}]}]}
        secret = shop(dev, "Secret")[f"{svc}-db"]
        assert set(secret["stringData"]) == {"password", "host", "port", "user", "database"}
        assert secret["stringData"]["host"] == f"{svc}-mysql.shop.svc.cluster.local"
        assert secret["stringData"]["password"] == f"secret::dev-{svc}-db-password"
        assert set(shop(dev, "Secret")[f"{svc}-db-root"]["stringData"]) == {"root-password"}
    # Services without a database get none.
    assert "product-mysql" not in shop(dev, "StatefulSet") and "product-db" not in shop(dev, "Secret")


def test_footprint_counts_in_cluster_databases_only():
    from stacks.compose.layers.services import footprint

    cfg = config_of("dev")
    items = footprint(cfg, cfg.clusters[0])
    assert [(w.layer, w.name, w.replicas, w.cpu_request, w.memory_request) for w in items] == [
        ("databases", f"{s.name}-mysql", 1, 25, 256) for s in cfg.services if s.database is not None]
    assert len(items) >= 2
    prod = config_of("prod")
    assert footprint(prod, prod.clusters[0]) == []


# ---------------------------------------------------------------------------- cloud databases


def rds(**kw):
    def program():
        db = MySqlDatabase("db", MySqlDatabaseArgs(
            service="order", database="orders", cloud="aws", cluster="prod-eks", region="us-east-1",
            vpc_id="vpc-0abc", subnet_ids=["subnet-a", "subnet-b", "subnet-c"], allowed_cidrs=["10.0.0.0/16"], **kw))
        return {"host": db.host, "secret": db.secret_name}
    return run(program)


def test_rds_is_private_encrypted_and_highly_available_in_prod():
    cap = rds(high_availability=True, deletion_protection=True, protect=True, backup_retention_days=14,
              instance_class="db.m6g.large")
    (instance,) = cap.by_type("aws:rds/instance:Instance")
    i = instance.inputs
    assert (i["engine"], i["engineVersion"], i["instanceClass"]) == ("mysql", "8.4", "db.m6g.large")
    assert i["storageEncrypted"] is True and i["publiclyAccessible"] is False
    assert i["multiAz"] is True and i["deletionProtection"] is True and instance.protect
    assert i["skipFinalSnapshot"] is False and i["finalSnapshotIdentifier"] == "prod-eks-order-final"
    assert i["backupRetentionPeriod"] == 14 and (i["dbName"], i["username"]) == ("orders", "order_svc")
    assert isinstance(i["password"], Secret)
    (subnets,) = cap.by_type("aws:rds/subnetGroup:SubnetGroup")
    assert subnets.inputs["subnetIds"] == ["subnet-a", "subnet-b", "subnet-c"]
    assert i["dbSubnetGroupName"] == subnets.outputs["name"]
    (group,) = cap.by_type("aws:ec2/securityGroup:SecurityGroup")
    assert group.inputs["vpcId"] == "vpc-0abc" and group.inputs["egress"] == []
    (rule,) = group.inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"], rule["cidrBlocks"]) == ("tcp", 3306, 3306,
                                                                                        ["10.0.0.0/16"])
    (password,) = [r for r in cap.by_type("random:index/randomPassword:RandomPassword")]
    assert password.protect
    (secret,) = [r for r in cap.by_type("kubernetes:core/v1:Secret")]
    data = unwrap(secret.inputs["stringData"])
    assert data["host"] == cap.outputs["host"].split(":")[0] and data["host"].endswith(".rds.amazonaws.com")
    assert secret.inputs["metadata"]["name"] == "order-db" == cap.outputs["secret"]


def test_rds_outside_prod_is_single_az_unprotected_and_deletable():
    cap = rds()
    (instance,) = cap.by_type("aws:rds/instance:Instance")
    assert instance.inputs["multiAz"] is False and instance.inputs["deletionProtection"] is False
    assert instance.inputs["skipFinalSnapshot"] is True and not instance.protect


def test_cloud_sql_private_ip_only_regional_with_binlogs_in_prod():
    def program():
        db = MySqlDatabase("db", MySqlDatabaseArgs(
            service="user", database="users", cloud="gcp", cluster="prod-gke", region="europe-west1", project="acme",
            network_id="projects/acme/global/networks/vpc", high_availability=True, deletion_protection=True,
            protect=True, backup_retention_days=14, tier="db-custom-2-7680"))
        return {"host": db.host}

    cap = run(program)
    (instance,) = cap.by_type("gcp:sql/databaseInstance:DatabaseInstance")
    i = unwrap(instance.inputs)
    s = i["settings"]
    assert i["databaseVersion"] == "MYSQL_8_4" and i["deletionProtection"] is True and instance.protect
    assert s["ipConfiguration"]["ipv4Enabled"] is False
    assert s["ipConfiguration"]["privateNetwork"] == "projects/acme/global/networks/vpc"
    assert s["availabilityType"] == "REGIONAL" and s["deletionProtectionEnabled"] is True
    backup = s["backupConfiguration"]
    assert backup["enabled"] and backup["binaryLogEnabled"]
    assert backup["backupRetentionSettings"] == {"retainedBackups": 14, "retentionUnit": "COUNT"}
    assert isinstance(instance.inputs["rootPassword"], Secret)
    (database,) = cap.by_type("gcp:sql/database:Database")
    (user,) = cap.by_type("gcp:sql/user:User")
    assert database.inputs["name"] == "users" and database.protect
    assert user.inputs["name"] == "user_svc" and isinstance(user.inputs["password"], Secret)
    assert cap.outputs["host"].startswith("10.")


@pytest.mark.parametrize("args, message", [
    (dict(cloud="aws", region="us-east-1"), "needs vpc_id, subnet_ids (private), region and allowed_cidrs"),
    (dict(cloud="gcp", region="europe-west1"), "needs network_id, region and project"),
    (dict(cloud="azure"), "cloud: 'azure' is not one of 'local', 'aws', 'gcp'"),
])
def test_cloud_database_without_network_facts_fails_clearly(args, message):
    def program():
        MySqlDatabase("db", MySqlDatabaseArgs(service="order", **args))
        return {}

    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(program)


def test_layer_names_the_cluster_network_it_misses():
    """The layers use the cluster interface (``Cluster.network``), not attribute probes."""
    from cnplatform.cluster.base import ClusterNetwork
    from stacks.compose.layers.services import _network

    class NoNetwork:  # a cluster component that forgot to declare its network
        network = None

    ctx = SimpleNamespace(cluster=NoNetwork(), name="prod-eks", cluster_cfg=SimpleNamespace(cloud="aws"))
    with pytest.raises(AttributeError, match=r"declares no aws network, needed for the RDS database of 'order'.*"
                                             r"NoNetwork\) must set `self.network`"):
        _network(ctx, "the RDS database of 'order'")
    ctx.cluster.network = ClusterNetwork(cloud="gcp")
    with pytest.raises(AttributeError, match="declares no aws network"):
        _network(ctx, "x")
    ctx.cluster.network = ClusterNetwork(cloud="aws", vpc_cidr="10.0.0.0/16")
    assert _network(ctx, "x").vpc_cidr == "10.0.0.0/16"


# ----------------------------------------------------------------------- prod stack wiring


@pytest.fixture(scope="module")
def prod():
    return capture_stack("prod")


def test_prod_deploys_images_by_digest_from_each_cluster_registry(prod):
    for cluster, registry in (("prod-eks", "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-eks/"),
                              ("prod-gke", "europe-west1-docker.pkg.dev/acme-shop-prod/platform/")):
        for name, d in shop(prod, "Deployment", cluster).items():
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image == f"{registry}{name}{DIGEST}", image
    assert len(prod.by_type("aws:ecr/repository:Repository")) == len(BUILT)
    assert len(prod.by_type("gcp:artifactregistry/repository:Repository")) == 1


def test_prod_databases_are_protected_and_reached_through_their_network(prod):
    instances = prod.by_type("aws:rds/instance:Instance") + prod.by_type("gcp:sql/databaseInstance:DatabaseInstance")
    assert len(instances) == 6 and all(i.protect for i in instances)
    assert not objects(prod, "StatefulSet", "prod-eks") and not objects(prod, "StatefulSet", "prod-gke")
    eks_egress = shop(prod, "NetworkPolicy", "prod-eks")["order"]["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 3306}]} in eks_egress
    gke_db = [r for r in shop(prod, "NetworkPolicy", "prod-gke")["order"]["spec"]["egress"]
              if r["ports"] == [{"protocol": "TCP", "port": 3306}]]
    assert gke_db and gke_db[0]["to"][0]["ipBlock"]["cidr"].endswith("/20")
    # Two clusters: multi-network mesh, so callers may come through the east-west gateway.
    user_ingress = shop(prod, "NetworkPolicy", "prod-eks")["user"]["spec"]["ingress"]
    assert any(p.get("podSelector") == {"matchLabels": {"istio": "eastwestgateway"}}
               for rule in user_ingress for p in rule["from"])


def _cloud_db_hosts(cap):
    """(cluster, service) -> (cloud, what the service connects to) for every cloud database of a capture."""
    out = {}
    for type_, cloud, key in (("aws:rds/instance:Instance", "aws", "address"),
                              ("gcp:sql/databaseInstance:DatabaseInstance", "gcp", "privateIpAddress")):
        for reg in cap.by_type(type_):
            cluster = cap.cluster_of(reg)
            service = reg.name.removeprefix(f"{cluster}-").removesuffix("-db-instance")
            out[(cluster, service)] = (cloud, unwrap(reg.outputs)[key])
    return out


def test_prod_cloud_databases_are_in_the_mesh_registry(prod):
    """REGISTRY_ONLY in prod: every RDS / Cloud SQL database has a ServiceEntry in its service's namespace."""
    from cnplatform.mesh.egress import CLOUDSQL_HOST_DOMAIN
    from tests.reference_checks import validate_custom_resource

    cfg = prod.config
    hosts = _cloud_db_hosts(prod)
    assert len(hosts) == 6  # user, order and payment, on EKS and GKE
    for (cluster, service), (cloud, host) in hosts.items():
        ns = cfg.service(service).namespace
        entries = {o["metadata"]["name"]: o for o in objects(prod, "ServiceEntry", cluster)
                   if o["metadata"]["namespace"] == ns}
        se = entries[f"{service}-db"]
        assert validate_custom_resource(se) == []
        spec = se["spec"]
        assert spec["location"] == "MESH_EXTERNAL" and spec["exportTo"] == ["."]
        assert spec["ports"] == [{"number": 3306, "name": "tcp-3306", "protocol": "TCP"}]
        if cloud == "aws":  # the RDS endpoint name, resolved by Envoy (follows a Multi-AZ failover)
            assert spec["hosts"] == [host] and host.endswith(".rds.amazonaws.com")
            assert spec["resolution"] == "DNS" and "addresses" not in spec
        else:  # Cloud SQL: its private IP, passed through as dialled
            assert spec["addresses"] == [host] and spec["resolution"] == "NONE"
            assert spec["hosts"] == [f"{service}-db.{ns}.{CLOUDSQL_HOST_DOMAIN}"]
        # The service's Secret names the same host: what the app dials is what the registry knows.
        secret = shop(prod, "Secret", cluster)[f"{service}-db"]
        assert secret["stringData"]["host"] == host and secret["stringData"]["port"] == "3306"
        # Its pods start only once the entry exists (first connection under REGISTRY_ONLY).
        se_urn = next(r.urn for r in prod.resources if r.name == f"{cluster}-{service}-db-egress-se")
        deployment = next(r for r in prod.resources if r.type == "kubernetes:apps/v1:Deployment"
                          and prod.cluster_of(r) == cluster and unwrap(r.inputs)["metadata"]["name"] == service)
        assert se_urn in deployment.depends_on


def test_in_cluster_databases_need_no_service_entry(dev):
    from cnplatform.mesh.egress import cloud_database_egress

    assert objects(dev, "ServiceEntry", "dev") == []  # the dev MySQL is a Kubernetes Service
    with pytest.raises(ValueError, match="aws or gcp"):
        cloud_database_egress("order", "shop", "local", "order-mysql.shop.svc.cluster.local")
