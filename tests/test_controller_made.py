"""What the cluster's own controllers create in AWS (resources/controller_made.py, controller_volumes.py), against
the moto server: a kubeadm cluster with cloudProviderAWS and ebsCSI (examples/dev.yaml) is applied, then the test
makes what the controllers would: for a `type: LoadBalancer` Service a classic load balancer with its
`k8s-elb-...` security group and a rule from it in the nodes' group; for an `nlb` Service an NLB, a target group
with its listener and an NLB client rule in the nodes' group; EBS CSI volumes (one attached to a node of the
cluster, one tagged as the EKS managed add-on tags) and a snapshot. Plus decoys that must survive: another
cluster's, `shared` ones, ones without the cluster tag or without the controller's own tag, one claimed by two
clusters, and one tagged for a cluster of the same name in another VPC.

- the delete preview (status, and `kubeaws delete` before its confirmation) lists exactly the controllers'
  resources, none of kubeaws' own nor any decoy;
- `kubeaws delete` (the Python API and the CLI) leaves nothing of the cluster in any service (counted by tags
  with tests/aws/leftovers.py's finder, snapshots counted apart) and every decoy survives;
- an `apply` after they were made plans nothing (the rules the controllers added to kubeaws' nodes group
  included) and changes nothing;
- the delete order holds under AWS's dependency rules (below).

moto differences, adapted here and never in production code: moto deletes a security group that a load
balancer or another group's rule still uses, a subnet a load balancer still sits in, and a VPC that still holds
groups, where AWS answers DependencyViolation. `AwsDependencies` answers DependencyViolation as AWS does (and,
while a deleted load balancer's ENIs drain, twice more for its group), so a wrong order exhausts the retry
budget (AWS's real one, on a fake clock) and fails the delete. moto has everything ready and gone at once (no
load balancer `provisioning`, no volume `detaching`): the waits end on their first poll. moto detaches a
terminated instance's volumes, as AWS does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.cli.main import app
from kubeaws.model.state import state_bucket_name
from kubeaws.spec.load import load_spec
from tests.aws.leftovers import find_leftovers
from tests.conftest import EXAMPLES, REGION
from tests.fake_aws import Answer, error
from tests.helpers import FakeClock

SPEC_FILE = EXAMPLES / "dev.yaml"
CLUSTER = "dev"  # metadata.name of examples/dev.yaml
OWNED = {f"kubernetes.io/cluster/{CLUSTER}": "owned"}
CSI = {"ebs.csi.aws.com/cluster": "true", **OWNED}
ELB_NAME = "a" + "0123456789abcdef0123456789abcde"  # cloud-provider-aws: "a" + the Service UID, 32 characters
NLB_NAME = "a" + "fedcba9876543210fedcba987654321"


def tags(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def spec_for(values: dict[str, str], kind: str) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": tags(values)}]


@dataclass
class Network:
    vpc: str
    public: list[str]
    nodes_group: str
    node_instance: str


@dataclass
class Made:
    """IDs of the resources made as the cluster's controllers would, by controller-made kind."""

    ids: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, rid: str) -> str:
        self.ids.setdefault(kind, set()).add(rid)
        return rid

    def all(self) -> set[str]:
        return {rid for ids in self.ids.values() for rid in ids}


def cluster_network(ctx: AwsContext) -> Network:
    ec2 = ctx.client("ec2")
    owned = [{"Name": "tag:kubeaws.io/cluster", "Values": [CLUSTER]}]

    def key(item: dict[str, Any]) -> str:
        return next((t["Value"] for t in item.get("Tags", []) if t["Key"] == "kubeaws.io/resource"), "")

    vpc = next(v["VpcId"] for v in ec2.describe_vpcs(Filters=owned)["Vpcs"])
    public = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=owned)["Subnets"]
                    if key(s).startswith("Subnet/public-"))
    nodes = next(g["GroupId"] for g in ec2.describe_security_groups(Filters=owned)["SecurityGroups"]
                 if key(g) == "SecurityGroup/nodes")
    running = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:kubernetes.io/cluster/dev", "Values": ["owned"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"] for i in r["Instances"]]
    node = next(i["InstanceId"] for i in running if nodes in {g["GroupId"] for g in i.get("SecurityGroups", [])})
    return Network(vpc, public, nodes, node)


