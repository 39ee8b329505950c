"""Subnets of the cluster's VPC (kind `Subnet`): create with tags in one AZ, optionally map public IPs on
launch (public subnets), delete once the ENIs in them are gone.

A subnet may also be brought by the user (looked up by ID with `get`). Called by the engine through the
registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.resources._ec2 import Ec2Kind, after_create, delete_when_free, describe_ids, with_tags
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = "InvalidSubnetID.NotFound"


@register
class Subnet(Ec2Kind):
    """A subnet in one AZ; only `map_public_ip_on_launch` changes in place."""

    kind = "Subnet"
    rank = 20
    immutable = frozenset({"vpc_id", "cidr_block", "availability_zone"})
    supports_brought = True
    updatable = frozenset({"map_public_ip_on_launch"})
    describe_op = "describe_subnets"
    result_key = "Subnets"

    def observe(self, item: Mapping[str, Any]) -> Observed:
        fields = {
            "vpc_id": item["VpcId"],
            "cidr_block": item["CidrBlock"],
            "availability_zone": item["AvailabilityZone"],
            "map_public_ip_on_launch": bool(item.get("MapPublicIpOnLaunch", False)),
        }
        attrs = {"az": item["AvailabilityZone"], "cidr": item["CidrBlock"], "vpc_id": item["VpcId"],
                 "available_ips": item.get("AvailableIpAddressCount"), "state": item.get("State", "")}
        return Observed(self.kind, item["SubnetId"], fields, self.tags_of(item), item.get("State", ""), attrs)

    def get(self, ctx: AwsContext, ids: list[str]) -> list[Observed]:
        return [self.observe(i) for i in describe_ids(ctx, "describe_subnets", "Subnets", "SubnetIds", ids,
                                                      [NOT_FOUND])]

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        props = desired.props
        subnet = after_create(
            ctx,
            lambda: ctx.call("ec2", "create_subnet", VpcId=props["vpc_id"], CidrBlock=props["cidr_block"],
                             AvailabilityZone=props["availability_zone"],
                             TagSpecifications=self.ec2_tag_spec("subnet", desired))["Subnet"],
            ["InvalidVpcID.NotFound"], "VPC visible")
        obs = self.observe(with_tags(subnet, desired))
        if props.get("map_public_ip_on_launch"):
            self._map_public(ctx, obs.id, True)
            obs.fields["map_public_ip_on_launch"] = True
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        self._map_public(ctx, actual.id, bool(desired.props["map_public_ip_on_launch"]))
        return {}

    @staticmethod
    def _map_public(ctx: AwsContext, subnet_id: str, on: bool) -> None:
        after_create(ctx, lambda: ctx.call("ec2", "modify_subnet_attribute", SubnetId=subnet_id,
                                           MapPublicIpOnLaunch={"Value": on}), [NOT_FOUND], "subnet visible")

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        delete_when_free(ctx, lambda: ctx.call("ec2", "delete_subnet", SubnetId=actual.id), [NOT_FOUND],
                         f"subnet {actual.id} without network interfaces")
