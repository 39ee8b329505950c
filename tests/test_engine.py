"""The engine end to end against the moto server: apply, idempotence (re-plan is empty, re-apply makes no
mutating call), spec changes, ownership clashes, brought VPCs, failures reported per resource, and delete
leaving nothing behind.

moto adaptations: resources are ready at once (no waits exercised here; see the resource tests) and the
NAT gateway / instance states jump straight to available / running.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine.plan import PlanError
from kubeaws.engine.render import plan_text
from kubeaws.engine.types import ApplyResult
from kubeaws.model import build
from kubeaws.resources import registry
from kubeaws.spec.models import ClusterSpec
from tests.helpers import CallRecorder, make_spec


def apply_ok(spec: ClusterSpec, ctx: AwsContext) -> ApplyResult:
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    return result


def owned_counts(ctx: AwsContext) -> dict[str, int]:
    return {name: len(kind.list_owned(ctx)) for name, kind in registry.kinds().items()}


def expected_counts(spec: ClusterSpec, ctx: AwsContext) -> dict[str, int]:
    """Owned resources per kind, but none of a kind the endpoint does not serve (moto: no Kubernetes API for
    the addons' KubernetesObjects; the plan leaves them out there)."""
    graph = build(spec)
    return {name: len([d for d in graph.of_kind(name) if not d.brought_id]) if kind.served(ctx) else 0
            for name, kind in registry.kinds().items()}


FULL = {"network": {"natGateway": "perAZ", "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]},
        "access": {"bastion": {"elasticIP": True}}}


def test_apply_is_idempotent(ctx: AwsContext) -> None:
    spec = make_spec(**FULL)
    first = apply_ok(spec, ctx)
    assert {e.action for e in first.done} == {"create"}
    assert owned_counts(ctx) == expected_counts(spec, ctx)

    with ctx.counting() as log:
        plan = api.plan(spec, ctx)
    assert plan.pending == 0, plan_text(plan)
    assert log.mutating() == 0
    # At most one describe per resource kind (the declared exceptions: ELBv2 has no tag-filtered describe),
    # plus the AMI lookups (and, on the emulator, the stand-in image lookup).
    assert log.reads() <= sum(k.list_reads for k in registry.kinds().values()) + 2, log.snapshot()

    with ctx.counting() as log:
        again = api.apply(spec, ctx)
    assert again.ok and not again.events
    assert log.mutating() == 0, log.snapshot()


def test_create_calls_carry_their_tags(ctx: AwsContext) -> None:
    """A crash between create and tag would leave an untagged orphan: tags must be in the create call."""
    recorder = CallRecorder()
    ctx.add_hook("before-call.ec2", recorder)
    apply_ok(make_spec(**FULL), ctx)
    creates = [(op, params) for op, params in recorder.calls
               if op.startswith(("Create", "Allocate", "RunInstances")) and op not in ("CreateTags", "CreateRoute")]
    assert creates
    for op, params in creates:
        assert any(k.startswith("TagSpecification") for k in params), f"{op} without TagSpecifications"


def test_delete_leaves_nothing(ctx: AwsContext) -> None:
    spec = make_spec(**FULL)
    apply_ok(spec, ctx)
    result = api.delete(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert all(n == 0 for n in owned_counts(ctx).values()), owned_counts(ctx)
    ec2 = ctx.client("ec2")
    tag = [{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]}]
    assert not ec2.describe_vpcs(Filters=tag)["Vpcs"]
    assert not ec2.describe_subnets(Filters=tag)["Subnets"]
    assert not ec2.describe_addresses(Filters=tag)["Addresses"]
    assert not ec2.describe_security_groups(Filters=tag)["SecurityGroups"]
    assert not ec2.describe_internet_gateways(Filters=tag)["InternetGateways"]
    assert not ec2.describe_route_tables(Filters=tag)["RouteTables"]
    live = [i for r in ec2.describe_instances(Filters=tag)["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]
    assert not live
    nats = [n for n in ec2.describe_nat_gateways(Filter=tag)["NatGateways"] if n["State"] != "deleted"]
    assert not nats
    # Deleting again is a no-op.
    assert api.delete(spec, ctx).events == []


def test_spec_changes_are_planned_field_by_field(ctx: AwsContext) -> None:
    spec = make_spec()
    apply_ok(spec, ctx)
    wider = make_spec(network={"natGateway": "perAZ"}, access={"bastion": {"enabled": False}})
    plan = api.plan(wider, ctx)
    by_key = {c.key: c for c in plan.changes}
    assert by_key["NatGateway/us-east-1b"].action == "create"
    assert by_key["ElasticIp/nat-us-east-1b"].action == "create"
    assert by_key["RouteTable/private-us-east-1b"].action == "update"
    assert set(by_key["RouteTable/private-us-east-1b"].diff) == {"routes"}
    assert by_key["RouteTable/private-us-east-1a"].action == "noop"
    for key in ("Instance/bastion", "SecurityGroup/bastion", "SecurityGroupRules/bastion"):
        assert by_key[key].action == "delete", key
    assert by_key["SecurityGroupRules/nodes"].action == "update"  # SSH from the bastion goes away
    text = plan_text(plan)
    assert "Will delete resources:" in text and "- tcp 22 from SecurityGroup/bastion" in text
    apply_ok(wider, ctx)
    assert api.plan(wider, ctx).pending == 0
    assert owned_counts(ctx) == expected_counts(wider, ctx)


def test_vpc_cidr_change_is_refused(ctx: AwsContext) -> None:
    apply_ok(make_spec(), ctx)
    with pytest.raises(PlanError, match="cannot change cidr_block"):
        api.plan(make_spec(network={"vpc": {"cidr": "10.1.0.0/16"}}), ctx)


class _Refused:
    """What botocore makes of an HTTP answer for a `before-call` handler's short cut: only its status is read."""
    status_code = 500


def _no_capacity(while_: list[bool]) -> Any:
    """AWS out of the asked type in the zone while `while_` holds True: RunInstances refused (an unknown instance
    type is refused at plan time now, so the failure comes from AWS's side, as it would on a real account)."""
    def handler(**_: Any) -> tuple[_Refused, dict[str, Any]] | None:
        return (_Refused(), {"Error": {"Code": "InsufficientInstanceCapacity",
                                   "Message": "We currently do not have sufficient m5.large capacity"},
                             "ResponseMetadata": {"HTTPStatusCode": 500}}) if while_[0] else None
    return handler


def test_failure_is_reported_and_next_apply_finishes(ctx: AwsContext) -> None:
    bad = make_spec(access={"bastion": {"instanceType": "m5.large", "elasticIP": True}})
    short = [True]
    ctx.add_hook("before-call.ec2.RunInstances", _no_capacity(short))
    result = api.apply(bad, ctx)
    assert not result.ok
    failed = {e.key: e for e in result.failed}
    assert set(failed) == {"Instance/bastion"}
    assert "InsufficientInstanceCapacity" in (failed["Instance/bastion"].error or "")
    assert {e.key for e in result.skipped} == {"ElasticIp/bastion"}
    assert "Vpc/main" in {e.key for e in result.done}
    short[0] = False
    good = make_spec(access={"bastion": {"elasticIP": True}})
    apply_ok(good, ctx)
    assert api.plan(good, ctx).pending == 0


def _bring_vpc(ctx: AwsContext) -> tuple[str, list[str], list[str]]:
    ec2 = ctx.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "owner", "Value": "network-team"}])
    public = [ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/24",
                                AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]]
    private = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{az}")
               ["Subnet"]["SubnetId"] for i, az in ((10, "a"), (11, "b"))]
    return vpc, public, private


