"""EC2 Auto Scaling groups (kind `AutoScalingGroup`, service autoscaling): one per control-plane member
(size 1, one AZ) and one per self-managed node group (docs/kubeadm.md). id = the group's name.

- Launch template by ID at an explicit version (`launch_template_version`, create_only: on create the
  template's default version; `apply` never moves it, so no instance boots a new configuration before
  `kubeaws rollout` moves the group to it, one group and one control-plane member at a time), or a
  MixedInstancesPolicy with one override per instance type (several types, or spot).
- Tags go in the create call with PropagateAtLaunch=True, except the kubeaws identity tags
  (`kubeaws.io/cluster`, `kubeaws.io/resource`, see `_autoscaling.IDENTITY_TAGS`): an instance carrying them
  would be listed by the `Instance` kind and deleted by the planner as a leftover.
- `desired_capacity` is used on create and never diffed: the cluster-autoscaler owns it. An update that
  moves min/max past the current capacity clamps it.
- Nothing here replaces instances: no instance refresh is ever started (a size-1 control-plane group's
  refresh would take its etcd member down, and every member's group would refresh at once). Rolls are
  `kubeaws rollout` (kubeaws.rollout).
- `list_owned` is ONE DescribeAutoScalingGroups with a tag filter; groups being deleted are `deleting`.
- `delete` force-deletes (terminating the instances) and waits until the group is gone.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code, is_already_exists
from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, is_owned_by
from kubeaws.resources._autoscaling import IDENTITY_TAGS, is_profile_not_visible, retry_matching
from kubeaws.resources._ec2 import LONG_WAIT, while_in_use
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

#: Written on groups by kubeaws versions that rolled through instance refresh; kept off the instances.
LT_HASH_TAG = "kubeaws.io/launch-template-hash"
#: DeleteAutoScalingGroup's in-use answers (scaling activity running, another update pending).
IN_USE = ("ResourceInUse", "ScalingActivityInProgress", "ResourceContention")
#: Props sent with UpdateAutoScalingGroup (target groups have their own calls; desired capacity is ours
#: only on create).
GROUP_FIELDS = frozenset({"launch_template_id", "min_size", "max_size", "subnet_ids", "mixed_instances",
                          "health_check_type", "health_check_grace_period", "capacity_rebalance"})


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) == "ValidationError" and "not found" in str(exc).lower()


def is_transient(exc: ClientError) -> bool:
    """A just-created instance profile or launch template not visible to Auto Scaling yet."""
    text = str(exc).lower()
    template_missing = "launch template" in text and ("does not exist" in text or "not found" in text)
    return is_profile_not_visible(exc) or (error_code(exc) == "ValidationError" and template_missing)


def group_params(props: Mapping[str, Any], version: str) -> dict[str, Any]:
    """Create/UpdateAutoScalingGroup parameters for `props` at launch-template `version` (without name,
    capacity, tags, target groups)."""
    template = {"LaunchTemplateId": props["launch_template_id"], "Version": version}
    params: dict[str, Any] = {
        "MinSize": props["min_size"], "MaxSize": props["max_size"],
        "VPCZoneIdentifier": ",".join(sorted(props["subnet_ids"])),
        "HealthCheckType": props.get("health_check_type") or "EC2",
        "HealthCheckGracePeriod": int(props.get("health_check_grace_period") or 300),
        "CapacityRebalance": bool(props.get("capacity_rebalance")),
    }
    mixed = props.get("mixed_instances")
    if mixed:
        distribution = {"OnDemandBaseCapacity": mixed.get("on_demand_base_capacity"),
                        "OnDemandPercentageAboveBaseCapacity": mixed.get("on_demand_percentage_above_base"),
                        "SpotAllocationStrategy": mixed.get("spot_allocation_strategy")}
        params["MixedInstancesPolicy"] = {
            "LaunchTemplate": {"LaunchTemplateSpecification": template,
                               "Overrides": [{"InstanceType": t} for t in mixed["instance_types"]]},
            "InstancesDistribution": {k: v for k, v in distribution.items() if v is not None}}
    else:
        params["LaunchTemplate"] = template
    return params


def tag_entries(name: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Auto Scaling tags: every tag propagates at launch except the identity and bookkeeping tags."""
    keep_home = IDENTITY_TAGS | {LT_HASH_TAG}
    return [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
             "PropagateAtLaunch": k not in keep_home} for k, v in sorted(tags.items())]


