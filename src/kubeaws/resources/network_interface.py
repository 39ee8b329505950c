"""Elastic network interfaces (kind `NetworkInterface`): the stable private address of the Kubernetes API
when the control plane is a single private member (docs/kubeadm.md); member 0 attaches it at boot as a
secondary interface, so the API address survives the member's replacement.

Created with a ClientToken and tags in the CreateNetworkInterface call; security groups and the description
change in place; the subnet never does (replace). `delete` retries while the interface is still attached
(its instance terminating). `list_owned` is ONE DescribeNetworkInterfaces filtered on the cluster tag,
keeping only interfaces tagged `kubeaws.io/resource=NetworkInterface/...` (kubeaws instances tag their own
primary interfaces with the cluster tag too). attrs: `private_ip`, `az`, `status`, `attached_instance`.
Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.resources._ec2 import Ec2Kind, after_create, ignoring, while_in_use, with_tags
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = "InvalidNetworkInterfaceID.NotFound"
#: Just-created subnets and groups may not be visible to CreateNetworkInterface for a moment.
CONSISTENCY_CODES = ("InvalidSubnetID.NotFound", "InvalidGroup.NotFound", NOT_FOUND)
#: Delete fails while the interface is attached to an instance that is still terminating.
IN_USE = ("InvalidNetworkInterface.InUse", "DependencyViolation")


def tagged(item: Mapping[str, Any]) -> dict[str, Any]:
    """An interface with its tags under `Tags` (DescribeNetworkInterfaces calls them `TagSet`)."""
    return {**item, "Tags": item.get("Tags") or item.get("TagSet") or []}


@register
class NetworkInterface(Ec2Kind):
    """A standalone ENI in one subnet with a stable private IP address."""

    kind = "NetworkInterface"
    rank = 40
    modes = frozenset({"kubeadm"})
    immutable = frozenset({"subnet_id"})
    set_fields = frozenset({"security_group_ids"})
    updatable = frozenset({"security_group_ids", "description"})
    describe_op = "describe_network_interfaces"
    result_key = "NetworkInterfaces"

    def observe(self, item: Mapping[str, Any]) -> Observed | None:
        tags = self.tags_of(item)
        if not tags.get(RESOURCE_TAG, "").startswith(f"{self.kind}/"):
            return None
        fields = {"subnet_id": item["SubnetId"],
                  "security_group_ids": sorted(g["GroupId"] for g in item.get("Groups", [])),
                  "description": item.get("Description", "")}
        attachment = item.get("Attachment") or {}
        status = str(item.get("Status", ""))
        attrs = {"private_ip": item.get("PrivateIpAddress"), "az": item.get("AvailabilityZone"),
                 "status": status, "attached_instance": attachment.get("InstanceId")}
        return Observed(self.kind, item["NetworkInterfaceId"], fields, tags, status, attrs)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        """ONE DescribeNetworkInterfaces on the cluster tag (it answers `TagSet`, not `Tags`)."""
        items = ctx.paginate("ec2", self.describe_op, self.result_key, Filters=self.owned_filter(ctx))
        found = (self.observe(tagged(i)) for i in items)
        return [o for o in found if o is not None and o.tags.get(CLUSTER_TAG) == ctx.cluster]

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        params = {"SubnetId": p["subnet_id"], "Groups": sorted(p.get("security_group_ids") or []),
                  "Description": p.get("description") or "", "ClientToken": ctx.client_token(desired.key),
                  "TagSpecifications": self.ec2_tag_spec("network-interface", desired)}
        item = after_create(ctx, lambda: ctx.call("ec2", "create_network_interface", **params),
                            CONSISTENCY_CODES, "subnet and security groups visible")["NetworkInterface"]
        obs = self.observe(with_tags(item, desired))
        assert obs is not None  # tagged NetworkInterface/<name> by the create call
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        def modify(**params: Any) -> None:
            after_create(ctx, lambda: ctx.call("ec2", "modify_network_interface_attribute",
                                               NetworkInterfaceId=actual.id, **params),
                         [NOT_FOUND, "InvalidGroup.NotFound"], f"network interface {actual.id} visible")

        if "security_group_ids" in diff:
            modify(Groups=sorted(desired.props["security_group_ids"]))
        if "description" in diff:
            modify(Description={"Value": desired.props.get("description") or ""})
        return {}

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete, retrying while the interface is still attached to a terminating instance."""
        ignoring(lambda: while_in_use(
            ctx, lambda: ctx.call("ec2", "delete_network_interface", NetworkInterfaceId=actual.id),
            f"network interface {actual.id} to be detached", IN_USE), [NOT_FOUND])
