"""Day 2 without a plan (issue #11 item 5): `kubeaws get clusters` finds the account's kubeaws clusters by tag
in one region or all of them (a kubeadm cluster in us-east-1, an EKS one in eu-west-1, what another tool made
left out, a region that refuses skipped), and `kubeaws scale` sets a group's size now (an Auto Scaling group;
an EKS managed node group), refuses sizes out of range with exit 2, says where the spec disagrees and writes
the new size back keeping the file's comments.

moto adaptations: the EKS cluster is applied with tests/fake_aws.FakeEks answering what moto's EKS lacks
(access entries, add-ons, DescribeUpdate); moto's GetResources does not list EKS clusters (the EKS cluster is
found through its VPC and other tagged resources, as discover's docstring says).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner, Result

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.day2 import scale as sc
from kubeaws.day2.discover import age, clusters_in_region, discover
from kubeaws.errors import KubeawsError
from kubeaws.spec.edit import EditError, set_group_size
from kubeaws.spec.load import load_spec
from tests.conftest import make_ctx
from tests.fake_aws import FakeEks
from tests.helpers import make_spec

runner = CliRunner()
EU = "eu-west-1"

SPEC_TEXT = """\
# The team's cluster: one control-plane node, two node groups.
apiVersion: kubeaws.io/v1alpha1
kind: Cluster
metadata:
  name: alpha   # kubeadm
spec:
  region: us-east-1
  kubernetesVersion: "1.31"
  network:
    vpc: {cidr: 10.0.0.0/16}
    availabilityZones: [us-east-1a, us-east-1b]
  access:
    adminCIDRs: [203.0.113.0/24]
  nodeGroups:
    # general purpose workers
    - name: general       # the default group
      instanceTypes: [m5.large]
      size:
        min: 1            # never fewer
        desired: 2        # the usual
        max: 4            # budget
    - name: batch
      instanceTypes: [m5.large]
"""

EKS_SPEC = make_spec(
    "beta", region=EU, mode="eks",
    network={"availabilityZones": [f"{EU}a", f"{EU}b"], "cni": "aws-vpc-cni"},
    access={"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]}, eks={"authenticationMode": "API"},
    nodeGroups=[{"name": "managed", "type": "managed", "instanceTypes": ["t3.large"],
                 "size": {"min": 1, "desired": 2, "max": 4}}],
)


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def apply_ok(spec: Any, ctx: AwsContext) -> None:
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]


@pytest.fixture
def alpha(endpoint: str, tmp_path: Path) -> Path:
    """Cluster alpha (kubeadm) applied in us-east-1; its spec file (with comments)."""
    path = tmp_path / "alpha.yaml"
    path.write_text(SPEC_TEXT)
    apply_ok(load_spec(path), make_ctx(endpoint, "alpha"))
    return path


def other_tool(endpoint: str) -> None:
    """What another tool made in us-east-1: a VPC and an Auto Scaling group tagged only for Kubernetes (as
    eksctl tags), and an EKS cluster without kubeaws' tags. None of it is a kubeaws cluster."""
    ctx = make_ctx(endpoint, "other")
    vpc = ctx.call("ec2", "create_vpc", CidrBlock="10.9.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
        {"Key": "kubernetes.io/cluster/other", "Value": "owned"}, {"Key": "Name", "Value": "other"}]}])["Vpc"]
    subnet = ctx.call("ec2", "create_subnet", VpcId=vpc["VpcId"], CidrBlock="10.9.0.0/24",
                      AvailabilityZone="us-east-1a")["Subnet"]
    ami = ctx.call("ec2", "describe_images", Owners=["amazon"])["Images"][0]["ImageId"]
    ctx.call("ec2", "create_launch_template", LaunchTemplateName="other-lt",
             LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
    ctx.call("autoscaling", "create_auto_scaling_group", AutoScalingGroupName="other-nodes", MinSize=0, MaxSize=1,
             LaunchTemplate={"LaunchTemplateName": "other-lt"}, VPCZoneIdentifier=subnet["SubnetId"],
             Tags=[{"Key": "kubernetes.io/cluster/other", "Value": "owned", "PropagateAtLaunch": True}])
    ctx.call("eks", "create_cluster", name="other", roleArn="arn:aws:iam::123456789012:role/other",
             resourcesVpcConfig={"subnetIds": [subnet["SubnetId"]]}, tags={"made-by": "eksctl"})


def test_in_region_shares_the_session(endpoint: str) -> None:
    home = make_ctx(endpoint, "", region="us-east-1")
    other = home.in_region(EU)
    assert other.region == EU and other.client("ec2").meta.region_name == EU
    assert other.settings.endpoint_url == endpoint and home.client("ec2").meta.region_name == "us-east-1"
    assert other._session is home._session  # one botocore session: service models loaded once
    other.call("ec2", "describe_regions")
    assert home.calls.reads() == 1  # one call log


def test_age() -> None:
    now = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)
    assert age(None, now) is None
    assert age(now - dt.timedelta(seconds=45), now) == "45s"
    assert age(now - dt.timedelta(minutes=90), now) == "90m"
    assert age(now - dt.timedelta(hours=30), now) == "30h"
    assert age(now - dt.timedelta(days=9, hours=5), now) == "9d"


