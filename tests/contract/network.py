"""Contract scenarios of the EC2 network kinds: Vpc, Subnet, InternetGateway, ElasticIp, NatGateway, RouteTable,
SecurityGroup, SecurityGroupRules; and the raw prerequisites (VPC, subnets, an AMI, an instance) the other
EC2 families build on. Prerequisites are made with plain calls, untagged: they belong to no cluster.

moto adaptation: moto deletes a security group still used by a network interface, where AWS answers
DependencyViolation. `enforce_group_dependencies` gives the same answer from a `before-call` handler, so
the security group's sweep of leaked interfaces is exercised as on AWS.

Used by tests/contract/scenarios.py.
"""

from __future__ import annotations

from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from tests.contract.harness import Scenario, tags_for
from tests.fake_aws import Answer, error

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
OTHER_VPC = "vpc-0fffffffffffffff0"
OTHER_SUBNET = "subnet-0fffffffffffffff0"


# -- raw prerequisites ----------------------------------------------------------------------------------
def vpc(ctx: AwsContext) -> str:
    return str(ctx.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"])


def subnets(ctx: AwsContext, vpc_id: str, count: int = 2) -> list[str]:
    """Subnets 10.0.<i>.0/24 in us-east-1a, us-east-1b, ..."""
    return [str(ctx.call("ec2", "create_subnet", VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24",
                         AvailabilityZone=f"us-east-1{'abc'[i]}")["Subnet"]["SubnetId"]) for i in range(count)]


def group(ctx: AwsContext, vpc_id: str, name: str) -> str:
    return str(ctx.call("ec2", "create_security_group", GroupName=name, Description=name, VpcId=vpc_id)["GroupId"])


def ami(ctx: AwsContext) -> str:
    return str(ctx.call("ssm", "get_parameter", Name=AMI_PARAMETER)["Parameter"]["Value"])


def instance(ctx: AwsContext, subnet_id: str) -> str:
    reply = ctx.call("ec2", "run_instances", ImageId=ami(ctx), InstanceType="t3.micro", MinCount=1, MaxCount=1,
                     SubnetId=subnet_id)
    return str(reply["Instances"][0]["InstanceId"])


def enforce_group_dependencies(ctx: AwsContext) -> None:
    """Answer DeleteSecurityGroup with DependencyViolation while a network interface uses the group, as AWS
    does (moto deletes it)."""
    def check(params: Any, **_: Any) -> Answer | None:
        group_id = (params.get("body") or {}).get("GroupId")
        used = ctx.call("ec2", "describe_network_interfaces",
                        Filters=[{"Name": "group-id", "Values": [group_id]}])["NetworkInterfaces"]
        if used:
            return error(400, "DependencyViolation", f"resource {group_id} has a dependent object")
        return None

    ctx.add_hook("before-call.ec2.DeleteSecurityGroup", check)


# -- scenarios --------------------------------------------------------------------------------------------
def _vpc(ctx: AwsContext) -> Desired:
    return Desired("Vpc", "main", {"cidr_block": "10.0.0.0/16", "dns_hostnames": True},
                   tags=tags_for(ctx, "Vpc", "main"))


def _subnet(ctx: AwsContext) -> Desired:
    props = {"vpc_id": vpc(ctx), "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a",
             "map_public_ip_on_launch": True}
    return Desired("Subnet", "public-us-east-1a", props, tags=tags_for(ctx, "Subnet", "public-us-east-1a"))


def _internet_gateway(ctx: AwsContext) -> Desired:
    return Desired("InternetGateway", "main", {"vpc_id": vpc(ctx)}, tags=tags_for(ctx, "InternetGateway", "main"))


def _elastic_ip(ctx: AwsContext) -> Desired:
    """Associated with an instance, so that its delete disassociates it first."""
    [subnet] = subnets(ctx, vpc(ctx), 1)
    props = {"domain": "vpc", "instance_id": instance(ctx, subnet)}
    return Desired("ElasticIp", "bastion", props, tags=tags_for(ctx, "ElasticIp", "bastion"))


def _nat_gateway(ctx: AwsContext) -> Desired:
    [subnet] = subnets(ctx, vpc(ctx), 1)
    allocation = ctx.call("ec2", "allocate_address", Domain="vpc")["AllocationId"]
    props = {"subnet_id": subnet, "allocation_id": allocation, "connectivity_type": "public"}
    return Desired("NatGateway", "us-east-1a", props, tags=tags_for(ctx, "NatGateway", "us-east-1a"))


def _route_table(ctx: AwsContext) -> Desired:
    """With a subnet association, so that its delete disassociates it first."""
    vpc_id = vpc(ctx)
    [subnet] = subnets(ctx, vpc_id, 1)
    igw = ctx.call("ec2", "create_internet_gateway")["InternetGateway"]["InternetGatewayId"]
    ctx.call("ec2", "attach_internet_gateway", InternetGatewayId=igw, VpcId=vpc_id)
    props = {"vpc_id": vpc_id, "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": igw}],
             "subnet_ids": [subnet]}
    return Desired("RouteTable", "public", props, tags=tags_for(ctx, "RouteTable", "public"))


