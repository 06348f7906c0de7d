"""Each component's args validate themselves when constructed: one ArgsError listing every problem,
with the same rules and messages as the stack config (``cnplatform.validation``)."""
import dataclasses

import pytest

from cnplatform import validation
from cnplatform.addons.cert_manager import CertManagerArgs
from cnplatform.addons.certificate import TlsCertificateArgs
from cnplatform.addons.metrics_server import MetricsServerArgs
from cnplatform.cicd.jenkins import JenkinsArgs
from cnplatform.cluster.eks_spec import EksClusterArgs
from cnplatform.cluster.gke import GkeClusterArgs
from cnplatform.cluster.karpenter import KarpenterArgs
from cnplatform.cluster.local import LocalClusterArgs
from cnplatform.database.mysql import MySqlDatabaseArgs
from cnplatform.mesh.egress import ExternalServiceArgs
from cnplatform.mesh.istio import IstioMeshArgs
from cnplatform.mesh.traffic import ServiceTrafficPolicyArgs
from cnplatform.microservice import MicroserviceArgs, Peer, SecretKeyRef
from cnplatform.monitoring.service import ServiceMonitoringArgs
from cnplatform.monitoring.stack import MonitoringStackArgs
from cnplatform.registry.image import ServiceImageArgs
from stacks.checks import check_config
from stacks.config import ConfigError

IMG = "ghcr.io/acme/user:1.0"

# (args class, valid base kwargs, bad kwargs, field the error names, part of the message)
TABLE = {
    "Microservice": (MicroserviceArgs, {"name": "user", "image": IMG}, [
        ({"cpu_request": "100mb"}, "cpu_request", "is not a Kubernetes quantity"),
        ({"name": "User_1"}, "name", "DNS-1123"),
        ({"name": "1user"}, "name", "DNS-1035"),
        ({"name": "u" * 60}, "name", "exceed 63"),
        ({"replicas": 0}, "replicas", "at least 1"),
        ({"cpu_request": "1", "cpu_limit": "500m"}, "cpu_limit", "limits must be >= requests"),
        ({"canary_weight": 150}, "canary_weight", "between 0 and 100"),
        ({"calls": ["order"]}, "calls", "expected list[Peer]"),
        ({"image": "ghcr.io/acme/user:1.0\n"}, "image", "whitespace"),
        ({"expose_path": "/"}, "expose_path", "would route every request"),
        ({"env": {"DB_PASSWORD": "x"}}, "env['DB_PASSWORD']", "secret_env"),
        ({"autoscaling_min": 5, "autoscaling_max": 2}, "autoscaling_min", "greater than autoscaling_max"),
        ({"port": "http"}, "port", "expected int"),
    ]),
    "Peer": (Peer, {"name": "user"}, [({"namespace": "Shop"}, "namespace", "DNS-1123"),
                                      ({"port": 0}, "port", "between")]),
    "SecretKeyRef": (SecretKeyRef, {"secret": "s", "key": "k"}, [({"key": "a b"}, "key", "is not a Secret key")]),
    "MySqlDatabase": (MySqlDatabaseArgs, {"service": "user"}, [
        ({"mysql_version": "5.7"}, "mysql_version", "is not one of '8.4'"),
        ({"storage": "10GB"}, "storage", "quantity"),
        ({"cloud": "azure"}, "cloud", "is not one of"),
        ({"allowed_cidrs": ["10.0.0.1/16"]}, "allowed_cidrs[0]", "did you mean '10.0.0.0/16'"),
    ]),
    "LocalCluster": (LocalClusterArgs, {}, [
        ({"node_image": "kindest/node:latest"}, "node_image", "not pinned by digest"),
        ({"workers": 9}, "workers", "between 0 and 5"),
    ]),
    "GkeCluster": (GkeClusterArgs, {"project": "p", "region": "europe-west1"}, [
        ({"master_cidr": "172.16.0.0/24"}, "master_cidr", "/28"),
        ({"master_authorized_networks": ["everyone"]}, "master_authorized_networks[0]", "is not a CIDR"),
        ({"zones": ["us-east1-b"]}, "zones[0]", "not a zone of the cluster's region 'europe-west1'"),
    ]),
    "EksCluster": (EksClusterArgs, {"region": "us-east-1"}, [
        ({"region": "us-east1"}, "region", "is not an AWS region"),
        ({"zones": ["eu-west-1a"]}, "zones[0]", "not a zone of the cluster's region 'us-east-1'"),
        ({"zones": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]}, "zones", "at most 3"),
        ({"vpc_cidr": "10.0.0.0/26"}, "vpc_cidr", "between /16 and /24"),
        ({"vpc_cidr": "8.8.0.0/16"}, "vpc_cidr", "private"),
        ({"admin_role_arns": ["alice"]}, "admin_role_arns[0]", "is not an IAM role ARN"),
        ({"deployer_role_arns": ["arn:aws:iam::123:role/ci"]}, "deployer_role_arns[0]", "is not an IAM role ARN"),
        ({"kubernetes_version": "1.20"}, "kubernetes_version", "is not one of '1.35'"),
        ({"system_min_size": 4}, "system_min_size", "greater than system_max_size"),
        ({"log_retention_days": 10}, "log_retention_days", "is not one of"),
        ({"addon_versions": {"vpccni": "v1"}}, "addon_versions['vpccni']", "'vpc-cni'"),
        ({"public_access_cidrs": ["10.0.0.1/8"]}, "public_access_cidrs[0]", "host bits"),
    ]),
    "Karpenter": (KarpenterArgs, {"cluster_name": "prod-eks", "eks_cluster_name": "prod-eks", "region": "us-east-1",
                                  "account_id": "123456789012", "cluster_endpoint": "https://x",
                                  "oidc_provider_arn": "arn", "oidc_issuer_url": "https://oidc"}, [
        ({"account_id": "1234"}, "account_id", "12 digits"),
        ({"ami_alias": "al2023"}, "ami_alias", "is not an AMI alias"),
        ({"disruption_budget": "150%"}, "disruption_budget", "up to 100%"),
        ({"consolidate_after": "soon"}, "consolidate_after", "is not a duration"),
        ({"capacity_types": ["cheap"]}, "capacity_types[0]", "is not one of"),
        ({"memory_limit": "800GB"}, "memory_limit", "quantity"),
        ({"replicas": 0}, "replicas", "between 1 and 10"),
    ]),
    "IstioMesh": (IstioMeshArgs, {"cluster_name": "dev"}, [
        ({"istiod_cpu_request": "2", "istiod_cpu_limit": "1"}, "istiod_cpu_limit", "limits must be >= requests"),
        ({"ingress_hosts": ["shop.example.com\nx"]}, "ingress_hosts[0]", "is not a host name"),
        ({"outbound_traffic_policy": "DENY"}, "outbound_traffic_policy", "is not one of"),
    ]),
    "ServiceTrafficPolicy": (ServiceTrafficPolicyArgs, {"service": "user"}, [
        ({"timeout": "5 sec"}, "timeout", "is not a duration"),
        ({"canary_weight": 101}, "canary_weight", "between 0 and 100"),
    ]),
    "ExternalService": (ExternalServiceArgs, {"name": "api", "hosts": ["api.example.com"], "port": 443}, [
        ({"hosts": ["api example"]}, "hosts[0]", "is not a host name"),
    ]),
    "ServiceMonitoring": (ServiceMonitoringArgs, {"service": "user"}, [
        ({"availability": 100.5}, "availability", "between 50 and 100"),
    ]),
    "MonitoringStack": (MonitoringStackArgs, {"cluster": "dev"}, [
        ({"storage": "lots"}, "storage", "quantity"), ({"tier": "qa"}, "tier", "is not one of"),
    ]),
    "Jenkins": (JenkinsArgs, {}, [({"deploy_image": "ghcr.io/acme/deploy:1"}, "deploy_image", "digest")]),
    "CertManager": (CertManagerArgs, {}, [({"issuer": "vault"}, "issuer", "is not one of")]),
    "TlsCertificate": (TlsCertificateArgs, {}, [({"dns_names": ["a b"]}, "dns_names[0]", "is not a host name")]),
    "MetricsServer": (MetricsServerArgs, {}, [
        ({"memory_request": "1Gi", "memory_limit": "1Mi"}, "memory_limit", ">=")]),
    "ServiceImage": (ServiceImageArgs, {"service": "user", "context": "services"}, [
        ({"service": "User"}, "service", "DNS-1123"), ({"cloud": "azure"}, "cloud", "is not one of")]),
}
ROWS = [(name, cls, base, bad, field, text) for name, (cls, base, rows) in TABLE.items() for bad, field, text in rows]


