"""Every public component is hosted by the component package: the schema lists each one, and each is
constructed from schema inputs (camelCase names, numbers as floats, as another language sends them)."""
import inspect
import sys

import pulumi
import pytest

from cnplatform.provider import CLOUD_HOSTED, component_provider, hosted_classes, hosted_table, package_schema
from tests.helpers import ROOT, run_program

DIGEST = "@sha256:" + "0" * 64
#: Minimal schema inputs of each hosted component (its required inputs, and what its mode needs).
INPUTS = {
    "ClusterBaseline": {"namespaces": [{"name": "reviews"}]},
    "Microservice": {"name": "reviews", "image": "ghcr.io/acme/reviews:1.0" + DIGEST, "port": 8080.0},
    "LocalCluster": {},
    "PlatformPriorityClasses": {"criticalValue": 1000000.0},
    "CertManager": {},
    "TlsCertificate": {"issuerName": "letsencrypt", "namespace": "istio-system", "secretName": "ingress-tls",
                       "dnsNames": ["shop.example.com"]},
    "MetricsServer": {},
    "IstioMesh": {"clusterName": "team"},
    "MeshRootCa": {},
    "RemoteSecret": {"remoteCluster": "peer", "server": "https://peer.example:6443", "caData": "Q0E=",
                     "token": "t0ken"},
    "ServiceMeshPolicy": {"traffic": {"service": "reviews", "namespace": "reviews", "port": 8080.0}},
    "ExternalService": {"name": "payments-api", "namespace": "shop", "hosts": ["api.payments.example"],
                        "port": 443.0},
    "ConsulCatalogSync": {"datacenter": "dc1"},
    "MonitoringStack": {"cluster": "team"},
    "ServiceMonitoring": {"service": "reviews", "namespace": "reviews"},
    "Jenkins": {},
    "MySqlDatabase": {"service": "reviews", "namespace": "reviews"},
    "ServiceImage": {"service": "reviews", "cluster": "team", "context": ".", "dockerfile": "Dockerfile"},
    "EksCluster": {"region": "eu-west-1", "zones": ["eu-west-1a", "eu-west-1b"]},
    "Karpenter": {"clusterName": "team", "eksClusterName": "team", "region": "eu-west-1",
                  "accountId": "123456789012", "clusterEndpoint": "https://team.example",
                  "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/X",
                  "oidcIssuerUrl": "https://oidc.example/id/X"},
    "GkeCluster": {"project": "acme-team", "region": "europe-west1"},
    "CloudSqlPrivateAccess": {"project": "acme-team", "networkId": "projects/acme-team/global/networks/vpc"},
    "ArtifactRepository": {"project": "acme-team", "region": "europe-west1"},
    "EcrRepositories": {"cluster": "team", "services": ["reviews"], "region": "eu-west-1"},
}


@pytest.fixture(scope="module")
def schema():
    return package_schema()


def public_components() -> set[str]:
    """Every ComponentResource with ``(name, args, opts)`` defined in the library (what docs/components.md lists)."""
    import pkgutil

    import cnplatform

    names = set()
    for info in pkgutil.walk_packages(cnplatform.__path__, "cnplatform."):
        if ".testing" in info.name or info.name.endswith(("provider", "__main__")):
            continue
        module = sys.modules.get(info.name) or __import__(info.name, fromlist=["_"])
        for cls in vars(module).values():
            if (isinstance(cls, type) and cls.__module__ == info.name and issubclass(cls, pulumi.ComponentResource)
                    and "args" in inspect.signature(cls.__init__).parameters):
                names.add(cls.__name__)
    return names


def test_every_public_component_is_hosted(schema):
    hosted = {cls.__name__ for cls in hosted_classes()}
    assert public_components() == hosted == set(INPUTS)
    assert sorted(schema["resources"]) == sorted(f"cnplatform:index:{n}" for n in hosted)
    assert all(r["isComponent"] for r in schema["resources"].values())


def test_cloud_components_are_hosted_only_with_their_sdk(monkeypatch):
    import cnplatform.provider as provider

    monkeypatch.setattr(provider, "sdk_installed", lambda module: False)
    base = {cls.__name__ for cls in provider.hosted_classes()}
    assert base == set(INPUTS) - set(CLOUD_HOSTED)
    monkeypatch.setattr(provider, "sdk_installed", lambda module: module == "pulumi_aws")
    assert {cls.__name__ for cls in provider.hosted_classes()} - base == {"EksCluster", "Karpenter", "EcrRepositories"}


@pytest.mark.parametrize("component", sorted(INPUTS))
def test_constructs_from_its_schema_inputs(component, schema):
    token = f"cnplatform:index:{component}"
    required = schema["resources"][token].get("requiredInputs", [])
    assert set(required) <= set(INPUTS[component]), "the inputs above must cover the required ones"

    def program():
        result = component_provider().construct("team", token, INPUTS[component], None)
        return {"urn": result.urn, **result.state}
    capture = run_program(program, stack="dev", raw={}, project="team-app")
    # The component registers its own token (cnplatform:<module>:<Type>) and its outputs resolve.
    assert capture.outputs["urn"].endswith("::team") and "$cnplatform:" in capture.outputs["urn"]
    assert set(capture.outputs) - {"urn"} == set(schema["resources"][token].get("properties", {}))
    assert [r for r in capture.resources if r.parent.endswith("::team")], "it registered no child"


def test_components_md_has_the_hosted_table():
    text = (ROOT / "docs" / "components.md").read_text()
    assert "pulumi package add" in text
    assert "\n".join(hosted_table()) in text