def _security_group(ctx: AwsContext) -> Desired:
    props = {"vpc_id": vpc(ctx), "group_name": f"{ctx.cluster}-nodes", "description": "nodes"}
    return Desired("SecurityGroup", "nodes", props, tags=tags_for(ctx, "SecurityGroup", "nodes"))


def _leak_interface(ctx: AwsContext, group: Observed) -> None:
    """An available interface left in the group (a terminated instance's or load balancer's): the group's delete
    sweeps it."""
    [subnet] = subnets(ctx, str(group.fields["vpc_id"]), 1)
    ctx.call("ec2", "create_network_interface", SubnetId=subnet, Groups=[group.id])


def _security_group_rules(ctx: AwsContext) -> Desired:
    """The rules of a group the SecurityGroup kind created (the rule set is found through the group's tags)."""
    made = registry.get("SecurityGroup").create(ctx, _security_group(ctx))
    rules = [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "203.0.113.0/24", "source_group": None,
              "description": "ssh"},
             {"protocol": "udp", "from_port": 4789, "to_port": 4789, "cidr": None, "source_group": made.id,
              "description": "vxlan"}]
    return Desired("SecurityGroupRules", "nodes", {"group_id": made.id, "ingress": rules},
                   tags=tags_for(ctx, "SecurityGroupRules", "nodes"))


NETWORK = [
    Scenario("Vpc", _vpc, changes={"cidr_block": {"cidr_block": "10.1.0.0/16"}},
             delete_calls=(("ec2", "DeleteVpc"),), create_call=("ec2", "CreateVpc"),
             markers=frozenset({"kubeaws.io/vpc-dns"})),
    Scenario("Subnet", _subnet,
             changes={"vpc_id": {"vpc_id": OTHER_VPC}, "cidr_block": {"cidr_block": "10.0.2.0/24"},
                      "availability_zone": {"availability_zone": "us-east-1b"}},
             delete_calls=(("ec2", "DeleteSubnet"),), create_call=("ec2", "CreateSubnet")),
    Scenario("InternetGateway", _internet_gateway, changes={},
             delete_calls=(("ec2", "DetachInternetGateway"), ("ec2", "DeleteInternetGateway")),
             create_call=("ec2", "CreateInternetGateway")),
    Scenario("ElasticIp", _elastic_ip, changes={"domain": {"domain": "standard"}},
             delete_calls=(("ec2", "DisassociateAddress"), ("ec2", "ReleaseAddress")),
             create_call=("ec2", "AllocateAddress")),
    Scenario("NatGateway", _nat_gateway,
             changes={"subnet_id": {"subnet_id": OTHER_SUBNET}, "allocation_id": {"allocation_id": "eipalloc-0ff"},
                      "connectivity_type": {"connectivity_type": "private"}},
             delete_calls=(("ec2", "DeleteNatGateway"),), create_call=("ec2", "CreateNatGateway")),
    Scenario("RouteTable", _route_table, changes={"vpc_id": {"vpc_id": OTHER_VPC}},
             delete_calls=(("ec2", "DisassociateRouteTable"), ("ec2", "DeleteRouteTable")),
             create_call=("ec2", "CreateRouteTable")),
    Scenario("SecurityGroup", _security_group,
             changes={"vpc_id": {"vpc_id": OTHER_VPC}, "group_name": {"group_name": "other"},
                      "description": {"description": "other"}},
             delete_calls=(("ec2", "DeleteNetworkInterface"), ("ec2", "DeleteSecurityGroup")),
             before_delete=_leak_interface, create_call=("ec2", "CreateSecurityGroup"),
             fakes=enforce_group_dependencies),
    Scenario("SecurityGroupRules", _security_group_rules, changes={"group_id": {"group_id": "sg-0fffffffffffffff0"}},
             delete_calls=(("ec2", "RevokeSecurityGroupIngress"),), create_call=None,
             untagged="rules are not AWS resources of their own: the rule set is found through its group's tags",
             gone=lambda found: found is None or not found.fields["ingress"]),  # the group goes with its own kind
]
