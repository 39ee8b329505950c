"""Network kinds (Vpc, Subnet, InternetGateway, ElasticIp, NatGateway, RouteTable) against the moto server.

Each kind goes create -> tags on the AWS resource -> `list_owned` finds it with `diff == {}` (idempotence)
-> an in-place update -> delete -> gone, and a second delete is a no-op. Desired records are built by hand
with concrete IDs (the engine normally resolves Refs).

moto differs from AWS, and the tests (never the production code) adapt:
- resources are ready at once: NAT gateway waits (pending -> available, deleting -> deleted, failed) and
  eventual consistency (NotFound right after create) are simulated with botocore `before-call` /
  `after-call` hooks on the context's clients;
- moto's DescribeNatGateways ignores tag filters: the kinds also check the cluster tag client-side, which
  the "other cluster" tests cover;
- moto's AssociateRouteTable silently returns the other table's association for a subnet that is already
  associated (AWS fails with Resource.AlreadyAssociated): the move test checks the subnet really moved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, owned_tags
from kubeaws.errors import AwsCallError
from kubeaws.resources._ec2 import Ec2Kind
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.elastic_ip import ElasticIp
from kubeaws.resources.internet_gateway import InternetGateway
from kubeaws.resources.nat_gateway import NatGateway
from kubeaws.resources.route_table import RouteTable
from kubeaws.resources.subnet import Subnet
from kubeaws.resources.vpc import DNS_MARKER, Vpc
from tests.conftest import REGION, make_ctx
from tests.helpers import FakeClock

VPC, SUBNET, IGW, EIP, NAT, RT = Vpc(), Subnet(), InternetGateway(), ElasticIp(), NatGateway(), RouteTable()
AZ = f"{REGION}a"


def want(kind: Ec2Kind, name: str, props: dict[str, Any], cluster: str = "dev",
         extra: dict[str, str] | None = None) -> Desired:
    return Desired(kind.kind, name, props, tags=owned_tags(cluster, kind.kind, name, f"{cluster}-{name}", extra))


@pytest.fixture
def ec2(endpoint: str) -> Any:
    """A plain boto3 client, to check AWS independently of the kinds (and of the context's call counts)."""
    return boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)


def tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def one(kind: Ec2Kind, ctx: AwsContext) -> Observed:
    """The single owned resource of `kind`, found with exactly one AWS call."""
    with ctx.counting() as log:
        found = kind.list_owned(ctx)
    assert sum(log.snapshot().values()) == 1, log.snapshot()
    assert len(found) == 1, found
    return found[0]


def converged(kind: Ec2Kind, ctx: AwsContext, desired: Desired) -> Observed:
    """list_owned finds the resource by tag, fields equal the desired props, nothing to change."""
    obs = one(kind, ctx)
    assert obs.logical_key == desired.key
    assert obs.fields == desired.props  # exactly the props keys of docs/kinds.md, normalized
    assert kind.diff(obs, desired) == {}
    return obs


def update(kind: Ec2Kind, ctx: AwsContext, desired: Desired) -> Observed:
    actual = one(kind, ctx)
    diff = kind.diff(actual, desired)
    assert diff, "the update test must change something"
    result = kind.update(ctx, actual, desired, diff)
    assert kind.diff(result, desired) == {}
    return result


def delete_twice(kind: Ec2Kind, ctx: AwsContext, actual: Observed) -> None:
    kind.delete(ctx, actual)
    assert kind.list_owned(ctx) == []
    kind.delete(ctx, actual)  # already gone: a no-op


