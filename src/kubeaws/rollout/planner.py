"""The order of a rollout: which instances are replaced, in which batches, with how many new instances started
first (surge). Pure: groups as `inventory.read_groups` shows them, and the spec's rollout settings, in.

Order: the control-plane members one at a time, in member order (never two etcd members at once, by any
path); then the node groups, each with a canary batch of one instance first, then batches of
`maxSurge + maxUnavailable` instances (kops' semantics: `maxSurge` new instances are launched and Ready
before the batch is drained, `maxUnavailable` more may be down at once; both 0 means 1 unavailable).
Percentages are of the group's desired capacity, rounded up for surge and down for unavailable.

Called by kubeaws.rollout.runner and by the plan's rollout summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kubeaws.rollout.inventory import GroupState, Instance

DEFAULT_SURGE = 1
DEFAULT_UNAVAILABLE = 0


@dataclass(frozen=True)
class Batch:
    instances: tuple[Instance, ...]
    surge: int  # new instances launched (and Ready) before the batch is drained
    canary: bool = False


@dataclass
class GroupPlan:
    group: GroupState
    reason: str
    batches: list[Batch] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(b.instances) for b in self.batches)


@dataclass
class RolloutPlan:
    control_plane: list[GroupPlan] = field(default_factory=list)
    node_groups: list[GroupPlan] = field(default_factory=list)
    parallel_groups: int = 1

    @property
    def groups(self) -> list[GroupPlan]:
        return [*self.control_plane, *self.node_groups]

    @property
    def empty(self) -> bool:
        return not any(g.count for g in self.groups)

    def to_list(self) -> list[dict[str, Any]]:
        """`rollout` of `--output json`: one entry per group, in order."""
        out = []
        for order, plan in enumerate(self.groups, start=1):
            out.append({"group": plan.group.name, "role": plan.group.role, "instances": plan.count,
                        "reason": plan.reason, "order": order,
                        "batches": [{"instances": [i.id for i in b.instances], "surge": b.surge, "canary": b.canary}
                                    for b in plan.batches]})
        return out

    def lines(self) -> list[str]:
        """What the plan says about the roll, one line per group."""
        out = []
        for order, plan in enumerate(self.groups, start=1):
            if plan.group.role == "control-plane":
                how = "alone (etcd member: one at a time)"
            else:
                surge = max((b.surge for b in plan.batches), default=0)
                sizes = [len(b.instances) for b in plan.batches]
                how = f"canary 1, then batches of {max(sizes[1:], default=1)}, surge {surge}"
            out.append(f"{order}. {plan.group.name}: replace {plan.count} instance(s) {how} ({plan.reason})")
        return out


def amount(value: int | str | None, desired: int, round_up: bool) -> int:
    """An int, or a percentage of the desired capacity."""
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        share = desired * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def batches_for(outdated: list[Instance], desired: int, max_surge: int | str | None,
                max_unavailable: int | str | None) -> list[Batch]:
    """Canary first, then batches of surge + unavailable instances."""
    surge = amount(DEFAULT_SURGE if max_surge is None else max_surge, desired, True)
    unavailable = amount(DEFAULT_UNAVAILABLE if max_unavailable is None else max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    size = surge + unavailable
    out: list[Batch] = []
    rest = list(outdated)
    if rest:
        out.append(Batch((rest.pop(0),), min(surge, 1), canary=True))
    while rest:
        chunk, rest = rest[:size], rest[size:]
        out.append(Batch(tuple(chunk), min(surge, len(chunk))))
    return out


def reason(group: GroupState, force: bool) -> str:
    versions = sorted({str(i.version) for i in group.outdated(force)})
    if force and all(i.version == group.target for i in group.live):
        return "forced"
    return f"launch template version {', '.join(versions)} -> {group.target}"


def plan_rollout(groups: list[GroupState], settings: dict[str, dict[str, Any]] | None = None, *,
                 only: set[str] | None = None, control_plane_only: bool = False, force: bool = False,
                 parallel_groups: int = 1) -> RolloutPlan:
    """The rollout of `groups` (settings: AWS group name -> {"maxSurge", "maxUnavailable"} of node groups).
    `only` limits it to the named groups; `force` replaces every instance."""
    plan = RolloutPlan(parallel_groups=max(1, parallel_groups))
    for group in groups:
        if only and group.name not in only:
            continue
        outdated = group.outdated(force)
        if group.role == "control-plane":
            if outdated:
                plan.control_plane.append(GroupPlan(group, reason(group, force),
                                                    [Batch((i,), 0) for i in outdated]))
            continue
        if control_plane_only or not outdated:
            continue
        options = (settings or {}).get(group.name, {})
        plan.node_groups.append(GroupPlan(group, reason(group, force), batches_for(
            outdated, group.desired, options.get("maxSurge"), options.get("maxUnavailable"))))
    plan.control_plane.sort(key=lambda p: (p.group.member if p.group.member is not None else 99, p.group.name))
    return plan
