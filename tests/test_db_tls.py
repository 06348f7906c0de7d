"""Database TLS (issue #19 item 6): every database refuses plaintext, every service verifies its CA.

Rendered-object assertions on the three stacks, the pure helpers, and the policy rules both ways
(our renders pass, a crafted bad stack fails).
"""
from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from cnplatform.database import MySqlDatabaseArgs
from cnplatform.database import tls as dbtls
from cnplatform.microservice import spec as ms_spec
from policy import database_rules as D
from stacks.config import ROOT

DB_SERVICES = ("user", "payment", "order")


def plan(rendered, stack) -> list[dict]:
    return json.loads((rendered(stack) / "plan.json").read_text())["resources"]


def manifest(rendered, stack, cluster, kind, name, namespace="shop") -> dict:
    return yaml.safe_load((rendered(stack) / "manifests" / cluster / namespace / f"{kind}-{name}.yaml").read_text())


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(deployment: dict) -> dict:
    return {e["name"]: e.get("value") for e in container(deployment)["env"]}


def test_tls_is_required_by_default():
    assert MySqlDatabaseArgs(service="user").require_tls is True
    assert ms_spec.DATABASE_CA_MOUNT == dbtls.CA_MOUNT


# ------------------------------------------------------------------------------------------ aws


def test_rds_instances_use_a_parameter_group_requiring_tls(rendered):
    resources = plan(rendered, "prod")
    groups = {r["inputs"]["name"]: r["inputs"] for r in resources if r["type"] == D.RDS_PARAMETER_GROUP}
    instances = [r["inputs"] for r in resources if r["type"] == D.RDS_INSTANCE]
    assert len(instances) == len(DB_SERVICES)
    for inst in instances:
        group = groups[inst["parameterGroupName"]]
        assert group["family"] == f"mysql{inst['engineVersion']}"
        assert {"name": "require_secure_transport", "value": "1", "applyMethod": "immediate"} in group["parameters"]
        assert inst["caCertIdentifier"] == dbtls.RDS_CA_IDENTIFIER


def test_eks_services_verify_the_rds_ca_baked_into_the_image(rendered):
    for svc in DB_SERVICES:
        env = env_of(manifest(rendered, "prod", "prod-eks", "Deployment", svc))
        assert env["MYSQL_SSL_CA"] == dbtls.RDS_CA_BUNDLE_PATH
        assert env["MYSQL_SSL_VERIFY_IDENTITY"] == "true"  # RDS names the endpoint in its certificate
    # The path the platform points at is the one the service image writes.
    dockerfile = (ROOT / "services" / "Dockerfile").read_text()
    assert dbtls.RDS_CA_BUNDLE_PATH in dockerfile and dbtls.RDS_CA_BUNDLE_URL in dockerfile


# ------------------------------------------------------------------------------------------ gcp


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_cloudsql_refuses_plaintext_with_its_own_ca(rendered, stack):
    instances = [r["inputs"] for r in plan(rendered, stack) if r["type"] == D.CLOUDSQL_INSTANCE]
    assert len(instances) == len(DB_SERVICES)
    for inst in instances:
        ip = inst["settings"]["ipConfiguration"]
        assert ip["sslMode"] == "ENCRYPTED_ONLY" and ip["serverCaMode"] == "GOOGLE_MANAGED_INTERNAL_CA"