def fail_calls(ctx: AwsContext, operation: str, code: str, times: int) -> list[int]:
    """Make the next `times` calls of `operation` (CamelCase) fail with `code`; returns a call counter."""
    seen = [0]

    def handler(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        seen[0] += 1
        if seen[0] > times:
            return None
        return AWSResponse("http://fault", 400, HTTPHeaders(), None), {"Error": {"Code": code, "Message": "injected"},
                                                             "ResponseMetadata": {"HTTPStatusCode": 400}}

    ctx.add_hook(f"before-call.ec2.{operation}", handler)
    return seen


def nat_states(ctx: AwsContext, states: list[str], **extra: str) -> list[int]:
    """DescribeNatGateways reports `states` (one per call) before the real state: moto is instant."""
    seen = [0]

    def handler(parsed: dict[str, Any], **_: Any) -> None:
        seen[0] += 1
        if seen[0] <= len(states):
            for item in parsed.get("NatGateways", []):
                item.update(State=states[seen[0] - 1], **extra)

    ctx.add_hook("after-call.ec2.DescribeNatGateways", handler)
    return seen


@pytest.fixture
def vpc(ctx: AwsContext) -> Observed:
    return VPC.create(ctx, want(VPC, "main", {"cidr_block": "10.0.0.0/16", "dns_hostnames": True}))


def make_subnet(ctx: AwsContext, vpc_id: str, name: str, cidr: str, public: bool = False) -> Observed:
    return SUBNET.create(ctx, want(SUBNET, name, {"vpc_id": vpc_id, "cidr_block": cidr, "availability_zone": AZ,
                                                  "map_public_ip_on_launch": public}))


# -- Vpc -----------------------------------------------------------------------------------------------
def test_vpc_lifecycle(ctx: AwsContext, ec2: Any) -> None:
    desired = want(VPC, "main", {"cidr_block": "10.0.0.0/16", "dns_hostnames": True}, extra={"team": "a"})
    created = VPC.create(ctx, desired)
    assert VPC.diff(created, desired) == {}
    item = ec2.describe_vpcs(VpcIds=[created.id])["Vpcs"][0]
    assert tags(item)[CLUSTER_TAG] == "dev" and tags(item)["team"] == "a" and tags(item)[DNS_MARKER] == "on"
    assert ec2.describe_vpc_attribute(VpcId=created.id, Attribute="enableDnsHostnames")[
        "EnableDnsHostnames"]["Value"] is True
    assert ec2.describe_vpc_attribute(VpcId=created.id, Attribute="enableDnsSupport")[
        "EnableDnsSupport"]["Value"] is True
    obs = converged(VPC, ctx, desired)
    assert obs.attrs["cidr"] == "10.0.0.0/16"

    off = want(VPC, "main", {"cidr_block": "10.0.0.0/16", "dns_hostnames": False}, extra={"team": "b"})
    update(VPC, ctx, off)
    assert ec2.describe_vpc_attribute(VpcId=created.id, Attribute="enableDnsHostnames")[
        "EnableDnsHostnames"]["Value"] is False
    assert DNS_MARKER not in tags(ec2.describe_vpcs(VpcIds=[created.id])["Vpcs"][0])
    converged(VPC, ctx, off)
    update(VPC, ctx, desired)
    obs = converged(VPC, ctx, desired)

    delete_twice(VPC, ctx, obs)


def test_vpc_of_another_cluster_not_listed(ctx: AwsContext, endpoint: str) -> None:
    other = make_ctx(endpoint, cluster="prod")
    VPC.create(other, want(VPC, "main", {"cidr_block": "10.1.0.0/16", "dns_hostnames": False}, cluster="prod"))
    assert VPC.list_owned(ctx) == []
    mine = VPC.create(ctx, want(VPC, "main", {"cidr_block": "10.0.0.0/16", "dns_hostnames": False}))
    assert [o.id for o in VPC.list_owned(ctx)] == [mine.id]


def test_vpc_get_brought_and_missing(ctx: AwsContext, ec2: Any) -> None:
    theirs = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    found = VPC.get(ctx, [theirs, "vpc-0123456789abcdef0"])
    assert [(o.id, o.fields) for o in found] == [(theirs, {"cidr_block": "10.9.0.0/16"})]
    assert VPC.get(ctx, ["vpc-0123456789abcdef0"]) == []
    assert VPC.get(ctx, []) == []


def test_vpc_delete_retries_dependency_violation_then_raises(ctx: AwsContext, vpc: Observed) -> None:
    make_subnet(ctx, vpc.id, "a", "10.0.1.0/24")
    # A one-second budget on a fake clock (time moves only by the retries' own pauses): no wall-clock time.
    ctx.policy = FakeClock().policy(replace(ctx.policy, dependency_timeout=1.0))
    with ctx.counting() as log, pytest.raises(ClientError) as err:
        VPC.delete(ctx, vpc)
    assert err.value.response["Error"]["Code"] == "DependencyViolation"
    assert log.snapshot()[("ec2", "DeleteVpc")] > 1


def test_vpc_dns_survives_eventual_consistency(ctx: AwsContext) -> None:
    seen = fail_calls(ctx, "ModifyVpcAttribute", "InvalidVpcID.NotFound", times=2)
    obs = VPC.create(ctx, want(VPC, "main", {"cidr_block": "10.0.0.0/16", "dns_hostnames": True}))
    assert seen[0] == 4 and obs.fields["dns_hostnames"] is True


# -- Subnet --------------------------------------------------------------------------------------------
def test_subnet_lifecycle(ctx: AwsContext, ec2: Any, vpc: Observed) -> None:
    props = {"vpc_id": vpc.id, "cidr_block": "10.0.1.0/24", "availability_zone": AZ,
             "map_public_ip_on_launch": False}
    desired = want(SUBNET, "private-a", props)
    created = SUBNET.create(ctx, desired)
    item = ec2.describe_subnets(SubnetIds=[created.id])["Subnets"][0]
    assert tags(item)[RESOURCE_TAG] == "Subnet/private-a"
    obs = converged(SUBNET, ctx, desired)
    assert obs.attrs["az"] == AZ and obs.attrs["vpc_id"] == vpc.id and obs.attrs["available_ips"]

    public = want(SUBNET, "private-a", {**props, "map_public_ip_on_launch": True})
    update(SUBNET, ctx, public)
    assert ec2.describe_subnets(SubnetIds=[created.id])["Subnets"][0]["MapPublicIpOnLaunch"] is True
    obs = converged(SUBNET, ctx, public)

    delete_twice(SUBNET, ctx, obs)
    VPC.delete(ctx, vpc)  # nothing left in it


def test_subnet_get_missing(ctx: AwsContext, vpc: Observed) -> None:
    sub = make_subnet(ctx, vpc.id, "a", "10.0.1.0/24", public=True)
    found = SUBNET.get(ctx, ["subnet-0123456789abcdef0", sub.id])
    assert [o.id for o in found] == [sub.id]
    assert found[0].fields["map_public_ip_on_launch"] is True
    assert SUBNET.get(ctx, ["subnet-0123456789abcdef0"]) == []


# -- InternetGateway -----------------------------------------------------------------------------------
def test_internet_gateway_lifecycle(ctx: AwsContext, ec2: Any, vpc: Observed) -> None:
    desired = want(IGW, "main", {"vpc_id": vpc.id})
    created = IGW.create(ctx, desired)
    item = ec2.describe_internet_gateways(InternetGatewayIds=[created.id])["InternetGateways"][0]
    assert tags(item)[CLUSTER_TAG] == "dev"
    assert [a["VpcId"] for a in item["Attachments"]] == [vpc.id]
    converged(IGW, ctx, desired)

    other = VPC.create(ctx, want(VPC, "other", {"cidr_block": "10.1.0.0/16", "dns_hostnames": False}))
    moved = want(IGW, "main", {"vpc_id": other.id})
    update(IGW, ctx, moved)
    item = ec2.describe_internet_gateways(InternetGatewayIds=[created.id])["InternetGateways"][0]
    assert [a["VpcId"] for a in item["Attachments"]] == [other.id]
    converged(IGW, ctx, moved)
    detached = want(IGW, "main", {"vpc_id": None})
    update(IGW, ctx, detached)
    obs = converged(IGW, ctx, detached)
    update(IGW, ctx, desired)
    obs = converged(IGW, ctx, desired)

    delete_twice(IGW, ctx, obs)
    VPC.delete(ctx, vpc)  # the gateway was detached first


# -- ElasticIp -----------------------------------------------------------------------------------------
def test_elastic_ip_lifecycle(ctx: AwsContext, ec2: Any, vpc: Observed) -> None:
    desired = want(EIP, "api", {"domain": "vpc", "instance_id": None})
    created = EIP.create(ctx, desired)
    item = ec2.describe_addresses(AllocationIds=[created.id])["Addresses"][0]
    assert tags(item)[RESOURCE_TAG] == "ElasticIp/api"
    obs = converged(EIP, ctx, desired)
    assert obs.attrs["public_ip"] == item["PublicIp"]

    sub = make_subnet(ctx, vpc.id, "a", "10.0.1.0/24")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="t3.micro", SubnetId=sub.id, MinCount=1,
                                 MaxCount=1)["Instances"][0]["InstanceId"]
    attached = want(EIP, "api", {"domain": "vpc", "instance_id": instance})
    update(EIP, ctx, attached)
    assert ec2.describe_addresses(AllocationIds=[created.id])["Addresses"][0]["InstanceId"] == instance
    converged(EIP, ctx, attached)
    update(EIP, ctx, desired)
    # moto reports InstanceId "" (AWS omits it) once disassociated
    assert not ec2.describe_addresses(AllocationIds=[created.id])["Addresses"][0].get("InstanceId")
    update(EIP, ctx, attached)
    obs = converged(EIP, ctx, attached)

    delete_twice(EIP, ctx, obs)  # disassociates, then releases
    assert ec2.describe_addresses()["Addresses"] == []


