"""Rollout benchmark (a script, not a test): `python bench/rollout.py [--runs N]`.

Rolls 3 control-plane members and 3 node groups of 10 nodes each, every instance outdated, with kubeaws'
rollout (`kubeaws.rollout.runner.Runner` on a plan of `planner.plan_rollout`) in three ways, and prints the
wall time of each:

- `kubeaws`: maxSurge 3 (maxUnavailable 0), 3 node groups at once (`--parallel-groups 3`);
- `kubeaws, groups in turn`: the same batches, one node group after the other (what surge alone buys);
- `serial (kops)`: one node at a time with no surge (maxSurge 0, maxUnavailable 1), one group after the
  other, the cluster validated after every node: how kops' `rolling-update cluster` rolls by default.

Both sides are real code on fakes, in REAL time (time.monotonic, time.sleep), with AWS and Kubernetes
delays scaled by 1/100: an instance is InService 15 s (0.15 s) and its node registered and Ready 30 s
(0.3 s) after launch; a terminated instance is gone after 3 s (0.03 s) and its Node (if still there) goes
NotReady after 40 s (0.4 s, node-monitor-grace-period); a drain's evicted pods take 5 s (0.05 s) to
terminate. The runner polls every 0.05 s (5 s scaled).

- The AWS side is `ScaledCloud`, a `runner.Cloud`: Auto Scaling groups that launch at their pinned
  template version, replace a terminated instance unless told to lower their capacity, and a background
  thread (`World.tick`) that plays EC2, the kubelets (a Node registered Ready, with a kube-proxy pod, when
  its instance has booted) and the scheduler (Pending pods spread over Ready, schedulable nodes).
- The Kubernetes side is the real `kube_ops.KubeCluster` over `kube_client.KubeClient` (TLS, its
  connections kept alive and reused, as against a real API server) against the fake API server of
  tests/kube_fake.py, which enforces PodDisruptionBudgets on evictions. It runs in this process: its
  requests take CPU from the same interpreter as the runner (the "API requests" columns say how many, and
  their mean latency).

After each run the bench checks, from the recorded events and requests, that the order and skew rules
held: every instance replaced once and the groups back to their size; the control-plane members one at a
time, in member order, each after the previous one's replacement was Ready, all before any node-group
change; no two members down at once; every node drained (cordoned, its pods evicted) before its instance
was terminated. It also reports the fewest schedulable Ready nodes a node group had during the roll.
Exits 1 if a rule failed or kubeaws was not at least `--target` times faster than the serial roll.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.kube_fake, tests.helpers

from tests import kube_objects as ko  # noqa: E402
from tests.helpers import make_spec  # noqa: E402
from tests.kube_fake import FakeApi, serve, test_pki, url  # noqa: E402

from kubeaws.aws.retry import RetryPolicy  # noqa: E402
from kubeaws.kube_client import RETRY_STATUSES, KubeClient  # noqa: E402
from kubeaws.rollout.inventory import BASE_TAG, GroupState, Instance  # noqa: E402
from kubeaws.rollout.kube_ops import KubeCluster  # noqa: E402
from kubeaws.rollout.planner import RolloutPlan, plan_rollout  # noqa: E402
from kubeaws.rollout.runner import Runner, Timeouts  # noqa: E402

TICK = 0.005  # how often the world moves
MEMBERS = 3
GROUPS = 3
NODES = 10
PODS_PER_NODE = 2
OLD, NEW = 1, 2  # launch-template versions: every instance booted OLD, the templates' default is NEW


@dataclass(frozen=True)
class Delays:
    """AWS and Kubernetes durations, in seconds of AWS time, times `scale`."""

    scale: float = 0.01  # 1 s of AWS or Kubernetes time is 10 ms here

    @property
    def in_service(self) -> float:  # launch -> InService
        return 15 * self.scale

    @property
    def boot(self) -> float:  # launch -> the node registered and Ready (boot + kubelet join)
        return 30 * self.scale

    @property
    def terminate(self) -> float:  # terminate -> the instance gone from the group
        return 3 * self.scale

    @property
    def not_ready(self) -> float:  # terminate -> its Node NotReady (node-monitor-grace-period), unless removed
        return 40 * self.scale

    @property
    def drain(self) -> float:  # the evicted pods terminating (the fake API server deletes them at once)
        return 5 * self.scale

    @property
    def poll(self) -> float:  # the runner's poll interval
        return 5 * self.scale


@dataclass(frozen=True)
class Mode:
    name: str
    max_surge: int
    max_unavailable: int
    parallel_groups: int


MODES = [Mode("kubeaws (maxSurge 3, 3 groups at once)", 3, 0, 3),
         Mode("kubeaws, groups in turn (maxSurge 3)", 3, 0, 1),
         Mode("serial, kops' way (maxSurge 0, maxUnavailable 1)", 0, 1, 1)]


@dataclass
class VM:
    id: str
    node: str
    group: str
    version: int
    launched: float
    terminated: float | None = None
    registered: bool = False
    not_ready: bool = False
    gone: bool = False


@dataclass
class Event:
    at: float
    what: str  # pin, resize, terminate, ready, drain, drained
    group: str
    subject: str = ""  # instance id or node name


@dataclass
class World:
    """The scaled AWS side and what kubelets and the scheduler do; one lock for all of it."""

    fake: FakeApi
    delays: Delays
    groups: dict[str, GroupState] = field(default_factory=dict)
    vms: dict[str, list[VM]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    serving_min: dict[str, int] = field(default_factory=dict)  # fewest schedulable Ready nodes, per node group
    ids: Any = field(default_factory=lambda: itertools.count(1))
    stop: threading.Event = field(default_factory=threading.Event)

    def log(self, what: str, group: str, subject: str = "") -> None:
        with self.lock:
            self.events.append(Event(time.monotonic(), what, group, subject))

    def add_group(self, name: str, role: str, count: int, member: int | None) -> None:
        self.groups[name] = GroupState(
            name=name, role=role, member=member, template_id=f"lt-{name}",  # type: ignore[arg-type]
            pinned=str(OLD), target=NEW, min_size=count, max_size=count, desired=count)
        self.vms[name] = []
        for _ in range(count):
            vm = self._launch(name, OLD, time.monotonic() - self.delays.boot)
            self._register(vm)

    def _launch(self, group: str, version: int, at: float) -> VM:
        n = next(self.ids)
        vm = VM(id=f"i-{n:05d}", node=f"ip-10-0-{n // 250}-{n % 250}.ec2.internal", group=group,
                version=version, launched=at)
        self.vms[group].append(vm)
        return vm

    def _register(self, vm: VM) -> None:
        """The kubelet joins: a Ready Node and its kube-proxy pod."""
        vm.registered = True
        self.fake.register_node(vm.node, ready=True, labels={"group": vm.group})
        self.fake.add(ko.pod(f"kube-proxy-{vm.id}", "kube-system", vm.node, {"k8s-app": "kube-proxy"},
                             "DaemonSet/kube-proxy"))
        self.log("ready", vm.group, vm.node)

    # -- the world moving ------------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stop.wait(TICK):
            self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            for name, group in self.groups.items():
                vms = self.vms[name]
                for vm in vms:
                    if vm.terminated is None and not vm.registered and now >= vm.launched + self.delays.boot:
                        self._register(vm)
                    if vm.terminated is not None and now >= vm.terminated + self.delays.terminate:
                        vm.gone = True
                    if vm.terminated is not None and not vm.not_ready and now >= vm.terminated + self.delays.not_ready:
                        vm.not_ready = True
                        with contextlib.suppress(KeyError):  # removed by the rollout already
                            self.fake.set_ready(vm.node, False)
                self.vms[name] = [vm for vm in vms if not vm.gone]
                running = [vm for vm in self.vms[name] if vm.terminated is None]
                for _ in range(group.desired - len(running)):  # the group replaces what it lost
                    self._launch(name, int(group.pinned), now)
        self._schedule()
        self._sample()

    def _schedule(self) -> None:
        """Pending pods onto the Ready, schedulable node with the fewest pods (the fake API server's own
        scheduler puts every Pending pod on the first node by name)."""
        fake = self.fake
        with fake.lock:
            pods = [o for p, o in fake.objects.items() if "/pods/" in p]
            pending = [p for p in pods if p["status"].get("phase") == "Pending" and not p["spec"].get("nodeName")]
            if not pending:
                return
            nodes = [n["metadata"]["name"] for p, n in fake.objects.items() if p.startswith("/api/v1/nodes/")
                     and not (n.get("spec") or {}).get("unschedulable") and _ready(n)]
            if not nodes:
                return
            load = {n: 0 for n in nodes}
            for pod in pods:
                if pod["spec"].get("nodeName") in load:
                    load[pod["spec"]["nodeName"]] += 1
            for pod in pending:
                target = min(load, key=lambda n: (load[n], n))
                load[target] += 1
                pod["spec"]["nodeName"] = target
                pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}

    def _sample(self) -> None:
        with self.lock, self.fake.lock:
            for name, group in self.groups.items():
                if group.role != "nodes":
                    continue
                serving = 0
                for vm in self.vms[name]:
                    node = self.fake.objects.get(f"/api/v1/nodes/{vm.node}")
                    if vm.terminated is None and node is not None and _ready(node) \
                            and not (node.get("spec") or {}).get("unschedulable"):
                        serving += 1
                self.serving_min[name] = min(self.serving_min.get(name, serving), serving)


def _ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class ScaledCloud:
    """`runner.Cloud` on the world: what an Auto Scaling group shows, and the four changes a rollout makes."""

    def __init__(self, world: World) -> None:
        self.world = world

    def read(self, name: str) -> GroupState:
        now = time.monotonic()
        with self.world.lock:
            group = self.world.groups[name]
            instances = []
            for vm in self.world.vms[name]:
                state = ("Terminating" if vm.terminated is not None
                         else "InService" if now >= vm.launched + self.world.delays.in_service else "Pending")
                instances.append(Instance(id=vm.id, node=vm.node, az="us-east-1a", version=vm.version,
                                          lifecycle=state))
            return replace(group, instances=instances, tags=dict(group.tags))

    def pin(self, group: GroupState, version: int) -> None:
        with self.world.lock:
            self.world.groups[group.name].pinned = str(version)
        self.world.log("pin", group.name)

    def resize(self, group: GroupState, desired: int, max_size: int, base: tuple[int, int] | None) -> None:
        with self.world.lock:
            state = self.world.groups[group.name]
            state.desired, state.max_size = desired, max_size
            if base is None:
                state.tags.pop(BASE_TAG, None)
            else:
                state.tags[BASE_TAG] = f"{base[0]}:{base[1]}"
        self.world.log("resize", group.name, str(desired))

    def terminate(self, instance_id: str, decrement: bool) -> None:
        with self.world.lock:
            vm = next(v for vms in self.world.vms.values() for v in vms if v.id == instance_id)
            vm.terminated = time.monotonic()
            if decrement:
                self.world.groups[vm.group].desired -= 1
        self.world.log("terminate", vm.group, vm.node)


class TimedClient(KubeClient):
    """KubeClient counting its requests and the time they took (summed over threads)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.count = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: Mapping[str, str] | None = None, retry: frozenset[int] = RETRY_STATUSES) -> tuple[int, Any]:
        started = time.monotonic()
        try:
            return super().request(method, path, body, content_type, query, retry)
        finally:
            with self._lock:
                self.count += 1
                self.seconds += time.monotonic() - started