def _construct(cls, **kwargs):
    required = {f.name: "x" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    return cls(**{**required, **kwargs})


@pytest.mark.parametrize("name, cls, base, bad, field, text", ROWS,
                         ids=[f"{r[0]}-{next(iter(r[3]))}" for r in ROWS])
def test_invalid_args_are_rejected_with_their_field(name, cls, base, bad, field, text):
    with pytest.raises(validation.ArgsError) as exc:
        _construct(cls, **{**base, **bad})
    errors = dict(exc.value.errors)
    assert field in errors, exc.value
    assert text in errors[field], exc.value


@pytest.mark.parametrize("name", sorted(TABLE))
def test_valid_args_construct(name):
    cls, base, _ = TABLE[name]
    _construct(cls, **base)


def test_every_problem_in_one_error():
    with pytest.raises(validation.ArgsError) as exc:
        MicroserviceArgs(name="1user", image=IMG, replicas=0, cpu_request="x", canary_weight=101)
    assert [k for k, _ in exc.value.errors] == ["name", "replicas", "cpu_request", "canary_weight"]
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, TypeError)


def test_same_message_as_the_stack_config():
    with pytest.raises(validation.ArgsError) as args_err:
        MicroserviceArgs(name="user", image=IMG, memory_request="512mb")
    with pytest.raises(ConfigError) as cfg_err:
        check_config({"tier": "dev", "clusters": [{"name": "dev", "cloud": "local"}], "services": [
            {"name": "user", "image": IMG, "resources": {"requests": {"memory": "512mb"}}}]})
    assert dict(args_err.value.errors)["memory_request"] == dict(cfg_err.value.errors)[
        "services[0].resources.requests.memory"]


@pytest.mark.parametrize("module, sdk, extra", [("cnplatform.cluster.eks", "pulumi_aws", "aws"),
                                               ("cnplatform.cluster.gke", "pulumi_gcp", "gcp")])
def test_missing_cloud_extra_names_the_pip_extra(module, sdk, extra):
    import subprocess
    import sys

    code = f"import sys; sys.modules[{sdk!r}] = None; import {module}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"needs {sdk}, which is not installed: pip install 'cnplatform[{extra}]'" in proc.stderr
