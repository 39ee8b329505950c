"""SecurityGroup and SecurityGroupRules kinds against the moto server: create with tags, find again with a
clean diff (idempotence), reconcile rule sets with one revoke + one authorize, delete (twice), and refuse a
same-named group owned by someone else."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import RESOURCE_TAG, owned_tags, tag_dict, tag_list
from kubeaws.errors import OwnershipError
from kubeaws.resources import registry
from kubeaws.resources.base import UNKNOWN, Desired, Observed
from kubeaws.resources.security_group_rules import flatten, to_permissions

SG = registry.get("SecurityGroup")
RULES = registry.get("SecurityGroupRules")


def make_vpc(ctx: AwsContext) -> str:
    return str(ctx.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"])


def group_desired(vpc_id: str, name: str, cluster: str = "dev") -> Desired:
    return Desired("SecurityGroup", name,
                   {"vpc_id": vpc_id, "group_name": f"{cluster}-{name}", "description": f"kubeaws {name}"},
                   tags=owned_tags(cluster, "SecurityGroup", name, f"{cluster}-{name}", {"kubeaws.io/role": name}))


def rule(protocol: str, lo: int, hi: int, cidr: str | None = None, group: str | None = None,
         description: str = "") -> dict[str, Any]:
    return {"protocol": protocol, "from_port": lo, "to_port": hi, "cidr": cidr, "source_group": group,
            "description": description}


def rules_desired(name: str, group_id: str, ingress: list[dict[str, Any]]) -> Desired:
    return Desired("SecurityGroupRules", name, {"group_id": group_id, "ingress": ingress},
                   tags=owned_tags("dev", "SecurityGroupRules", name, f"dev-{name}"))


def find(kind: Any, ctx: AwsContext, obj_id: str) -> Observed:
    found: Observed
    [found] = [o for o in kind.list_owned(ctx) if o.id == obj_id]
    return found


def every_rule_type(own: str, other: str) -> list[dict[str, Any]]:
    return [
        rule("tcp", 30000, 32767, cidr="10.0.0.0/16", description="NodePort services"),
        rule("tcp", 30000, 32767, cidr="203.0.113.0/24"),  # same permission, second range
        rule("tcp", 6443, 6443, group=other, description="API from nodes"),
        rule("udp", 8472, 8472, group=own, description="VXLAN (self)"),
        rule("icmp", -1, -1, cidr="10.0.0.0/16"),
        rule("4", -1, -1, group=own, description="IP-in-IP"),
        rule("-1", -1, -1, group=other),
        rule("tcp", 22, 22, cidr="2001:db8::/64", description="SSH over IPv6"),
    ]


@pytest.fixture
def two_groups(ctx: AwsContext) -> tuple[Observed, Observed]:
    vpc = make_vpc(ctx)
    return SG.create(ctx, group_desired(vpc, "nodes")), SG.create(ctx, group_desired(vpc, "control-plane"))


# -- SecurityGroup -----------------------------------------------------------------------------------
def test_group_lifecycle_tags_idempotence_and_delete(ctx: AwsContext) -> None:
    vpc = make_vpc(ctx)
    desired = group_desired(vpc, "nodes")
    created = SG.create(ctx, desired)
    described = ctx.call("ec2", "describe_security_groups", GroupIds=[created.id])["SecurityGroups"][0]
    assert tag_dict(described["Tags"]) == desired.tags
    assert described["IpPermissionsEgress"], "the default egress rule is kept"

    with ctx.counting() as log:
        found = find(SG, ctx, created.id)
    assert log.snapshot() == {("ec2", "DescribeSecurityGroups"): 1}
    assert found.fields == desired.props and found.logical_key == "SecurityGroup/nodes"
    assert SG.diff(found, desired) == {}

    # Update path: a tag-only change goes through the default update (CreateTags).
    retagged = Desired(desired.kind, desired.name, desired.props, tags={**desired.tags, "team": "infra"})
    diff = SG.diff(found, retagged)
    assert diff == {"tags": ({"team": None}, {"team": "infra"})}
    SG.update(ctx, found, retagged, diff)
    assert SG.diff(find(SG, ctx, created.id), retagged) == {}

    SG.delete(ctx, found)
    assert SG.list_owned(ctx) == []
    SG.delete(ctx, found)  # gone already: no error


def test_find_conflict_reports_a_group_owned_by_another_cluster(ctx: AwsContext) -> None:
    vpc = make_vpc(ctx)
    ours = group_desired(vpc, "nodes")
    assert SG.find_conflict(ctx, ours) is None  # nothing there yet
    theirs = group_desired(vpc, "nodes", cluster="prod")
    ctx.call("ec2", "create_security_group", GroupName="dev-nodes", Description="someone else's", VpcId=vpc,
             TagSpecifications=[{"ResourceType": "security-group",
                                 "Tags": tag_list(owned_tags("prod", "SecurityGroup", "nodes", "x"))}])
    clash = SG.find_conflict(ctx, ours)
    assert clash is not None and clash.fields["group_name"] == "dev-nodes"
    assert clash.tags["kubeaws.io/cluster"] == "prod"
    assert SG.find_conflict(ctx, theirs) is None  # "prod-nodes" is free
    # A group of the same name in another VPC does not clash.
    assert SG.find_conflict(ctx, group_desired(make_vpc(ctx), "nodes")) is None
    # Our own group is no conflict.
    mine = SG.create(ctx, group_desired(vpc, "workers"))
    assert SG.find_conflict(ctx, group_desired(vpc, "workers")) is None
    assert mine.id


def test_create_refuses_a_clashing_group_with_a_fix(ctx: AwsContext) -> None:
    vpc = make_vpc(ctx)
    foreign = ctx.call("ec2", "create_security_group", GroupName="dev-nodes", Description="hand-made",
                       VpcId=vpc)["GroupId"]
    with pytest.raises(OwnershipError) as err:
        SG.create(ctx, group_desired(vpc, "nodes"))
    message = str(err.value)
    assert foreign in message and "dev-nodes" in message
    for hint in ("delete it", "rename it", "kubeaws.io/cluster=dev", "kubernetes.io/cluster/dev=owned"):
        assert hint in message


def test_create_adopts_its_own_group_on_duplicate(ctx: AwsContext) -> None:
    """A create whose answer was lost (the group exists with our tags) returns the existing group."""
    vpc = make_vpc(ctx)
    first = SG.create(ctx, group_desired(vpc, "nodes"))
    again = SG.create(ctx, group_desired(vpc, "nodes"))
    assert again.id == first.id


# -- SecurityGroupRules ------------------------------------------------------------------------------
def test_rules_round_trip_every_rule_type(ctx: AwsContext, two_groups: tuple[Observed, Observed]) -> None:
    nodes, cp = two_groups
    desired = rules_desired("nodes", nodes.id, sorted(every_rule_type(nodes.id, cp.id),
                                                      key=lambda r: tuple(str(v) for v in r.values())))
    with ctx.counting() as log:
        RULES.create(ctx, desired)
    assert log.snapshot()[("ec2", "AuthorizeSecurityGroupIngress")] == 1

    with ctx.counting() as log:
        found = find(RULES, ctx, nodes.id)
    assert log.snapshot() == {("ec2", "DescribeSecurityGroups"): 1}
    assert found.fields == desired.props  # same keys, same normalized shape, same order
    assert RULES.diff(found, desired) == {}
    assert found.logical_key == "SecurityGroupRules/nodes" and RESOURCE_TAG in found.tags
    assert RULES.taggable is False
    # The control-plane group has no ingress yet: an empty rule set, listed all the same.
    assert find(RULES, ctx, cp.id).fields == {"group_id": cp.id, "ingress": []}


def test_ip_permissions_translation_groups_ports_and_flattens() -> None:
    rules = [rule("tcp", 80, 80, cidr="10.0.0.0/8", description="web"), rule("tcp", 80, 80, group="sg-1"),
             rule("-1", 0, 65535, cidr="0.0.0.0/0"), rule("6", 22, 22, cidr="::/0")]
    perms = to_permissions(rules)
    assert len(perms) == 3
    web = next(p for p in perms if p.get("FromPort") == 80)
    assert web["IpRanges"] == [{"CidrIp": "10.0.0.0/8", "Description": "web"}]
    assert web["UserIdGroupPairs"] == [{"GroupId": "sg-1"}]
    everything = next(p for p in perms if p["IpProtocol"] == "-1")
    assert (everything["FromPort"], everything["ToPort"]) == (-1, -1)  # "all traffic" has no ports
    back = flatten(perms)
    assert {(r["protocol"], r["from_port"], r["cidr"]) for r in back} >= {("-1", -1, "0.0.0.0/0"),
                                                                          ("tcp", 22, "::/0")}
    assert len(back) == 4


def test_changed_rule_set_revokes_and_authorizes_only_the_difference(
        ctx: AwsContext, two_groups: tuple[Observed, Observed]) -> None:
    nodes, cp = two_groups
    before = [rule("tcp", 22, 22, cidr="10.0.0.0/16", description="SSH"),
              rule("tcp", 10250, 10250, group=cp.id, description="kubelet"),
              rule("udp", 8472, 8472, group=nodes.id)]
    RULES.create(ctx, rules_desired("nodes", nodes.id, before))
    after = [rule("tcp", 10250, 10250, group=cp.id), rule("udp", 8472, 8472, group=nodes.id),
             rule("tcp", 179, 179, group=nodes.id), rule("icmp", 3, 4, cidr="10.0.0.0/16")]
    desired = rules_desired("nodes", nodes.id, after)
    found = find(RULES, ctx, nodes.id)
    diff = RULES.diff(found, desired)
    assert set(diff) == {"ingress"}
    old, new = diff["ingress"]
    assert len(old) == 3 and len(new) == 4  # readable: the full current and wanted lists

    sent: dict[str, list[dict[str, Any]]] = {}

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "IpPermissions" in params:
            sent[model.name] = flatten(params["IpPermissions"])

    ctx.add_hook("provide-client-params.ec2.*", capture)
    with ctx.counting() as log:
        updated = RULES.update(ctx, found, desired, diff)
    calls = log.snapshot()
    assert calls[("ec2", "RevokeSecurityGroupIngress")] == 1
    assert calls[("ec2", "AuthorizeSecurityGroupIngress")] == 1
    assert sum(calls.values()) == 2
    strip = {(r["protocol"], r["from_port"], r["to_port"], r["cidr"], r["source_group"])
             for r in sent["RevokeSecurityGroupIngress"]}
    assert strip == {("tcp", 22, 22, "10.0.0.0/16", None)}
    grant = {(r["protocol"], r["from_port"], r["to_port"], r["cidr"], r["source_group"])
             for r in sent["AuthorizeSecurityGroupIngress"]}
    assert grant == {("tcp", 179, 179, None, nodes.id), ("icmp", 3, 4, "10.0.0.0/16", None)}

    assert RULES.diff(updated, desired) == {}
    assert RULES.diff(find(RULES, ctx, nodes.id), desired) == {}


def test_description_only_change_is_no_diff(ctx: AwsContext, two_groups: tuple[Observed, Observed]) -> None:
    nodes, _ = two_groups
    RULES.create(ctx, rules_desired("nodes", nodes.id, [rule("tcp", 22, 22, cidr="10.0.0.0/16",
                                                             description="old words")]))
    reworded = rules_desired("nodes", nodes.id, [rule("tcp", 22, 22, cidr="10.0.0.0/16",
                                                      description="new words")])
    assert RULES.diff(find(RULES, ctx, nodes.id), reworded) == {}


def test_unknown_source_group_counts_as_a_change(ctx: AwsContext,
                                                 two_groups: tuple[Observed, Observed]) -> None:
    nodes, _ = two_groups
    found = find(RULES, ctx, nodes.id)
    planned = rules_desired("nodes", nodes.id, [rule("tcp", 443, 443, group=UNKNOWN)])  # type: ignore[arg-type]
    assert set(RULES.diff(found, planned)) == {"ingress"}


def test_groups_referencing_each_other_delete_after_their_rules(
        ctx: AwsContext, two_groups: tuple[Observed, Observed]) -> None:
    nodes, cp = two_groups
    RULES.create(ctx, rules_desired("nodes", nodes.id, [rule("-1", -1, -1, group=cp.id, description="all"),
                                                        rule("tcp", 22, 22, group=nodes.id)]))
    RULES.create(ctx, rules_desired("control-plane", cp.id, [rule("tcp", 6443, 6443, group=nodes.id,
                                                                  description="API")]))
    for obs in RULES.list_owned(ctx):
        RULES.delete(ctx, obs)
    assert all(o.fields["ingress"] == [] for o in RULES.list_owned(ctx))
    # moto would delete a referenced group anyway; real AWS refuses (DependencyViolation) until the
    # rules are revoked, which is why they are a kind of their own and go first.
    for obs in SG.list_owned(ctx):
        SG.delete(ctx, obs)
    assert SG.list_owned(ctx) == [] and RULES.list_owned(ctx) == []
    RULES.delete(ctx, nodes)  # group gone: nothing to revoke, no error
    SG.delete(ctx, cp)


def test_stale_rule_set_still_reconciles(ctx: AwsContext, two_groups: tuple[Observed, Observed]) -> None:
    """A rule revoked behind kubeaws's back between observe and update: the batched revoke fails with
    InvalidPermission.NotFound, so the group is re-read and only the rules still there are revoked."""
    nodes, _ = two_groups
    gone, kept = rule("tcp", 22, 22, cidr="10.0.0.0/16"), rule("tcp", 80, 80, cidr="10.0.0.0/16", description="w")
    RULES.create(ctx, rules_desired("nodes", nodes.id, [gone, kept]))
    stale = find(RULES, ctx, nodes.id)
    ctx.call("ec2", "revoke_security_group_ingress", GroupId=nodes.id, IpPermissions=to_permissions([gone]))
    empty = rules_desired("nodes", nodes.id, [])
    with ctx.counting() as log:
        RULES.update(ctx, stale, empty, RULES.diff(stale, empty))
    assert log.snapshot() == {("ec2", "RevokeSecurityGroupIngress"): 2, ("ec2", "DescribeSecurityGroups"): 1}
    assert find(RULES, ctx, nodes.id).fields["ingress"] == []


def test_delete_sweeps_leaked_interfaces(ctx: AwsContext) -> None:
    """A network interface left `available` in the group (the VPC CNI and load balancers leak them) is deleted
    with the group; one in use is not touched by the sweep (moto: the attached one stays attached)."""
    vpc = make_vpc(ctx)
    group = SG.create(ctx, group_desired(vpc, "nodes"))
    ec2 = ctx.client("ec2")
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24",
                               AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    leaked = ec2.create_network_interface(SubnetId=subnet,
                                          Groups=[group.id])["NetworkInterface"]["NetworkInterfaceId"]
    other = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    SG.delete(ctx, group)
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group.id]}])["SecurityGroups"]
    remaining = {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces()["NetworkInterfaces"]}
    assert leaked not in remaining and other in remaining
