"""What a rollout works from, read from AWS each time (never from local memory, so a rollout resumes after a
crash): the cluster's Auto Scaling groups, the launch-template version each group launches and the one it
should launch, and each instance's launch version (the `aws:ec2launchtemplate:version` tag EC2 puts on an
instance at launch: the version it really booted, whatever the group says now).

An instance is outdated when it booted from another version of its group's template than the template's
default version (what `kubeaws apply` made current). Groups are pinned to an explicit version: `apply`
creates them on the then-default version and never moves them; the rollout moves a group to the new
version when its turn comes, so no instance of a group boots the new configuration before its turn (a
control-plane member self-healing in the middle of an upgrade comes back at its old version: the
version-skew rules hold at every step).

Called by kubeaws.rollout.planner (planning) and kubeaws.rollout.aws_ops (re-reading a group while waiting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import tag_dict

Role = Literal["control-plane", "nodes"]
VERSION_TAG = "aws:ec2launchtemplate:version"
MEMBER_TAG = "kubeaws.io/control-plane-member"
ROLE_TAG = "kubeaws.io/role"
#: "<desired>:<max>" of the group before a surge, kept on the group while the surge lasts (a rollout that died
#: in the middle finds it there and shrinks the group back when it is done).
BASE_TAG = "kubeaws.io/rollout-base"
LIVE_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})
BATCH = 200  # DescribeLaunchTemplates takes at most 200 IDs (the local emulator answers them all: local/ec2_front.py)


@dataclass(frozen=True)
class Instance:
    id: str
    node: str  # the Kubernetes node name: the instance's private DNS name
    az: str
    version: int | None  # the launch-template version it booted from
    lifecycle: str
    healthy: bool = True


@dataclass
class GroupState:
    """One Auto Scaling group as AWS shows it now."""

    name: str
    role: Role
    member: int | None
    template_id: str
    pinned: str  # the version the group launches: "$Default", "$Latest" or a number
    target: int  # the template's default version (what apply made current)
    min_size: int
    max_size: int
    desired: int
    instances: list[Instance] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.lifecycle in LIVE_STATES]

    def outdated(self, force: bool = False) -> list[Instance]:
        """Live instances not on the target version (every live one with `force`), oldest version first."""
        found = [i for i in self.live if force or i.version != self.target]
        return sorted(found, key=lambda i: (i.version or 0, i.az, i.id))

    @property
    def base(self) -> tuple[int, int] | None:
        """(desired, max) before an unfinished surge, if one was started."""
        desired, _, maximum = self.tags.get(BASE_TAG, "").partition(":")
        return (int(desired), int(maximum)) if desired.isdigit() and maximum.isdigit() else None


def _template_of(group: dict[str, Any]) -> tuple[str, str]:
    spec = group.get("LaunchTemplate") or ((group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get(
        "LaunchTemplateSpecification") or {}
    return str(spec.get("LaunchTemplateId", "")), str(spec.get("Version", "$Default"))


def default_versions(ctx: AwsContext, template_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(template_ids) - {""})
    out: dict[str, int] = {}
    for start in range(0, len(ids), BATCH):
        answer = ctx.call("ec2", "describe_launch_templates", LaunchTemplateIds=ids[start:start + BATCH])
        for template in answer.get("LaunchTemplates", []):
            out[template["LaunchTemplateId"]] = int(template["DefaultVersionNumber"])
    return out


def _instances(ctx: AwsContext, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        for reservation in ctx.call("ec2", "describe_instances", InstanceIds=ids[start:start + 100]).get(
                "Reservations", []):
            for item in reservation.get("Instances", []):
                out[item["InstanceId"]] = item
    return out


def read_groups(ctx: AwsContext, names: Iterable[str]) -> list[GroupState]:
    """The named groups as they are now (missing ones left out), in the order given."""
    wanted = list(names)
    groups: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 50):
        for page in ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                                 AutoScalingGroupNames=wanted[start:start + 50]):
            groups[page["AutoScalingGroupName"]] = page
    targets = default_versions(ctx, (_template_of(g)[0] for g in groups.values()))
    instance_ids = [i["InstanceId"] for g in groups.values() for i in g.get("Instances", [])]
    described = _instances(ctx, instance_ids)
    out = []
    for name in wanted:
        group = groups.get(name)
        if group is None:
            continue
        tags = {t["Key"]: t.get("Value", "") for t in group.get("Tags", [])}
        template_id, pinned = _template_of(group)
        members = []
        for item in group.get("Instances", []):
            ec2 = described.get(item["InstanceId"], {})
            version = tag_dict(ec2.get("Tags")).get(VERSION_TAG)
            members.append(Instance(
                id=item["InstanceId"], node=str(ec2.get("PrivateDnsName", "")), az=item.get("AvailabilityZone", ""),
                version=int(version) if version and version.isdigit() else None,
                lifecycle=item.get("LifecycleState", ""), healthy=item.get("HealthStatus", "Healthy") == "Healthy"))
        member = tags.get(MEMBER_TAG)
        out.append(GroupState(
            name=name, role="control-plane" if tags.get(ROLE_TAG) == "control-plane" else "nodes",
            member=int(member) if member and member.isdigit() else None, template_id=template_id, pinned=pinned,
            target=targets.get(template_id, 0), min_size=int(group["MinSize"]), max_size=int(group["MaxSize"]),
            desired=int(group["DesiredCapacity"]), instances=members, tags=tags))
    return out