def make_as_controllers(ctx: AwsContext, net: Network) -> Made:
    """What cloud-provider-aws and the EBS CSI driver make for two Services, two claims and a VolumeSnapshot."""
    ec2, elb, elbv2 = ctx.client("ec2"), ctx.client("elb"), ctx.client("elbv2")
    made = Made()
    service = {"kubernetes.io/service-name": "default/web", **OWNED}
    group = made.add("ServiceSecurityGroup", ec2.create_security_group(
        GroupName=f"k8s-elb-{ELB_NAME}", Description=f"Security group for Kubernetes ELB {ELB_NAME} (default/web)",
        VpcId=net.vpc, TagSpecifications=spec_for(OWNED, "security-group"))["GroupId"])
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    elb.create_load_balancer(LoadBalancerName=ELB_NAME, Subnets=net.public, SecurityGroups=[group],
                             Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP",
                                         "InstancePort": 30080}], Tags=tags(service))
    made.add("ServiceLoadBalancer", ELB_NAME)
    ec2.authorize_security_group_ingress(GroupId=net.nodes_group, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}])

    db = {"kubernetes.io/service-name": "default/db", **OWNED}
    nlb = made.add("ServiceNetworkLoadBalancer", elbv2.create_load_balancer(
        Name=NLB_NAME, Type="network", Scheme="internet-facing", Subnets=net.public,
        Tags=tags(db))["LoadBalancers"][0]["LoadBalancerArn"])
    target_group = made.add("ServiceTargetGroup", elbv2.create_target_group(
        Name="k8s-default-db-0a1b2c3d4e", Protocol="TCP", Port=30432, VpcId=net.vpc, TargetType="instance",
        Tags=tags(db))["TargetGroups"][0]["TargetGroupArn"])
    elbv2.create_listener(LoadBalancerArn=nlb, Protocol="TCP", Port=5432,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}])
    ec2.authorize_security_group_ingress(GroupId=net.nodes_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 30432, "ToPort": 30432,
         "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": f"kubernetes.io/rule/nlb/client={NLB_NAME}"}]}])

    claim = {**CSI, "kubeaws.io/cluster": CLUSTER, "CSIVolumeName": "pvc-1111",
             "kubernetes.io/created-for/pvc/namespace": "default", "kubernetes.io/created-for/pvc/name": "data-db-0"}
    attached = made.add("CsiVolume", ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=1, TagSpecifications=spec_for(claim, "volume"))["VolumeId"])
    ec2.attach_volume(VolumeId=attached, InstanceId=net.node_instance, Device="/dev/xvdba")
    # As the EKS managed add-on tags them: no kubeaws.io/cluster.
    eks_style = made.add("CsiVolume", ec2.create_volume(
        AvailabilityZone="us-east-1b", Size=1, TagSpecifications=spec_for({**CSI, "CSIVolumeName": "pvc-2222"},
                                                                           "volume"))["VolumeId"])
    made.add("CsiSnapshot", ec2.create_snapshot(
        VolumeId=eks_style, TagSpecifications=spec_for({**CSI, "kubeaws.io/cluster": CLUSTER,
                                                        "CSIVolumeSnapshotName": "snapcontent-1"},
                                                       "snapshot"))["SnapshotId"])
    return made


