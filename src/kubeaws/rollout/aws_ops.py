"""The AWS side of a rollout (`runner.Cloud`): read a group, move it to a launch-template version, resize it
(keeping its size before a surge in a group tag, `inventory.BASE_TAG`), terminate an instance with or
without lowering the group's capacity, and prune the template versions no group launches any more.

UpdateAutoScalingGroup sets the version (of the launch template, or of the mixed instances policy's) and the
capacity; TerminateInstanceInAutoScalingGroup terminates. Called by the runner through the interface.
"""

from __future__ import annotations

from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.resources.launch_template import prune_versions
from kubeaws.rollout.inventory import BASE_TAG, GroupState, read_groups


class AwsCloud:
    def __init__(self, ctx: AwsContext) -> None:
        self.ctx = ctx

    def read(self, name: str) -> GroupState:
        found = read_groups(self.ctx, [name])
        if not found:
            raise KubeawsError(f"Auto Scaling group {name} does not exist (any more): run `kubeaws apply` first")
        return found[0]

    def _mixed(self, name: str) -> bool:
        groups = self.ctx.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name])
        return bool((groups.get("AutoScalingGroups") or [{}])[0].get("MixedInstancesPolicy"))

    def pin(self, group: GroupState, version: int) -> None:
        template = {"LaunchTemplateId": group.template_id, "Version": str(version)}
        params: dict[str, object] = {"AutoScalingGroupName": group.name}
        if self._mixed(group.name):
            # Only the template specification: the overrides and the distribution keep their values.
            params["MixedInstancesPolicy"] = {"LaunchTemplate": {"LaunchTemplateSpecification": template}}
        else:
            params["LaunchTemplate"] = template
        self.ctx.call("autoscaling", "update_auto_scaling_group", **params)

    def resize(self, group: GroupState, desired: int, max_size: int, base: tuple[int, int] | None) -> None:
        if base is not None:  # recorded first: a crash right after the resize still knows the size to go back to
            self.ctx.call("autoscaling", "create_or_update_tags", Tags=[{
                "ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": BASE_TAG,
                "Value": f"{base[0]}:{base[1]}", "PropagateAtLaunch": False}])
        self.ctx.call("autoscaling", "update_auto_scaling_group", AutoScalingGroupName=group.name,
                      MaxSize=max_size, DesiredCapacity=desired)
        if base is None and BASE_TAG in group.tags:
            self.ctx.call("autoscaling", "delete_tags", Tags=[{
                "ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": BASE_TAG}])

    def terminate(self, instance_id: str, decrement: bool) -> None:
        self.ctx.call("autoscaling", "terminate_instance_in_auto_scaling_group", InstanceId=instance_id,
                      ShouldDecrementDesiredCapacity=decrement)

    def prune(self, groups: list[GroupState]) -> None:
        """Delete old versions of the groups' templates that no group launches (not on a local emulator: it
        has no DeleteLaunchTemplateVersions)."""
        if not self.ctx.capabilities.deletes_launch_template_versions:
            return
        by_template: dict[str, set[int]] = {}
        targets: dict[str, int] = {}
        for group in groups:
            targets[group.template_id] = group.target
            if group.pinned.isdigit():
                by_template.setdefault(group.template_id, set()).add(int(group.pinned))
        for template_id, target in targets.items():
            prune_versions(self.ctx, template_id, target, frozenset(by_template.get(template_id, set())))
