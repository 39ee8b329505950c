"""EC2 instances (control-plane and worker nodes of the kubeadm flavour).

Launched with IMDSv2 settings from the spec, an encrypted root EBS volume, and tags on the instance, its
root volume and its network interface in the RunInstances call itself. `create` waits for `running`;
`delete` terminates and waits for `terminated` so the security groups and subnet can go next. Only the
security groups and the metadata options can change in place; the engine replaces the instance for
anything else. Called by the engine through the registry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import retry_on_codes, wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import tag_dict
from kubeaws.errors import AwsCallError
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

NOT_FOUND = "InvalidInstanceID.NotFound"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
#: Bounds for the state waits (RetryPolicy has no instance-specific timeout).
RUNNING_TIMEOUT = 600.0
TERMINATED_TIMEOUT = 900.0
DEFAULT_ROOT_DEVICE = "/dev/xvda"
#: props["metadata_options"] key -> RunInstances / ModifyInstanceMetadataOptions parameter.
METADATA_NAMES = {"http_tokens": "HttpTokens", "http_endpoint": "HttpEndpoint",
                  "http_put_response_hop_limit": "HttpPutResponseHopLimit"}
#: IDs created a moment before the instance may not be visible to RunInstances yet.
CONSISTENCY_CODES = {"InvalidGroup.NotFound", "InvalidSubnetID.NotFound", "InvalidSubnet.NotFound"}


def profile_name(arn: str | None) -> str | None:
    """arn:aws:iam::123456789012:instance-profile/path/name -> name."""
    return arn.rsplit("/", 1)[-1] if arn else None


def client_token(ctx: AwsContext, desired: Desired) -> str:
    """RunInstances idempotency token: stable for this run and these props. The props digest matters when
    the engine replaces an instance within one run: the same key alone would make AWS answer with the
    instance just terminated."""
    digest = hashlib.sha256(json.dumps(desired.props, sort_keys=True, default=str).encode()).hexdigest()
    return ctx.client_token(f"{desired.key}#{digest[:16]}")


def metadata_params(options: dict[str, Any]) -> dict[str, Any]:
    return {aws: options[ours] for ours, aws in METADATA_NAMES.items() if options.get(ours) is not None}


@register
class Instance(Kind):
    """An EC2 instance: run with ClientToken and tags, wait `running`; update SGs / IMDS; terminate."""

    kind = "Instance"
    rank = 50
    immutable = frozenset({"image_id", "instance_type", "subnet_id", "key_name", "iam_instance_profile"})
    unobservable = frozenset({"root_volume", "user_data"})
    set_fields = frozenset({"security_group_ids"})

    def observe(self, inst: dict[str, Any]) -> Observed:
        meta = inst.get("MetadataOptions", {})
        state = inst["State"]["Name"]
        launch = inst.get("LaunchTime")
        return Observed(
            kind=self.kind,
            id=inst["InstanceId"],
            fields={
                "image_id": inst.get("ImageId"),
                "instance_type": inst.get("InstanceType"),
                "subnet_id": inst.get("SubnetId"),
                "security_group_ids": sorted(g["GroupId"] for g in inst.get("SecurityGroups", [])),
                "key_name": inst.get("KeyName"),
                "iam_instance_profile": profile_name(inst.get("IamInstanceProfile", {}).get("Arn")),
                "metadata_options": {ours: meta.get(aws) for ours, aws in METADATA_NAMES.items()},
            },
            tags=tag_dict(inst.get("Tags")),
            state=state,
            attrs={"az": inst.get("Placement", {}).get("AvailabilityZone"),
                   "private_ip": inst.get("PrivateIpAddress"), "public_ip": inst.get("PublicIpAddress"),
                   "state": state, "launch_time": launch.isoformat() if launch else None},
        )

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        reservations = ctx.paginate(
            "ec2", "describe_instances", "Reservations",
            Filters=[*self.owned_filter(ctx), {"Name": "instance-state-name", "Values": LIVE_STATES}])
        return [self.observe(i) for r in reservations for i in r.get("Instances", [])]

    def _lookup(self, ctx: AwsContext, instance_id: str) -> dict[str, Any]:
        """One instance by ID (raises InvalidInstanceID.NotFound when AWS does not know it)."""
        found = ctx.call("ec2", "describe_instances", InstanceIds=[instance_id])
        instances: list[dict[str, Any]] = [i for r in found.get("Reservations", [])
                                           for i in r.get("Instances", [])]
        if not instances:
            raise ClientError({"Error": {"Code": NOT_FOUND, "Message": instance_id}}, "DescribeInstances")
        return instances[0]

    # -- create ------------------------------------------------------------------------------------
    def _root_device(self, ctx: AwsContext, image_id: str) -> str:
        images = ctx.call("ec2", "describe_images", ImageIds=[image_id]).get("Images", [])
        return str(images[0].get("RootDeviceName") or DEFAULT_ROOT_DEVICE) if images else DEFAULT_ROOT_DEVICE

    def run_params(self, ctx: AwsContext, desired: Desired) -> dict[str, Any]:
        """The RunInstances request for `desired` (everything but the call itself)."""
        p = desired.props
        root = p.get("root_volume") or {}
        ebs = {"VolumeSize": root.get("size"), "VolumeType": root.get("type"),
               "Encrypted": bool(root.get("encrypted", True)), "DeleteOnTermination": True}
        params: dict[str, Any] = {
            "ImageId": p["image_id"], "InstanceType": p["instance_type"], "MinCount": 1, "MaxCount": 1,
            "SubnetId": p["subnet_id"], "SecurityGroupIds": list(p.get("security_group_ids") or []),
            "MetadataOptions": metadata_params(p.get("metadata_options") or {}),
            "BlockDeviceMappings": [{"DeviceName": self._root_device(ctx, p["image_id"]),
                                     "Ebs": {k: v for k, v in ebs.items() if v is not None}}],
            "ClientToken": client_token(ctx, desired),
            "TagSpecifications": [spec for rtype in ("instance", "volume", "network-interface")
                                  for spec in self.ec2_tag_spec(rtype, desired)],
        }
        if p.get("key_name"):
            params["KeyName"] = p["key_name"]
        if p.get("iam_instance_profile"):
            params["IamInstanceProfile"] = {"Name": p["iam_instance_profile"]}
        if p.get("user_data"):
            params["UserData"] = p["user_data"]  # boto3 base64-encodes it
        return params

    def _run(self, ctx: AwsContext, params: dict[str, Any]) -> dict[str, Any]:
        """RunInstances, riding out eventual consistency of just-created groups, subnets and instance
        profiles (IAM answers InvalidParameterValue for a profile EC2 cannot see yet). The ClientToken
        makes every retry return the same instance."""

        def attempt() -> dict[str, Any] | None:
            try:
                return ctx.call("ec2", "run_instances", **params)
            except ClientError as exc:
                if error_code(exc) == "InvalidParameterValue" and "iamInstanceProfile" in str(exc):
                    return None
                raise

        return retry_on_codes(
            lambda: wait_until(attempt, ctx.policy.consistency_timeout, "the instance profile to be usable",
                               ctx.policy),
            CONSISTENCY_CODES, timeout=ctx.policy.consistency_timeout, what="network to be visible",
            policy=ctx.policy)

    def _wait_running(self, ctx: AwsContext, instance_id: str) -> dict[str, Any]:
        """Poll until `running`; fail with AWS's reason if the instance terminates instead."""

        def check() -> dict[str, Any] | None:
            # Right after RunInstances the ID may be unknown to DescribeInstances for a moment.
            inst = retry_on_codes(lambda: self._lookup(ctx, instance_id), {NOT_FOUND},
                                  timeout=ctx.policy.consistency_timeout,
                                  what=f"instance {instance_id} to be visible", policy=ctx.policy)
            state = inst["State"]["Name"]
            if state in ("shutting-down", "terminated"):
                reason = inst.get("StateReason", {})
                raise AwsCallError("RunInstances", reason.get("Code", state),
                                   f"instance {instance_id} is {state} instead of starting: "
                                   f"{reason.get('Message', 'no reason given')}")
            return inst if state == "running" else None

        return wait_until(check, RUNNING_TIMEOUT, f"instance {instance_id} to be running", ctx.policy)

    def _wait_terminated(self, ctx: AwsContext, instance_id: str) -> None:
        def check() -> bool | None:
            try:
                state = self._lookup(ctx, instance_id)["State"]["Name"]
            except ClientError as exc:
                if error_code(exc) == NOT_FOUND:
                    return True  # already forgotten by AWS
                raise
            return True if state == "terminated" else None

        wait_until(check, TERMINATED_TIMEOUT, f"instance {instance_id} to be terminated", ctx.policy)

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        launched = self._run(ctx, self.run_params(ctx, desired))["Instances"][0]
        return self.observe(self._wait_running(ctx, launched["InstanceId"]))

    # -- update / delete -------------------------------------------------------------------------
    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"security_group_ids", "metadata_options", "tags"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        fields = dict(actual.fields)
        if "security_group_ids" in diff:
            groups = sorted(desired.props["security_group_ids"])
            ctx.call("ec2", "modify_instance_attribute", InstanceId=actual.id, Groups=groups)
            fields["security_group_ids"] = groups
        if "metadata_options" in diff:
            options = desired.props["metadata_options"]
            ctx.call("ec2", "modify_instance_metadata_options", InstanceId=actual.id,
                     **metadata_params(options))
            fields["metadata_options"] = {**fields.get("metadata_options", {}), **options}
        tags = dict(actual.tags)
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
            tags.update(diff["tags"][1])
        return Observed(kind=self.kind, id=actual.id, fields=fields, tags=tags, state=actual.state,
                        attrs=dict(actual.attrs))

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        try:
            ctx.call("ec2", "terminate_instances", InstanceIds=[actual.id])
        except ClientError as exc:
            if error_code(exc) == NOT_FOUND:
                return
            raise
        self._wait_terminated(ctx, actual.id)
