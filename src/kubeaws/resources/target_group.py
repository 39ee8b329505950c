"""ELBv2 target groups (kind `TargetGroup`): the control-plane members behind the API load balancer (their
Auto Scaling groups register them). id = the ARN; attrs `arn`.

TCP 6443 with an HTTPS health check on /readyz every 10 s, 2 checks to change state (docs/kubeadm.md).
The health check changes in place (ModifyTargetGroup); name, port, protocol, VPC and target type need a
new group. `attributes` (e.g. `preserve_client_ip.enabled: "false"`, which lets a member reach the API
through the NLB without hairpin drops) are applied on create and update but not read back (one
DescribeTargetGroupAttributes per group would break the one-read rule): unobservable. `list_owned` =
DescribeTargetGroups + DescribeTags (two reads, see _elbv2). `delete` retries ResourceInUse while a listener
still forwards to the group.
Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by, tag_list
from kubeaws.resources._ec2 import after_create, ignoring, while_in_use
from kubeaws.resources._elbv2 import Elbv2Kind, owned_items, tags_by_arn
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = ("TargetGroupNotFound",)
#: props["health_check"] key -> Create/ModifyTargetGroup parameter.
HEALTH_NAMES = {"protocol": "HealthCheckProtocol", "path": "HealthCheckPath", "port": "HealthCheckPort",
                "interval": "HealthCheckIntervalSeconds", "healthy_threshold": "HealthyThresholdCount",
                "unhealthy_threshold": "UnhealthyThresholdCount"}
NUMERIC = frozenset({"interval", "healthy_threshold", "unhealthy_threshold"})


def health_params(check: Mapping[str, Any] | None) -> dict[str, Any]:
    given = check or {}
    return {aws: int(given[ours]) if ours in NUMERIC else str(given[ours])
            for ours, aws in HEALTH_NAMES.items() if given.get(ours) is not None}


@register
class TargetGroup(Elbv2Kind):
    """A target group of instances with a health check."""

    kind = "TargetGroup"
    rank = 51
    modes = frozenset({"kubeadm"})
    list_reads = 2  # DescribeTargetGroups + DescribeTags
    immutable = frozenset({"name", "port", "protocol", "vpc_id", "target_type"})
    unobservable = frozenset({"attributes"})

    def observe(self, item: Mapping[str, Any], tags: dict[str, str]) -> Observed:
        health = {ours: item.get(aws) for ours, aws in HEALTH_NAMES.items()}
        fields = {"name": item["TargetGroupName"], "port": item.get("Port"), "protocol": item.get("Protocol"),
                  "vpc_id": item.get("VpcId"), "health_check": health,
                  "target_type": item.get("TargetType", "instance")}
        attrs = {"arn": item["TargetGroupArn"],
                 "load_balancer_arns": sorted(item.get("LoadBalancerArns") or [])}
        return Observed(self.kind, item["TargetGroupArn"], fields, tags, "", attrs)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """The health check is compared on the settings the desired one names (AWS reports every one)."""
        wanted, have = desired.props.get("health_check"), actual.fields.get("health_check")
        if isinstance(wanted, Mapping) and isinstance(have, Mapping):
            actual = replace(actual, fields={**actual.fields, "health_check": {k: v for k, v in have.items()
                                                                              if k in wanted}})
        return super().diff(actual, desired)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        items = ctx.paginate("elbv2", "describe_target_groups", "TargetGroups")
        return [self.observe(i, t) for i, t in owned_items(ctx, items, "TargetGroupArn", self.kind,
                                                            "TargetGroupName")]

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """Target group names are unique per region: one of the same name that is not ours blocks us."""
        name = desired.props.get("name")
        found = ignoring(lambda: ctx.call("elbv2", "describe_target_groups", Names=[name]),
                         NOT_FOUND) if isinstance(name, str) else None
        items = (found or {}).get("TargetGroups") or []
        if not items:
            return None
        arn = items[0]["TargetGroupArn"]
        group = self.observe(items[0], tags_by_arn(ctx, [arn]).get(arn, {}))
        return None if is_owned_by(group.tags, ctx.cluster) else group

    def _set_attributes(self, ctx: AwsContext, arn: str, attributes: Mapping[str, Any] | None) -> None:
        if attributes:
            after_create(ctx, lambda: ctx.call("elbv2", "modify_target_group_attributes", TargetGroupArn=arn,
                                               Attributes=[{"Key": k, "Value": str(v)}
                                                           for k, v in sorted(attributes.items())]),
                         NOT_FOUND, f"target group {arn} visible")

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        made = after_create(ctx, lambda: ctx.call(
            "elbv2", "create_target_group", Name=p["name"], Protocol=p.get("protocol", "TCP"), Port=int(p["port"]),
            VpcId=p["vpc_id"], TargetType=p.get("target_type", "instance"), HealthCheckEnabled=True,
            Tags=tag_list(desired.tags), **health_params(p.get("health_check"))),
            ("VPCIdNotFound", "InvalidVpcID.NotFound"), "VPC visible")["TargetGroups"][0]
        self._set_attributes(ctx, made["TargetGroupArn"], p.get("attributes"))
        return self.observe(made, dict(desired.tags))

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "health_check"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        fields = dict(actual.fields)
        if "health_check" in diff:
            ctx.call("elbv2", "modify_target_group", TargetGroupArn=actual.id,
                     **health_params(desired.props["health_check"]))
            fields["health_check"] = {**(fields.get("health_check") or {}), **desired.props["health_check"]}
            self._set_attributes(ctx, actual.id, desired.props.get("attributes"))
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
        return Observed(self.kind, actual.id, fields, {**actual.tags, **desired.tags}, actual.state,
                        dict(actual.attrs))

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        ignoring(lambda: while_in_use(ctx, lambda: ctx.call("elbv2", "delete_target_group",
                                                            TargetGroupArn=actual.id),
                                      f"target group {actual.id} to be released", ("ResourceInUse",)),
                 NOT_FOUND)
