"""Realistic GCP outputs and provider calls for the offline render and the tests.

Loaded by :mod:`cnplatform.testing.mocks` on the first ``gcp:`` resource or call (never on the dev path).
Ids follow the real formats (``projects/<p>/locations/<l>/...``), self links the compute API's.
"""
from __future__ import annotations

import base64
import hashlib

from cnplatform.testing.mocks import fake_pem, mock_call, mock_output

COMPUTE = "https://www.googleapis.com/compute/v1"


def _hex(name: str, n: int = 12) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:n]


def _project(inputs: dict) -> str:
    return inputs.get("project") or "my-gcp-project"


def project_number(project: str) -> str:
    """A stable 12-digit project number per project id."""
    return str(100000000000 + int(_hex(project, 10), 16) % 900000000000)


# ---------------------------------------------------------------------------------------- calls


@mock_call("gcp:container/getEngineVersions:getEngineVersions")
def _engine_versions(args: dict) -> dict:
    prefix = (args.get("versionPrefix") or "1.35.").rstrip(".")
    minors = ["1.34", "1.35", "1.36"]
    valid = [f"{m}.{p}-gke.{b}" for m in reversed(minors) for p, b in ((9, 1000), (7, 1200))]
    matching = [v for v in valid if v.startswith(prefix + ".")] or valid
    latest = matching[0]
    channel = {"RAPID": f"{minors[-1]}.9-gke.1000", "REGULAR": latest, "STABLE": matching[-1]}
    return {
        "id": args.get("location", ""), "location": args.get("location"), "project": args.get("project"),
        "versionPrefix": args.get("versionPrefix"),
        "latestMasterVersion": latest, "latestNodeVersion": latest, "defaultClusterVersion": matching[-1],
        "validMasterVersions": matching, "validNodeVersions": matching,
        "releaseChannelDefaultVersion": channel, "releaseChannelLatestVersion": channel,
        "releaseChannelUpgradeTargetVersion": channel,
    }


@mock_call("gcp:organizations/getProject:getProject", "gcp:projects/getProject:getProject")
def _get_project(args: dict) -> dict:
    project = args.get("projectId") or "my-gcp-project"
    return {"id": f"projects/{project}", "projectId": project, "name": project,
            "number": project_number(project), "labels": {}, "effectiveLabels": {}}


@mock_call("gcp:compute/getZones:getZones")
def _zones(args: dict) -> dict:
    region = args.get("region") or "europe-west1"
    return {"id": f"projects/{args.get('project')}/regions/{region}", "region": region,
            "project": args.get("project"), "names": [f"{region}-{s}" for s in "bcd"], "status": "UP"}


# ---------------------------------------------------------------------------------------- resources


@mock_output("gcp:compute/network:Network")
def _network(name: str, inputs: dict) -> dict:
    project, net = _project(inputs), inputs.get("name") or name
    return {"__id": f"projects/{project}/global/networks/{net}", "name": net,
            "selfLink": f"{COMPUTE}/projects/{project}/global/networks/{net}",
            "networkId": str(int(_hex(net, 12), 16)), "gatewayIpv4": ""}


@mock_output("gcp:compute/subnetwork:Subnetwork")
def _subnetwork(name: str, inputs: dict) -> dict:
    project, region, sub = _project(inputs), inputs.get("region"), inputs.get("name") or name
    cidr = str(inputs.get("ipCidrRange", "10.0.0.0/20"))
    return {"__id": f"projects/{project}/regions/{region}/subnetworks/{sub}", "name": sub,
            "selfLink": f"{COMPUTE}/projects/{project}/regions/{region}/subnetworks/{sub}",
            "gatewayAddress": cidr.split("/")[0].rsplit(".", 1)[0] + ".1"}


@mock_output("gcp:compute/router:Router")
def _router(name: str, inputs: dict) -> dict:
    project, region, router = _project(inputs), inputs.get("region"), inputs.get("name") or name
    return {"__id": f"projects/{project}/regions/{region}/routers/{router}", "name": router,
            "selfLink": f"{COMPUTE}/projects/{project}/regions/{region}/routers/{router}"}


@mock_output("gcp:compute/routerNat:RouterNat")
def _router_nat(name: str, inputs: dict) -> dict:
    project, region, nat = _project(inputs), inputs.get("region"), inputs.get("name") or name
    return {"__id": f"{project}/{region}/{inputs.get('router')}/{nat}", "name": nat}


@mock_output("gcp:serviceaccount/account:Account")
def _service_account(name: str, inputs: dict) -> dict:
    project, account = _project(inputs), inputs.get("accountId") or name
    email = f"{account}@{project}.iam.gserviceaccount.com"
    return {"__id": f"projects/{project}/serviceAccounts/{email}", "email": email,
            "name": f"projects/{project}/serviceAccounts/{email}", "member": f"serviceAccount:{email}",
            "uniqueId": str(100000000000000000000 + int(_hex(email, 16), 16) % 10 ** 20)}


