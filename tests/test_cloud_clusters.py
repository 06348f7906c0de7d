"""EKS and GKE clusters (issue #5): the common interface (parity with kind), stable kubeconfigs, network,
node groups, encryption, protection per tier, and Kubernetes resources never stranded by a deleted cluster.

Everything runs under Pulumi mocks (the code path of ``pulumi up``): checked-in stacks through the cached
``capture_stack``, small variants through cluster-only programs (no layers, a fraction of a second each).
"""
import asyncio
import ipaddress
import json

import pytest
import yaml

from cnplatform.cluster import eks, gke
from cnplatform.cluster.base import NodePoolSpec, pools_capacity
from cnplatform.cluster.capacity import NodeCapacity
from cnplatform.testing import Capture, Secret, unwrap
from stacks.checks import check_config
from stacks.compose.clusters import create_cluster
from tests.helpers import capture_stack, config_of, run_program

K8S_TYPES_NOT_OBJECTS = ("pulumi:providers:kubernetes",)
IDENTITY_KEYS = {"none": set(), "irsa": {"oidc_provider_arn", "oidc_issuer_url"},
                 "workload-identity": {"pool", "project"}}
INTERFACE = ("cluster_name", "cloud", "region", "zones", "endpoint", "kubeconfig", "registry_url",
             "workload_identity", "node_cpu_millicores", "node_memory_mib")

DEPLOYER = "arn:aws:iam::123456789012:role/deploy"
EKS = {"name": "shop-eks", "cloud": "aws", "region": "eu-central-1", "kubernetes_version": "1.35",
       "node_pools": [{"name": "workload", "machine_type": "m6i.large", "min_size": 2, "max_size": 6}],
       "aws": {"deployer_role_arns": [DEPLOYER]}}
GKE = {"name": "shop-gke", "cloud": "gcp", "region": "europe-west1", "kubernetes_version": "1.35",
       "node_pools": [{"name": "workload", "machine_type": "e2-standard-4", "min_size": 1, "max_size": 4}],
       "gcp": {"project": "acme-test"}}
LOCAL = {"name": "dev", "cloud": "local"}


def stack_raw(tier: str, cluster: dict, **extra) -> dict:
    """A minimal stack: one cluster, no layers that need more than the cluster."""
    return {"tier": tier, "clusters": [cluster], "mesh": {"enabled": False}, "monitoring": {"enabled": False},
            "cicd": {"enabled": False}, "addons": {"metrics_server": False, "cert_manager": {"enabled": False},
                                                   "karpenter": {"enabled": False}}, **extra}