@pytest.mark.parametrize("stack, cluster", [("staging", "staging-gke"), ("prod", "prod-gke")])
def test_gke_services_mount_and_verify_their_cloudsql_ca(rendered, stack, cluster):
    for svc in DB_SERVICES:
        deployment = manifest(rendered, stack, cluster, "Deployment", svc)
        env = env_of(deployment)
        assert env["MYSQL_SSL_CA"] == f"{dbtls.CA_MOUNT}/{dbtls.CA_KEY}"
        assert env["MYSQL_SSL_VERIFY_IDENTITY"] == "false"  # the certificate names no private IP
        pod = deployment["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v.get("configMap"))
        assert volume["configMap"]["name"] == dbtls.ca_configmap_name(svc)
        mount = {"name": volume["name"], "mountPath": dbtls.CA_MOUNT, "readOnly": True}
        assert mount in container(deployment)["volumeMounts"]
        ca = manifest(rendered, stack, cluster, "ConfigMap", dbtls.ca_configmap_name(svc))
        # The instance's server_ca_certs (the mock names each instance's CA after it).
        assert f"MOCK{cluster.replace('-', '')}{svc}serverca" in ca["data"][dbtls.CA_KEY]
    product = env_of(manifest(rendered, stack, cluster, "Deployment", "product"))
    assert "MYSQL_SSL_CA" not in product  # no database, no CA


def test_ca_bundle_keeps_every_server_ca():
    certs = [{"cert": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"},
             {"cert": "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"}, {"cert": None}]
    assert dbtls.ca_bundle(certs).count("BEGIN CERTIFICATE") == 2 and dbtls.ca_bundle(None) == ""


# ------------------------------------------------------------------------------------------ dev


def test_in_cluster_mysql_requires_tls_with_a_certificate_for_its_host(rendered):
    resources = plan(rendered, "dev")
    for svc in DB_SERVICES:
        sts = manifest(rendered, "dev", "dev", "StatefulSet", f"{svc}-mysql")
        mysql = container(sts)
        assert "--require-secure-transport=ON" in mysql["args"]
        assert {"name": "tls", "mountPath": dbtls.SERVER_TLS_MOUNT, "readOnly": True} in mysql["volumeMounts"]
        secret = manifest(rendered, "dev", "dev", "Secret", dbtls.server_tls_secret_name(svc))
        assert secret["type"] == "kubernetes.io/tls" and set(secret["stringData"]) == {"tls.crt", "tls.key", "ca.pem"}
        env = env_of(manifest(rendered, "dev", "dev", "Deployment", svc))
        assert env["MYSQL_SSL_CA"] == f"{dbtls.CA_MOUNT}/{dbtls.CA_KEY}" and env["MYSQL_SSL_VERIFY_IDENTITY"] == "true"
        csr = next(r["inputs"] for r in resources if r["name"] == f"dev-{svc}-db-tls-csr")
        assert csr["dnsNames"] == [env["MYSQL_HOST"]]  # what the service connects to is what it verifies
        ca = manifest(rendered, "dev", "dev", "ConfigMap", dbtls.ca_configmap_name(svc))
        assert ca["data"][dbtls.CA_KEY] == secret["stringData"]["ca.pem"]


# ------------------------------------------------------------------------------------ policy rules


def _res(resources: list[dict]) -> list:
    return [D.Res(r["type"], r["inputs"], r["urn"], r["provider"] or "", r["depends_on"]) for r in resources]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_our_renders_pass_the_database_rules(rendered, stack):
    resources = plan(rendered, stack)
    assert D.check_rds_tls(_res(resources)) == []
    assert [m for r in resources for m in D.check_cloudsql_tls(r["type"], r["inputs"])] == []
    kinds = {r["type"] for r in resources}
    assert {"dev": set(), "staging": {D.CLOUDSQL_INSTANCE}, "prod": {D.CLOUDSQL_INSTANCE, D.RDS_INSTANCE}}[stack] \
        == kinds & {D.CLOUDSQL_INSTANCE, D.RDS_INSTANCE}  # not vacuous


def test_rds_without_a_tls_parameter_group_is_caught(rendered):
    resources = plan(rendered, "prod")
    unknown_name = copy.deepcopy(resources)  # at preview: the group's name is not known yet
    for r in unknown_name:
        if r["type"] == D.RDS_INSTANCE:
            r["inputs"].pop("parameterGroupName")
    assert D.check_rds_tls(_res(unknown_name)) == []  # the group it depends on is the one checked
    default_group = copy.deepcopy(unknown_name)
    for r in default_group:
        if r["type"] == D.RDS_INSTANCE:
            r["depends_on"] = [d for d in r["depends_on"] if D.RDS_PARAMETER_GROUP not in d]
    found = D.check_rds_tls(_res(default_group))
    assert len(found) == 3 and all("default parameter group" in m and "require_secure_transport = 1" in m
                                   for _, m in found)
    off = copy.deepcopy(resources)
    for r in off:
        if r["type"] == D.RDS_PARAMETER_GROUP:
            r["inputs"]["parameters"] = [{"name": "require_secure_transport", "value": "0"}]
    assert len(D.check_rds_tls(_res(off))) == 3
    elsewhere = [r for r in copy.deepcopy(resources) if r["type"] != D.RDS_PARAMETER_GROUP]
    assert all("not managed in this stack" in m for _, m in D.check_rds_tls(_res(elsewhere)))


@pytest.mark.parametrize("value, ok", [("1", True), ("ON", True), ("on", True), ("0", False), ("OFF", False)])
def test_require_secure_transport_values(value, ok):
    assert D.requires_secure_transport({"parameters": [{"name": "require_secure_transport", "value": value}]}) is ok


@pytest.mark.parametrize("mode", [None, "ALLOW_UNENCRYPTED_AND_ENCRYPTED"])
def test_cloudsql_accepting_plaintext_is_caught(rendered, mode):
    inst = copy.deepcopy(next(r for r in plan(rendered, "staging") if r["type"] == D.CLOUDSQL_INSTANCE))
    ip = inst["inputs"]["settings"]["ipConfiguration"]
    ip.pop("sslMode")
    if mode:
        ip["sslMode"] = mode
    [message] = D.check_cloudsql_tls(inst["type"], inst["inputs"])
    assert "accepts plaintext" in message and "ENCRYPTED_ONLY" in message


def test_the_pack_serves_the_database_rules():
    from policy import cnplatform_policy as P

    names = [p.name for p in P.POLICIES]
    assert {"rds-mysql-requires-tls", "cloudsql-requires-tls"} <= set(names)
    assert re.search(r"rds-mysql-requires-tls", (ROOT / "policy" / "cnplatform_policy.py").read_text())


def test_the_pack_objects_report_a_plaintext_database(rendered):
    """Through the real pulumi_policy objects, as the engine calls them."""
    from pulumi_policy import PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs

    from policy import cnplatform_policy as P

    resources = copy.deepcopy(plan(rendered, "prod"))
    for r in resources:
        if r["type"] == D.RDS_INSTANCE:
            r["inputs"].pop("parameterGroupName")
            r["depends_on"] = [d for d in r["depends_on"] if D.RDS_PARAMETER_GROUP not in d]
        if r["type"] == D.CLOUDSQL_INSTANCE:
            r["inputs"]["settings"]["ipConfiguration"]["sslMode"] = "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
    opts = PolicyResourceOptions(False, [], False, [], None, [], "")
    items = [PolicyResource(r["type"], r["inputs"], r["urn"], r["name"], opts, None, None, [], {}) for r in resources]
    found = []
    rds = next(p for p in P.POLICIES if p.name == "rds-mysql-requires-tls")
    rds.validate(StackValidationArgs(items, {}), lambda message, urn=None: found.append((rds.name, urn)))
    cloudsql = next(p for p in P.POLICIES if p.name == "cloudsql-requires-tls")
    for r in resources:
        cloudsql.validate(ResourceValidationArgs(r["type"], r["inputs"], r["urn"], r["name"], opts, None, {}),
                          lambda message, urn=None, t=r["type"]: found.append((cloudsql.name, t)))
    assert sorted({(n, len([f for f in found if f[0] == n])) for n, _ in found}) == [
        ("cloudsql-requires-tls", 3), ("rds-mysql-requires-tls", 3)]
