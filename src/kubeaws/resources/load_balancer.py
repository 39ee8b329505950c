"""Network load balancers (kind `LoadBalancer`, service elbv2): the Kubernetes API endpoint of a highly
available or public control plane (docs/kubeadm.md). id = the ARN; attrs `arn`, `dns_name`, `zone_id`.

Created with security groups (an NLB only accepts them if created with them) and tags in the
CreateLoadBalancer call (idempotent by name), then waited for until `active`. Subnets and security groups
change in place (SetSubnets / SetSecurityGroups); name, scheme and type need a new load balancer. The
attributes kubeaws manages (`MANAGED_ATTRIBUTES`: cross-zone load balancing) are read back with one
DescribeLoadBalancerAttributes per owned load balancer (a cluster has one) and changed in place.
`delete` waits until the load balancer is gone, so its security group and subnets can go next (their
DependencyViolation retries absorb the ENIs draining). `list_owned` = DescribeLoadBalancers + DescribeTags
(two reads, see _elbv2). Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by, tag_list
from kubeaws.errors import AwsCallError
from kubeaws.resources._ec2 import LONG_WAIT, after_create, ignoring, while_in_use
from kubeaws.resources._elbv2 import Elbv2Kind, owned_items, tags_by_arn
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = ("LoadBalancerNotFound",)
#: Load balancer attributes kubeaws sets (props["attributes"]); others are left as AWS has them.
MANAGED_ATTRIBUTES = ("load_balancing.cross_zone.enabled",)
#: Subnets and groups created a moment ago may not be visible to ELB yet.
CONSISTENCY_CODES = ("SubnetNotFound", "InvalidSubnet", "InvalidSecurityGroup")


@register
class LoadBalancer(Elbv2Kind):
    """A network load balancer with security groups, waited for until active."""

    kind = "LoadBalancer"
    rank = 50
    modes = frozenset({"kubeadm"})
    list_reads = 3  # DescribeLoadBalancers + DescribeTags (the describe returns no tags) + the attributes
    immutable = frozenset({"name", "scheme", "type"})
    set_fields = frozenset({"subnet_ids", "security_group_ids"})
    broken_states = frozenset({"failed"})

    def observe(self, item: Mapping[str, Any], tags: dict[str, str]) -> Observed:
        state = str((item.get("State") or {}).get("Code", ""))
        fields = {"name": item["LoadBalancerName"], "scheme": item.get("Scheme"),
                  "subnet_ids": sorted(z["SubnetId"] for z in item.get("AvailabilityZones", [])),
                  "security_group_ids": sorted(item.get("SecurityGroups") or []), "type": item.get("Type")}
        attrs = {"arn": item["LoadBalancerArn"], "dns_name": item.get("DNSName"),
                 "zone_id": item.get("CanonicalHostedZoneId"), "state": state, "vpc_id": item.get("VpcId")}
        return Observed(self.kind, item["LoadBalancerArn"], fields, tags, state, attrs)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        items = ctx.paginate("elbv2", "describe_load_balancers", "LoadBalancers")
        found = [self.observe(i, t) for i, t in owned_items(ctx, items, "LoadBalancerArn", self.kind,
                                                             "LoadBalancerName")]
        for obs in found:
            obs.fields["attributes"] = self._attributes(ctx, obs.id)
        return found

    @staticmethod
    def _attributes(ctx: AwsContext, arn: str) -> dict[str, str]:
        answer = ignoring(lambda: ctx.call("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=arn),
                          NOT_FOUND) or {}
        return {a["Key"]: str(a.get("Value")) for a in answer.get("Attributes", []) if a["Key"] in MANAGED_ATTRIBUTES}

    @staticmethod
    def _set_attributes(ctx: AwsContext, arn: str, attributes: Mapping[str, Any] | None) -> dict[str, str]:
        wanted = {k: str(v) for k, v in (attributes or {}).items()}
        if wanted:
            ctx.call("elbv2", "modify_load_balancer_attributes", LoadBalancerArn=arn,
                     Attributes=[{"Key": k, "Value": v} for k, v in sorted(wanted.items())])
        return wanted

    def _describe(self, ctx: AwsContext, **params: Any) -> dict[str, Any] | None:
        found = ignoring(lambda: ctx.call("elbv2", "describe_load_balancers", **params), NOT_FOUND)
        items = (found or {}).get("LoadBalancers") or []
        return items[0] if items else None

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """Load balancer names are unique per region: one of the same name that is not ours blocks us."""
        name = desired.props.get("name")
        item = self._describe(ctx, Names=[name]) if isinstance(name, str) else None
        if item is None:
            return None
        found = self.observe(item, tags_by_arn(ctx, [item["LoadBalancerArn"]]).get(item["LoadBalancerArn"], {}))
        return None if is_owned_by(found.tags, ctx.cluster) else found

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        params = {"Name": p["name"], "Subnets": sorted(p["subnet_ids"]), "Scheme": p.get("scheme", "internal"),
                  "Type": p.get("type", "network"), "IpAddressType": "ipv4", "Tags": tag_list(desired.tags)}
        if p.get("security_group_ids"):
            params["SecurityGroups"] = sorted(p["security_group_ids"])
        made = after_create(ctx, lambda: ctx.call("elbv2", "create_load_balancer", **params),
                            CONSISTENCY_CODES, "subnets and security groups visible")["LoadBalancers"][0]
        arn = made["LoadBalancerArn"]

        def active() -> dict[str, Any] | None:
            item = self._describe(ctx, LoadBalancerArns=[arn])  # None right after create: not visible yet
            code = (item or {}).get("State", {}).get("Code")
            if item and code == "failed":
                raise AwsCallError("CreateLoadBalancer", "failed", f"load balancer {p['name']} failed: "
                                   f"{item['State'].get('Reason') or 'no reason given'}")
            return item if code == "active" else None

        item = wait_until(active, LONG_WAIT, f"load balancer {p['name']} to become active", ctx.policy)
        obs = self.observe(item, dict(desired.tags))
        obs.fields["attributes"] = self._set_attributes(ctx, arn, p.get("attributes"))
        return obs

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "subnet_ids", "security_group_ids", "attributes"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        fields = dict(actual.fields)
        if "subnet_ids" in diff:
            ctx.call("elbv2", "set_subnets", LoadBalancerArn=actual.id, Subnets=sorted(desired.props["subnet_ids"]))
            fields["subnet_ids"] = sorted(desired.props["subnet_ids"])
        if "security_group_ids" in diff:
            groups = sorted(desired.props["security_group_ids"])
            ctx.call("elbv2", "set_security_groups", LoadBalancerArn=actual.id, SecurityGroups=groups)
            fields["security_group_ids"] = groups
        if "attributes" in diff:
            fields["attributes"] = self._set_attributes(ctx, actual.id, desired.props.get("attributes"))
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
        return Observed(self.kind, actual.id, fields, {**actual.tags, **desired.tags}, actual.state,
                        dict(actual.attrs))

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        ignoring(lambda: while_in_use(ctx, lambda: ctx.call("elbv2", "delete_load_balancer",
                                                            LoadBalancerArn=actual.id),
                                      f"load balancer {actual.id} to be deletable", ("ResourceInUse",)),
                 NOT_FOUND)
        wait_until(lambda: True if self._describe(ctx, LoadBalancerArns=[actual.id]) is None else None,
                   LONG_WAIT, f"load balancer {actual.id} to be deleted", ctx.policy)
