"""The rollout runner: replaces the instances a `RolloutPlan` names, one step at a time, each with its wait,
its validation and its abort. Every step re-reads the group from AWS first (what is outdated, whether a
surge is already in place), so a rollout killed at any point resumes where it stopped when run again, and
never replaces an up-to-date instance twice.

A control-plane member: its group moved to the new template version, the node drained, the instance
terminated WITHOUT lowering the group's capacity (the group launches the replacement, which re-attaches the
member's etcd volume), the replacement waited for until its node is Ready, the old Node removed, the cluster
validated. Then the next member.

A node-group batch: the group grown by the batch's surge (its size before, "desired:max", kept in a group
tag until it shrinks back, and the maximum raised if needed), the new nodes waited for until Ready, the
batch drained (its nodes at the same time), its instances terminated (the surged ones lowering the capacity
back, the others replaced by the group), the group waited for until every instance is back and Ready, the
old Nodes removed, the cluster validated. The next batch's surge is launched right after this batch's
terminations (the group's desired capacity, which terminating instances no longer count, is never more than
`maxSurge` beyond its size): its boot overlaps this batch's wait and validation, and its drain still comes
after that validation. Independent node groups may roll `parallel_groups` at a time.

Readiness is read for a whole group at once (`Cluster.ready_nodes`: one node list, not one request per
instance).

The AWS and Kubernetes sides are behind small interfaces (`Cloud`, `Cluster`; `rollout.aws_ops` and
`rollout.kube_ops` implement them) and the waits read time through the retry policy's clock, so tests run
the real budgets on a fake clock. `cluster=None` is `--cloud-only`: terminate and wait for the instances only.

`hooks` (optional) act on the cluster around the control-plane phase: `before_control_plane` when at least
one member is to be replaced, before the first one; `after_control_plane` once the phase finished, on every
run (a run killed after the last member resumes with no member left to replace). Both must be idempotent.
A Kubernetes upgrade's hooks are `rollout.upgrade`'s (kubeadm-config before, kube-proxy and CoreDNS after).

Called by the `kubeaws rollout` command (and by `apply` after it updated launch templates).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from kubeaws.aws.retry import RetryPolicy
from kubeaws.errors import KubeawsError
from kubeaws.rollout.inventory import GroupState, Instance
from kubeaws.rollout.planner import Batch, GroupPlan, RolloutPlan

T = TypeVar("T")


class RolloutError(KubeawsError):
    """A step could not finish: what was waited for or what blocked it. Running the rollout again resumes."""


class Cloud(Protocol):
    def read(self, name: str) -> GroupState: ...

    def pin(self, group: GroupState, version: int) -> None: ...

    def resize(self, group: GroupState, desired: int, max_size: int, base: tuple[int, int] | None) -> None: ...

    def terminate(self, instance_id: str, decrement: bool) -> None: ...


class Cluster(Protocol):
    def drain(self, node: str, timeout: float) -> None: ...

    def ready_nodes(self, nodes: Collection[str]) -> set[str]:
        """Which of `nodes` are registered and Ready."""
        ...

    def forget(self, node: str) -> None: ...

    def problems(self) -> list[str]: ...


class Hooks(Protocol):
    """Cluster-wide changes around the control-plane phase (e.g. `rollout.upgrade.KubeadmUpgrade.bind`)."""

    def before_control_plane(self) -> None: ...

    def after_control_plane(self) -> None: ...


@dataclass
class Timeouts:
    drain: float = 900.0  # per node
    ready: float = 1200.0  # a replacement booting, joining and becoming Ready
    validation: float = 600.0  # the cluster healthy again after a step


@dataclass
class RolloutResult:
    replaced: list[str] = field(default_factory=list)  # instance IDs, in the order they were terminated
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"replaced": list(self.replaced), "seconds": round(self.seconds, 1)}


class Runner:
    def __init__(self, cloud: Cloud, cluster: Cluster | None, policy: RetryPolicy,
                 timeouts: Timeouts | None = None, on_event: Callable[[str], None] | None = None,
                 force: bool = False, hooks: Hooks | None = None) -> None:
        self.cloud = cloud
        self.hooks = hooks
        self.cluster = cluster
        self.policy = policy
        self.timeouts = timeouts or Timeouts()
        self.say = on_event or (lambda _: None)
        self.force = force
        self.result = RolloutResult()

    # -- waiting --------------------------------------------------------------------------------------------
    def wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = self.policy.clock() + timeout
        while True:
            value = check()
            if value is not None:
                return value
            if self.policy.clock() >= deadline:
                raise RolloutError(f"gave up after {timeout:.0f}s waiting for {what}; run the rollout again to "
                                   "resume from here")
            self.policy.sleep(self.policy.poll_interval)

    def validate(self, after: str) -> None:
        if self.cluster is None:
            return
        cluster = self.cluster
        last: list[list[str]] = [[]]

        def healthy() -> bool | None:
            last[0] = cluster.problems()
            return True if not last[0] else None

        try:
            self.wait(healthy, self.timeouts.validation, f"the cluster to be healthy after {after}")
        except RolloutError as exc:
            raise RolloutError(f"{exc}: {'; '.join(last[0])}") from exc

    def _ready(self, instances: list[Instance]) -> list[Instance]:
        """Those of `instances` whose node is Ready (all of them with no cluster: --cloud-only)."""
        if self.cluster is None:
            return list(instances)
        named = [i for i in instances if i.node]
        ready = self.cluster.ready_nodes([i.node for i in named]) if named else set()
        return [i for i in named if i.node in ready]

    # -- running --------------------------------------------------------------------------------------------
    def run(self, plan: RolloutPlan) -> RolloutResult:
        started = time.monotonic()
        if self.hooks is not None and any(g.count for g in plan.control_plane):
            self.hooks.before_control_plane()
        for group_plan in plan.control_plane:
            self.roll_member(group_plan)
        if self.hooks is not None:
            self.hooks.after_control_plane()
        if plan.node_groups:
            with ThreadPoolExecutor(max_workers=plan.parallel_groups) as pool:
                futures = [pool.submit(self.roll_group, g) for g in plan.node_groups]
                errors = [f.exception() for f in futures]
            failed = [e for e in errors if e is not None]
            if failed:
                raise failed[0]
        self.result.seconds = time.monotonic() - started
        return self.result

    def _pin(self, group: GroupState) -> GroupState:
        if group.pinned != str(group.target):
            self.say(f"{group.name}: launch template version {group.pinned} -> {group.target}")
            self.cloud.pin(group, group.target)
            group = self.cloud.read(group.name)
        return group

    def roll_member(self, plan: GroupPlan) -> None:
        """One control-plane member: drain, terminate keeping capacity, wait for the replacement."""
        group = self._pin(self.cloud.read(plan.group.name))
        for old in group.outdated(self.force):
            self.say(f"{group.name}: replacing {old.id} ({old.node})")
            self._drain(old)
            self.cloud.terminate(old.id, decrement=False)
            self.result.replaced.append(old.id)
            gone = {old.id}
            new = self.wait(lambda: self._replacement(group.name, gone),  # noqa: B023 (waited for here)
                            self.timeouts.ready, f"the replacement of {old.id} in {group.name} to be Ready")
            self.say(f"{group.name}: {new.id} ({new.node}) is Ready")
            self._forget(old, new)
            self.validate(f"replacing {old.id}")

    def _replacement(self, name: str, gone: set[str]) -> Instance | None:
        group = self.cloud.read(name)
        if any(i.id in gone for i in group.live):
            return None
        fresh = self._ready([i for i in group.live if i.version == group.target])
        return fresh[0] if fresh else None

    def roll_group(self, plan: GroupPlan) -> None:
        group = self._pin(self.cloud.read(plan.group.name))
        for index, batch in enumerate(plan.batches):
            self.roll_batch(group.name, batch, plan.batches[index + 1] if index + 1 < len(plan.batches) else None)
        group = self.cloud.read(group.name)
        if group.base is not None:  # a surge left over by an interrupted run: back to the size before
            desired, maximum = group.base
            self.cloud.resize(group, desired, maximum, None)
        self.say(f"{group.name}: done")

    def roll_batch(self, name: str, batch: Batch, following: Batch | None = None) -> None:
        """One batch; `following` (the next batch of the group) has its surge launched right after this
        batch's terminations."""
        group = self.cloud.read(name)
        todo = self._todo(group, batch)
        if not todo:
            return
        surged = self._surge(group, batch, todo)
        if surged:
            self.wait(lambda: self._all_ready(name), self.timeouts.ready,
                      f"{surged} new instance(s) of {name} to be Ready")
        self._drain_all(todo)
        for index, old in enumerate(todo):
            self.cloud.terminate(old.id, decrement=index < surged)
            self.result.replaced.append(old.id)
        gone = {i.id for i in todo}
        serving = None  # None: every instance the group has; a count: that many (the next surge is booting)
        ahead = self._todo(self.cloud.read(name), following, gone) if following is not None else []
        if ahead and following is not None and following.surge:
            group = self.cloud.read(name)
            serving = group.desired
            self._surge(group, following, ahead)
        self.wait(lambda: self._all_ready(name, gone, serving), self.timeouts.ready,
                  f"{name} to be back to full capacity with Ready nodes")
        for old in todo:
            self._forget(old, None)
        group = self.cloud.read(name)
        if group.base is not None and group.desired <= group.base[0]:
            self.cloud.resize(group, group.desired, group.base[1], None)
        self.validate(f"replacing {', '.join(i.id for i in todo)}")

    def _todo(self, group: GroupState, batch: Batch, skip: Collection[str] = ()) -> list[Instance]:
        """The batch's instances still outdated in the group (not those of `skip`)."""
        outdated = {i.id for i in group.outdated(self.force)}
        return [i for i in batch.instances if i.id in outdated and i.id not in skip]

    def _surge(self, group: GroupState, batch: Batch, todo: list[Instance]) -> int:
        """Grow the group to the batch's surge (what a previous step or run surged already counts); how
        many instances the group now has beyond its size before."""
        base = group.base or (group.desired, group.max_size)
        surged = group.desired - base[0]
        need = max(0, min(batch.surge, len(todo)) - surged)
        if need:
            desired = group.desired + need
            self.say(f"{group.name}: surge {need} (capacity {group.desired} -> {desired})")
            self.cloud.resize(group, desired, max(group.max_size, desired), base)
            surged += need
        return surged

    def _all_ready(self, name: str, gone: set[str] | None = None, serving: int | None = None) -> bool | None:
        """None of `gone` is live, and the group has `desired` live instances, every one Ready; or, given
        `serving`, at least that many Ready ones (the others: a surge still booting)."""
        group = self.cloud.read(name)
        live = group.live
        if gone and any(i.id in gone for i in live):
            return None
        ready = self._ready(live)
        if serving is not None:
            return True if len(ready) >= serving else None
        if len(live) < group.desired or len(ready) < len(live):
            return None
        return True

    def _drain_all(self, instances: list[Instance]) -> None:
        """Drain a batch's nodes at the same time (each waits on its own evictions); the first failure stops
        the batch before any of its instances is terminated."""
        if len(instances) < 2:
            for instance in instances:
                self._drain(instance)
            return
        with ThreadPoolExecutor(max_workers=len(instances), thread_name_prefix="drain") as pool:
            errors = [f.exception() for f in [pool.submit(self._drain, i) for i in instances]]
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]

    def _drain(self, instance: Instance) -> None:
        if self.cluster is not None and instance.node:
            self.say(f"draining {instance.node}")
            self.cluster.drain(instance.node, self.timeouts.drain)

    def _forget(self, old: Instance, new: Instance | None) -> None:
        if self.cluster is not None and old.node and (new is None or new.node != old.node):
            self.cluster.forget(old.node)