class TimedCluster(KubeCluster):
    """The real KubeCluster; a drain also waits for the evicted pods to terminate (`Delays.drain`), and is
    recorded."""

    def __init__(self, world: World, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.world = world

    def drain(self, node: str, timeout: float) -> None:
        group = _group_of(self.world, node)
        self.world.log("drain", group, node)
        super().drain(node, timeout)
        time.sleep(self.world.delays.drain)
        self.world.log("drained", group, node)


def _group_of(world: World, node: str) -> str:
    with world.lock:
        return next((v.group for vms in world.vms.values() for v in vms if v.node == node), "?")


@dataclass
class Result:
    mode: Mode
    seconds: float
    members: float  # of which the control-plane members (the same order in every mode)
    replaced: int
    requests: int
    request_ms: float
    serving_min: int
    problems: list[str]


def populate(world: World, fake: FakeApi, names: list[str]) -> None:
    """The cluster before the roll: the groups, workload pods spread over each node group's nodes under a
    budget allowing 2 disruptions, two CoreDNS pods."""
    for member in range(MEMBERS):
        world.add_group(f"bench-control-plane-{member}", "control-plane", 1, member)
    for name in names[MEMBERS:]:
        world.add_group(name, "nodes", NODES, None)
        app = f"web-{name}"
        for i, vm in enumerate(world.vms[name] * PODS_PER_NODE):
            fake.add(ko.pod(f"{app}-{i}", "default", vm.node, {"app": app}, f"ReplicaSet/{app}-5d4f8"))
        fake.add(ko.pdb(app, "default", max_unavailable=2, match_labels={"app": app}))
    first = world.vms[names[MEMBERS]]
    for i in range(2):
        fake.add(ko.pod(f"coredns-{i}", "kube-system", first[i].node, {"k8s-app": "kube-dns"},
                        "ReplicaSet/coredns-7db6d"))


def run_mode(mode: Mode, delays: Delays, pki: dict[str, str], say: Callable[[str], None]) -> Result:
    names = [f"bench-control-plane-{m}" for m in range(MEMBERS)] + [f"bench-nodes-{g}" for g in range(GROUPS)]
    with serve(pki["cert"], pki["key"]) as fake:
        world = World(fake, delays)
        populate(world, fake, names)
        before = {vm.id: vm.node for vms in world.vms.values() for vm in vms}
        sizes = {n: (g.desired, g.max_size) for n, g in world.groups.items()}
        thread = threading.Thread(target=world.run, daemon=True)
        thread.start()
        try:
            policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, poll_interval=delays.poll)
            kube = TimedClient(url(fake), pki["ca"], "k8s-aws-v1.bench", policy)
            cloud = ScaledCloud(world)
            cluster = TimedCluster(world, kube, make_spec("bench"), policy)
            settings = {n: {"maxSurge": mode.max_surge, "maxUnavailable": mode.max_unavailable}
                        for n in names[MEMBERS:]}
            plan = plan_rollout([cloud.read(n) for n in names], settings, parallel_groups=mode.parallel_groups)
            runner = Runner(cloud, cluster, policy, Timeouts(drain=60, ready=60, validation=60))
            started = time.monotonic()
            result = runner.run(plan)
            seconds = time.monotonic() - started
            after = plan_rollout([cloud.read(n) for n in names], settings)
        finally:
            world.stop.set()
            thread.join()
        problems = check(world, fake, plan, before, result.replaced, after, sizes)
        say(f"{mode.name}: {seconds:.2f} s, {kube.count} API requests, "
            f"{'rules held' if not problems else '; '.join(problems)}")
        node_groups = [world.serving_min.get(n, 0) for n in names[MEMBERS:]]
        first_group = min((e.at for e in world.events if e.group in names[MEMBERS:] and e.at >= started
                           and e.what != "ready"), default=started + seconds)
        return Result(mode, seconds, first_group - started, len(result.replaced), kube.count,
                      1000 * kube.seconds / max(1, kube.count),
                      min(node_groups), problems)