def test_elastic_ip_release_retries_in_use(ctx: AwsContext) -> None:
    obs = EIP.create(ctx, want(EIP, "nat", {"domain": "vpc"}))
    seen = fail_calls(ctx, "ReleaseAddress", "InvalidIPAddress.InUse", times=2)
    EIP.delete(ctx, obs)
    assert seen[0] == 3 and EIP.list_owned(ctx) == []


# -- NatGateway ----------------------------------------------------------------------------------------
@pytest.fixture
def nat_parts(ctx: AwsContext, vpc: Observed) -> tuple[Observed, Observed]:
    sub = make_subnet(ctx, vpc.id, "public-a", "10.0.0.0/24", public=True)
    IGW.create(ctx, want(IGW, "main", {"vpc_id": vpc.id}))
    return sub, EIP.create(ctx, want(EIP, "nat-a", {"domain": "vpc"}))


def nat_desired(sub: Observed, eip: Observed, extra: dict[str, str] | None = None) -> Desired:
    return want(NAT, "a", {"subnet_id": sub.id, "allocation_id": eip.id, "connectivity_type": "public"},
                extra=extra)


def test_nat_gateway_lifecycle(ctx: AwsContext, ec2: Any, nat_parts: tuple[Observed, Observed]) -> None:
    sub, eip = nat_parts
    desired = nat_desired(sub, eip)
    seen = nat_states(ctx, ["pending", "pending"])
    created = NAT.create(ctx, desired)
    assert seen[0] == 3 and created.state == "available"  # waited through two "pending"
    item = ec2.describe_nat_gateways(NatGatewayIds=[created.id])["NatGateways"][0]
    assert tags(item)[CLUSTER_TAG] == "dev"
    obs = converged(NAT, ctx, desired)
    assert obs.attrs["public_ip"] == eip.attrs["public_ip"]

    retagged = nat_desired(sub, eip, extra={"cost-center": "42"})  # no updatable prop: tags only
    update(NAT, ctx, retagged)
    obs = converged(NAT, ctx, retagged)

    seen = nat_states(ctx, ["deleting", "deleting"])  # counts from the hook's registration
    NAT.delete(ctx, obs)
    assert seen[0] == 3  # the delete waited until "deleted"
    assert ec2.describe_nat_gateways(NatGatewayIds=[created.id])["NatGateways"][0]["State"] == "deleted"
    assert NAT.list_owned(ctx) == []
    NAT.delete(ctx, obs)  # still described as "deleted" (as AWS does for an hour): a no-op
    EIP.delete(ctx, eip)  # the NAT let go of it