@mock_output("gcp:kms/keyRing:KeyRing")
def _key_ring(name: str, inputs: dict) -> dict:
    ring = inputs.get("name") or name
    return {"__id": f"projects/{_project(inputs)}/locations/{inputs.get('location')}/keyRings/{ring}", "name": ring}


@mock_output("gcp:kms/cryptoKey:CryptoKey")
def _crypto_key(name: str, inputs: dict) -> dict:
    key = inputs.get("name") or name
    return {"__id": f"{inputs.get('keyRing')}/cryptoKeys/{key}", "name": key}


@mock_output("gcp:container/cluster:Cluster")
def _gke_cluster(name: str, inputs: dict) -> dict:
    project, location, cluster = _project(inputs), inputs.get("location"), inputs.get("name") or name
    h = int(_hex(cluster, 6), 16)
    ca = base64.b64encode(f"-----BEGIN CERTIFICATE-----\nMOCK{cluster}\n-----END CERTIFICATE-----\n".encode()).decode()
    return {
        "__id": f"projects/{project}/locations/{location}/clusters/{cluster}", "name": cluster,
        "endpoint": f"34.{h % 200 + 10}.{(h >> 8) % 250}.{(h >> 16) % 250 + 1}",
        "masterAuth": {"clusterCaCertificate": ca, "clientCertificateConfig": {"issueClientCertificate": False}},
        "selfLink": f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}",
        "masterVersion": f"{inputs.get('minMasterVersion', '1.35')}.7-gke.1200",
        "operation": None, "servicesIpv4Cidr": "10.24.0.0/20",
    }


@mock_output("gcp:container/nodePool:NodePool")
def _node_pool(name: str, inputs: dict) -> dict:
    pool = inputs.get("name") or name
    return {"__id": f"projects/{_project(inputs)}/locations/{inputs.get('location')}/clusters/"
                    f"{inputs.get('cluster')}/nodePools/{pool}", "name": pool,
            "instanceGroupUrls": [], "managedInstanceGroupUrls": []}


# ------------------------------------------------------- resources other components create on GCP


@mock_call("gcp:organizations/getClientConfig:getClientConfig")
def _client_config(args: dict) -> dict:
    return {"id": "client-config", "accessToken": "secret::gcp-access-token", "project": "my-gcp-project",
            "region": "europe-west1", "zone": "europe-west1-b", "defaultLabels": {}}


@mock_output("gcp:compute/address:Address")
def _address(name: str, inputs: dict) -> dict:
    """A static external IPv4 (documentation range 203.0.113.0/24 is the operators'; use 192.0.2.0/24)."""
    h = int(_hex(name, 4), 16)
    return {"address": f"192.0.2.{h % 250 + 1}",
            "selfLink": f"https://www.googleapis.com/compute/v1/projects/{_project(inputs)}/regions/"
                        f"{inputs.get('region', 'r')}/addresses/{inputs.get('name', name)}"}


@mock_output("gcp:compute/globalAddress:GlobalAddress")
def _global_address(name: str, inputs: dict) -> dict:
    project, address = _project(inputs), inputs.get("name") or name
    octet = int(_hex(address, 2), 16) % 60 + 100  # 10.100.0.0 .. 10.159.0.0
    return {"__id": f"projects/{project}/global/addresses/{address}", "name": address,
            "address": f"10.{octet}.0.0",
            "selfLink": f"{COMPUTE}/projects/{project}/global/addresses/{address}"}


@mock_output("gcp:servicenetworking/connection:Connection")
def _psa_connection(name: str, inputs: dict) -> dict:
    return {"__id": f"{inputs.get('network')}:{inputs.get('service')}", "peering": "servicenetworking-googleapis-com"}


@mock_output("gcp:sql/databaseInstance:DatabaseInstance")
def _sql_instance(name: str, inputs: dict) -> dict:
    project, region, inst = _project(inputs), inputs.get("region"), inputs.get("name") or name
    h = int(_hex(inst, 4), 16)
    ip = f"10.{h % 60 + 100}.0.{h % 250 + 3}"
    return {"__id": inst, "name": inst, "connectionName": f"{project}:{region}:{inst}",
            "privateIpAddress": ip, "ipAddresses": [{"ipAddress": ip, "type": "PRIVATE"}],
            "selfLink": f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{project}/instances/{inst}",
            "serviceAccountEmailAddress":
                f"p{project_number(project)}-{_hex(inst, 6)}@gcp-sa-cloud-sql.iam.gserviceaccount.com",
            "serverCaCerts": [{"cert": fake_pem("CERTIFICATE", f"{inst}-server-ca"), "commonName": f"C={inst}",
                               "sha1Fingerprint": _hex(inst + "-ca", 40)}]}


@mock_output("gcp:artifactregistry/repository:Repository")
def _artifact_repository(name: str, inputs: dict) -> dict:
    project, location, repo = _project(inputs), inputs.get("location"), inputs.get("repositoryId") or name
    return {"__id": f"projects/{project}/locations/{location}/repositories/{repo}",
            "name": repo, "registryUri": f"{location}-docker.pkg.dev/{project}/{repo}"}
