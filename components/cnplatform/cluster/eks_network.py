"""The VPC of an EKS cluster: subnets over up to 3 zones, internet and NAT gateways, security groups.

Part of :class:`cnplatform.cluster.eks.EksCluster` (its resources are the cluster's children, under
the same names); split out so each module tells one thing. Pure helpers (subnet allocation, tags)
beside the wiring that uses them.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from cnplatform.cluster.eks_spec import MAX_ZONES

#: Tag Karpenter's EC2NodeClass selects subnets and security groups by.
DISCOVERY_TAG = "karpenter.sh/discovery"


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs: private subnets take a quarter of the VPC each (room for VPC-CNI pod IPs),
    public ones a sixteenth each, carved from the last quarter."""
    if not 1 <= zones <= MAX_ZONES:
        raise ValueError(f"an EKS VPC spans 1 to {MAX_ZONES} zones (got {zones})")
    quarters: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(
        ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2))
    private = [str(q) for q in quarters[:zones]]
    public = [str(s) for s in list(quarters[3].subnets(prefixlen_diff=2))[:zones]]
    return private, public


def nat_gateway_count(zones: int, nat_per_zone: bool) -> int:
    return zones if nat_per_zone else 1


def subnet_tags(cluster: str, public: bool) -> dict[str, str]:
    """Tags the AWS Load Balancer Controller / cloud provider and Karpenter discover subnets by."""
    tags = {f"kubernetes.io/cluster/{cluster}": "shared"}
    if public:
        tags["kubernetes.io/role/elb"] = "1"
    else:
        tags["kubernetes.io/role/internal-elb"] = "1"
        tags[DISCOVERY_TAG] = cluster
    return tags


#: Ingress rules between the two security groups: (rule, group, protocol, port, source group, description).
SECURITY_GROUP_RULES = (
    ("cp-https-from-nodes", "control_plane", "tcp", 443, "nodes", "API server from the nodes"),
    ("nodes-from-nodes", "nodes", "-1", None, "nodes", "node to node (pods, DNS)"),
    ("nodes-kubelet-from-cp", "nodes", "tcp", 10250, "control_plane", "kubelet from the control plane"),
    ("nodes-webhooks-from-cp", "nodes", "tcp", 443, "control_plane", "webhooks from the control plane"),
)


@dataclass
class EksNetwork:
    vpc: aws.ec2.Vpc
    public: list[aws.ec2.Subnet]
    private: list[aws.ec2.Subnet]
    #: ``/32`` of each NAT gateway's Elastic IP: the cluster's egress, allow-listed on API endpoints.
    nat_ips: list[pulumi.Output[str]]
    control_plane_sg: aws.ec2.SecurityGroup
    node_sg: aws.ec2.SecurityGroup


def eks_network(name: str, args, zones: list[str], child: pulumi.ResourceOptions) -> EksNetwork:
    """Create the network of cluster ``name`` (``args``: its :class:`EksClusterArgs`) under ``child``."""
    region = args.region
    vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.vpc_cidr, enable_dns_hostnames=True,
                      enable_dns_support=True, region=region, tags={"Name": name}, opts=child)
    public, private = _subnets(name, args, zones, vpc, child)
    igw = _public_routes(name, region, zones, vpc, public, child)
    nats, nat_ips = _nat_gateways(name, args, zones, public, igw, child)
    _private_routes(name, region, zones, vpc, private, nats, child)
    control_plane_sg, node_sg = _security_groups(name, region, vpc, child)
    return EksNetwork(vpc=vpc, public=public, private=private, nat_ips=nat_ips,
                      control_plane_sg=control_plane_sg, node_sg=node_sg)


def _subnets(name: str, args, zones: list[str], vpc: aws.ec2.Vpc,
             child: pulumi.ResourceOptions) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.Subnet]]:
    """(public, private) subnets, one of each per zone."""
    region = args.region
    private_cidrs, public_cidrs = subnet_cidrs(args.vpc_cidr, len(zones))
    public, private = [], []
    for zone, pub_cidr, priv_cidr in zip(zones, public_cidrs, private_cidrs, strict=True):
        public.append(aws.ec2.Subnet(
            f"{name}-public-{zone}", vpc_id=vpc.id, cidr_block=pub_cidr, availability_zone=zone,
            map_public_ip_on_launch=False, region=region,
            tags={"Name": f"{name}-public-{zone}", **subnet_tags(name, public=True)}, opts=child))
        private.append(aws.ec2.Subnet(
            f"{name}-private-{zone}", vpc_id=vpc.id, cidr_block=priv_cidr, availability_zone=zone,
            region=region, tags={"Name": f"{name}-private-{zone}", **subnet_tags(name, public=False)},
            opts=child))
    return public, private