def test_get_clusters_in_a_region_and_in_all(alpha: Path, endpoint: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    eks_ctx = make_ctx(endpoint, "beta", region=EU)
    FakeEks().install(eks_ctx)
    apply_ok(EKS_SPEC, eks_ctx)
    other_tool(endpoint)

    found = json.loads(invoke("get", "clusters", "--region", "us-east-1", "-o", "json").stdout)
    assert [c["name"] for c in found["clusters"]] == ["alpha"]
    one = found["clusters"][0]
    assert (one["mode"], one["kubernetesVersion"], one["region"], one["controlPlane"]) == (
        "kubeadm", "1.31", "us-east-1", 1)
    assert [(g["name"], g["awsName"], g["type"], g["desired"], g["min"], g["max"]) for g in one["groups"]] == [
        ("batch", "alpha-batch", "self-managed", 1, 1, 3), ("general", "alpha-general", "self-managed", 2, 1, 4)]
    assert one["created"] and one["age"]

    # Every region DescribeRegions lists (moto lists 38 and sets up each region's backends on first use, which
    # takes seconds: the test keeps four of them).
    from kubeaws.day2 import discover as module

    listed = module.enabled_regions(make_ctx(endpoint, "", region="us-east-1"))
    assert {"us-east-1", EU, "ap-south-1", "sa-east-1"} <= set(listed)
    monkeypatch.setattr(module, "enabled_regions", lambda ctx: ["ap-south-1", EU, "sa-east-1", "us-east-1"])
    every = invoke("get", "clusters", "--all-regions", "-o", "json")
    assert every.exit_code == 0, every.output
    doc = json.loads(every.stdout)
    assert {(c["name"], c["region"]) for c in doc["clusters"]} == {("alpha", "us-east-1"), ("beta", EU)}
    assert doc["regions"] == ["ap-south-1", EU, "sa-east-1", "us-east-1"] and doc["skippedRegions"] == []
    beta = next(c for c in doc["clusters"] if c["name"] == "beta")
    assert (beta["mode"], beta["kubernetesVersion"], beta["controlPlane"]) == ("eks", "1.31", None)
    assert [(g["name"], g["type"], g["desired"]) for g in beta["groups"]] == [("managed", "managed", 2)]

    text = invoke("get", "clusters", "--region", EU)
    assert text.exit_code == 0, text.output
    assert "beta" in text.stdout and "eks" in text.stdout and "managed (2)" in text.stdout
    assert "alpha" not in text.stdout
    empty = invoke("get", "clusters", "--region", "ap-south-1")
    assert empty.exit_code == 0 and "No kubeaws clusters found in ap-south-1" in empty.stdout

    # Reads: two where nothing of kubeaws is; a handful for a region's clusters (no describe per resource).
    nothing = make_ctx(endpoint, "", region="ap-south-1")
    assert clusters_in_region(nothing) == []
    assert nothing.calls.reads() == 2, nothing.calls.snapshot()
    ctx = make_ctx(endpoint, "", region="us-east-1")
    assert [c.name for c in clusters_in_region(ctx)] == ["alpha"]
    assert ctx.calls.mutating() == 0 and ctx.calls.reads() <= 6, ctx.calls.snapshot()

    # A region that refuses (an SCP, a region not enabled) is skipped with a note, unless it is the only one.
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "denied by an SCP"}}, "GetResources")

    def connect(region: str) -> AwsContext:
        ctx = make_ctx(endpoint, "", region=region)
        if region in ("ap-south-1", "sa-east-1"):
            ctx.add_hook("before-call", refuse)
        return ctx

    found = discover(["us-east-1", "ap-south-1"], connect)
    assert [c.name for c in found.clusters] == ["alpha"]
    assert found.skipped == {"ap-south-1": "UnauthorizedOperation: denied by an SCP"}
    with pytest.raises(ClientError):  # one region asked by name: its error is the command's
        discover(["ap-south-1"], connect)
    with pytest.raises(KubeawsError, match="no region could be read"):
        discover(["ap-south-1", "sa-east-1"], connect)

    # scale on the EKS cluster's managed node group (module level: FakeEks answers DescribeUpdate).
    target = sc.find_target(EKS_SPEC, eks_ctx, "managed")
    assert (target.type, target.aws_name, target.before) == ("managed", "beta-managed", sc.Sizes(1, 2, 4))
    with pytest.raises(sc.SizeError, match="pass --max 6"):
        sc.resolve_sizes(target, 6)
    sc.set_size(eks_ctx, target, sc.resolve_sizes(target, 3))
    scaling = eks_ctx.call("eks", "describe_nodegroup", clusterName="beta", nodegroupName="beta-managed")[
        "nodegroup"]["scalingConfig"]
    assert (scaling["minSize"], scaling["desiredSize"], scaling["maxSize"]) == (1, 3, 4)
    assert sc.disagreements(EKS_SPEC, "managed", sc.Sizes(1, 3, 4)) == [
        "spec.nodeGroups[0].size.desired is 2: apply leaves an existing group's desired size alone (the "
        "cluster-autoscaler and rollouts own it), but a group made again would start at 2"]


