"""ELBv2 listeners (kind `Listener`): TCP 6443 on the API load balancer, forwarding to the control-plane
target group (docs/kubeadm.md). id = the ARN.

Port, protocol and target group change in place (ModifyListener); the load balancer never does. `delete`
retries ResourceInUse (DeleteListener's documented in-use answer) for the dependency window.
`list_owned` needs the load balancers first (DescribeListeners takes one load balancer ARN): it costs
DescribeLoadBalancers + one DescribeListeners per load balancer named `<cluster>-...` (one for a cluster)
+ DescribeTags on those load balancers' listeners, three reads in all for a cluster (documented exception to
the one-describe rule). Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import tag_list
from kubeaws.resources._ec2 import after_create, ignoring, while_in_use
from kubeaws.resources._elbv2 import Elbv2Kind, owned_items
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = ("ListenerNotFound",)
IN_USE = ("ResourceInUse",)
#: A load balancer or target group created a moment ago may not be visible yet.
CONSISTENCY_CODES = ("LoadBalancerNotFound", "TargetGroupNotFound")


def forward_target(item: Mapping[str, Any]) -> str | None:
    """The target group a listener forwards to (its first forward action)."""
    for action in item.get("DefaultActions") or []:
        if action.get("Type") == "forward":
            arn = action.get("TargetGroupArn")
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
            return str(arn) if arn else (str(groups[0]["TargetGroupArn"]) if groups else None)
    return None


@register
class Listener(Elbv2Kind):
    """A listener forwarding one port of a load balancer to one target group."""

    kind = "Listener"
    rank = 52
    modes = frozenset({"kubeadm"})
    list_reads = 3  # DescribeLoadBalancers + DescribeListeners per load balancer + DescribeTags
    immutable = frozenset({"load_balancer_arn"})

    def observe(self, item: Mapping[str, Any], tags: dict[str, str]) -> Observed:
        fields = {"load_balancer_arn": item["LoadBalancerArn"], "port": item.get("Port"),
                  "protocol": item.get("Protocol"), "target_group_arn": forward_target(item)}
        return Observed(self.kind, item["ListenerArn"], fields, tags, "", {"arn": item["ListenerArn"]})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        prefix = f"{ctx.cluster}-"
        balancers = [lb for lb in ctx.paginate("elbv2", "describe_load_balancers", "LoadBalancers")
                     if str(lb.get("LoadBalancerName", "")).startswith(prefix)]
        listeners = [item for lb in balancers for item in self._listeners_of(ctx, lb["LoadBalancerArn"])]
        return [self.observe(i, t) for i, t in owned_items(ctx, listeners, "ListenerArn", self.kind)]

    @staticmethod
    def _listeners_of(ctx: AwsContext, arn: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] | None = ignoring(
            lambda: ctx.paginate("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=arn),
            ("LoadBalancerNotFound",))
        return found or []

    @staticmethod
    def _actions(props: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"Type": "forward", "TargetGroupArn": props["target_group_arn"]}]

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        made = after_create(ctx, lambda: ctx.call(
            "elbv2", "create_listener", LoadBalancerArn=p["load_balancer_arn"], Port=int(p["port"]),
            Protocol=p.get("protocol", "TCP"), DefaultActions=self._actions(p), Tags=tag_list(desired.tags)),
            CONSISTENCY_CODES, "load balancer and target group visible")["Listeners"][0]
        return self.observe(made, dict(desired.tags))

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "port", "protocol", "target_group_arn"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p = desired.props
        if set(diff) - {"tags"}:
            ctx.call("elbv2", "modify_listener", ListenerArn=actual.id, Port=int(p["port"]),
                     Protocol=p.get("protocol", "TCP"), DefaultActions=self._actions(p))
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
        fields = {**actual.fields, **{k: p[k] for k in diff if k in p}}
        return Observed(self.kind, actual.id, fields, {**actual.tags, **desired.tags}, actual.state,
                        dict(actual.attrs))

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        ignoring(lambda: while_in_use(ctx, lambda: ctx.call("elbv2", "delete_listener", ListenerArn=actual.id),
                                      f"listener {actual.id} to be deletable", IN_USE), NOT_FOUND)
