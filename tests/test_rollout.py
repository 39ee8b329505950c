"""The rollout's order, capacity and resumption, on fakes of both sides (tests/rollout_fakes.py) and a fake
clock: every terminate, drain and version move is logged in order and asserted. The AWS calls themselves are
tested on the moto server in tests/test_rollout_aws.py."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kubeaws.aws.retry import RetryPolicy
from kubeaws.rollout.inventory import BASE_TAG, Instance
from kubeaws.rollout.planner import RolloutPlan, amount, batches_for, plan_rollout
from kubeaws.rollout.runner import RolloutError, Runner, Timeouts
from tests.rollout_fakes import DrainBlocked, FakeClock, FakeCloud, FakeCluster


def world(cp: int = 3, groups: dict[str, int] | None = None) -> tuple[FakeCloud, FakeCluster, FakeClock, list[str]]:
    clock, log = FakeClock(), []
    cloud = FakeCloud(clock, log)
    for i in range(cp):
        cloud.add_group(f"cp-{i}", "control-plane", 1, version=1, target=2, member=i)
    for name, count in (groups or {"general": 3, "spot": 2}).items():
        cloud.add_group(name, "nodes", count, version=1, target=2)
    return cloud, FakeCluster(cloud, log), clock, log


def runner(cloud: FakeCloud, cluster: FakeCluster | None, clock: FakeClock, **kw: Any) -> Runner:
    policy = RetryPolicy(poll_interval=5.0, clock=clock.clock, sleep=clock.sleep)
    return Runner(cloud, cluster, policy, Timeouts(drain=60, ready=300, validation=60), **kw)


def plan(cloud: FakeCloud, **kw: Any) -> RolloutPlan:
    return plan_rollout([cloud.read(n) for n in cloud.groups], **kw)


def live_ids(cloud: FakeCloud) -> set[str]:
    return {i.id for name in cloud.groups for i in cloud.read(name).live}


def test_members_one_at_a_time_then_node_groups_with_surge() -> None:
    cloud, cluster, clock, log = world()
    first = live_ids(cloud)
    result = runner(cloud, cluster, clock).run(plan(cloud))
    assert sorted(result.replaced) == sorted(first)
    assert [e for e in log if e.startswith("pin cp-")] == ["pin cp-0 2", "pin cp-1 2", "pin cp-2 2"]
    members = [i for i in result.replaced if cloud.origin[i].startswith("cp-")]
    assert [cloud.origin[i] for i in members] == ["cp-0", "cp-1", "cp-2"]
    for n, old in enumerate(members):
        # pinned, drained, terminated keeping capacity, replacement Ready and the old Node forgotten...
        assert log.index(f"pin cp-{n} 2") < log.index(f"drain node-{old}") < log.index(f"terminate {old}") \
            < log.index(f"forget node-{old}")
        if n < 2:  # ... before the next member starts
            assert log.index(f"forget node-{old}") < log.index(f"pin cp-{n + 1} 2")
    last_member = log.index(f"forget node-{members[-1]}")
    for old in (i for i in result.replaced if not cloud.origin[i].startswith("cp-")):
        assert last_member < log.index(f"drain node-{old}")  # nodes only after the whole control plane
        terminate = next(e for e in log if e.startswith(f"terminate {old}"))
        assert log.index(f"drain node-{old}") < log.index(terminate)
    for name, size in (("general", 3), ("spot", 2)):
        assert cloud.min_live[name] >= size, "surge 1, unavailable 0: never below the group's size"
        group = cloud.read(name)
        assert (group.desired, group.max_size, len(group.live)) == (size, size, size)
        assert BASE_TAG not in group.tags and all(i.version == 2 for i in group.live)
    assert "resize general 4/4" in log and "resize general 3/3" in log
    assert plan(cloud).empty, "nothing is left to roll"


@pytest.mark.parametrize("crash", [("pin", 2), ("terminate", 1), ("terminate", 3), ("resize", 1), ("resize", 2),
                                   ("resize", 3), ("resize", 5),
                                   ("terminate", 5), ("terminate", 7)])
def test_a_rollout_killed_at_any_step_resumes_and_replaces_each_instance_once(crash: tuple[str, int]) -> None:
    cloud, cluster, clock, log = world()
    first = live_ids(cloud)
    cloud.crash_at = crash
    with pytest.raises(KeyboardInterrupt):
        runner(cloud, cluster, clock).run(plan(cloud))
    cloud.crash_at = None
    again = runner(cloud, cluster, clock).run(plan(cloud))  # planned anew from what "AWS" shows
    terminated = [e.split()[1] for e in log if e.startswith("terminate ")]
    assert sorted(terminated) == sorted(first), "every original instance once, no new one"
    assert set(again.replaced) <= first
    for name in ("general", "spot"):
        group = cloud.read(name)
        assert BASE_TAG not in group.tags and group.desired == len(group.live) == {"general": 3, "spot": 2}[name]
    assert plan(cloud).empty


def test_a_pdb_that_blocks_a_drain_stops_the_rollout_naming_it() -> None:
    cloud, cluster, clock, log = world(cp=0, groups={"general": 3})
    victim = sorted(live_ids(cloud))[1]
    cluster.blocked[f"node-{victim}"] = "web-pdb"
    with pytest.raises(DrainBlocked, match="PodDisruptionBudget web-pdb"):
        runner(cloud, cluster, clock).run(plan(cloud))
    assert f"terminate {victim}" not in " ".join(log), "a node that could not be drained is never terminated"
    del cluster.blocked[f"node-{victim}"]
    runner(cloud, cluster, clock).run(plan(cloud))
    assert plan(cloud).empty


def test_validation_failing_stops_with_the_problems() -> None:
    cloud, cluster, clock, _ = world(cp=1, groups={})
    cluster.broken = ["node node-x NotReady", "kube-system/coredns-1 CrashLoopBackOff"]
    with pytest.raises(RolloutError, match=r"gave up after 60s waiting for the cluster to be healthy after "
                                           r"replacing .*: node node-x NotReady; kube-system/coredns-1"):
        runner(cloud, cluster, clock).run(plan(cloud))


def test_cloud_only_terminates_and_waits_for_instances() -> None:
    cloud, _, clock, log = world(cp=1, groups={"general": 2})
    runner(cloud, None, clock).run(plan(cloud))
    assert not [e for e in log if e.startswith(("drain", "forget"))]
    assert plan(cloud).empty


def test_filters_and_force() -> None:
    cloud, _, _, _ = world(groups={"general": 2, "spot": 2})
    only = plan(cloud, only={"spot"})
    assert [g.group.name for g in only.groups] == ["spot"]
    assert [g.group.name for g in plan(cloud, control_plane_only=True).groups] == ["cp-0", "cp-1", "cp-2"]
    for name in cloud.groups:  # everything up to date: nothing to roll, unless forced
        cloud.groups[name].target = 1
    assert plan(cloud).empty
    forced = plan(cloud, force=True)
    assert forced.groups and all(g.reason == "forced" for g in forced.groups)
    assert [e["group"] for e in forced.to_list()][:3] == ["cp-0", "cp-1", "cp-2"]


@pytest.mark.parametrize(("surge", "unavailable", "desired", "count", "sizes", "surges"), [
    (1, 0, 5, 5, [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]),
    (3, 0, 7, 7, [1, 3, 3], [1, 3, 3]),
    (0, 2, 5, 5, [1, 2, 2], [0, 0, 0]),
    (0, 0, 3, 3, [1, 1, 1], [0, 0, 0]),
    ("50%", "25%", 8, 8, [1, 6, 1], [1, 4, 1]),
])
def test_batches(surge: int | str, unavailable: int | str, desired: int, count: int, sizes: list[int],
                 surges: list[int]) -> None:
    outdated = [Instance(f"i-{n}", f"n{n}", "a", 1, "InService") for n in range(count)]
    batches = batches_for(outdated, desired, surge, unavailable)
    assert [len(b.instances) for b in batches] == sizes and [b.surge for b in batches] == surges
    assert batches[0].canary and not any(b.canary for b in batches[1:])


def test_percentages() -> None:
    assert amount("30%", 10, True) == 3 and amount("35%", 10, True) == 4 and amount("35%", 10, False) == 3


def test_the_next_batch_surges_while_this_one_is_validated_within_max_surge() -> None:
    """maxSurge 2 on 7 nodes: canary, then batches of 2. Each next batch's surge is launched right after
    this batch's terminations (before this batch's nodes are forgotten and the cluster validated), never
    beyond 2 live instances over the group's size, and its drain still waits for that validation."""
    cloud, cluster, clock, log = world(cp=0, groups={"general": 7})
    rollout = plan(cloud, settings={"general": {"maxSurge": 2, "maxUnavailable": 0}})
    assert [len(b.instances) for b in rollout.node_groups[0].batches] == [1, 2, 2, 2]
    runner(cloud, cluster, clock).run(rollout)
    assert [e for e in log if e.startswith("resize")] == [
        "resize general 8/8", "resize general 9/9", "resize general 9/9", "resize general 9/9", "resize general 7/7"]
    batches = [[i.id for i in b.instances] for b in rollout.node_groups[0].batches]
    for this, following in itertools.pairwise(batches):
        last_terminate = max(log.index(e) for e in log if e.split()[:2] in (["terminate", i] for i in this))
        surge = next(n for n, e in enumerate(log) if n > last_terminate and e.startswith("resize"))
        forgotten = max(log.index(f"forget node-{i}") for i in this)
        validated = log.index("validate", forgotten)
        first_drain = min(log.index(f"drain node-{i}") for i in following)
        assert last_terminate < surge < forgotten < validated < first_drain
    assert cloud.max_live["general"] == 9, "never more than maxSurge live instances beyond the size"
    assert cloud.min_live["general"] >= 7 and plan(cloud).empty


def test_serial_batches_launch_nothing_ahead() -> None:
    """No surge (maxUnavailable 1): nothing is launched ahead; each replacement follows its termination."""
    cloud, cluster, clock, log = world(cp=0, groups={"general": 3})
    runner(cloud, cluster, clock).run(plan(cloud, settings={"general": {"maxSurge": 0, "maxUnavailable": 1}}))
    assert not [e for e in log if e.startswith("resize")]
    assert cloud.max_live["general"] == 3, "the replacement follows its termination"
    assert plan(cloud).empty