def _brought_spec(vpc: str, public: list[str], private: list[str], **extra: Any) -> ClusterSpec:
    return make_spec(network={"vpc": {"cidr": None, "id": vpc}, "availabilityZones": [],
                              "subnets": {"public": public, "private": private}}, **extra)


def test_brought_vpc_is_only_tagged_and_never_deleted(ctx: AwsContext) -> None:
    vpc, public, private = _bring_vpc(ctx)
    spec = _brought_spec(vpc, public, private)
    apply_ok(spec, ctx)
    ec2 = ctx.client("ec2")
    tags = {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}
    assert tags == {"owner": "network-team", "kubernetes.io/cluster/dev": "shared"}
    assert api.plan(spec, ctx).pending == 0
    # NodePorts are open to the brought VPC's CIDR, read from AWS at plan time.
    nodes = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["dev-nodes"]}])[
        "SecurityGroups"][0]
    assert any(r.get("CidrIp") == "10.20.0.0/16" for p in nodes["IpPermissions"] if p.get("FromPort") == 30000
               for r in p["IpRanges"])
    result = api.delete(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
    assert len(ec2.describe_subnets(SubnetIds=public + private)["Subnets"]) == 3
    tags = {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}
    assert tags == {"owner": "network-team"}


def test_missing_brought_vpc_is_a_plan_error(ctx: AwsContext) -> None:
    spec = _brought_spec("vpc-0123456789abcdef0", ["subnet-0123456789abcdef0"], ["subnet-0123456789abcdef1"])
    with pytest.raises(PlanError, match=r"vpc-0123456789abcdef0.*does not exist"):
        api.plan(spec, ctx)


def test_foreign_security_group_with_our_name_stops_the_plan(ctx: AwsContext) -> None:
    vpc, public, private = _bring_vpc(ctx)
    ctx.client("ec2").create_security_group(GroupName="dev-nodes", Description="someone else's", VpcId=vpc)
    with pytest.raises(PlanError, match=r"not owned by cluster 'dev'.*kubeaws\.io/cluster=dev"):
        api.plan(_brought_spec(vpc, public, private), ctx)


def test_two_clusters_do_not_see_each_other(endpoint: str) -> None:
    from tests.conftest import make_ctx

    a, b = make_ctx(endpoint, "alpha"), make_ctx(endpoint, "beta")
    apply_ok(make_spec("alpha"), a)
    plan_b = api.plan(make_spec("beta", network={"vpc": {"cidr": "10.1.0.0/16"}}), b)
    assert plan_b.summary()["delete"] == 0 and plan_b.summary()["noop"] == 0
    assert api.delete(make_spec("beta"), b).events == []
    assert api.plan(make_spec("alpha"), a).pending == 0


def test_status_reports_resources_and_drift(ctx: AwsContext) -> None:
    spec = make_spec()
    apply_ok(spec, ctx)
    report = api.status(spec, ctx)
    assert report.in_sync
    kinds = report.by_kind()
    assert len(kinds["Subnet"]) == 4 and len(kinds["Vpc"]) == 1
    # Drift: someone deletes a route table association's route -> status shows a pending change.
    table = next(o for o in kinds["RouteTable"] if (o.logical_key or "").endswith("private-us-east-1a"))
    ctx.client("ec2").delete_route(RouteTableId=table.id, DestinationCidrBlock="0.0.0.0/0")
    report = api.status(spec, ctx)
    assert not report.in_sync and report.pending_changes == 1
    assert report.to_dict()["pendingChanges"] == 1


def test_failed_nat_gateway_is_replaced(ctx: AwsContext) -> None:
    """moto never fails a NAT gateway: an after-call hook rewrites its state in describe answers."""
    spec = make_spec()
    apply_ok(spec, ctx)

    def mark_failed(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name == "DescribeNatGateways":
            for nat in parsed.get("NatGateways", []):
                nat["State"] = "failed"

    ctx.add_hook("after-call.ec2", mark_failed)
    plan = api.plan(spec, ctx)
    change = next(c for c in plan.changes if c.kind == "NatGateway")
    assert change.action == "replace" and "failed" in change.reason
    routes = next(c for c in plan.changes if c.key == "RouteTable/private-us-east-1a")
    assert routes.action == "update"  # its route must follow the new gateway