def make_decoys(ctx: AwsContext, net: Network) -> dict[str, set[str]]:
    """Resources that look alike but are not the cluster's controllers' (by service: IDs / names / ARNs)."""
    ec2, elb, elbv2 = ctx.client("ec2"), ctx.client("elb"), ctx.client("elbv2")
    other = {"kubernetes.io/cluster/other": "owned"}
    shared = {f"kubernetes.io/cluster/{CLUSTER}": "shared"}
    service = {"kubernetes.io/service-name": "default/web"}
    both = {**OWNED, **other}
    found: dict[str, set[str]] = {"group": set(), "elb": set(), "elbv2": set(), "volume": set(), "snapshot": set()}
    for i, values in enumerate((other, shared, both)):
        found["group"].add(ec2.create_security_group(
            GroupName=f"k8s-elb-decoy{i}", Description="decoy", VpcId=net.vpc,
            TagSpecifications=spec_for(values, "security-group"))["GroupId"])
    listener = [{"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 30080}]
    for i, values in enumerate(({**other, **service}, {**shared, **service}, service, OWNED, {**both, **service})):
        elb.create_load_balancer(LoadBalancerName=f"decoy{i}", Subnets=net.public, Listeners=listener,
                                 Tags=tags(values))
        found["elb"].add(f"decoy{i}")
    # A cluster of the same name elsewhere: its load balancer, in another VPC, is not this cluster's.
    elsewhere = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=elsewhere, CidrBlock="10.9.0.0/24", AvailabilityZone="us-east-1a")
    elb.create_load_balancer(LoadBalancerName="elsewhere", Subnets=[subnet["Subnet"]["SubnetId"]],
                             Listeners=listener, Tags=tags({**OWNED, **service}))
    found["elb"].add("elsewhere")
    found["elbv2"].add(elbv2.create_load_balancer(Name="decoy-nlb", Type="network", Subnets=net.public,
                                                  Tags=tags({**other, **service}))["LoadBalancers"][0]
                       ["LoadBalancerArn"])
    found["elbv2"].add(elbv2.create_target_group(Name="decoy-tg", Protocol="TCP", Port=30001, VpcId=net.vpc,
                                                 Tags=tags(OWNED))["TargetGroups"][0]["TargetGroupArn"])
    for values in ({"ebs.csi.aws.com/cluster": "true", **other}, {"ebs.csi.aws.com/cluster": "true"},
                   {"ebs.csi.aws.com/cluster": "true", **shared}, OWNED,
                   {**CSI, "kubeaws.io/cluster": "other"}, {**CSI, **other}):
        found["volume"].add(ec2.create_volume(AvailabilityZone="us-east-1a", Size=1,
                                              TagSpecifications=spec_for(values, "volume"))["VolumeId"])
    source = sorted(found["volume"])[0]
    found["snapshot"].add(ec2.create_snapshot(VolumeId=source, TagSpecifications=spec_for(
        {"ebs.csi.aws.com/cluster": "true", **other}, "snapshot"))["SnapshotId"])
    return found


def surviving(ctx: AwsContext, decoys: dict[str, set[str]]) -> dict[str, set[str]]:
    """The decoys that still exist."""
    ec2, elb, elbv2 = ctx.client("ec2"), ctx.client("elb"), ctx.client("elbv2")
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    volumes = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"] if v["State"] not in ("deleting", "deleted")}
    snapshots = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    v2 = {lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]}
    v2 |= {tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]}
    classic = {lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]}
    present = {"group": groups, "elb": classic, "elbv2": v2, "volume": volumes, "snapshot": snapshots}
    return {kind: ids & present[kind] for kind, ids in decoys.items()}