def test_nat_gateway_failed_raises_with_failure_message(ctx: AwsContext,
                                                       nat_parts: tuple[Observed, Observed]) -> None:
    sub, eip = nat_parts
    nat_states(ctx, ["pending", "failed"], FailureCode="Gateway.NotAttached",
               FailureMessage="Network vpc-1 has no Internet gateway attached")
    with pytest.raises(AwsCallError) as err:
        NAT.create(ctx, nat_desired(sub, eip))
    assert err.value.code == "Gateway.NotAttached"
    assert "has no Internet gateway attached" in str(err.value)


def test_nat_gateway_of_another_cluster_not_listed(ctx: AwsContext, endpoint: str,
                                                   nat_parts: tuple[Observed, Observed]) -> None:
    """moto ignores the tag filter of DescribeNatGateways: the client-side check keeps this right."""
    sub, eip = nat_parts
    NAT.create(ctx, nat_desired(sub, eip))
    assert NAT.list_owned(make_ctx(endpoint, cluster="prod")) == []


# -- RouteTable ----------------------------------------------------------------------------------------
def test_route_table_lifecycle_move_subnet_and_switch_target(ctx: AwsContext, ec2: Any, vpc: Observed,
                                                              nat_parts: tuple[Observed, Observed]) -> None:
    sub_pub, eip = nat_parts
    igw = one(IGW, ctx)
    sub_a = make_subnet(ctx, vpc.id, "private-a", "10.0.1.0/24")
    sub_b = make_subnet(ctx, vpc.id, "private-b", "10.0.2.0/24")
    default_igw = [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": igw.id}]
    public = want(RT, "public", {"vpc_id": vpc.id, "routes": default_igw,
                                 "subnet_ids": sorted([sub_pub.id, sub_a.id])})
    table = RT.create(ctx, public)
    assert RT.diff(table, public) == {}
    item = ec2.describe_route_tables(RouteTableIds=[table.id])["RouteTables"][0]
    assert tags(item)[RESOURCE_TAG] == "RouteTable/public"
    assert converged(RT, ctx, public).fields["routes"] == default_igw  # the local route is ignored

    # A second table takes sub_a over from the first one (ReplaceRouteTableAssociation).
    private = want(RT, "private", {"vpc_id": vpc.id, "routes": default_igw, "subnet_ids": [sub_b.id]})
    second = RT.create(ctx, private)
    moved = want(RT, "private", {**private.props, "subnet_ids": sorted([sub_a.id, sub_b.id])})
    RT.update(ctx, second, moved, RT.diff(second, moved))
    owners = {a["SubnetId"]: a["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]
              for a in t["Associations"] if a.get("SubnetId")}
    assert owners == {sub_pub.id: table.id, sub_a.id: second.id, sub_b.id: second.id}
    by_name = {o.logical_key: o for o in RT.list_owned(ctx)}
    assert by_name["RouteTable/public"].fields["subnet_ids"] == [sub_pub.id]
    assert RT.diff(by_name["RouteTable/private"], moved) == {}

    # The default route switches from the internet gateway to a NAT gateway; an extra route comes and goes.
    nat = NAT.create(ctx, nat_desired(sub_pub, eip))
    via_nat = want(RT, "private", {**moved.props, "routes": [
        {"destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id},
        {"destination_cidr_block": "192.168.0.0/16", "gateway_id": igw.id}]})
    RT.update(ctx, by_name["RouteTable/private"], via_nat, RT.diff(by_name["RouteTable/private"], via_nat))
    routes = ec2.describe_route_tables(RouteTableIds=[second.id])["RouteTables"][0]["Routes"]
    assert {r["DestinationCidrBlock"]: r.get("NatGatewayId") or r.get("GatewayId") for r in routes} == {
        "10.0.0.0/16": "local", "0.0.0.0/0": nat.id, "192.168.0.0/16": igw.id}
    back = want(RT, "private", {**moved.props, "routes": via_nat.props["routes"][:1]})
    actual = next(o for o in RT.list_owned(ctx) if o.id == second.id)
    RT.update(ctx, actual, back, RT.diff(actual, back))
    actual = next(o for o in RT.list_owned(ctx) if o.id == second.id)
    assert RT.diff(actual, back) == {}

    # Delete disassociates first (moto, like AWS, refuses to delete an associated table).
    for obs in RT.list_owned(ctx):
        RT.delete(ctx, obs)
        RT.delete(ctx, obs)
    assert RT.list_owned(ctx) == []
    left = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc.id]}])["RouteTables"]
    assert [[a["Main"] for a in t["Associations"]] for t in left] == [[True]]  # only the VPC's main table


