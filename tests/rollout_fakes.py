"""Fakes of the two sides a rollout drives, for tests/test_rollout.py: `FakeCloud` (Auto Scaling groups that
launch at their pinned template version, replace a terminated instance unless told to lower their capacity,
and take a few polls to boot or to terminate, like AWS) and `FakeCluster` (a node registers and becomes Ready
a few polls after its instance is running; drains may be blocked by a disruption budget), sharing one
`FakeClock` whose sleep advances time, and one ordered `log` of what was done.

The AWS side is also tested on the moto server (tests/test_rollout_aws.py) and the Kubernetes side against
the fake API server (tests/kube_fake.py); these fakes exist to explore orders, crashes and timing
deterministically.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from kubeaws.rollout.inventory import BASE_TAG, GroupState, Instance

BOOT_POLLS = 2  # polls from launch to InService
READY_POLLS = 2  # polls from InService to the node Ready


@dataclass
class FakeClock:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)
    on_sleep: list[object] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for tick in self.on_sleep:
            tick()  # type: ignore[operator]


@dataclass
class _Box:
    inst: Instance
    age: int = 0  # polls since launch
    dying: int = -1  # polls since termination (-1: alive)


class FakeCloud:
    def __init__(self, clock: FakeClock, log: list[str]) -> None:
        self.clock = clock
        self.log = log
        self.groups: dict[str, GroupState] = {}
        self.boxes: dict[str, list[_Box]] = {}
        self.ids = (f"i-{n:04d}" for n in itertools.count(1))
        self.crash_at: tuple[str, int] | None = None  # (call, n): raise on the n-th such call
        self.calls: dict[str, int] = {}
        self.min_live: dict[str, int] = {}  # lowest count of Ready-or-booting instances seen, per group
        self.max_live: dict[str, int] = {}  # highest count of live (not terminating) instances, per group
        self.origin: dict[str, str] = {}  # instance id -> its group
        clock.on_sleep.append(self.tick)

    def add_group(self, name: str, role: str, count: int, version: int, target: int, member: int | None = None,
                  max_size: int | None = None) -> None:
        self.groups[name] = GroupState(name=name, role=role, member=member, template_id=f"lt-{role}",  # type: ignore[arg-type]
                                       pinned=str(version), target=target, min_size=count,
                                       max_size=max_size or count, desired=count)
        self.boxes[name] = [_Box(self._new(name, version), age=BOOT_POLLS + READY_POLLS) for _ in range(count)]

    def _new(self, group: str, version: int) -> Instance:
        iid = next(self.ids)
        self.origin[iid] = group
        return Instance(id=iid, node=f"node-{iid}", az="us-east-1a", version=version, lifecycle="Pending")

    def _count(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1
        if self.crash_at == (call, self.calls[call]):
            raise KeyboardInterrupt(f"crash at {call} #{self.calls[call]}")

    def tick(self) -> None:
        for name, boxes in self.boxes.items():
            for box in boxes:
                box.age += 1
                if box.dying >= 0:
                    box.dying += 1
            self.boxes[name] = [b for b in boxes if b.dying < 2]
            group = self.groups[name]
            alive = [b for b in self.boxes[name] if b.dying < 0]
            for _ in range(group.desired - len(alive)):
                self.boxes[name].append(_Box(self._new(name, int(group.pinned))))
            ready = len([b for b in self.boxes[name] if b.dying < 0])
            self.min_live[name] = min(self.min_live.get(name, ready), ready)
            self.max_live[name] = max(self.max_live.get(name, 0), ready)

    def read(self, name: str) -> GroupState:
        group = self.groups[name]
        instances = []
        for box in self.boxes[name]:
            state = "Terminating" if box.dying >= 0 else ("InService" if box.age >= BOOT_POLLS else "Pending")
            instances.append(replace(box.inst, lifecycle=state))
        return replace(group, instances=instances, tags=dict(group.tags))

    def pin(self, group: GroupState, version: int) -> None:
        self._count("pin")
        self.log.append(f"pin {group.name} {version}")
        self.groups[group.name].pinned = str(version)

    def resize(self, group: GroupState, desired: int, max_size: int, base: tuple[int, int] | None) -> None:
        self._count("resize")
        self.log.append(f"resize {group.name} {desired}/{max_size}")
        state = self.groups[group.name]
        state.desired, state.max_size = desired, max_size
        if base is None:
            state.tags.pop(BASE_TAG, None)
        else:
            state.tags[BASE_TAG] = f"{base[0]}:{base[1]}"

    def terminate(self, instance_id: str, decrement: bool) -> None:
        self._count("terminate")
        self.log.append(f"terminate {instance_id}{' -1' if decrement else ''}")
        for name, boxes in self.boxes.items():
            for box in boxes:
                if box.inst.id == instance_id and box.dying < 0:
                    box.dying = 0
                    if decrement:
                        self.groups[name].desired -= 1


class DrainBlocked(Exception):
    pass


class FakeCluster:
    def __init__(self, cloud: FakeCloud, log: list[str]) -> None:
        self.cloud = cloud
        self.log = log
        self.blocked: dict[str, str] = {}  # node -> the PDB that blocks its drain
        self.broken: list[str] = []  # problems validation reports
        self.forgotten: list[str] = []

    def drain(self, node: str, timeout: float) -> None:
        if node in self.blocked:
            raise DrainBlocked(f"cannot evict pod web-1 on {node}: PodDisruptionBudget {self.blocked[node]}")
        self.log.append(f"drain {node}")

    def ready_nodes(self, nodes: Collection[str]) -> set[str]:
        return {box.inst.node for boxes in self.cloud.boxes.values() for box in boxes
                if box.inst.node in nodes and box.dying < 0 and box.age >= BOOT_POLLS + READY_POLLS}

    def forget(self, node: str) -> None:
        self.forgotten.append(node)
        self.log.append(f"forget {node}")

    def problems(self) -> list[str]:
        self.log.append("validate")
        return list(self.broken)
