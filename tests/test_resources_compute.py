"""Compute kinds against the moto server: Volume, NetworkInterface, LaunchTemplate, AutoScalingGroup.

Each: create -> tags on the resource -> list_owned (one read) diffs clean -> update -> delete -> gone ->
delete again is a no-op. moto adaptations (noted where used): resources are ready at once; ASGs ignore AZ
spreading and mixed-instance distribution; DeleteLaunchTemplateVersions is missing (HTTP 500): the test
answers it through a botocore `before-call` hook instead.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

# Imported to register the kinds (and launch_template for its KEEP_VERSIONS / prune_versions).
import kubeaws.resources.auto_scaling_group
import kubeaws.resources.launch_template
import kubeaws.resources.network_interface
import kubeaws.resources.volume
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, owned_tags, tag_dict
from kubeaws.errors import ImmutableChangeError
from kubeaws.resources import registry
from kubeaws.resources.auto_scaling_group import LT_HASH_TAG
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.launch_template import HASH_TAG, InsecureLaunchTemplate, content_hash, hashed_props
from tests.helpers import CallRecorder, make_network

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
VOLUME = registry.get("Volume")
ENI = registry.get("NetworkInterface")
LT = registry.get("LaunchTemplate")
ASG = registry.get("AutoScalingGroup")


@pytest.fixture
def net(ctx: AwsContext) -> dict[str, Any]:
    ami = ctx.call("ssm", "get_parameter", Name=AMI_PARAMETER)["Parameter"]["Value"]
    return {**make_network(ctx, ("dev-control-plane", "dev-nodes")), "ami": ami}


def tags_for(kind: str, name: str, **extra: str) -> dict[str, str]:
    return owned_tags("dev", kind, name, f"dev-{name}", extra)


def listed(ctx: AwsContext, kind: Any, reads: dict[tuple[str, str], int]) -> list[Observed]:
    with ctx.counting() as log:
        found: list[Observed] = kind.list_owned(ctx)
    assert dict(log.snapshot()) == reads
    return found


# -- Volume --------------------------------------------------------------------------------------------
def volume(**overrides: Any) -> Desired:
    props = {"availability_zone": "us-east-1a", "size": 20, "volume_type": "gp3", "iops": None,
             "throughput": None, "encrypted": True, **overrides}
    return Desired("Volume", "etcd-0", props, tags=tags_for("Volume", "etcd-0", **{"kubeaws.io/etcd-member": "0"}))


def test_volume_lifecycle(ctx: AwsContext, net: dict[str, Any]) -> None:
    want = volume()
    created = VOLUME.create(ctx, want)
    [vol] = ctx.call("ec2", "describe_volumes", VolumeIds=[created.id])["Volumes"]
    assert vol["Encrypted"] and vol["VolumeType"] == "gp3" and vol["Size"] == 20
    assert tag_dict(vol["Tags"]) == want.tags

    # An instance's root volume carries the cluster tag too: it is not a Volume resource.
    ctx.call("ec2", "create_volume", AvailabilityZone="us-east-1a", Size=8, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": CLUSTER_TAG, "Value": "dev"},
                                            {"Key": RESOURCE_TAG, "Value": "Instance/bastion"}]}])
    [found] = listed(ctx, VOLUME, {("ec2", "DescribeVolumes"): 1})
    assert found.id == created.id and found.logical_key == "Volume/etcd-0"
    assert VOLUME.diff(found, want) == {}  # unset IOPS/throughput: AWS's gp3 defaults are no change

    grown = volume(size=30, throughput=250)
    diff = VOLUME.diff(found, grown)
    assert set(diff) == {"size", "throughput"}
    VOLUME.update(ctx, found, grown, diff)
    [found] = VOLUME.list_owned(ctx)
    assert found.fields["size"] == 30 and VOLUME.diff(found, grown) == {}
    with pytest.raises(ImmutableChangeError, match="cannot shrink"):
        VOLUME.update(ctx, found, volume(size=10), VOLUME.diff(found, volume(size=10)))
    assert set(VOLUME.diff(found, volume(size=30, availability_zone="us-east-1b"))) == {"availability_zone"}

    VOLUME.delete(ctx, found)
    assert VOLUME.list_owned(ctx) == []
    VOLUME.delete(ctx, found)  # already gone: no error


# -- NetworkInterface ----------------------------------------------------------------------------------
def test_network_interface_lifecycle(ctx: AwsContext, net: dict[str, Any]) -> None:
    want = Desired("NetworkInterface", "api", {"subnet_id": net["subnets"][0],
                                               "security_group_ids": [net["groups"][0]],
                                               "description": "dev Kubernetes API"},
                   tags=tags_for("NetworkInterface", "api"))
    created = ENI.create(ctx, want)
    assert created.attrs["private_ip"].startswith("10.0.0.")
    [eni] = ctx.call("ec2", "describe_network_interfaces", NetworkInterfaceIds=[created.id])["NetworkInterfaces"]
    assert tag_dict(eni["TagSet"]) == want.tags

    [found] = listed(ctx, ENI, {("ec2", "DescribeNetworkInterfaces"): 1})
    assert found.id == created.id and found.attrs["private_ip"] == created.attrs["private_ip"]
    assert ENI.diff(found, want) == {}

    changed = Desired("NetworkInterface", "api", {**want.props, "security_group_ids": net["groups"],
                                                  "description": "moved"}, tags=want.tags)
    diff = ENI.diff(found, changed)
    assert set(diff) == {"security_group_ids", "description"}
    ENI.update(ctx, found, changed, diff)
    [found] = ENI.list_owned(ctx)
    assert ENI.diff(found, changed) == {}

    ENI.delete(ctx, found)
    assert ENI.list_owned(ctx) == []
    ENI.delete(ctx, found)


# -- LaunchTemplate ------------------------------------------------------------------------------------
def template(net: dict[str, Any], **overrides: Any) -> Desired:
    launch = {"Name": "dev-control-plane", "kubernetes.io/cluster/dev": "owned", "team": "infra"}
    props = {"name": "dev-control-plane", "image_id": net["ami"], "instance_type": "t3.micro", "key_name": None,
             "iam_instance_profile": None, "security_group_ids": [net["groups"][0]],
             "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled",
                                  "http_put_response_hop_limit": 2},
             "block_devices": [
                 {"device_name": None, "size": 50, "volume_type": "gp3", "encrypted": True,
                  "delete_on_termination": True},
                 {"device_name": "/dev/sdf", "size": 100, "volume_type": "gp3", "encrypted": True,
                  "delete_on_termination": True}],
             "user_data": "#cloud-config\nruncmd: [echo hi]\n", "instance_tags": launch, "volume_tags": launch,
             **overrides}
    return Desired("LaunchTemplate", "control-plane", props, tags=tags_for("LaunchTemplate", "control-plane"))


def version_data(ctx: AwsContext, template_id: str, version: str = "$Default") -> dict[str, Any]:
    [v] = ctx.call("ec2", "describe_launch_template_versions", LaunchTemplateId=template_id,
                   Versions=[version])["LaunchTemplateVersions"]
    data: dict[str, Any] = v["LaunchTemplateData"]
    return data


def test_launch_template_lifecycle(ctx: AwsContext, net: dict[str, Any]) -> None:
    want = template(net)
    created = LT.create(ctx, want)
    data = version_data(ctx, created.id)
    assert data["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    image = ctx.call("ec2", "describe_images", ImageIds=[net["ami"]])["Images"][0]
    devices = {d["DeviceName"]: d["Ebs"] for d in data["BlockDeviceMappings"]}
    assert set(devices) == {image["RootDeviceName"], "/dev/sdf"}  # root device name from the AMI
    assert all(ebs["Encrypted"] for ebs in devices.values())
    assert base64.b64decode(data["UserData"]).decode() == want.props["user_data"]
    # moto also echoes the template's own "launch-template" TagSpecification inside the version data.
    specs = {s["ResourceType"]: tag_dict(s["Tags"]) for s in data["TagSpecifications"]
             if s["ResourceType"] != "launch-template"}
    assert specs == {"instance": want.props["instance_tags"], "volume": want.props["volume_tags"]}

    [found] = listed(ctx, LT, {("ec2", "DescribeLaunchTemplates"): 1})
    assert found.id == created.id and found.tags == {**want.tags, HASH_TAG: found.fields["content_hash"]}
    assert found.fields["content_hash"] == content_hash(hashed_props(want.props))
    assert LT.diff(found, want) == {}
    # Order of a set field does not matter to the hash.
    assert LT.diff(found, template(net, security_group_ids=list(want.props["security_group_ids"]))) == {}

    changed = template(net, user_data="#cloud-config\nruncmd: [echo v2]\n",
                       security_group_ids=list(reversed(net["groups"])))
    diff = LT.diff(found, changed)
    assert set(diff) == {"content_hash"}
    updated = LT.update(ctx, found, changed, diff)
    assert updated.attrs["default_version"] == 2
    assert base64.b64decode(version_data(ctx, created.id)["UserData"]).decode() == changed.props["user_data"]
    assert LT.diff(updated, changed) == {}
    # moto's DescribeLaunchTemplates keeps the tags of creation time (real AWS shows CreateTags at once):
    # read the hash tag with DescribeTags instead of re-listing.
    tags = ctx.call("ec2", "describe_tags", Filters=[{"Name": "resource-id", "Values": [created.id]}])["Tags"]
    assert tag_dict(tags)[HASH_TAG] == content_hash(hashed_props(changed.props))

    LT.delete(ctx, found)
    assert LT.list_owned(ctx) == []
    LT.delete(ctx, found)


def test_launch_template_updates_keep_versions_and_prune_spares_those_in_use(ctx: AwsContext,
                                                                           net: dict[str, Any]) -> None:
    """Each content change adds a version and deletes none (groups are pinned to versions: a rollout moves
    them, then prunes). `prune_versions` deletes the versions older than the KEEP_VERSIONS newest, never the
    default nor one a group still launches. moto has no DeleteLaunchTemplateVersions (HTML 500): it is answered
    here, recording the request and hiding the deleted versions from later DescribeLaunchTemplateVersions
    answers, as AWS would."""
    deleted: list[list[str]] = []

    def answer(model: Any, params: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        # The EC2 query body: LaunchTemplateVersion.1=..., LaunchTemplateVersion.2=...
        versions = [v for k, v in params["body"].items() if k.startswith("LaunchTemplateVersion.")]
        deleted.append(versions)
        return AWSResponse("http://moto", 200, HTTPHeaders(), None), {
            "SuccessfullyDeletedLaunchTemplateVersions": [{"VersionNumber": int(v)} for v in versions]}

    def hide_deleted(parsed: dict[str, Any], **_: Any) -> None:
        gone = {int(v) for d in deleted for v in d}
        parsed["LaunchTemplateVersions"] = [v for v in parsed.get("LaunchTemplateVersions", [])
                                            if v["VersionNumber"] not in gone]

    ctx.add_hook("before-call.ec2.DeleteLaunchTemplateVersions", answer)
    ctx.add_hook("after-call.ec2.DescribeLaunchTemplateVersions", hide_deleted)
    keep = kubeaws.resources.launch_template.KEEP_VERSIONS
    prune = kubeaws.resources.launch_template.prune_versions
    found = LT.create(ctx, template(net))
    for i in range(keep + 2):  # versions 2 .. keep + 3
        changed = template(net, user_data=f"#!/bin/bash\necho {i}\n")
        found = LT.update(ctx, found, changed, LT.diff(found, changed))
    latest = keep + 3
    assert found.attrs["default_version"] == latest and deleted == []
    # a group still on version 2: nothing older than 2 - keep goes
    assert prune(ctx, found.id, latest, frozenset({2})) == [] and deleted == []
    assert sorted(prune(ctx, found.id, latest)) == [1, 2, 3]
    assert prune(ctx, found.id, 5) == []  # nothing older than 5 - keep


def test_launch_template_create_only_image_is_not_hashed(ctx: AwsContext, net: dict[str, Any]) -> None:
    want = template(net)
    want.create_only = frozenset({"image_id"})
    found = LT.create(ctx, want)
    moved = template(net, image_id="ami-0000000000000000")
    moved.create_only = want.create_only
    assert LT.diff(found, moved) == {}


@pytest.mark.parametrize("override", [
    {"metadata_options": {"http_tokens": "optional"}},
    {"block_devices": [{"device_name": None, "size": 8, "volume_type": "gp3", "encrypted": False}]},
])
def test_launch_template_refuses_insecure_settings(ctx: AwsContext, net: dict[str, Any],
                                                   override: dict[str, Any]) -> None:
    with pytest.raises(InsecureLaunchTemplate):
        LT.create(ctx, template(net, **override))
    assert LT.list_owned(ctx) == []


# -- AutoScalingGroup ----------------------------------------------------------------------------------
def group(template_id: str, net: dict[str, Any], **overrides: Any) -> Desired:
    props = {"name": "dev-general", "launch_template_id": template_id, "launch_template_version": 1,
             "min_size": 1, "max_size": 3, "desired_capacity": 1, "subnet_ids": list(net["subnets"]),
             "mixed_instances": None, "target_group_arns": [], "health_check_type": "EC2",
             "health_check_grace_period": 300, "capacity_rebalance": False, **overrides}
    return Desired("AutoScalingGroup", "ng-general", props,
                   tags=tags_for("AutoScalingGroup", "general", **{"k8s.io/cluster-autoscaler/enabled": "true",
                                                                   "team": "infra"}),
                   create_only=frozenset({"desired_capacity", "launch_template_version"}))


def test_auto_scaling_group_lifecycle(ctx: AwsContext, net: dict[str, Any]) -> None:
    lt = LT.create(ctx, template(net))
    want = group(lt.id, net)
    created = ASG.create(ctx, want)
    assert created.id == "dev-general" and created.fields["launch_template_version"] == "1"
    [raw] = ctx.call("autoscaling", "describe_auto_scaling_groups",
                     AutoScalingGroupNames=["dev-general"])["AutoScalingGroups"]
    assert raw["LaunchTemplate"] == {"LaunchTemplateId": lt.id, "LaunchTemplateName": "dev-control-plane",
                                     "Version": "1"}  # pinned: a new template version launches nothing
    propagate = {t["Key"]: t["PropagateAtLaunch"] for t in raw["Tags"]}
    assert {k for k, p in propagate.items() if p} == set(want.tags) - {CLUSTER_TAG, RESOURCE_TAG}
    assert not propagate[CLUSTER_TAG] and not propagate[RESOURCE_TAG] and LT_HASH_TAG not in propagate
    # Instances get the propagated tags, never the identity tags (the Instance kind would adopt them).
    [instance_id] = created.attrs["instances"]
    inst = ctx.call("ec2", "describe_instances", InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert tag_dict(inst["Tags"])["team"] == "infra" and CLUSTER_TAG not in tag_dict(inst["Tags"])

    [found] = listed(ctx, ASG, {("autoscaling", "DescribeAutoScalingGroups"): 1})
    assert ASG.diff(found, want) == {}

    # The cluster-autoscaler moved the desired capacity, a rollout moved the version: neither is a diff.
    LT.update(ctx, lt, template(net, user_data="#!/bin/bash\necho 2\n"), {"content_hash": ("a", "b")})
    ctx.call("autoscaling", "update_auto_scaling_group", AutoScalingGroupName="dev-general", DesiredCapacity=3,
             LaunchTemplate={"LaunchTemplateId": lt.id, "Version": "2"})
    [found] = ASG.list_owned(ctx)
    assert found.fields["desired_capacity"] == 3 and ASG.diff(found, want) == {}

    # Resize below the current capacity (clamped), new subnets and tag: the version the group launches stays.
    recorder = CallRecorder()
    ctx.add_hook("before-call", recorder)
    changed = group(lt.id, net, max_size=2, subnet_ids=net["subnets"][:1])
    changed.tags["owner"] = "me"
    diff = ASG.diff(found, changed)
    assert set(diff) == {"max_size", "subnet_ids", "tags"}
    ASG.update(ctx, found, changed, diff)
    [update] = [p for op, p in recorder.calls if op == "UpdateAutoScalingGroup"]
    assert update["LaunchTemplate.Version"] == "2"  # the query body, flattened
    assert "StartInstanceRefresh" not in recorder.operations(), "apply never replaces instances"
    [found] = ASG.list_owned(ctx)
    assert ASG.diff(found, changed) == {} and found.fields["desired_capacity"] == 2
    assert found.fields["launch_template_version"] == "2"

    ASG.delete(ctx, found)
    assert ASG.list_owned(ctx) == []
    ASG.delete(ctx, found)  # already gone: no error


def test_auto_scaling_group_mixed_instances_for_spot(ctx: AwsContext, net: dict[str, Any]) -> None:
    # The model leaves the template's instance type out for mixed groups; moto launches from the template
    # itself (ignoring the overrides) and, validating instance types, would fail on an empty one.
    lt = LT.create(ctx, template(net))
    mixed = {"instance_types": ["m5.large", "t3.micro"], "on_demand_base_capacity": 0,
             "on_demand_percentage_above_base": 0, "spot_allocation_strategy": "price-capacity-optimized"}
    want = group(lt.id, net, mixed_instances=mixed, capacity_rebalance=True)
    ASG.create(ctx, want)
    [raw] = ctx.call("autoscaling", "describe_auto_scaling_groups",
                     AutoScalingGroupNames=["dev-general"])["AutoScalingGroups"]
    policy = raw["MixedInstancesPolicy"]
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] == "1"
    assert [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]] == ["m5.large", "t3.micro"]
    assert policy["InstancesDistribution"]["SpotAllocationStrategy"] == "price-capacity-optimized"
    assert raw["CapacityRebalance"] is True
    [found] = ASG.list_owned(ctx)
    assert ASG.diff(found, want) == {}
