"""NAT gateways (kind `NatGateway`): one per public subnet that private subnets route through. Created with
a ClientToken and tags, then waited for until `available` (a `failed` gateway raises with AWS's failure
message); delete waits until the gateway is `deleted` so its Elastic IP and subnet can go next.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.errors import AwsCallError
from kubeaws.resources._ec2 import LONG_WAIT, Ec2Kind, after_create, describe_ids, ignoring
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.registry import register

GONE = ("NatGatewayNotFound", "InvalidNatGatewayID.NotFound")


@register
class NatGateway(Ec2Kind):
    """A NAT gateway; every prop is immutable (a change replaces it)."""

    kind = "NatGateway"
    rank = 30
    immutable = frozenset({"subnet_id", "allocation_id", "connectivity_type"})
    describe_op = "describe_nat_gateways"
    result_key = "NatGateways"
    filter_param = "Filter"
    states = ("pending", "available", "failed", "deleting")  # not "deleted": it lingers for an hour
    broken_states = frozenset({"failed"})  # a failed gateway never recovers: the plan replaces it
    gone_states = frozenset({"deleting"})  # already going away: planned as if absent
    #: How long AWS may take to make a gateway available or deleted (usually 1-5 minutes).
    timeout: float = LONG_WAIT

    def observe(self, item: Mapping[str, Any]) -> Observed | None:
        return None if item.get("State") == "deleted" else self._observed(item)

    def _observed(self, item: Mapping[str, Any]) -> Observed:
        addresses = item.get("NatGatewayAddresses") or []
        primary = next((a for a in addresses if a.get("IsPrimary")), addresses[0] if addresses else {})
        fields = {"subnet_id": item["SubnetId"], "allocation_id": primary.get("AllocationId"),
                  "connectivity_type": item.get("ConnectivityType", "public")}
        attrs = {"state": item.get("State"), "public_ip": primary.get("PublicIp"),
                 "private_ip": primary.get("PrivateIp"), "vpc_id": item.get("VpcId"),
                 "failure": item.get("FailureMessage")}
        return Observed(self.kind, item["NatGatewayId"], fields, self.tags_of(item), item.get("State", ""), attrs)

    def _describe(self, ctx: AwsContext, nat_id: str) -> dict[str, Any] | None:
        items = describe_ids(ctx, "describe_nat_gateways", "NatGateways", "NatGatewayIds", [nat_id], GONE)
        return items[0] if items else None

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        props = desired.props
        params: dict[str, Any] = {"SubnetId": props["subnet_id"],
                                  "ConnectivityType": props.get("connectivity_type", "public"),
                                  "ClientToken": ctx.client_token(desired.key),
                                  "TagSpecifications": self.ec2_tag_spec("natgateway", desired)}
        if props.get("allocation_id"):
            params["AllocationId"] = props["allocation_id"]
        nat = after_create(ctx, lambda: ctx.call("ec2", "create_nat_gateway", **params)["NatGateway"],
                           ["InvalidSubnetID.NotFound", "InvalidAllocationID.NotFound",
                            "InvalidElasticIpID.NotFound"], "subnet and Elastic IP visible")
        nat_id = nat["NatGatewayId"]

        def ready() -> dict[str, Any] | None:
            item = self._describe(ctx, nat_id)  # None right after create: not visible yet
            state = item.get("State") if item else None
            if item and state == "available":
                return item
            if item and state in ("failed", "deleting", "deleted"):
                code = item.get("FailureCode") or state
                raise AwsCallError("CreateNatGateway", code,
                                   f"NAT gateway {nat_id} in subnet {props['subnet_id']} is {state}: "
                                   f"{item.get('FailureMessage') or 'no failure message'}")
            return None

        item = wait_until(ready, self.timeout, f"NAT gateway {nat_id} to become available", ctx.policy)
        return self._observed(item)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        ignoring(lambda: ctx.call("ec2", "delete_nat_gateway", NatGatewayId=actual.id), GONE)

        def gone() -> bool | None:
            item = self._describe(ctx, actual.id)
            return True if item is None or item.get("State") == "deleted" else None

        wait_until(gone, self.timeout, f"NAT gateway {actual.id} to be deleted", ctx.policy)