def test_route_table_tags_update(ctx: AwsContext, ec2: Any, vpc: Observed) -> None:
    desired = want(RT, "public", {"vpc_id": vpc.id, "routes": [], "subnet_ids": []})
    RT.create(ctx, desired)
    converged(RT, ctx, desired)
    retagged = want(RT, "public", desired.props, extra={"team": "net"})
    obs = update(RT, ctx, retagged)
    assert tags(ec2.describe_route_tables(RouteTableIds=[obs.id])["RouteTables"][0])["team"] == "net"
    delete_twice(RT, ctx, converged(RT, ctx, retagged))


# -- every kind: one describe call, other clusters invisible ----------------------------------------------
@pytest.fixture
def network(ctx: AwsContext, vpc: Observed, nat_parts: tuple[Observed, Observed]) -> None:
    sub, eip = nat_parts
    NAT.create(ctx, nat_desired(sub, eip))
    RT.create(ctx, want(RT, "public", {"vpc_id": vpc.id, "routes": [], "subnet_ids": [sub.id]}))


# moto's first EC2 call after a reset is slow (~2s): one test covers all kinds rather than one per kind.
def test_list_owned_is_one_call_and_ignores_other_clusters(ctx: AwsContext, endpoint: str,
                                                           network: None) -> None:
    prod = make_ctx(endpoint, cluster="prod")
    for kind in (VPC, SUBNET, IGW, EIP, NAT, RT):
        obs = one(kind, ctx)
        assert obs.tags[CLUSTER_TAG] == "dev", kind.kind
        assert kind.list_owned(prod) == [], kind.kind
