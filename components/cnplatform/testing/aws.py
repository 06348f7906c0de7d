"""Realistic AWS outputs and provider calls for the offline render and the tests.

Loaded by :mod:`cnplatform.testing.mocks` on the first ``aws:`` resource or call (never on the dev path).
Ids are deterministic (derived from the resource name), ARNs carry account ``123456789012`` and the
resource's region when it has one (``region`` input; else ``us-east-1``).
"""
from __future__ import annotations

import base64
import hashlib

from cnplatform.testing.mocks import ACCOUNT_ID, mock_call, mock_output

DEFAULT_REGION = "us-east-1"
PARTITION = "aws"


def _hex(name: str, n: int = 17) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:n]


def _region(inputs: dict) -> str:
    return inputs.get("region") or DEFAULT_REGION


def _name(name: str, inputs: dict) -> str:
    return inputs.get("name") or name


# ---------------------------------------------------------------------------------------- calls


@mock_call("aws:index/getAvailabilityZones:getAvailabilityZones")
def _zones(args: dict) -> dict:
    region = args.get("region") or DEFAULT_REGION
    suffixes = "abcdef"
    short = "".join(part[0] for part in region.split("-")[:-1]) + region.rsplit("-", 1)[-1]  # us-east-1 -> ue1
    return {
        "id": region, "region": region, "state": args.get("state", "available"),
        "names": [f"{region}{s}" for s in suffixes],
        "zoneIds": [f"{short}-az{i + 1}" for i in range(len(suffixes))],
        "groupNames": [region] * len(suffixes),
    }


@mock_call("aws:index/getCallerIdentity:getCallerIdentity")
def _caller(args: dict) -> dict:
    return {"id": ACCOUNT_ID, "accountId": ACCOUNT_ID, "userId": "AROAEXAMPLEPLATFORM:pulumi",
            "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/platform-deployer/pulumi"}


@mock_call("aws:index/getPartition:getPartition")
def _partition(args: dict) -> dict:
    return {"id": PARTITION, "partition": PARTITION, "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws"}


@mock_call("aws:index/getRegion:getRegion")
def _get_region(args: dict) -> dict:
    region = args.get("region") or args.get("name") or DEFAULT_REGION
    return {"id": region, "name": region, "region": region, "endpoint": f"ec2.{region}.amazonaws.com",
            "description": region}


# ---------------------------------------------------------------------------------------- resources


@mock_output("aws:eks/cluster:Cluster")
def _eks_cluster(name: str, inputs: dict) -> dict:
    region = _region(inputs)
    cluster = _name(name, inputs)
    oidc_id = _hex(cluster, 32).upper()
    host = f"{_hex(cluster, 32).upper()}.gr7.{region}.eks.amazonaws.com"
    ca = base64.b64encode(f"-----BEGIN CERTIFICATE-----\nMOCK{cluster}\n-----END CERTIFICATE-----\n".encode()).decode()
    vpc = dict(inputs.get("vpcConfig") or {})
    vpc.update({"clusterSecurityGroupId": f"sg-{_hex(cluster + '-eks-cluster-sg')}",
                "vpcId": f"vpc-{_hex(cluster + '-vpc')}"})
    return {
        "__id": cluster, "name": cluster,
        "arn": f"arn:aws:eks:{region}:{ACCOUNT_ID}:cluster/{cluster}",
        "endpoint": f"https://{host}",
        "certificateAuthority": {"data": ca},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc_id}"}]}],
        "vpcConfig": vpc,
        "status": "ACTIVE", "platformVersion": "eks.20",
    }


@mock_output("aws:iam/role:Role")
def _role(name: str, inputs: dict) -> dict:
    role = _name(name, inputs)
    return {"__id": role, "name": role, "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}",
            "uniqueId": f"AROA{_hex(role, 17).upper()}"}


@mock_output("aws:iam/policy:Policy")
def _policy(name: str, inputs: dict) -> dict:
    policy = _name(name, inputs)
    arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{policy}"
    return {"__id": arn, "name": policy, "arn": arn, "policyId": f"ANPA{_hex(policy, 17).upper()}"}


@mock_output("aws:iam/instanceProfile:InstanceProfile")
def _instance_profile(name: str, inputs: dict) -> dict:
    profile = _name(name, inputs)
    return {"__id": profile, "name": profile, "arn": f"arn:aws:iam::{ACCOUNT_ID}:instance-profile/{profile}"}