@register
class AutoScalingGroup(Kind):
    """An Auto Scaling group pinned to a version of its launch template."""

    kind = "AutoScalingGroup"
    service = "autoscaling"
    rank = 70
    immutable = frozenset({"name"})
    name_field = "name"
    set_fields = frozenset({"subnet_ids", "target_group_arns"})
    gone_states = frozenset({"deleting"})

    def observe(self, g: Mapping[str, Any]) -> Observed:
        tags = self.tags_of(g)
        policy = g.get("MixedInstancesPolicy")
        mixed: dict[str, Any] | None = None
        if policy:
            template = policy["LaunchTemplate"]["LaunchTemplateSpecification"]
            dist = policy.get("InstancesDistribution", {})
            mixed = {"instance_types": [o["InstanceType"] for o in policy["LaunchTemplate"].get("Overrides", [])],
                     "on_demand_base_capacity": dist.get("OnDemandBaseCapacity"),
                     "on_demand_percentage_above_base": dist.get("OnDemandPercentageAboveBaseCapacity"),
                     "spot_allocation_strategy": dist.get("SpotAllocationStrategy")}
        else:
            template = g.get("LaunchTemplate") or {}
        fields = {
            "name": g["AutoScalingGroupName"], "launch_template_id": template.get("LaunchTemplateId"),
            "launch_template_version": template.get("Version"),
            "min_size": g["MinSize"], "max_size": g["MaxSize"], "desired_capacity": g.get("DesiredCapacity"),
            "subnet_ids": sorted(s for s in (g.get("VPCZoneIdentifier") or "").split(",") if s),
            "mixed_instances": mixed, "target_group_arns": sorted(g.get("TargetGroupARNs") or []),
            "health_check_type": g.get("HealthCheckType"),
            "health_check_grace_period": g.get("HealthCheckGracePeriod"),
            "capacity_rebalance": bool(g.get("CapacityRebalance")),
        }
        state = "deleting" if g.get("Status") == "Delete in progress" else "active"
        attrs = {"arn": g.get("AutoScalingGroupARN"), "state": state,
                 "launch_template_version": template.get("Version"),
                 "instances": sorted(i["InstanceId"] for i in g.get("Instances", []))}
        return Observed(self.kind, g["AutoScalingGroupName"], fields, tags, state, attrs)

    def _describe(self, ctx: AwsContext, **params: Any) -> list[Observed]:
        groups = ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups", **params)
        return [self.observe(g) for g in groups]

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        # MaxRecords 100 (the API maximum; the default is 50): one page for any reasonable cluster.
        found = self._describe(ctx, Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [ctx.cluster]}], MaxRecords=100)
        return self.owned_only(ctx, found)

    def _by_name(self, ctx: AwsContext, name: str) -> Observed | None:
        found = self._describe(ctx, AutoScalingGroupNames=[name])
        return found[0] if found else None

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """Group names are unique per region: one of the same name that is not ours blocks us."""
        name = desired.props.get("name")
        found = self._by_name(ctx, name) if isinstance(name, str) else None
        return found if found is not None and not is_owned_by(found.tags, ctx.cluster) else None

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """The base diff, never comparing `desired_capacity` (owned by the cluster-autoscaler)."""
        return super().diff(actual, replace(desired, create_only=desired.create_only | {"desired_capacity"}))

    # -- tags --------------------------------------------------------------------------------------
    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            ctx.call("autoscaling", "create_or_update_tags", Tags=tag_entries(resource_id, tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        if keys:
            ctx.call("autoscaling", "delete_tags", Tags=[{"ResourceId": resource_id, "ResourceType":
                                                           "auto-scaling-group", "Key": k} for k in keys])

    # -- change ------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        name = p["name"]
        tags = dict(desired.tags)
        params = {**group_params(p, str(p.get("launch_template_version") or "$Default")),
                  "AutoScalingGroupName": name, "Tags": tag_entries(name, tags),
                  "DesiredCapacity": p.get("desired_capacity", p["min_size"])}
        if p.get("target_group_arns"):
            params["TargetGroupARNs"] = sorted(p["target_group_arns"])
        try:
            retry_matching(ctx, lambda: ctx.call("autoscaling", "create_auto_scaling_group", **params),
                           is_transient, "the launch template and instance profile to be usable")
        except ClientError as exc:  # no ClientToken in this API: a retried create finds its own group
            if not is_already_exists(exc):
                raise
            mine = self._by_name(ctx, name)
            if mine is None or not is_owned_by(mine.tags, ctx.cluster):
                raise
        return wait_until(lambda: self._by_name(ctx, name), ctx.policy.consistency_timeout,
                          f"Auto Scaling group {name} to be visible", ctx.policy)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - GROUP_FIELDS - {"tags", "target_group_arns"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p, name = desired.props, actual.id
        if set(diff) & GROUP_FIELDS:
            # At the version the group launches now (only a rollout moves it), unless it changes templates.
            version = (p.get("launch_template_version") if "launch_template_id" in diff
                       else actual.fields.get("launch_template_version"))
            params = group_params(p, str(version or "$Default"))
            current = actual.fields.get("desired_capacity")
            if current is not None and not p["min_size"] <= current <= p["max_size"]:
                params["DesiredCapacity"] = min(max(current, p["min_size"]), p["max_size"])
            retry_matching(ctx, lambda: ctx.call("autoscaling", "update_auto_scaling_group",
                                                 AutoScalingGroupName=name, **params),
                           is_transient, "the launch template and instance profile to be usable")
        if "target_group_arns" in diff:
            have, want = set(actual.fields.get("target_group_arns") or []), set(p.get("target_group_arns") or [])
            if want - have:
                ctx.call("autoscaling", "attach_load_balancer_target_groups", AutoScalingGroupName=name,
                         TargetGroupARNs=sorted(want - have))
            if have - want:
                ctx.call("autoscaling", "detach_load_balancer_target_groups", AutoScalingGroupName=name,
                         TargetGroupARNs=sorted(have - want))
        if "tags" in diff:
            self.set_tags(ctx, name, diff["tags"][1])
        fields = {**actual.fields, **{k: p[k] for k in diff if k in p}}
        return replace(actual, fields=fields, tags={**actual.tags, **desired.tags})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Force-delete (terminates the instances) and wait until the group is gone."""
        try:
            while_in_use(ctx, lambda: ctx.call("autoscaling", "delete_auto_scaling_group",
                                               AutoScalingGroupName=actual.id, ForceDelete=True),
                         f"Auto Scaling group {actual.id} to be deletable", IN_USE)
        except ClientError as exc:
            if not is_not_found(exc):
                raise
        wait_until(lambda: True if self._by_name(ctx, actual.id) is None else None, LONG_WAIT,
                   f"Auto Scaling group {actual.id} to be deleted", ctx.policy)
