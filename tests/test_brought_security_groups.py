"""Brought security groups (`network.securityGroups`): the model (a brought SecurityGroup, no rule set for it,
kubeaws' own rules naming it as their source), and plan / apply / status / delete against the moto server
leaving the brought groups and their rules exactly as they were (only the `shared` tag added, then removed).

moto adaptations: moto accepts duplicate ingress rules and does not check that a rule's source group is in
the same VPC; neither matters here (kubeaws never writes to a brought group, which the test verifies).
"""

from __future__ import annotations

from typing import Any

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine.render import plan_text
from kubeaws.model import build
from kubeaws.resources.base import Ref
from kubeaws.spec.models import ClusterSpec
from tests.helpers import CallRecorder, make_spec

NODES_SG = "sg-0aaaaaaaaaaaaaaa1"
CP_SG = "sg-0ccccccccccccccc2"


def spec_with(groups: dict[str, str], vpc: str = "vpc-0a1b2c3d", public: tuple[str, ...] = ("subnet-0a",),
              private: tuple[str, ...] = ("subnet-0b", "subnet-0c"), **extra: Any) -> ClusterSpec:
    network = {"vpc": {"cidr": None, "id": vpc}, "availabilityZones": [],
               "subnets": {"public": list(public), "private": list(private)}, "securityGroups": groups}
    return make_spec(network={**network, **extra.pop("network", {})}, **extra)


# -- model -------------------------------------------------------------------------------------------------
def test_brought_group_is_brought_and_gets_no_rules() -> None:
    graph = build(spec_with({"nodes": NODES_SG, "controlPlane": CP_SG}))
    nodes, cp = graph["SecurityGroup/nodes"], graph["SecurityGroup/control-plane"]
    assert (nodes.brought_id, nodes.props, nodes.tags) == (NODES_SG, {}, {"kubernetes.io/cluster/dev": "shared"})
    assert cp.brought_id == CP_SG
    assert "SecurityGroupRules/nodes" not in graph and "SecurityGroupRules/control-plane" not in graph
    assert not graph["SecurityGroup/bastion"].brought_id and "SecurityGroupRules/bastion" in graph
    assert not graph["SecurityGroup/lb"].brought_id and "SecurityGroupRules/lb" in graph


def test_own_groups_rules_reference_the_brought_group() -> None:
    graph = build(spec_with({"nodes": NODES_SG}))
    cp_rules = graph["SecurityGroupRules/control-plane"].props["ingress"]
    from_nodes = [r for r in cp_rules if r["source_group"] == Ref("SecurityGroup", "nodes")]
    assert {(r["protocol"], r["from_port"]) for r in from_nodes} >= {("tcp", 6443), ("tcp", 179), ("udp", 53)}
    # Instances and launch templates use the brought group through the same Ref.
    assert "SecurityGroup/nodes" in graph["LaunchTemplate/ng-general"].refs()


def test_eks_additional_group_can_be_brought() -> None:
    graph = build(spec_with({"controlPlane": CP_SG}, mode="eks", network={"cni": "aws-vpc-cni"}))
    assert graph["SecurityGroup/control-plane"].brought_id == CP_SG
    assert "SecurityGroupRules/control-plane" not in graph
    assert "SecurityGroup/control-plane" in graph["EksCluster/main"].refs()


def test_nothing_brought_is_unchanged() -> None:
    graph = build(make_spec(network={"securityGroups": {}}))
    assert all(not d.brought_id for d in graph.of_kind("SecurityGroup"))
    assert len(graph.of_kind("SecurityGroupRules")) == len(graph.of_kind("SecurityGroup"))


# -- against the moto server -------------------------------------------------------------------------------
def _group_state(ctx: AwsContext, group_id: str) -> tuple[dict[str, str], list[Any]]:
    group = ctx.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    perms = sorted(repr(sorted(p.items())) for p in group["IpPermissions"])
    return tags, perms


def test_apply_and_delete_leave_brought_groups_and_their_rules_intact(ctx: AwsContext) -> None:
    ec2 = ctx.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    public = [ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.0.0/24", AvailabilityZone="us-east-1a")
              ["Subnet"]["SubnetId"]]
    private = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=f"us-east-1{az}")
               ["Subnet"]["SubnetId"] for i, az in ((10, "a"), (11, "b"))]
    nodes = ec2.create_security_group(GroupName="team-nodes", Description="team nodes", VpcId=vpc,
                                      TagSpecifications=[{"ResourceType": "security-group",
                                                          "Tags": [{"Key": "owner", "Value": "net-team"}]}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=nodes, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.40.0.0/16", "Description": "team rule"}]}])
    before = _group_state(ctx, nodes)
    spec = spec_with({"nodes": nodes}, vpc=vpc, public=tuple(public), private=tuple(private))

    plan = api.plan(spec, ctx)
    [change] = [c for c in plan.changes if c.key == "SecurityGroup/nodes"]
    assert (change.action, change.id, set(change.diff)) == ("update", nodes, {"tags"})
    assert f"~ SecurityGroup/nodes ({nodes})  # brought: tags only" in plan_text(plan)
    assert not any(c.key == "SecurityGroupRules/nodes" for c in plan.changes)

    recorder = CallRecorder()
    ctx.add_hook("before-call.ec2", recorder)
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    rule_writes = [params for op, params in recorder.calls
                   if op in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "DeleteSecurityGroup")]
    assert rule_writes and all(p.get("GroupId") != nodes for p in rule_writes)
    assert [op for op, p in recorder.calls if nodes in str(p) and op != "DescribeSecurityGroups"] != []
    tags, perms = _group_state(ctx, nodes)
    assert tags == {**before[0], "kubernetes.io/cluster/dev": "shared"} and perms == before[1]
    # kubeaws' own control-plane group lets the brought nodes group in.
    cp = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["dev-control-plane"]}])[
        "SecurityGroups"][0]
    assert any(pair["GroupId"] == nodes for p in cp["IpPermissions"] if p.get("FromPort") == 6443
               for pair in p["UserIdGroupPairs"])
    assert api.plan(spec, ctx).pending == 0
    status = api.status(spec, ctx)
    [shown] = [o for o in status.resources if o.id == nodes]
    assert shown.state == "brought"

    recorder.calls.clear()
    result = api.delete(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert [op for op, p in recorder.calls if p.get("GroupId") == nodes and not op.startswith("Describe")] == []
    assert _group_state(ctx, nodes) == before
    assert not ec2.describe_security_groups(Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]}])[
        "SecurityGroups"]