@mock_output("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
def _oidc_provider(name: str, inputs: dict) -> dict:
    url = str(inputs.get("url") or f"oidc.eks.{DEFAULT_REGION}.amazonaws.com/id/{_hex(name, 32).upper()}")
    arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{url.removeprefix('https://')}"
    return {"__id": arn, "arn": arn}


@mock_output("aws:kms/key:Key")
def _kms_key(name: str, inputs: dict) -> dict:
    h = _hex(name, 32)
    key_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    return {"__id": key_id, "keyId": key_id, "arn": f"arn:aws:kms:{_region(inputs)}:{ACCOUNT_ID}:key/{key_id}"}


@mock_output("aws:kms/alias:Alias")
def _kms_alias(name: str, inputs: dict) -> dict:
    alias = _name(name, inputs)
    return {"__id": alias, "arn": f"arn:aws:kms:{_region(inputs)}:{ACCOUNT_ID}:{alias}"}


@mock_output("aws:cloudwatch/logGroup:LogGroup")
def _log_group(name: str, inputs: dict) -> dict:
    group = _name(name, inputs)
    return {"__id": group, "arn": f"arn:aws:logs:{_region(inputs)}:{ACCOUNT_ID}:log-group:{group}"}


def _ec2(prefix: str, kind: str):
    def outputs(name: str, inputs: dict) -> dict:
        rid = f"{prefix}-{_hex(name)}"
        return {"__id": rid, "arn": f"arn:aws:ec2:{_region(inputs)}:{ACCOUNT_ID}:{kind}/{rid}"}
    return outputs


mock_output("aws:ec2/vpc:Vpc")(_ec2("vpc", "vpc"))
mock_output("aws:ec2/subnet:Subnet")(_ec2("subnet", "subnet"))
mock_output("aws:ec2/internetGateway:InternetGateway")(_ec2("igw", "internet-gateway"))
mock_output("aws:ec2/natGateway:NatGateway")(_ec2("nat", "natgateway"))
mock_output("aws:ec2/routeTable:RouteTable")(_ec2("rtb", "route-table"))
mock_output("aws:ec2/securityGroup:SecurityGroup")(_ec2("sg", "security-group"))
mock_output("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")(_ec2("sgr", "security-group-rule"))
mock_output("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")(_ec2("sgr", "security-group-rule"))


@mock_output("aws:ec2/eip:Eip")
def _eip(name: str, inputs: dict) -> dict:
    h = int(_hex(name, 4), 16)
    alloc = f"eipalloc-{_hex(name)}"
    return {"__id": alloc, "allocationId": alloc, "publicIp": f"198.51.100.{h % 250 + 1}"}


@mock_output("aws:ec2/launchTemplate:LaunchTemplate")
def _launch_template(name: str, inputs: dict) -> dict:
    lt = f"lt-{_hex(name)}"
    return {"__id": lt, "latestVersion": 1, "defaultVersion": 1,
            "arn": f"arn:aws:ec2:{_region(inputs)}:{ACCOUNT_ID}:launch-template/{lt}"}


@mock_output("aws:eks/nodeGroup:NodeGroup")
def _node_group(name: str, inputs: dict) -> dict:
    group = inputs.get("nodeGroupName") or name
    cluster = inputs.get("clusterName", "cluster")
    return {"__id": f"{cluster}:{group}", "status": "ACTIVE",
            "arn": f"arn:aws:eks:{_region(inputs)}:{ACCOUNT_ID}:nodegroup/{cluster}/{group}/{_hex(name, 8)}"}


@mock_output("aws:eks/addon:Addon")
def _addon(name: str, inputs: dict) -> dict:
    cluster, addon = inputs.get("clusterName", "cluster"), inputs.get("addonName", name)
    return {"__id": f"{cluster}:{addon}",
            "arn": f"arn:aws:eks:{_region(inputs)}:{ACCOUNT_ID}:addon/{cluster}/{addon}/{_hex(name, 8)}"}


@mock_output("aws:eks/accessEntry:AccessEntry")
def _access_entry(name: str, inputs: dict) -> dict:
    cluster = inputs.get("clusterName", "cluster")
    return {"__id": f"{cluster}:{inputs.get('principalArn', name)}",
            "accessEntryArn": f"arn:aws:eks:{_region(inputs)}:{ACCOUNT_ID}:access-entry/{cluster}/{_hex(name, 8)}"}


@mock_output("aws:sqs/queue:Queue")
def _queue(name: str, inputs: dict) -> dict:
    region, queue = _region(inputs), _name(name, inputs)
    url = f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{queue}"
    return {"__id": url, "name": queue, "url": url, "arn": f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{queue}"}


@mock_output("aws:cloudwatch/eventRule:EventRule")
def _event_rule(name: str, inputs: dict) -> dict:
    rule = _name(name, inputs)
    return {"__id": rule, "name": rule, "arn": f"arn:aws:events:{_region(inputs)}:{ACCOUNT_ID}:rule/{rule}"}


# ------------------------------------------------------- resources other components create on AWS


@mock_output("aws:rds/instance:Instance")
def _rds_instance(name: str, inputs: dict) -> dict:
    region, ident = _region(inputs), inputs.get("identifier") or name
    address = f"{ident}.{_hex('rds' + ACCOUNT_ID + region, 12)}.{region}.rds.amazonaws.com"
    port = int(inputs.get("port") or 3306)
    return {"__id": ident, "identifier": ident, "address": address, "endpoint": f"{address}:{port}", "port": port,
            "arn": f"arn:aws:rds:{region}:{ACCOUNT_ID}:db:{ident}", "resourceId": f"db-{_hex(ident, 26).upper()}",
            "hostedZoneId": "Z2R2ITUGPM61AM"}


@mock_output("aws:rds/subnetGroup:SubnetGroup")
def _rds_subnet_group(name: str, inputs: dict) -> dict:
    group = _name(name, inputs)
    return {"__id": group, "name": group, "arn": f"arn:aws:rds:{_region(inputs)}:{ACCOUNT_ID}:subgrp:{group}"}


@mock_output("aws:ecr/repository:Repository")
def _ecr_repository(name: str, inputs: dict) -> dict:
    region, repo = _region(inputs), _name(name, inputs)
    return {"__id": repo, "name": repo, "registryId": ACCOUNT_ID,
            "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{repo}",
            "arn": f"arn:aws:ecr:{region}:{ACCOUNT_ID}:repository/{repo}"}


@mock_call("aws:ecr/getAuthorizationToken:getAuthorizationToken")
def _ecr_token(args: dict) -> dict:
    region = args.get("region") or DEFAULT_REGION
    return {"id": region, "region": region, "registryId": args.get("registryId") or ACCOUNT_ID,
            "userName": "AWS", "password": "secret::ecr-token", "authorizationToken": "secret::ecr-auth",
            "proxyEndpoint": f"https://{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com",
            "expiresAt": "2030-01-01T00:00:00Z"}
