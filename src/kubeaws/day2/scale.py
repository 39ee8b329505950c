"""Set a node group's size now (`kubeaws scale -f SPEC GROUP --desired N [--min M] [--max X]`), as
`eksctl scale nodegroup` does: the group's Auto Scaling group (kubeadm, EKS self-managed: one
UpdateAutoScalingGroup) or EKS managed node group (one UpdateNodegroupConfig, waited for), then what the spec
says about it.

- The group is the spec's `nodeGroups[].name`; its AWS name comes from the spec (`spec.nodegroups.group_name`,
  name patterns included) and it must be owned by the cluster (its tags).
- Sizes not given keep the group's current ones in AWS. Every size must be 0-5000 and min <= desired <= max
  (an EKS managed group's max at least 1); otherwise `SizeError` (exit 2) says which option to add.
- `disagreements`: where the spec now differs. `size.desired` of an existing group is left alone by apply
  (the cluster-autoscaler and rollouts own it), so a different desired only matters for a group made again;
  a different min or max is put back by the next apply (which then moves desired into that range). The CLI
  offers to write the new size into the spec (spec.edit, comments kept).

Called by the CLI (kubeaws.cli.day2), which holds the cluster's lock around `set_size`.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by, tag_dict
from kubeaws.errors import KubeawsError, OwnershipError
from kubeaws.resources._eks import describe, mutate, wait_update
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec
from kubeaws.spec.nodegroups import group_name

#: What a group's sizes may be (spec.models bounds them the same way).
MAX_SIZE = 5000


class SizeError(KubeawsError):
    """Bad input to scale: an unknown group, or sizes out of range (exit 2)."""


@dataclass(frozen=True)
class Sizes:
    min: int
    desired: int
    max: int

    def text(self) -> str:
        return f"desired {self.desired} (min {self.min}, max {self.max})"


@dataclass
class Target:
    """The AWS group behind a spec node group, with its sizes before the change."""

    cluster: str
    group: str
    aws_name: str
    type: str  #: self-managed (an Auto Scaling group) | managed (an EKS managed node group)
    before: Sizes


@dataclass
class ScaleResult:
    """What scale did and what the spec says of it."""

    target: Target
    after: Sizes
    spec: Sizes
    notes: list[str] = field(default_factory=list)
    changed: bool = True
    spec_written: str | None = None  #: the file the new size was written to

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {"cluster": t.cluster, "group": t.group, "awsName": t.aws_name, "type": t.type,
                "changed": self.changed, "before": asdict(t.before), "after": asdict(self.after),
                "spec": asdict(self.spec), "specAgrees": not self.notes, "notes": list(self.notes),
                "specWritten": self.spec_written}


def node_group(spec: ClusterSpec, group: str) -> NodeGroupSpec:
    """The spec's group named `group`; SizeError naming the groups there are (and the closest) otherwise."""
    names = [ng.name for ng in spec.spec.node_groups]
    for ng in spec.spec.node_groups:
        if ng.name == group:
            return ng
    close = difflib.get_close_matches(group, names, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise SizeError(f"cluster {spec.metadata.name} has no node group {group!r} (spec.nodeGroups[].name: "
                    f"{', '.join(names) or 'none'}){hint}")


def find_target(spec: ClusterSpec, ctx: AwsContext, group: str) -> Target:
    """The group's Auto Scaling group or managed node group and its sizes now (read-only)."""
    ng = node_group(spec, group)
    cluster, name = spec.metadata.name, group_name(spec, ng)
    missing = f"node group {group} has no {{what}} {name} in {ctx.region}: create it with `kubeaws apply`"
    if spec.spec.mode == "eks" and ng.type == "managed":
        found = describe(ctx, "describe_nodegroup", "nodegroup", clusterName=cluster, nodegroupName=name)
        if found is None:
            raise KubeawsError(missing.format(what="EKS managed node group"))
        if not is_owned_by(found.get("tags") or {}, cluster):
            raise OwnershipError(f"EKS node group {name} is not owned by cluster {cluster}: kubeaws leaves it alone")
        scaling = found.get("scalingConfig") or {}
        return Target(cluster, group, name, "managed", Sizes(int(scaling.get("minSize", 0)),
                                                             int(scaling.get("desiredSize", 0)),
                                                             int(scaling.get("maxSize", 0))))
    groups = ctx.call("autoscaling", "describe_auto_scaling_groups",
                      AutoScalingGroupNames=[name]).get("AutoScalingGroups", [])
    if not groups:
        raise KubeawsError(missing.format(what="Auto Scaling group"))
    g = groups[0]
    if not is_owned_by(tag_dict(g.get("Tags")), cluster):
        raise OwnershipError(f"Auto Scaling group {name} is not owned by cluster {cluster}: kubeaws leaves it alone")
    return Target(cluster, group, name, "self-managed",
                  Sizes(int(g["MinSize"]), int(g.get("DesiredCapacity") or 0), int(g["MaxSize"])))


def resolve_sizes(target: Target, desired: int, minimum: int | None = None, maximum: int | None = None) -> Sizes:
    """The sizes to set: those given, the group's current min and max for the others; SizeError when they do
    not fit (the message says which option to add)."""
    now = target.before
    for option, value in (("--desired", desired), ("--min", minimum), ("--max", maximum)):
        if value is not None and not 0 <= value <= MAX_SIZE:
            raise SizeError(f"{option} {value} is out of range: use 0-{MAX_SIZE}")
    lo = now.min if minimum is None else minimum
    hi = now.max if maximum is None else maximum
    where = f"group {target.aws_name} has min {now.min}, max {now.max}"
    if lo > hi:
        fix = ("pass --max too" if maximum is None else "pass --min too" if minimum is None
               else "make --min at most --max")
        raise SizeError(f"min {lo} is above max {hi} ({where}): {fix}")
    if desired > hi:
        fix = f"pass --max {desired} (or more) too" if maximum is None else f"make --max at least {desired}"
        raise SizeError(f"--desired {desired} is above the maximum {hi} ({where}): {fix}")
    if desired < lo:
        fix = f"pass --min {desired} (or less) too" if minimum is None else f"make --min at most {desired}"
        raise SizeError(f"--desired {desired} is below the minimum {lo} ({where}): {fix}")
    if target.type == "managed" and hi < 1:
        raise SizeError(f"an EKS managed node group's maximum must be at least 1 (got {hi}): pass --max 1 or more")
    return Sizes(lo, desired, hi)


def set_size(ctx: AwsContext, target: Target, sizes: Sizes) -> None:
    """Give the group these sizes (nothing when it has them already)."""
    if sizes == target.before:
        return
    if target.type == "managed":
        what = f"EKS node group {target.cluster}/{target.aws_name}"
        answer = mutate(ctx, "update_nodegroup_config", f"{what} to accept a scaling update",
                        clusterName=target.cluster, nodegroupName=target.aws_name,
                        scalingConfig={"minSize": sizes.min, "maxSize": sizes.max, "desiredSize": sizes.desired})
        wait_update(ctx, answer.get("update"), target.cluster, f"{what} scaling update", nodegroupName=target.aws_name)
        return
    ctx.call("autoscaling", "update_auto_scaling_group", AutoScalingGroupName=target.aws_name, MinSize=sizes.min,
             MaxSize=sizes.max, DesiredCapacity=sizes.desired)


def spec_sizes(ng: NodeGroupSpec) -> Sizes:
    return Sizes(ng.size.min, ng.size.desired, ng.size.max)


def disagreements(spec: ClusterSpec, group: str, sizes: Sizes) -> list[str]:
    """Where the spec's `size` of the group differs from `sizes`, and what that means for the next apply."""
    ng = node_group(spec, group)
    index = spec.spec.node_groups.index(ng)
    path = f"spec.nodeGroups[{index}].size"
    have = spec_sizes(ng)
    notes = []
    if have.desired != sizes.desired:
        notes.append(f"{path}.desired is {have.desired}: apply leaves an existing group's desired size alone (the "
                     "cluster-autoscaler and rollouts own it), but a group made again would start at "
                     f"{have.desired}")
    moved = [(key, getattr(have, key)) for key in ("min", "max") if getattr(have, key) != getattr(sizes, key)]
    if moved:
        said = " and ".join(f"{path}.{key} is {value}" for key, value in moved)
        back = min(max(sizes.desired, have.min), have.max)
        notes.append(f"{said}: the next apply sets the group back to min {have.min}, max {have.max}"
                     + (f" (and its desired size to {back})" if back != sizes.desired else ""))
    return notes
