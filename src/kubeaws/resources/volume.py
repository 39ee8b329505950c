"""EBS volumes (kind `Volume`): the etcd data volume of each control-plane member (docs/kubeadm.md).

Created encrypted, with a ClientToken and tags in the CreateVolume call, then waited for until `available`.
The member's instance attaches it itself at boot (bootstrap/), so kubeaws never attaches it. Size, type, IOPS
and throughput change in place (ModifyVolume; a volume never shrinks); the AZ and encryption never change
(refused: replacing an etcd volume would throw the member's data away). `delete` waits until the volume is
detached (`available`: the member's ASG is deleted first, rank 70 > 40) and then deletes it.

`list_owned` is ONE DescribeVolumes filtered on the cluster tag, keeping only volumes whose
`kubeaws.io/resource` tag says `Volume/...`: root volumes of kubeaws instances carry the cluster tag too.
Called by the engine through the registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import RESOURCE_TAG
from kubeaws.errors import ImmutableChangeError
from kubeaws.resources._ec2 import LONG_WAIT, Ec2Kind, describe_ids, ignoring, while_in_use, with_tags
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = ("InvalidVolume.NotFound",)
#: Props that AWS fills with a default when not given (gp3: 3000 IOPS, 125 MiB/s): None means "default".
DEFAULTED = ("iops", "throughput")


def volume_params(props: Mapping[str, Any]) -> dict[str, Any]:
    """CreateVolume / ModifyVolume parameters for the size and performance props that are set."""
    names = {"size": "Size", "volume_type": "VolumeType", "iops": "Iops", "throughput": "Throughput"}
    return {aws: props[ours] for ours, aws in names.items() if props.get(ours) is not None}


@register
class Volume(Ec2Kind):
    """An encrypted EBS volume pinned to one AZ; grows and changes type in place."""

    kind = "Volume"
    rank = 40
    modes = frozenset({"kubeadm"})
    immutable = frozenset({"availability_zone", "encrypted"})
    refuse_change = frozenset({"availability_zone", "encrypted"})
    updatable = frozenset({"size", "volume_type", "iops", "throughput"})
    describe_op = "describe_volumes"
    result_key = "Volumes"

    def observe(self, item: Mapping[str, Any]) -> Observed | None:
        tags = self.tags_of(item)
        state = str(item.get("State", ""))
        if state in ("deleting", "deleted", "error") or not tags.get(RESOURCE_TAG, "").startswith("Volume/"):
            return None
        fields = {"availability_zone": item["AvailabilityZone"], "size": item["Size"],
                  "volume_type": item.get("VolumeType"), "iops": item.get("Iops"),
                  "throughput": item.get("Throughput"), "encrypted": bool(item.get("Encrypted"))}
        attached = [a["InstanceId"] for a in item.get("Attachments", []) if a.get("State") != "detached"]
        attrs = {"az": item["AvailabilityZone"], "state": state,
                 "attached_instance": attached[0] if attached else None}
        return Observed(self.kind, item["VolumeId"], fields, tags, state, attrs)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """As the base diff, but an unset IOPS/throughput (AWS's default for the type) is no change."""
        changes = super().diff(actual, desired)
        for key in DEFAULTED:
            if desired.props.get(key) is None:
                changes.pop(key, None)
        return changes

    def _describe(self, ctx: AwsContext, volume_id: str) -> dict[str, Any] | None:
        items = describe_ids(ctx, "describe_volumes", "Volumes", "VolumeIds", [volume_id], NOT_FOUND)
        return items[0] if items else None

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        if p.get("encrypted") is False:
            raise ImmutableChangeError(f"{desired.key}: kubeaws only creates encrypted EBS volumes")
        digest = hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:16]
        item = ctx.call("ec2", "create_volume", AvailabilityZone=p["availability_zone"], Encrypted=True,
                        ClientToken=ctx.client_token(f"{desired.key}#{digest}"),
                        TagSpecifications=self.ec2_tag_spec("volume", desired), **volume_params(p))
        volume_id = item["VolumeId"]

        def ready() -> dict[str, Any] | None:
            found = self._describe(ctx, volume_id)  # None right after create: not visible yet
            if found and found.get("State") == "error":
                raise ImmutableChangeError(f"volume {volume_id} ({desired.key}) failed to create")
            return found if found and found.get("State") in ("available", "in-use") else None

        found = wait_until(ready, LONG_WAIT, f"volume {volume_id} to become available", ctx.policy)
        obs = self.observe(with_tags(found, desired))
        assert obs is not None  # tagged Volume/<name> and available
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        if "size" in diff and int(desired.props["size"]) < int(actual.fields.get("size") or 0):
            raise ImmutableChangeError(
                f"{desired.key} ({actual.id}): an EBS volume cannot shrink from {actual.fields['size']} GiB to "
                f"{desired.props['size']} GiB. Put the old size back.")
        params = volume_params({k: desired.props.get(k) for k in diff if k in self.updatable})
        if params:
            ctx.call("ec2", "modify_volume", VolumeId=actual.id, **params)
        return {}

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Wait until the volume is detached (its instance terminated), then delete it."""

        def detached() -> bool | None:
            found = self._describe(ctx, actual.id)
            return True if found is None or found.get("State") in ("available", "deleting", "deleted") else None

        wait_until(detached, LONG_WAIT, f"volume {actual.id} to be detached", ctx.policy)
        ignoring(lambda: while_in_use(ctx, lambda: ctx.call("ec2", "delete_volume", VolumeId=actual.id),
                                      f"volume {actual.id} to be released", ("VolumeInUse",)), NOT_FOUND)
