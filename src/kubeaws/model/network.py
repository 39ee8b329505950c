"""Network builder: VPC, public/private subnets per AZ, internet gateway, NAT gateways with their EIPs,
route tables and their routes/associations — or, for a brought VPC, just references to what exists.

Called by `model.build`. Pure: spec in, desired resources out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeaws.model.common import Builder
from kubeaws.resources.base import Ref
from kubeaws.spec.layout import subnet_layout

ELB_ROLE = "kubernetes.io/role/elb"
INTERNAL_ELB_ROLE = "kubernetes.io/role/internal-elb"


@dataclass
class NetworkRefs:
    """What later builders need from the network."""

    vpc: Ref
    vpc_cidr: Ref | str
    public_subnets: list[Ref] = field(default_factory=list)
    private_subnets: list[Ref] = field(default_factory=list)
    azs: list[str] = field(default_factory=list)


def build_network(b: Builder) -> NetworkRefs:
    net = b.spec.spec.network
    if net.vpc.id:
        return _brought_network(b)
    assert net.vpc.cidr is not None  # VpcSpec guarantees one of cidr / id
    vpc = b.owned("Vpc", "main", {"cidr_block": net.vpc.cidr, "dns_hostnames": True})
    azs = list(net.availability_zones)
    layout = subnet_layout(net.vpc.cidr, azs, net.private_subnet_prefix, net.public_subnet_prefix)
    refs = NetworkRefs(vpc=vpc, vpc_cidr=net.vpc.cidr, azs=azs)
    for az in azs:
        refs.public_subnets.append(b.owned(
            "Subnet", f"public-{az}",
            {"vpc_id": vpc, "cidr_block": layout.public[az], "availability_zone": az,
             "map_public_ip_on_launch": True},
            extra_tags={ELB_ROLE: "1", "kubeaws.io/subnet-role": "public"}))
        refs.private_subnets.append(b.owned(
            "Subnet", f"private-{az}",
            {"vpc_id": vpc, "cidr_block": layout.private[az], "availability_zone": az,
             "map_public_ip_on_launch": False},
            extra_tags={INTERNAL_ELB_ROLE: "1", "kubeaws.io/subnet-role": "private"}))

    igw = b.owned("InternetGateway", "main", {"vpc_id": vpc})
    b.owned("RouteTable", "public", {
        "vpc_id": vpc,
        "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": igw}],
        "subnet_ids": sorted(refs.public_subnets, key=str),
    })

    nat_azs = {"none": [], "single": azs[:1], "perAZ": azs}[net.nat_mode]
    nats: dict[str, Ref] = {}
    for az, subnet in zip(azs, refs.public_subnets, strict=True):
        if az not in nat_azs:
            continue
        eip = b.owned("ElasticIp", f"nat-{az}", {"domain": "vpc"})
        nats[az] = b.owned("NatGateway", az,
                           {"subnet_id": subnet, "allocation_id": eip, "connectivity_type": "public"},
                           depends_on=(igw.key,))
    # One private route table per AZ, so switching between single and per-AZ NAT only changes routes.
    for az, subnet in zip(azs, refs.private_subnets, strict=True):
        nat = nats.get(az) or (nats[nat_azs[0]] if nat_azs else None)
        routes = [{"destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": nat}] if nat else []
        b.owned("RouteTable", f"private-{az}", {"vpc_id": vpc, "routes": routes, "subnet_ids": [subnet]})
    return refs


def _brought_network(b: Builder) -> NetworkRefs:
    net = b.spec.spec.network
    assert net.vpc.id is not None
    vpc = b.brought("Vpc", "main", net.vpc.id)
    subnets = net.subnets
    refs = NetworkRefs(vpc=vpc, vpc_cidr=Ref("Vpc", "main", "cidr"), azs=list(net.availability_zones))
    for i, subnet_id in enumerate(subnets.public if subnets else []):
        refs.public_subnets.append(b.brought("Subnet", f"public-{i}", subnet_id))
    for i, subnet_id in enumerate(subnets.private if subnets else []):
        refs.private_subnets.append(b.brought("Subnet", f"private-{i}", subnet_id))
    return refs