def leftovers(ctx: AwsContext, spare: set[str]) -> list[str]:
    """Everything of the cluster still in AWS, in every service (what tests/aws/leftovers.py counts on real
    AWS, and the snapshots it does not), but the decoys tagged for this cluster as `shared` or claimed by two."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    found, unchecked = find_leftovers(session, REGION, CLUSTER, state_bucket_name(CLUSTER, ctx.account_id(), REGION))
    assert not unchecked, unchecked
    left = [f"{item.kind} {item.id}" for item in found if item.id not in spare]
    for snap in ctx.client("ec2").describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{CLUSTER}", "kubeaws.io/cluster"]}])["Snapshots"]:
        if snap["SnapshotId"] not in spare:
            left.append(f"ec2 snapshot {snap['SnapshotId']}")
    return sorted(left)


def apply_dev(ctx: AwsContext) -> Network:
    result = api.apply(load_spec(SPEC_FILE), ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    return cluster_network(ctx)


def found_ids(ctx: AwsContext) -> dict[str, set[str]]:
    report = api.status(load_spec(SPEC_FILE), ctx)
    out: dict[str, set[str]] = {}
    for o in report.controller_made:
        out.setdefault(o.kind, set()).add(o.id)
    return out


def test_delete_removes_what_the_controllers_made_and_nothing_else(ctx: AwsContext) -> None:
    net = apply_dev(ctx)
    made = make_as_controllers(ctx, net)
    decoys = make_decoys(ctx, net)
    assert found_ids(ctx) == made.ids  # exactly these: none of kubeaws' own, no decoy
    spare = decoys["group"] | decoys["elb"] | decoys["elbv2"] | decoys["volume"] | decoys["snapshot"]

    result = api.delete(load_spec(SPEC_FILE), ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    assert {e.id for e in result.done if e.id in made.all()} == made.all()
    assert leftovers(ctx, spare) == []
    assert surviving(ctx, decoys) == decoys
    assert api.status(load_spec(SPEC_FILE), ctx).controller_made == []


def test_apply_plans_nothing_for_them_and_keeps_them(ctx: AwsContext) -> None:
    net = apply_dev(ctx)
    made = make_as_controllers(ctx, net)
    ec2 = ctx.client("ec2")
    rules_before = ec2.describe_security_groups(GroupIds=[net.nodes_group])["SecurityGroups"][0]["IpPermissions"]

    plan = api.plan(load_spec(SPEC_FILE), ctx)
    assert plan.pending == 0, [(c.action, c.key, c.diff) for c in plan.changes if c.action != "noop"]
    result = api.apply(load_spec(SPEC_FILE), ctx)
    assert result.ok and result.events == []
    assert found_ids(ctx) == made.ids
    rules_after = ec2.describe_security_groups(GroupIds=[net.nodes_group])["SecurityGroups"][0]["IpPermissions"]
    assert rules_after == rules_before  # the controllers' rules in kubeaws' nodes group included


class AwsDependencies:
    """`before-call` hook: DependencyViolation where AWS answers it and moto does not. A security group still
    used by a load balancer or named as a source by another group's rule; a subnet a load balancer still sits in;
    a VPC still holding security groups. And a load balancer's ENIs drain: the first two deletes of a group a
    load balancer used (when the hook was installed) that come after it went answer DependencyViolation too.
    Reads moto with clients of its own (no hooks)."""

    DRAIN = 2

    def __init__(self, endpoint: str) -> None:
        self.ec2, self.elb, self.elbv2 = (boto3.client(s, endpoint_url=endpoint, region_name=REGION)
                                          for s in ("ec2", "elb", "elbv2"))
        self.answered: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.draining = {g: self.DRAIN for _, groups, _ in self._balancers() for g in groups}

    def _balancers(self) -> Iterator[tuple[set[str], set[str], str]]:
        """(subnets, groups, VPC) of every load balancer."""
        for lb in self.elb.describe_load_balancers()["LoadBalancerDescriptions"]:
            yield set(lb.get("Subnets") or []), set(lb.get("SecurityGroups") or []), lb.get("VPCId", "")
        for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]:
            yield ({z["SubnetId"] for z in lb.get("AvailabilityZones", [])}, set(lb.get("SecurityGroups") or []),
                   lb.get("VpcId", ""))

    def _in_use(self, operation: str, body: dict[str, Any]) -> bool:
        if operation == "DeleteSecurityGroup":
            group = body["GroupId"]
            if any(group in groups for _, groups, _ in self._balancers()):
                return True
            referenced = any(pair.get("GroupId") == group and g["GroupId"] != group
                             for g in self.ec2.describe_security_groups()["SecurityGroups"]
                             for perm in g.get("IpPermissions", []) for pair in perm.get("UserIdGroupPairs", []))
            if referenced:
                return True
            if self.draining.get(group):
                self.draining[group] -= 1
                return True
            return False
        if operation == "DeleteSubnet":
            return any(body["SubnetId"] in subnets for subnets, _, _ in self._balancers())
        if operation == "DeleteVpc":
            groups = self.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [body["VpcId"]]}])
            return any(g["GroupName"] != "default" for g in groups["SecurityGroups"]) or any(
                vpc == body["VpcId"] for _, _, vpc in self._balancers())
        return False

    def __call__(self, model: Any, params: Any, **_: Any) -> Answer | None:
        if model.name not in ("DeleteSecurityGroup", "DeleteSubnet", "DeleteVpc"):
            return None
        body = params.get("body") or {}
        with self.lock:
            if not self._in_use(model.name, body):
                return None
            self.answered.append((model.name, str(next(iter(v for k, v in body.items() if k.endswith("Id"))))))
        return error(400, "DependencyViolation", f"resource has a dependent object (injected for {model.name})")


def test_delete_order_holds_under_aws_dependency_rules(endpoint: str) -> None:
    """Load balancers go before the subnets and groups they use, the rule from the load balancer's group in
    kubeaws' nodes group is revoked before that group goes, and the group's delete waits out its ENIs draining."""
    clock = FakeClock()
    ctx = AwsContext(AwsSettings(region=REGION, endpoint_url=endpoint), cluster=CLUSTER, policy=clock.policy())
    net = apply_dev(ctx)
    made = make_as_controllers(ctx, net)
    rules = AwsDependencies(endpoint)
    ctx.add_hook("before-call.ec2", rules)

    result = api.delete(load_spec(SPEC_FILE), ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    assert leftovers(ctx, set()) == []
    group = next(iter(made.ids["ServiceSecurityGroup"]))
    # The hook was in force: the load balancer's group waited for its ENIs (and only for them).
    assert [a for a in rules.answered if a[1] == group] == [("DeleteSecurityGroup", group)] * AwsDependencies.DRAIN


runner = CliRunner()


def test_cli_delete_shows_them_before_confirming_and_deletes_them(ctx: AwsContext) -> None:
    net = apply_dev(ctx)
    make_as_controllers(ctx, net)

    status = runner.invoke(app, ["status", "-f", str(SPEC_FILE)])
    assert status.exit_code == 0, status.stdout + status.stderr
    assert "Made by the cluster's controllers: 2 load balancers, 1 target group, 1 security group, 2 volumes " \
           "and 1 snapshot" in status.stdout
    report = json.loads(runner.invoke(app, ["status", "-f", str(SPEC_FILE), "--output", "json"]).stdout)
    assert {k: len(v) for k, v in report["controllerMade"].items()} == {
        "ServiceLoadBalancer": 1, "ServiceNetworkLoadBalancer": 1, "ServiceTargetGroup": 1,
        "ServiceSecurityGroup": 1, "CsiVolume": 2, "CsiSnapshot": 1}

    refused = runner.invoke(app, ["delete", "-f", str(SPEC_FILE)])  # no terminal, no --yes: only the preview
    assert refused.exit_code == 1
    assert ("Will also delete 2 load balancers, 1 target group, 1 security group, 2 volumes and 1 snapshot the "
            "cluster's controllers created:") in refused.stdout
    assert f"ServiceLoadBalancer/{ELB_NAME} ({ELB_NAME})  # default/web" in refused.stdout
    assert "CsiVolume/pvc-1111" in refused.stdout and "# default/data-db-0" in refused.stdout
    assert found_ids(ctx) != {}

    deleted = runner.invoke(app, ["delete", "-f", str(SPEC_FILE), "--yes", "--output", "json"])
    assert deleted.exit_code == 0, deleted.stdout + deleted.stderr
    kinds = {r["kind"] for r in json.loads(deleted.stdout)["resources"] if r["state"] == "done"}
    assert {"ServiceLoadBalancer", "ServiceSecurityGroup", "CsiVolume", "CsiSnapshot"} <= kinds
    assert found_ids(ctx) == {}
    assert leftovers(ctx, set()) == []


@pytest.mark.parametrize("tagged", [{"kubernetes.io/cluster/dev": "owned", "ebs.csi.aws.com/cluster": "true"},
                                    {"kubernetes.io/cluster/dev": "owned", "kubeaws.io/cluster": "dev"}])
def test_a_volume_is_deleted_only_once_detached(ctx: AwsContext, tagged: dict[str, str]) -> None:
    """A CSI volume still `in-use` is waited for (its node is terminating), never deleted attached. moto
    detaches at once: an after-call hook shows it `in-use` for its first describes after being found."""
    from kubeaws.resources.controller_made import kinds

    ec2 = ctx.client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1,
                               TagSpecifications=spec_for(tagged, "volume"))["VolumeId"]
    kind = kinds()["CsiVolume"]
    (found,) = kind.find(ctx)
    assert found.id == volume
    describes: list[str] = []

    def attached(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name == "DescribeVolumes":
            describes.append(volume)
            if len(describes) <= 3:
                for item in parsed.get("Volumes", []):
                    item["State"] = "in-use"

    deletes: list[int] = []
    ctx.add_hook("after-call.ec2.DescribeVolumes", attached)
    ctx.add_hook("before-call.ec2.DeleteVolume", lambda **_: deletes.append(len(describes)))
    kind.delete(ctx, found)
    assert deletes and deletes[0] > 3  # deleted only after the describes stopped showing it attached
    assert kind.find(ctx) == []


OURS = {"kubernetes.io/cluster/dev": "owned"}


@pytest.mark.parametrize(("tags", "made"), [
    (OURS, True),
    ({**OURS, "kubeaws.io/cluster": "dev", "ebs.csi.aws.com/cluster": "true"}, True),
    ({"kubernetes.io/cluster/dev": "shared"}, False),  # brought by the user
    ({}, False),
    ({"kubernetes.io/cluster/other": "owned"}, False),
    ({**OURS, "kubernetes.io/cluster/other": "owned"}, False),  # claimed by two clusters
    ({**OURS, "kubeaws.io/resource": "SecurityGroup/nodes", "kubeaws.io/cluster": "dev"}, False),  # kubeaws' own
    ({**OURS, "kubeaws.io/cluster": "other"}, False),
    ({**OURS, "KubernetesCluster": "other"}, False),  # the in-tree provider's legacy tag
    ({**OURS, "KubernetesCluster": "dev"}, True),
    ({**OURS, "ebs.csi.aws.com/cluster-name": "other"}, False),
    ({**OURS, "aws:eks:cluster-name": "dev"}, False),  # EKS' own cluster security group: EKS deletes it
])
def test_what_counts_as_made_by_the_cluster_s_controllers(tags: dict[str, str], made: bool) -> None:
    from kubeaws.aws.tags import is_controller_made

    assert is_controller_made(tags, "dev") is made


def test_controller_kinds_are_outside_the_registry_and_ranked_between_compute_and_network() -> None:
    """Out of the registry (so no plan, hence no apply, ever sees them); load balancers after every instance
    and control plane (no controller left to make them again), target groups after their load balancers,
    groups after those and before kubeaws' rule sets, groups, subnets and VPC; volumes and snapshots last."""
    from kubeaws.resources import controller_made, registry

    made, kinds = controller_made.kinds(), registry.kinds()
    assert set(made) == {"ServiceLoadBalancer", "ServiceNetworkLoadBalancer", "ServiceTargetGroup",
                         "ServiceSecurityGroup", "CsiVolume", "CsiSnapshot"}
    assert not set(made) & set(kinds)
    assert all(not set(made) & set(registry.for_mode(mode)) for mode in ("kubeadm", "eks"))
    compute = min(kinds[k].rank for k in ("Instance", "AutoScalingGroup", "EksCluster", "EksNodegroup"))
    network = max(kinds[k].rank for k in ("SecurityGroupRules", "SecurityGroup", "Subnet", "Vpc", "RouteTable"))
    lbs = {made["ServiceLoadBalancer"].rank, made["ServiceNetworkLoadBalancer"].rank}
    assert compute > max(lbs) and min(lbs) > made["ServiceTargetGroup"].rank > made["ServiceSecurityGroup"].rank
    assert made["ServiceSecurityGroup"].rank > network
    assert made["CsiVolume"].rank < min(k.rank for k in kinds.values())
    assert made["CsiSnapshot"].rank < min(k.rank for k in kinds.values())


def test_tags_of_a_load_balancer_gone_meanwhile_are_asked_one_by_one() -> None:
    """DescribeTags fails a whole batch naming one that went between the describe and it: the others' tags are
    still read (one by one), the gone one's are not, and other errors are not swallowed."""
    from botocore.exceptions import ClientError

    from kubeaws.resources.controller_made import tags_in_batches

    names = [f"lb{i}" for i in range(25)]
    asked: list[list[str]] = []

    def fetch(batch: list[str]) -> dict[str, dict[str, str]]:
        asked.append(batch)
        if "lb3" in batch:
            raise ClientError({"Error": {"Code": "LoadBalancerNotFound", "Message": "gone"}}, "DescribeTags")
        return {n: {"n": n} for n in batch}

    found = tags_in_batches(fetch, names, ("LoadBalancerNotFound",))
    assert set(found) == set(names) - {"lb3"}
    assert asked[0] == names[:20] and names[20:] in asked and len(asked) == 1 + 20 + 1
    with pytest.raises(ClientError):
        tags_in_batches(fetch, names, ("TargetGroupNotFound",))
