"""The internet gateway of the cluster's VPC (kind `InternetGateway`): create with tags, attach to the VPC;
delete detaches first (retrying while public addresses are still mapped in the VPC).

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.resources._ec2 import Ec2Kind, after_create, delete_when_free, ignoring, while_in_use, with_tags
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = "InvalidInternetGatewayID.NotFound"
ATTACHED = ("attached", "attaching", "available")  # describe reports "available" for an attached IGW


@register
class InternetGateway(Ec2Kind):
    """An internet gateway; `vpc_id` is its attachment (None when detached)."""

    kind = "InternetGateway"
    rank = 20
    updatable = frozenset({"vpc_id"})
    describe_op = "describe_internet_gateways"
    result_key = "InternetGateways"

    def observe(self, item: Mapping[str, Any]) -> Observed:
        attached = [a for a in item.get("Attachments") or [] if a.get("State") in ATTACHED]
        vpc_id = attached[0]["VpcId"] if attached else None
        state = "attached" if attached else "detached"
        return Observed(self.kind, item["InternetGatewayId"], {"vpc_id": vpc_id}, self.tags_of(item), state,
                        {"state": state, "vpc_id": vpc_id})

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        igw = ctx.call("ec2", "create_internet_gateway",
                       TagSpecifications=self.ec2_tag_spec("internet-gateway", desired))["InternetGateway"]
        obs = self.observe(with_tags(igw, desired))
        vpc_id = desired.props.get("vpc_id")
        if vpc_id:
            self._attach(ctx, obs.id, vpc_id)
            obs.fields["vpc_id"] = obs.attrs["vpc_id"] = vpc_id
            obs.state = obs.attrs["state"] = "attached"
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        old, new = actual.fields.get("vpc_id"), desired.props.get("vpc_id")
        if old:
            self._detach(ctx, actual.id, old)
        if new:
            self._attach(ctx, actual.id, new)
        state = "attached" if new else "detached"
        return {"vpc_id": new, "state": state}

    @staticmethod
    def _attach(ctx: AwsContext, igw_id: str, vpc_id: str) -> None:
        after_create(ctx, lambda: ctx.call("ec2", "attach_internet_gateway", InternetGatewayId=igw_id,
                                           VpcId=vpc_id),
                     [NOT_FOUND, "InvalidVpcID.NotFound"], f"internet gateway {igw_id} and VPC {vpc_id} visible")

    @staticmethod
    def _detach(ctx: AwsContext, igw_id: str, vpc_id: str) -> None:
        """Detach; DependencyViolation ("mapped public addresses") while NAT/instance IPs are released."""
        ignoring(lambda: while_in_use(ctx, lambda: ctx.call("ec2", "detach_internet_gateway",
                                                            InternetGatewayId=igw_id, VpcId=vpc_id),
                                      f"public addresses in {vpc_id} released"),
                 [NOT_FOUND, "Gateway.NotAttached", "InvalidVpcID.NotFound"])

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        vpc_id = actual.fields.get("vpc_id")
        if vpc_id:
            self._detach(ctx, actual.id, vpc_id)
        delete_when_free(ctx, lambda: ctx.call("ec2", "delete_internet_gateway", InternetGatewayId=actual.id),
                         [NOT_FOUND], f"internet gateway {actual.id} detached")