def check(world: World, fake: FakeApi, plan: RolloutPlan, before: dict[str, str], replaced: list[str],
          after: RolloutPlan, sizes: dict[str, tuple[int, int]]) -> list[str]:
    """The order and skew rules, from the world's events and the API server's requests; what broke."""
    problems = []
    events = sorted(world.events, key=lambda e: e.at)
    if sorted(replaced) != sorted(before) or len(set(replaced)) != len(replaced):
        problems.append("not every instance replaced exactly once")
    if not after.empty:
        problems.append("instances left outdated")
    if any((g.desired, g.max_size) != sizes[n] for n, g in world.groups.items()):
        problems.append("a group not back to its size")

    def first(what: str, subject: str, after_time: float = 0.0) -> float | None:
        return next((e.at for e in events if e.what == what and e.subject == subject and e.at >= after_time), None)

    # Members: one at a time, in member order, each from its drain until its replacement is Ready.
    windows = []
    for group_plan in plan.control_plane:
        name = group_plan.group.name
        [old] = [i.node for i in group_plan.group.live]
        start = first("drain", old)
        gone = first("terminate", old)
        ready = next((e.at for e in events if e.what == "ready" and e.group == name and gone is not None
                      and e.at >= gone), None)
        if start is None or ready is None:
            problems.append(f"{name}: not drained or its replacement never Ready")
            continue
        windows.append((start, ready, name))
    if [w[2] for w in sorted(windows)] != [g.group.name for g in plan.control_plane]:
        problems.append("members not in member order")
    for (_, end, a), (start, _, b) in itertools.pairwise(sorted(windows)):
        if start < end:
            problems.append(f"members {a} and {b} down at once")
    members_done = max((w[1] for w in windows), default=0.0)
    node_groups = {g.group.name for g in plan.node_groups}
    early = [e for e in events if e.group in node_groups and e.what != "ready" and e.at < members_done]
    if early:
        problems.append(f"node group {early[0].group} changed ({early[0].what}) before the last member was back")
    # Every node drained (cordoned, then its pods gone) before its instance was terminated.
    calls = fake.calls("PATCH", "POST", "DELETE")
    for node in before.values():
        terminated = first("terminate", node)
        drained = first("drained", node)
        if terminated is None or drained is None or drained > terminated:
            problems.append(f"{node} terminated before it was drained")
        elif ("PATCH", f"/api/v1/nodes/{node}") not in calls:
            problems.append(f"{node} never cordoned")
    left = [p for p in fake.pods() if p["metadata"]["namespace"] == "default"
            and p["spec"].get("nodeName") in before.values()]
    if left:
        problems.append(f"{len(left)} workload pods left on replaced nodes")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1, help="runs of each mode; the table shows the median")
    parser.add_argument("--target", type=float, default=4.0, help="kubeaws at least this many times faster")
    parser.add_argument("--scale", type=float, default=0.01,
                        help="seconds here per second of AWS time (default 0.01: a 30 s boot takes 0.3 s)")
    args = parser.parse_args(argv)
    delays = Delays(args.scale)
    pki = test_pki()
    results: dict[str, list[Result]] = {}
    for _ in range(args.runs):
        for mode in MODES:
            results.setdefault(mode.name, []).append(run_mode(mode, delays, pki, lambda line: print(line, flush=True)))
    serial = statistics.median(r.seconds for r in results[MODES[-1].name])
    instances = MEMBERS + GROUPS * NODES
    print()
    print(f"Rolling {MEMBERS} control-plane members + {GROUPS} node groups x {NODES} nodes ({instances} "
          f"instances), delays scaled 1/{round(1 / delays.scale)} (boot+join 30 s -> {delays.boot:g} s, drain "
          f"5 s -> {delays.drain:g} s, terminate 3 s -> {delays.terminate:g} s, poll 5 s -> {delays.poll:g} s); "
          f"median of {args.runs} run(s)")
    print()
    header = ["mode", "wall time", "of which members", "scaled to AWS time", "vs serial", "API requests (mean latency)",
              "fewest serving nodes in a group (of 10)", "order and skew rules"]
    rows = []
    for mode in MODES:
        runs = results[mode.name]
        seconds = statistics.median(r.seconds for r in runs)
        problems = sorted({p for r in runs for p in r.problems})
        members = statistics.median(r.members for r in runs)
        rows.append([mode.name, f"{seconds:.2f} s", f"{members:.2f} s", f"{seconds / delays.scale / 60:.1f} min",
                     f"{serial / seconds:.1f}x",
                     f"{int(statistics.median(r.requests for r in runs))} "
                     f"({statistics.median(r.request_ms for r in runs):.1f} ms)",
                     str(min(r.serving_min for r in runs)),
                     "held" if not problems else "BROKEN: " + "; ".join(problems)])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    fastest = statistics.median(r.seconds for r in results[MODES[0].name])
    speedup = serial / fastest
    broken = any(r.problems for runs in results.values() for r in runs)
    print()
    print(f"{'PASS' if speedup >= args.target else 'FAIL'} kubeaws {speedup:.1f}x faster than serial "
          f"(target {args.target:g}x)")
    print(f"{'FAIL' if broken else 'PASS'} order and skew rules held in every run")
    return 1 if broken or speedup < args.target else 0


if __name__ == "__main__":
    sys.exit(main())