def run_cluster(raw: dict) -> tuple[Capture, dict, object]:
    """Only the cluster factory (what stacks.platform calls first) under mocks; returns the capture,
    the resolved interface attributes, and the component."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    cfg = check_config(raw)
    holder = {}

    def program():
        cluster = create_cluster(cfg, cfg.clusters[0])
        holder["cluster"] = cluster
        return {attr: getattr(cluster, attr) for attr in INTERFACE}

    cap = run_program(program, stack="test", raw=raw, config=cfg)
    return cap, cap.outputs, holder["cluster"]


@pytest.fixture(scope="module")
def eks_run():
    return run_cluster(stack_raw("staging", EKS))


@pytest.fixture(scope="module")
def gke_run():
    return run_cluster(stack_raw("staging", GKE))


@pytest.fixture(scope="module")
def local_run():
    return run_cluster(stack_raw("dev", LOCAL))


def one(cap: Capture, type_: str, name: str = None):
    regs = [r for r in cap.by_type(type_) if name is None or r.name == name]
    assert len(regs) == 1, f"{type_} {name}: {[r.name for r in regs]}"
    return regs[0]


def inputs(reg) -> dict:
    return unwrap(reg.inputs)


# ------------------------------------------------------------------------------------------ parity


def check_cluster_interface(out: dict, kubeconfig, cloud: str, name: str) -> None:
    """THE checks every implementation of the cluster interface passes (kind, EKS, GKE)."""
    assert out["cloud"] == cloud
    assert isinstance(out["region"], str) and out["region"]
    assert isinstance(out["zones"], list) and out["zones"] and all(isinstance(z, str) and z for z in out["zones"])
    assert out["endpoint"].startswith("https://") and len(out["endpoint"]) > len("https://")
    assert isinstance(out["registry_url"], str) and "://" not in out["registry_url"]
    assert bool(out["registry_url"]) is (cloud != "local")  # kind has no registry
    identity = out["workload_identity"]
    assert identity["type"] in IDENTITY_KEYS and IDENTITY_KEYS[identity["type"]] <= set(identity)
    assert all(isinstance(v, str) and v for v in identity.values())
    assert isinstance(kubeconfig, Secret), "the kubeconfig output must be secret"
    doc = yaml.safe_load(kubeconfig.value)
    context = next(c["context"] for c in doc["contexts"] if c["name"] == doc["current-context"])
    server = next(c["cluster"]["server"] for c in doc["clusters"] if c["name"] == context["cluster"])
    assert server == out["endpoint"]
    if "cluster_name" in out:
        assert out["cluster_name"] == name
        assert isinstance(out["node_cpu_millicores"], int) and out["node_cpu_millicores"] >= 0
        assert isinstance(out["node_memory_mib"], int) and out["node_memory_mib"] >= 0


@pytest.mark.parametrize("which", ["local", "eks", "gke"])
def test_cluster_interface_parity(which, request):
    cap, out, cluster = request.getfixturevalue(f"{which}_run")
    cloud = {"local": "local", "eks": "aws", "gke": "gcp"}[which]
    check_cluster_interface(out, out["kubeconfig"], cloud, cap.config.clusters[0].name)
    assert cluster.capacity == NodeCapacity(out["node_cpu_millicores"], out["node_memory_mib"])
    (provider,) = cap.by_type("pulumi:providers:kubernetes")
    # Only kind is disposable: a cloud API outage during refresh must not drop objects from the state.
    assert provider.inputs.get("deleteUnreachable") in ((True, "true") if which == "local" else (None, False))
    assert isinstance(provider.inputs["kubeconfig"], Secret)
    assert cluster.provider is not None and isinstance(cluster.ready, list)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_outputs_parity(stack):
    """The same checks on the stack outputs StackReference consumers read (docs/clusters.md)."""
    cap = capture_stack(stack)
    clusters, kubeconfigs = cap.outputs["clusters"], cap.outputs["kubeconfigs"]
    assert isinstance(kubeconfigs, Secret)
    assert set(clusters) == {c.name for c in cap.config.clusters}
    for c in cap.config.clusters:
        check_cluster_interface(clusters[c.name], Secret(kubeconfigs.value[c.name]), c.cloud, c.name)


def test_cloud_capacity_is_the_workload_pools_at_max_size(eks_run, gke_run):
    for (_, out, cluster), raw in ((eks_run, EKS), (gke_run, GKE)):
        pools = [NodePoolSpec(**p) for p in raw["node_pools"]]
        assert cluster.capacity == pools_capacity(pools)
        assert out["node_cpu_millicores"] > 0


# -------------------------------------------------------------------------------------- kubeconfig


def test_kubeconfig_builders_use_exec_plugins_and_only_endpoint_ca_name():
    a = eks.eks_kubeconfig("c", "https://x.gr7.eu-central-1.eks.amazonaws.com", "Q0E=", "eu-central-1")
    assert a == eks.eks_kubeconfig("c", "https://x.gr7.eu-central-1.eks.amazonaws.com", "Q0E=", "eu-central-1")
    user = yaml.safe_load(a)["users"][0]["user"]
    assert set(user) == {"exec"} and user["exec"]["command"] == "aws"
    assert user["exec"]["args"][:2] == ["eks", "get-token"]
    assert "--cluster-name" in user["exec"]["args"] and "--region" in user["exec"]["args"]
    g = yaml.safe_load(gke.gke_kubeconfig("c", "34.1.2.3", "Q0E="))
    assert set(g["users"][0]["user"]) == {"exec"}
    assert g["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert g["clusters"][0]["cluster"]["server"] == "https://34.1.2.3"


@pytest.mark.parametrize("which", ["eks", "gke"])
def test_cloud_kubeconfig_is_stable_and_holds_no_credential(which, request):
    _, out, _ = request.getfixturevalue(f"{which}_run")
    text = out["kubeconfig"].value
    doc = yaml.safe_load(text)
    user = doc["users"][0]["user"]
    assert set(user) == {"exec"}, "no token, password or client key: the exec plugin mints a token per use"
    for word in ("token:", "password", "client-key", "client-certificate"):
        assert word not in text
    # A second, independent run produces the identical document (no diff on every `pulumi up`).
    raw = stack_raw("staging", EKS if which == "eks" else GKE)
    assert run_cluster(raw)[1]["kubeconfig"].value == text


# ----------------------------------------------------------------------------------------- network


def test_subnet_plan_and_nat_count_helpers():
    private, public = eks.subnet_cidrs("10.0.0.0/16", 3)
    assert private == ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"]
    assert public == ["10.0.192.0/20", "10.0.208.0/20", "10.0.224.0/20"]
    nets = [ipaddress.ip_network(c) for c in private + public]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert eks.nat_gateway_count(3, True) == 3 and eks.nat_gateway_count(3, False) == 1
    with pytest.raises(ValueError):
        eks.subnet_cidrs("10.0.0.0/16", 4)


def test_eks_vpc_three_zones_from_the_az_lookup_with_tagged_subnets(eks_run):
    cap, out, cluster = eks_run
    assert out["zones"] == ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
    subnets = [inputs(r) for r in cap.by_type("aws:ec2/subnet:Subnet")]
    public = [s for s in subnets if s["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert len(public) == len(private) == 3
    assert {s["availabilityZone"] for s in private} == set(out["zones"])
    for s in subnets:
        assert s["tags"]["kubernetes.io/cluster/shop-eks"] == "shared"
    assert all(s["tags"]["karpenter.sh/discovery"] == "shop-eks" for s in private)
    assert not any("karpenter.sh/discovery" in s["tags"] for s in public)
    assert not any(s.get("mapPublicIpOnLaunch") for s in subnets)
    assert len(cap.by_type("aws:ec2/internetGateway:InternetGateway")) == 1
    private_routes = [inputs(r) for r in cap.by_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]
    assert len(private_routes) == 3 and all(r["destinationCidrBlock"] == "0.0.0.0/0" for r in private_routes)
    assert cluster.vpc_cidr == "10.0.0.0/16"


@pytest.mark.parametrize("tier,expected", [("staging", 1), ("prod", 3)])
def test_nat_gateways_per_tier(tier, expected, eks_run):
    cap = eks_run[0] if tier == "staging" else capture_stack("prod")
    nats = [r for r in cap.by_type("aws:ec2/natGateway:NatGateway")]
    assert len(nats) == expected
    assert len(cap.by_type("aws:ec2/eip:Eip")) == expected


def test_eks_control_plane_access_encryption_logs(eks_run):
    cap, out, _ = eks_run
    cluster = inputs(one(cap, "aws:eks/cluster:Cluster"))
    assert cluster["version"] == "1.35" and cluster["name"] == "shop-eks"
    vpc = cluster["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True and vpc["endpointPublicAccess"] is True
    # The operators' CIDR plus the cluster's own NAT egress (its pods reach the public endpoint through it).
    assert vpc["publicAccessCidrs"] == sorted({"203.0.113.0/24", *nat_cidrs(cap)["shop-eks"]})
    assert len(vpc["subnetIds"]) == 3 and len(vpc["securityGroupIds"]) == 1
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    key = inputs(one(cap, "aws:kms/key:Key"))
    assert key["enableKeyRotation"] is True
    assert cluster["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:eu-central-1:")
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    logs = inputs(one(cap, "aws:cloudwatch/logGroup:LogGroup"))
    assert logs["name"] == "/aws/eks/shop-eks/cluster" and logs["retentionInDays"] == 90
    assert one(cap, "aws:cloudwatch/logGroup:LogGroup").urn in one(cap, "aws:eks/cluster:Cluster").depends_on
    assert cluster["bootstrapSelfManagedAddons"] is False


def test_eks_access_entries_for_admins_and_node_roles():
    raw = stack_raw("staging", {**EKS, "aws": {"admin_role_arns": ["arn:aws:iam::123456789012:role/platform-admin"]}},
                    addons={"karpenter": {"enabled": True}, "metrics_server": False,
                            "cert_manager": {"enabled": False}})
    cap, _, _ = run_cluster(raw)
    entries = {r.name: inputs(r) for r in cap.by_type("aws:eks/accessEntry:AccessEntry")}
    assert entries["shop-eks-admin-0"]["principalArn"] == "arn:aws:iam::123456789012:role/platform-admin"
    assert entries["shop-eks-admin-0"]["type"] == "STANDARD"
    assert entries["shop-eks-node"]["type"] == "EC2_LINUX"
    assert entries["shop-eks-node"]["principalArn"].endswith(":role/shop-eks-node")
    assert entries["shop-eks-karpenter-node"]["type"] == "EC2_LINUX"
    assert entries["shop-eks-karpenter-node"]["principalArn"].endswith(":role/shop-eks-karpenter-node")
    (assoc,) = [inputs(r) for r in cap.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")]
    assert assoc["policyArn"].endswith("cluster-access-policy/AmazonEKSClusterAdminPolicy")
    assert assoc["accessScope"] == {"type": "cluster"}
    # With explicit admins, the creator is not bootstrapped as a hidden extra admin.
    access = inputs(one(cap, "aws:eks/cluster:Cluster"))["accessConfig"]
    assert access["bootstrapClusterCreatorAdminPermissions"] is False


def test_eks_node_groups_private_imdsv2_encrypted(eks_run):
    cap, _, _ = eks_run
    groups = {inputs(r)["nodeGroupName"]: inputs(r) for r in cap.by_type("aws:eks/nodeGroup:NodeGroup")}
    assert set(groups) == {"system", "workload"}
    private = {r.outputs.get("id") or r.id for r in cap.by_type("aws:ec2/subnet:Subnet")
               if r.inputs["tags"].get("kubernetes.io/role/internal-elb")}
    system, workload = groups["system"], groups["workload"]
    assert system["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]
    assert system["labels"]["cnplatform.io/node-pool"] == "system"
    assert system["scalingConfig"] == {"minSize": 2, "maxSize": 3, "desiredSize": 2}
    assert workload["scalingConfig"] == {"minSize": 2, "maxSize": 6, "desiredSize": 2}
    assert workload["instanceTypes"] == ["m6i.large"] and workload["capacityType"] == "ON_DEMAND"
    assert not workload.get("taints")
    for g in groups.values():
        assert set(g["subnetIds"]) == private and g["version"] == "1.35"
        assert g["amiType"] == "AL2023_x86_64_STANDARD"
    for lt in cap.by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        lt = inputs(lt)
        assert lt["metadataOptions"]["httpTokens"] == "required"
        assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 1
        (disk,) = lt["blockDeviceMappings"]
        assert disk["ebs"]["encrypted"] == "true" and disk["ebs"]["volumeType"] == "gp3"
        assert len(lt["vpcSecurityGroupIds"]) == 2


def test_eks_spot_workload_pool():
    pool = {**EKS["node_pools"][0], "spot": True}
    cap, _, _ = run_cluster(stack_raw("staging", {**EKS, "node_pools": [pool]}))
    (workload,) = [inputs(r) for r in cap.by_type("aws:eks/nodeGroup:NodeGroup") if r.name == "shop-eks-workload"]
    assert workload["capacityType"] == "SPOT"


def test_eks_oidc_addons_and_ebs_csi_irsa(eks_run):
    cap, out, cluster = eks_run
    oidc = inputs(one(cap, "aws:iam/openIdConnectProvider:OpenIdConnectProvider"))
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"] and oidc["thumbprintLists"] == eks.EKS_OIDC_THUMBPRINTS
    assert oidc["url"] == out["workload_identity"]["oidc_issuer_url"]
    addons = {inputs(r)["addonName"]: (r, inputs(r)) for r in cap.by_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"}
    for name, (_, a) in addons.items():
        assert a["addonVersion"] == eks.ADDON_VERSIONS["1.35"][name]
    # The VPC CNI ignores every NetworkPolicy unless its network policy agent is switched on.
    assert json.loads(addons["vpc-cni"][1]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    groups = {r.urn for r in cap.by_type("aws:eks/nodeGroup:NodeGroup")}
    assert groups <= set(addons["coredns"][0].depends_on)
    assert not groups & set(addons["vpc-cni"][0].depends_on)
    ebs_role = one(cap, "aws:iam/role:Role", "shop-eks-ebs-csi")
    assert addons["aws-ebs-csi-driver"][1]["serviceAccountRoleArn"] == ebs_role.outputs["arn"]
    trust = json.loads(ebs_role.inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in cond.values()
    attached = [inputs(r)["policyArn"] for r in cap.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r.name.startswith("shop-eks-ebs-csi")]
    assert attached == ["arn:aws:iam::aws:policy/AmazonEBSCSIDriverPolicy"]
    sc = [r for r in cap.by_type("kubernetes:storage.k8s.io/v1:StorageClass")]
    assert len(sc) == 1 and inputs(sc[0])["parameters"] == {"type": "gp3", "encrypted": "true"}


def test_eks_exposes_what_databases_and_registries_read(eks_run):
    _, out, cluster = eks_run
    for attr in ("vpc_id", "private_subnet_ids", "public_subnet_ids", "vpc_cidr", "cluster_security_group_id",
                 "node_security_group_id", "oidc_provider_arn", "oidc_provider_url", "node_role_arn",
                 "eks_cluster_name", "cloud_provider", "aws_provider", "account_id", "partition"):
        assert getattr(cluster, attr, None) is not None, attr
    assert cluster.account_id == "123456789012" and cluster.partition == "aws"
    assert out["registry_url"] == "123456789012.dkr.ecr.eu-central-1.amazonaws.com/shop-eks"
    assert out["workload_identity"]["oidc_provider_arn"].startswith("arn:aws:iam::123456789012:oidc-provider/")


# --------------------------------------------------------------------------------------------- GKE


def test_gke_network_private_nodes_nat(gke_run):
    cap, _, _ = gke_run
    network = inputs(one(cap, "gcp:compute/network:Network"))
    assert network["autoCreateSubnetworks"] is False
    subnet = inputs(one(cap, "gcp:compute/subnetwork:Subnetwork"))
    assert {r["rangeName"] for r in subnet["secondaryIpRanges"]} == {"pods", "services"}
    assert subnet["privateIpGoogleAccess"] is True
    nat = inputs(one(cap, "gcp:compute/routerNat:RouterNat"))
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    # Static addresses (MANUAL_ONLY): the egress peers allow-list must not change under them.
    assert nat["natIpAllocateOption"] == "MANUAL_ONLY" and len(nat["natIps"]) == 1
    cluster = inputs(one(cap, "gcp:container/cluster:Cluster"))
    assert cluster["networkingMode"] == "VPC_NATIVE"
    assert cluster["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods",
                                             "servicesSecondaryRangeName": "services"}
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster["privateClusterConfig"]["masterIpv4CidrBlock"] == "172.16.0.0/28"
    assert [b["cidrBlock"] for b in cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"]] == sorted(
        {"203.0.113.0/24", *nat_cidrs(cap)["shop-gke"]})


def test_gke_security_identity_and_encryption(gke_run):
    cap, out, cluster_obj = gke_run
    cluster = inputs(one(cap, "gcp:container/cluster:Cluster"))
    assert cluster["workloadIdentityConfig"] == {"workloadPool": "acme-test.svc.id.goog"}
    assert out["workload_identity"] == {"type": "workload-identity", "pool": "acme-test.svc.id.goog",
                                        "project": "acme-test"}
    assert cluster["releaseChannel"] == {"channel": "REGULAR"} and cluster["minMasterVersion"] == "1.35"
    assert cluster["enableShieldedNodes"] is True and cluster["datapathProvider"] == "ADVANCED_DATAPATH"
    assert cluster["removeDefaultNodePool"] is True
    key = one(cap, "gcp:kms/cryptoKey:CryptoKey")
    assert inputs(key)["rotationPeriod"] == "7776000s"
    assert cluster["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": key.id}
    grant = inputs(one(cap, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"))
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter" and grant["cryptoKeyId"] == key.id
    assert grant["member"].startswith("serviceAccount:service-")
    assert grant["member"].endswith("@container-engine-robot.iam.gserviceaccount.com")
    key_grant = one(cap, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert key_grant.urn in one(cap, "gcp:container/cluster:Cluster").depends_on
    (pool,) = [inputs(r) for r in cap.by_type("gcp:container/nodePool:NodePool")]
    assert pool["autoscaling"] == {"totalMinNodeCount": 1, "totalMaxNodeCount": 4, "locationPolicy": "BALANCED"}
    node = pool["nodeConfig"]
    assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert node["serviceAccount"] == cluster_obj_email(cap)
    assert out["registry_url"] == "europe-west1-docker.pkg.dev/acme-test/platform"


def cluster_obj_email(cap):
    return one(cap, "gcp:serviceaccount/account:Account").outputs["email"]


def test_gke_node_service_account_has_only_its_roles(gke_run):
    cap, _, cluster = gke_run
    email = cluster_obj_email(cap)
    members = [inputs(r) for r in cap.by_type("gcp:projects/iAMMember:IAMMember")]
    assert sorted(m["role"] for m in members) == sorted(gke.NODE_SA_ROLES)
    assert all(m["member"] == f"serviceAccount:{email}" and m["project"] == "acme-test" for m in members)
    assert not any(m["role"] in ("roles/owner", "roles/editor") for m in members)


def test_gke_autoscaling_profile_and_optional_node_auto_provisioning(gke_run):
    cap, _, _ = gke_run
    auto = inputs(one(cap, "gcp:container/cluster:Cluster"))["clusterAutoscaling"]
    assert auto == {"enabled": False, "autoscalingProfile": "OPTIMIZE_UTILIZATION"}
    raw = stack_raw("staging", {**GKE, "gcp": {"project": "acme-test", "auto_provisioning": True,
                                               "auto_provisioning_max_cpu": 32,
                                               "auto_provisioning_max_memory_gb": 128,
                                               "autoscaling_profile": "BALANCED"}})
    cap, _, _ = run_cluster(raw)
    auto = inputs(one(cap, "gcp:container/cluster:Cluster"))["clusterAutoscaling"]
    assert auto["enabled"] is True and auto["autoscalingProfile"] == "BALANCED"
    assert {lim["resourceType"]: lim["maximum"] for lim in auto["resourceLimits"]} == {"cpu": 32, "memory": 128}
    assert auto["autoProvisioningDefaults"]["serviceAccount"] == cluster_obj_email(cap)


def test_gke_regional_in_prod_zonal_in_staging():
    staging = inputs(one(capture_stack("staging"), "gcp:container/cluster:Cluster"))
    assert staging["location"] == "europe-west1-b" and not staging.get("nodeLocations")
    prod = capture_stack("prod")
    regional = inputs(one(prod, "gcp:container/cluster:Cluster"))
    assert regional["location"] == "europe-west1"
    assert regional["nodeLocations"] == prod.outputs["clusters"]["prod-gke"]["zones"]
    assert len(regional["nodeLocations"]) == 3
    assert gke.location_of("r", ["r-b"], regional=False) == "r-b"


# ------------------------------------------------------------------------------------- protection


PROTECTED = ("aws:eks/cluster:Cluster", "aws:kms/key:Key", "gcp:container/cluster:Cluster",
             "gcp:kms/cryptoKey:CryptoKey", "gcp:kms/keyRing:KeyRing", "aws:eks/nodeGroup:NodeGroup")


@pytest.mark.parametrize("stack,expected", [("staging", False), ("prod", True)])
def test_clusters_and_kms_keys_protected_in_prod(stack, expected):
    cap = capture_stack(stack)
    regs = [r for r in cap.resources if r.type in PROTECTED]
    assert regs and all(r.protect is expected for r in regs), [(r.name, r.protect) for r in regs]
    components = [r for r in cap.resources
                  if r.type in ("cnplatform:cluster:EksCluster", "cnplatform:cluster:GkeCluster")]
    assert components and all(r.protect is expected for r in components)
    gke_cluster = inputs(one(cap, "gcp:container/cluster:Cluster", f"{stack}-gke"))
    assert gke_cluster["deletionProtection"] is expected


def test_prod_runs_eks_and_gke_in_different_regions():
    out = capture_stack("prod").outputs["clusters"]
    assert {out[n]["cloud"] for n in out} == {"aws", "gcp"}
    assert out["prod-eks"]["region"] != out["prod-gke"]["region"]
    assert {c.cloud for c in config_of("staging").clusters} == {"gcp"}


# -------------------------------------------------------------------- deleting a cluster from config


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kubernetes_resources_never_strand_when_a_cluster_is_deleted(stack):
    """Every Kubernetes resource goes through its cluster's provider; that provider deletes
    unreachable objects from state and depends on the cluster, so removing a cluster from config
    deletes its objects (or forgets them if the API is gone) before the cluster itself."""
    cap = capture_stack(stack)
    index = {r.urn: r for r in cap.resources}
    cluster_types = {"aws": "aws:eks/cluster:Cluster", "gcp": "gcp:container/cluster:Cluster"}
    checked = 0
    for reg in cap.resources:
        if not reg.type.startswith("kubernetes:") or reg.type in K8S_TYPES_NOT_OBJECTS:
            continue
        provider = index.get(reg.provider_urn)
        assert provider is not None and provider.type == "pulumi:providers:kubernetes", reg.urn
        owner = cap._owning_cluster(provider, index)
        cluster_cfg = next(c for c in cap.config.clusters if c.name == owner)
        assert provider.inputs.get("deleteUnreachable") in (None, False), provider.name
        cloud_cluster = one(cap, cluster_types[cluster_cfg.cloud], owner)
        assert cloud_cluster.urn in provider.depends_on, f"{provider.name} must depend on {owner}"
        checked += 1
    assert checked > 20


def test_private_gke_control_plane_reaches_every_webhook_port(rendered):
    """A private GKE control plane reaches nodes on 443/10250 only; istiod's webhooks (15017,
    failurePolicy Fail) need a rule, or every injected pod is rejected (issue #15 item 1)."""
    from stacks.compose.clusters.common import control_plane_ports

    for stack in ("staging", "prod"):
        plan = json.loads((rendered(stack) / "plan.json").read_text())
        cfg = config_of(stack)
        assert 15017 in control_plane_ports(cfg) and 10250 in control_plane_ports(cfg)
        for cluster in (c for c in cfg.clusters if c.cloud == "gcp"):
            (rule,) = [r for r in plan["resources"] if r["type"] == "gcp:compute/firewall:Firewall"
                       and r["name"] == f"{cluster.name}-control-plane-webhooks"]
            assert rule["inputs"]["sourceRanges"] == [cluster.gcp.master_cidr]
            assert rule["inputs"]["allows"] == [{"protocol": "tcp", "ports": ["15017"]}]
            assert rule["inputs"]["direction"] == "INGRESS" and rule["inputs"]["targetServiceAccounts"]
    assert gke.webhook_firewall_ports([10250, 443, 15017, 8443]) == ["8443", "15017"]
    assert gke.webhook_firewall_ports([10250]) == []


def test_no_webhook_rule_when_nothing_listens_outside_the_open_ports():
    raw = stack_raw("staging", {**GKE})
    raw["mesh"] = {"enabled": False}
    cap = run_cluster(raw)[0]
    assert not [r for r in cap.by_type("gcp:compute/firewall:Firewall") if "webhooks" in r.name]


def test_eks_admins_are_declared_from_the_first_up_and_never_flip_the_bootstrap(eks_run):
    """Adding admin roles later must not flip bootstrap_cluster_creator_admin_permissions, which
    replaces a protected cluster (issue #15 item 9): it is always false, the deployer has an entry."""
    cap = eks_run[0]
    cluster = inputs(one(cap, "aws:eks/cluster:Cluster"))
    assert cluster["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is False
    entries = [inputs(r)["principalArn"] for r in cap.by_type("aws:eks/accessEntry:AccessEntry")
               if inputs(r)["type"] == "STANDARD"]
    assert entries == [DEPLOYER]
    with_admins = {"deployer_role_arns": [DEPLOYER], "admin_role_arns": ["arn:aws:iam::111111111111:role/a"]}
    more = run_cluster(stack_raw("staging", {**EKS, "aws": with_admins}))[0]
    assert inputs(one(more, "aws:eks/cluster:Cluster"))["accessConfig"] == cluster["accessConfig"]


def test_an_eks_cluster_without_a_deployer_role_is_a_config_error():
    from stacks.config import ConfigError

    with pytest.raises(ConfigError) as err:
        check_config(stack_raw("staging", {k: v for k, v in EKS.items() if k != "aws"}))
    assert "clusters[0].aws.deployer_role_arns" in str(err.value)


def nat_cidrs(cap: Capture) -> dict[str, set[str]]:
    """cluster -> the /32 of each of its NAT addresses (EIPs, Cloud NAT static addresses)."""
    out: dict[str, set[str]] = {}
    for reg in cap.by_type("aws:ec2/eip:Eip") + cap.by_type("gcp:compute/address:Address"):
        ip = reg.outputs.get("publicIp") or reg.outputs.get("address")
        out.setdefault(cap.cluster_of(reg), set()).add(f"{ip}/32")
    return out


def api_allow_lists(cap: Capture) -> dict[str, set[str]]:
    out = {}
    for reg in cap.by_type("aws:eks/cluster:Cluster"):
        out[reg.name] = set(inputs(reg)["vpcConfig"]["publicAccessCidrs"])
    for reg in cap.by_type("gcp:container/cluster:Cluster"):
        out[reg.name] = {b["cidrBlock"] for b in inputs(reg)["masterAuthorizedNetworksConfig"]["cidrBlocks"]}
    return out


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_api_reachability_matrix(stack):
    """Every client of each API endpoint is admitted explicitly and nothing else (issue #15 item 9):
    the operators' CIDRs from config, the cluster's own NAT (Jenkins' `pulumi up` from inside), and the
    NAT of each peer that reads it (istiod of a multi-cluster mesh, a Jenkins on another cluster)."""
    from stacks.compose.clusters import api_client_clusters

    cap, cfg = capture_stack(stack), config_of(stack)
    nats, allowed = nat_cidrs(cap), api_allow_lists(cap)
    assert set(allowed) == {c.name for c in cfg.clusters} and all(nats.values())
    for cluster in cfg.clusters:
        operators = set(cluster.aws.public_access_cidrs if cluster.cloud == "aws"
                        else cluster.gcp.master_authorized_networks)
        clients = api_client_clusters(cfg, cluster.name)
        expected = operators | nats[cluster.name] | {c for peer in clients for c in nats[peer]}
        assert allowed[cluster.name] == expected, cluster.name
    if stack == "prod":  # one mesh over EKS and GKE: each reads the other's API
        assert api_client_clusters(cfg, "prod-eks") == ["prod-gke"]
        assert api_client_clusters(cfg, "prod-gke") == ["prod-eks"]
        assert nats["prod-gke"] <= allowed["prod-eks"] and nats["prod-eks"] <= allowed["prod-gke"]