def group_sizes(endpoint: str, name: str) -> tuple[int, int, int]:
    g = make_ctx(endpoint, "alpha").call("autoscaling", "describe_auto_scaling_groups",
                                         AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return g["MinSize"], g["DesiredCapacity"], g["MaxSize"]


OUT_OF_RANGE = [
    (["--desired", "9"], "--desired 9 is above the maximum 4 (group alpha-general has min 1, max 4): pass --max 9"),
    (["--desired", "0"], "--desired 0 is below the minimum 1 (group alpha-general has min 1, max 4): pass --min 0"),
    (["--desired", "2", "--min", "5"], "min 5 is above max 4"),
    (["--desired", "6000", "--max", "6000"], "--desired 6000 is out of range: use 0-5000"),
]


def test_scale_sets_the_group_and_writes_the_spec_back(alpha: Path, endpoint: str) -> None:
    for args, message in OUT_OF_RANGE:  # refused before any change, exit 2, no traceback
        refused = invoke("scale", "-f", str(alpha), "general", *args)
        assert refused.exit_code == 2, (args, refused.output)
        text = " ".join(refused.stderr.split())
        assert message in text and "Traceback" not in refused.output, refused.output
    assert group_sizes(endpoint, "alpha-general") == (1, 2, 4)

    agreeing = invoke("scale", "-f", str(alpha), "general", "--desired", "2", "-o", "json")
    assert agreeing.exit_code == 0, agreeing.output
    assert json.loads(agreeing.stdout)["specAgrees"] is True and json.loads(agreeing.stdout)["changed"] is False

    result = invoke("scale", "-f", str(alpha), "general", "--desired", "3")
    assert result.exit_code == 0, result.output
    assert group_sizes(endpoint, "alpha-general") == (1, 3, 4)
    assert "desired 2 (min 1, max 4) -> desired 3 (min 1, max 4)" in result.stdout
    assert "spec.nodeGroups[0].size.desired is 2" in result.stdout
    assert "--write-spec" in result.stderr  # not a terminal: no question, the way to write it
    assert alpha.read_text() == SPEC_TEXT

    written = invoke("scale", "-f", str(alpha), "general", "--desired", "5", "--max", "6", "--write-spec",
                     "-o", "json")
    assert written.exit_code == 0, written.output
    doc = json.loads(written.stdout)
    assert doc["after"] == {"min": 1, "desired": 5, "max": 6} and doc["specWritten"] == str(alpha)
    assert any("the next apply sets the group back to min 1, max 4" in note for note in doc["notes"])
    assert group_sizes(endpoint, "alpha-general") == (1, 5, 6)
    expected = SPEC_TEXT.replace("desired: 2        # the usual", "desired: 5        # the usual").replace(
        "max: 4            # budget", "max: 6            # budget")
    assert alpha.read_text() == expected  # only the two values changed: comments and layout kept
    spec = load_spec(alpha)
    assert api.plan(spec, make_ctx(endpoint, "alpha")).pending == 0  # the spec agrees with AWS again

    added = invoke("scale", "-f", str(alpha), "batch", "--desired", "0", "--min", "0", "--write-spec")
    assert added.exit_code == 0, added.output
    assert group_sizes(endpoint, "alpha-batch") == (0, 0, 3)
    assert "    - name: batch\n      size: {min: 0, desired: 0, max: 3}\n      instanceTypes: [m5.large]\n" \
        in alpha.read_text()


def test_scale_unknown_group_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "alpha.yaml"
    path.write_text(SPEC_TEXT)
    result = invoke("scale", "-f", str(path), "genral", "--desired", "1")
    assert result.exit_code == 2
    assert "no node group 'genral'" in result.stderr and "did you mean general?" in result.stderr


def test_size_write_back_refuses_what_it_cannot_do_safely() -> None:
    shared = SPEC_TEXT.replace("""      size:
        min: 1            # never fewer
        desired: 2        # the usual
        max: 4            # budget
""", "      size: &s {min: 1, desired: 2, max: 4}\n").replace(
        "    - name: batch\n      instanceTypes: [m5.large]\n",
        "    - name: batch\n      instanceTypes: [m5.large]\n      size: *s\n")
    with pytest.raises(EditError, match="shared through a YAML anchor"):
        set_group_size(shared, "general", {"desired": 3})
    with pytest.raises(EditError, match="no node group named 'nope'"):
        set_group_size(SPEC_TEXT, "nope", {"desired": 3})
    flow = set_group_size(SPEC_TEXT.replace("""      size:
        min: 1            # never fewer
        desired: 2        # the usual
        max: 4            # budget
""", "      size: {min: 1, max: 4}  # no desired\n"), "general", {"desired": 3})
    assert "      size: {min: 1, max: 4, desired: 3}  # no desired\n" in flow
