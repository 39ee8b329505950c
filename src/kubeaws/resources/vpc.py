"""The cluster's VPC (kind `Vpc`): create it with its tags, turn on DNS support + DNS hostnames, and mark
that step done with the `kubeaws.io/vpc-dns=on` tag so a re-plan needs no DescribeVpcAttribute call.

A VPC may also be brought by the user (looked up by ID with `get`; only `cidr_block` is compared then).
Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.resources._ec2 import Ec2Kind, after_create, delete_when_free, describe_ids, with_tags
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

DNS_MARKER = "kubeaws.io/vpc-dns"
NOT_FOUND = "InvalidVpcID.NotFound"


@register
class Vpc(Ec2Kind):
    """The cluster VPC; `dns_hostnames` is read from the completion-marker tag, not from AWS attributes."""

    kind = "Vpc"
    rank = 10
    immutable = frozenset({"cidr_block"})
    refuse_change = frozenset({"cidr_block"})
    supports_brought = True
    updatable = frozenset({"dns_hostnames"})
    describe_op = "describe_vpcs"
    result_key = "Vpcs"

    def observe(self, item: Mapping[str, Any]) -> Observed:
        tags = self.tags_of(item)
        fields = {"cidr_block": item["CidrBlock"], "dns_hostnames": tags.get(DNS_MARKER) == "on"}
        return Observed(self.kind, item["VpcId"], fields, tags, item.get("State", ""),
                        {"cidr": item["CidrBlock"], "state": item.get("State", "")})

    def get(self, ctx: AwsContext, ids: list[str]) -> list[Observed]:
        found = []
        for item in describe_ids(ctx, "describe_vpcs", "Vpcs", "VpcIds", ids, [NOT_FOUND]):
            obs = self.observe(item)
            del obs.fields["dns_hostnames"]  # a brought VPC's DNS settings are the user's business
            found.append(obs)
        return found

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        vpc = ctx.call("ec2", "create_vpc", CidrBlock=desired.props["cidr_block"],
                       TagSpecifications=self.ec2_tag_spec("vpc", desired))["Vpc"]
        obs = self.observe(with_tags(vpc, desired))
        if desired.props.get("dns_hostnames"):
            self._set_dns(ctx, obs.id, True)
            obs.fields["dns_hostnames"] = True
            obs.tags[DNS_MARKER] = "on"
        return obs

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        obs = super().update(ctx, actual, desired, diff)
        if "dns_hostnames" in diff:
            obs.tags = {k: v for k, v in obs.tags.items() if k != DNS_MARKER}
            if desired.props["dns_hostnames"]:
                obs.tags[DNS_MARKER] = "on"
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        self._set_dns(ctx, actual.id, bool(desired.props["dns_hostnames"]))
        return {}

    def _set_dns(self, ctx: AwsContext, vpc_id: str, on: bool) -> None:
        """DNS support + hostnames on (marker tag last, once both succeeded), or hostnames off."""
        def modify(attribute: str, value: bool) -> None:
            after_create(ctx, lambda: ctx.call("ec2", "modify_vpc_attribute", VpcId=vpc_id,
                                               **{attribute: {"Value": value}}), [NOT_FOUND], "VPC visible")

        if on:
            modify("EnableDnsSupport", True)
            modify("EnableDnsHostnames", True)
            self.set_tags(ctx, vpc_id, {DNS_MARKER: "on"})
        else:
            self.remove_tags(ctx, vpc_id, [DNS_MARKER])  # first: a crash in between must not claim "on"
            modify("EnableDnsHostnames", False)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        delete_when_free(ctx, lambda: ctx.call("ec2", "delete_vpc", VpcId=actual.id), [NOT_FOUND],
                         f"VPC {actual.id} without dependants")