def _public_routes(name: str, region: str, zones: list[str], vpc: aws.ec2.Vpc, public: list[aws.ec2.Subnet],
                   child: pulumi.ResourceOptions) -> aws.ec2.InternetGateway:
    """The internet gateway and the public subnets' default route to it."""
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, region=region, tags={"Name": name}, opts=child)
    public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=vpc.id, region=region,
                                   tags={"Name": f"{name}-public"}, opts=child)
    aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0",
                  gateway_id=igw.id, region=region, opts=child)
    for zone, subnet in zip(zones, public, strict=True):
        aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=subnet.id, route_table_id=public_rt.id,
                                      region=region, opts=child)
    return igw


def _nat_gateways(name: str, args, zones: list[str], public: list[aws.ec2.Subnet], igw: aws.ec2.InternetGateway,
                  child: pulumi.ResourceOptions) -> tuple[list[aws.ec2.NatGateway], list[pulumi.Output[str]]]:
    """NAT gateways (one per zone, or one) on Elastic IPs, and the ``/32`` of each."""
    region = args.region
    after_igw = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[igw]))
    nats, nat_ips = [], []
    for i in range(nat_gateway_count(len(zones), args.nat_per_zone)):
        zone = zones[i]
        eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", region=region,
                          tags={"Name": f"{name}-nat-{zone}"}, opts=child)
        nat_ips.append(eip.public_ip.apply(lambda ip: f"{ip}/32"))
        nats.append(aws.ec2.NatGateway(f"{name}-nat-{zone}", allocation_id=eip.allocation_id,
                                       subnet_id=public[i].id, region=region,
                                       tags={"Name": f"{name}-nat-{zone}"}, opts=after_igw))
    return nats, nat_ips


def _private_routes(name: str, region: str, zones: list[str], vpc: aws.ec2.Vpc, private: list[aws.ec2.Subnet],
                    nats: list[aws.ec2.NatGateway], child: pulumi.ResourceOptions) -> None:
    """A route table per private subnet, its default route through a NAT gateway (its zone's, if any)."""
    for i, (zone, subnet) in enumerate(zip(zones, private, strict=True)):
        rt = aws.ec2.RouteTable(f"{name}-private-{zone}", vpc_id=vpc.id, region=region,
                                tags={"Name": f"{name}-private-{zone}"}, opts=child)
        aws.ec2.Route(f"{name}-private-{zone}-default", route_table_id=rt.id, destination_cidr_block="0.0.0.0/0",
                      nat_gateway_id=nats[i % len(nats)].id, region=region, opts=child)
        aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=subnet.id, route_table_id=rt.id,
                                      region=region, opts=child)


def _security_groups(name: str, region: str, vpc: aws.ec2.Vpc,
                     child: pulumi.ResourceOptions) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
    """The control plane's and the nodes' security groups with :data:`SECURITY_GROUP_RULES`, all egress."""
    groups = {
        "control_plane": aws.ec2.SecurityGroup(
            f"{name}-control-plane", name=f"{name}-control-plane", vpc_id=vpc.id, region=region,
            description=f"EKS {name} control plane: HTTPS from the nodes", tags={"Name": f"{name}-control-plane"},
            opts=child),
        "nodes": aws.ec2.SecurityGroup(
            f"{name}-nodes", name=f"{name}-nodes", vpc_id=vpc.id, region=region,
            description=f"EKS {name} nodes (managed node groups and Karpenter)",
            tags={"Name": f"{name}-nodes", DISCOVERY_TAG: name}, opts=child),
    }
    for rule, group, proto, port, source, description in SECURITY_GROUP_RULES:
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-{rule}", security_group_id=groups[group].id, referenced_security_group_id=groups[source].id,
            ip_protocol=proto, from_port=port, to_port=port, description=description, region=region,
            opts=child)
    for rule, group in (("cp-egress", "control_plane"), ("nodes-egress", "nodes")):
        aws.vpc.SecurityGroupEgressRule(f"{name}-{rule}", security_group_id=groups[group].id, ip_protocol="-1",
                                        cidr_ipv4="0.0.0.0/0", description="all egress (NAT, VPC)",
                                        region=region, opts=child)
    return groups["control_plane"], groups["nodes"]
