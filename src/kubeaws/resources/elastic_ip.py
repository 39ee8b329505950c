"""Elastic IPs (kind `ElasticIp`): allocated with tags for NAT gateways or instances (API server endpoint),
optionally associated with an instance; delete disassociates then releases.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.resources._ec2 import Ec2Kind, after_create, ignoring, with_tags
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = "InvalidAllocationID.NotFound"
ASSOCIATION_GONE = ("InvalidAssociationID.NotFound",)
# While a NAT gateway lets go of the address, or right after a disassociation, release fails with these.
STILL_IN_USE = ("InvalidIPAddress.InUse", "AuthFailure")


@register
class ElasticIp(Ec2Kind):
    """An Elastic IP (id = AllocationId); `instance_id` is its association with an instance, if any."""

    kind = "ElasticIp"
    rank = 20
    immutable = frozenset({"domain"})
    updatable = frozenset({"instance_id"})
    describe_op = "describe_addresses"
    result_key = "Addresses"
    paginated = False  # DescribeAddresses returns everything in one response

    def observe(self, item: Mapping[str, Any]) -> Observed:
        fields = {"domain": item.get("Domain", "vpc"), "instance_id": item.get("InstanceId") or None}
        attrs = {"public_ip": item.get("PublicIp"), "association_id": item.get("AssociationId"),
                 "network_interface_id": item.get("NetworkInterfaceId"), "private_ip": item.get("PrivateIpAddress")}
        state = "associated" if item.get("AssociationId") else "unassociated"
        return Observed(self.kind, item["AllocationId"], fields, self.tags_of(item), state, attrs)

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        address = ctx.call("ec2", "allocate_address", Domain=desired.props.get("domain", "vpc"),
                           TagSpecifications=self.ec2_tag_spec("elastic-ip", desired))
        obs = self.observe(with_tags({k: v for k, v in address.items() if k != "ResponseMetadata"}, desired))
        instance_id = desired.props.get("instance_id")
        if instance_id:
            obs.attrs.update(self._associate(ctx, obs.id, instance_id))
            obs.fields["instance_id"] = instance_id
            obs.state = "associated"
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        instance_id = desired.props.get("instance_id")
        if instance_id:
            return self._associate(ctx, actual.id, instance_id)
        self._disassociate(ctx, actual)
        return {"association_id": None}

    @staticmethod
    def _associate(ctx: AwsContext, allocation_id: str, instance_id: str) -> dict[str, Any]:
        result = after_create(
            ctx, lambda: ctx.call("ec2", "associate_address", AllocationId=allocation_id, InstanceId=instance_id,
                                  AllowReassociation=True),
            [NOT_FOUND, "InvalidInstanceID.NotFound"], f"address {allocation_id} and {instance_id} visible")
        return {"association_id": result.get("AssociationId")}

    @staticmethod
    def _disassociate(ctx: AwsContext, actual: Observed) -> None:
        association_id = actual.attrs.get("association_id")
        if association_id:
            ignoring(lambda: ctx.call("ec2", "disassociate_address", AssociationId=association_id),
                     ASSOCIATION_GONE)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        # Only our own association (with an instance) is undone here; a NAT gateway's goes with the NAT.
        if actual.fields.get("instance_id"):
            self._disassociate(ctx, actual)
        ignoring(lambda: retry_on_codes(lambda: ctx.call("ec2", "release_address", AllocationId=actual.id),
                                        STILL_IN_USE, timeout=ctx.policy.consistency_timeout,
                                        what=f"address {actual.id} released", policy=ctx.policy),
                 [NOT_FOUND])
