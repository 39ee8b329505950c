"""Instance kind against the moto server: launch with IMDSv2 and an encrypted, tagged root volume, find it
again with a clean diff (idempotence), change its security groups and metadata options in place,
terminate (twice)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import owned_tags, tag_dict
from kubeaws.errors import AwsCallError
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.instance import Instance

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
INSTANCE = registry.get("Instance")


@pytest.fixture
def net(ctx: AwsContext) -> dict[str, Any]:
    """A VPC, a subnet, two security groups and the current Amazon Linux AMI."""
    vpc = ctx.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ctx.call("ec2", "create_subnet", VpcId=vpc, CidrBlock="10.0.1.0/24",
                      AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    groups = [ctx.call("ec2", "create_security_group", GroupName=n, Description=n, VpcId=vpc)["GroupId"]
              for n in ("dev-bastion", "dev-extra")]
    ami = ctx.call("ssm", "get_parameter", Name=AMI_PARAMETER)["Parameter"]["Value"]
    return {"vpc": vpc, "subnet": subnet, "groups": groups, "ami": ami}


def desired(net: dict[str, Any], **overrides: Any) -> Desired:
    props: dict[str, Any] = {
        "image_id": net["ami"],
        "instance_type": "t3.micro",
        "subnet_id": net["subnet"],
        "security_group_ids": [net["groups"][0]],
        "key_name": None,
        "iam_instance_profile": None,
        "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled",
                             "http_put_response_hop_limit": 1},
        "root_volume": {"size": 16, "type": "gp3", "encrypted": True},
        "user_data": "#!/bin/sh\necho hello\n",
        **overrides,
    }
    return Desired("Instance", "bastion", props,
                   tags=owned_tags("dev", "Instance", "bastion", "dev-bastion", {"kubeaws.io/role": "bastion"}))


def describe(ctx: AwsContext, instance_id: str) -> dict[str, Any]:
    found = ctx.call("ec2", "describe_instances", InstanceIds=[instance_id])
    inst: dict[str, Any] = found["Reservations"][0]["Instances"][0]
    return inst


def listed(ctx: AwsContext) -> Observed:
    with ctx.counting() as log:
        found = INSTANCE.list_owned(ctx)
    assert log.snapshot() == {("ec2", "DescribeInstances"): 1}  # one describe, however many instances
    [only] = found
    return only


def test_instance_lifecycle(ctx: AwsContext, net: dict[str, Any]) -> None:
    want = desired(net)
    created = INSTANCE.create(ctx, want)
    assert created.state == "running" and created.attrs["az"] == "us-east-1a"
    assert created.attrs["private_ip"] and created.attrs["launch_time"]

    inst = describe(ctx, created.id)
    assert inst["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2
    assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert tag_dict(inst["Tags"]) == want.tags
    volumes = ctx.call("ec2", "describe_volumes",
                       Filters=[{"Name": "attachment.instance-id", "Values": [created.id]}])["Volumes"]
    [root] = volumes
    assert root["Encrypted"] is True and root["Size"] == 16 and root["VolumeType"] == "gp3"
    assert tag_dict(root["Tags"]) == want.tags
    # moto ignores the "network-interface" TagSpecification (real AWS applies it): test_run_request_shape
    # checks that it is sent.
    user_data = ctx.call("ec2", "describe_instance_attribute", InstanceId=created.id, Attribute="userData")
    assert user_data["UserData"]["Value"]

    # Idempotence: what list_owned finds diffs clean against what was asked (root_volume and user_data
    # cannot be read back cheaply and are never diffed).
    found = listed(ctx)
    assert found.id == created.id and found.logical_key == "Instance/bastion"
    assert {k: v for k, v in want.props.items() if k not in Instance.unobservable} == found.fields
    assert INSTANCE.diff(found, want) == {}

    # Update in place: security groups (as a set) and metadata options.
    changed = desired(net, security_group_ids=list(reversed(net["groups"])),
                      metadata_options={"http_tokens": "required", "http_endpoint": "enabled",
                                        "http_put_response_hop_limit": 2})
    diff = INSTANCE.diff(found, changed)
    assert set(diff) == {"security_group_ids", "metadata_options"}
    assert not set(diff) & INSTANCE.immutable
    updated = INSTANCE.update(ctx, found, changed, diff)
    assert INSTANCE.diff(updated, changed) == {}
    inst = describe(ctx, created.id)
    assert sorted(g["GroupId"] for g in inst["SecurityGroups"]) == sorted(net["groups"])
    assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    assert INSTANCE.diff(listed(ctx), changed) == {}

    # An immutable change is left to the engine (replace).
    assert set(INSTANCE.diff(found, desired(net, instance_type="t3.small"))) & INSTANCE.immutable

    INSTANCE.delete(ctx, found)
    assert describe(ctx, created.id)["State"]["Name"] == "terminated"
    assert INSTANCE.list_owned(ctx) == []
    INSTANCE.delete(ctx, found)  # already terminated: no error


def test_instance_with_key_pair_and_instance_profile(ctx: AwsContext, net: dict[str, Any]) -> None:
    ctx.call("ec2", "create_key_pair", KeyName="admin")
    ctx.call("iam", "create_role", RoleName="dev-bastion",
             AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}')
    ctx.call("iam", "create_instance_profile", InstanceProfileName="dev-bastion", Path="/kubeaws/")
    ctx.call("iam", "add_role_to_instance_profile", InstanceProfileName="dev-bastion", RoleName="dev-bastion")
    want = desired(net, key_name="admin", iam_instance_profile="dev-bastion", user_data=None)
    created = INSTANCE.create(ctx, want)
    inst = describe(ctx, created.id)
    assert inst["KeyName"] == "admin" and inst["IamInstanceProfile"]["Arn"].endswith("/kubeaws/dev-bastion")
    found = listed(ctx)
    assert found.fields["key_name"] == "admin" and found.fields["iam_instance_profile"] == "dev-bastion"
    assert INSTANCE.diff(found, want) == {}


def test_run_request_shape(ctx: AwsContext, net: dict[str, Any]) -> None:
    """Tags on instance, volume and network interface; root device from the AMI; optional fields left out;
    a ClientToken that is stable for the same props and differs when they change (so a replacement in the
    same run is a new instance, not the one just terminated)."""
    kind = Instance()
    params = kind.run_params(ctx, desired(net, user_data=None))
    assert [s["ResourceType"] for s in params["TagSpecifications"]] == ["instance", "volume",
                                                                         "network-interface"]
    image = ctx.call("ec2", "describe_images", ImageIds=[net["ami"]])["Images"][0]
    [mapping] = params["BlockDeviceMappings"]
    assert mapping["DeviceName"] == image["RootDeviceName"]
    assert mapping["Ebs"] == {"VolumeSize": 16, "VolumeType": "gp3", "Encrypted": True,
                              "DeleteOnTermination": True}
    assert params["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                         "HttpPutResponseHopLimit": 1}
    assert "KeyName" not in params and "IamInstanceProfile" not in params and "UserData" not in params
    assert params["ClientToken"] == kind.run_params(ctx, desired(net, user_data=None))["ClientToken"]
    assert params["ClientToken"] != kind.run_params(ctx, desired(net, instance_type="t3.small"))["ClientToken"]


def test_terminated_while_starting_fails_with_the_reason(ctx: AwsContext, net: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # moto starts instances at once and never fails them: fake the describe answer instead.
    kind = Instance()
    dead = {"InstanceId": "i-0", "State": {"Name": "terminated"},
            "StateReason": {"Code": "Client.VolumeLimitExceeded", "Message": "volume limit exceeded"}}
    monkeypatch.setattr(kind, "_lookup", lambda _ctx, _id: dead)
    with pytest.raises(AwsCallError, match="volume limit exceeded"):
        kind._wait_running(ctx, "i-0")
