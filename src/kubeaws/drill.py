"""`kubeaws drill -f SPEC --member N`: the self-heal drill of a kubeadm control plane. One member's instance is
terminated the way an instance dies (EC2 TerminateInstances, not through its Auto Scaling group: the group
finds it gone at its next health check and launches a replacement, which re-attaches the member's etcd
volume and rejoins with its data), then kubeaws follows the replacement and measures the time to recover:

  terminated -> new instance running -> node Ready -> etcd healthy -> validated

- new instance running: the member's Auto Scaling group shows an InService instance other than the old one,
  and EC2 says it is running;
- node Ready: its Node (the instance's private DNS name) is registered and Ready; the old Node is then removed
  (as the rollout does: the cloud provider would, minutes later);
- etcd healthy: the control-plane probe (doctor.live_etcd.read_etcd, on a Ready control-plane node) sees
  every member healthy, a leader, no alarm, and as many members as the spec's `controlPlane.count`;
- validated: every node Ready and every kube-system pod running (rollout.kube_ops.KubeCluster.problems).

`plan_drill` refuses (DrillRefused) what would take the cluster down: a member that is not exactly one
InService instance (being replaced already), etcd not entirely healthy before (with one member unhealthy,
losing another loses quorum), and a one-member cluster unless `force` (the API is down until the
replacement is back). Every wait runs on the retry policy's clock (tests run the real budgets on a fake
clock). Called by the CLI (kubeaws.cli.drill), which takes the cluster lock around `run_drill`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.doctor import live_etcd
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient, node_is_ready
from kubeaws.rollout.inventory import GroupState, Instance, read_groups
from kubeaws.rollout.kube_ops import KubeCluster
from kubeaws.rollout.operation import cluster_groups
from kubeaws.spec.models import ClusterSpec

PHASES = ("terminated", "new instance running", "node Ready", "etcd healthy", "validated")
#: Seconds between two looks at AWS or the API; etcd is read less often (each read is a probe Job).
POLL_SECONDS = 5.0
ETCD_POLL_SECONDS = 15.0


class DrillInputError(KubeawsError):
    """`--member` names no member of the spec (exit 2)."""


class DrillRefused(KubeawsError):
    """The drill would take the cluster down (or cannot start): nothing was terminated."""


class DrillFailed(KubeawsError):
    """The cluster did not recover within a timeout: what was waited for, and the phases reached."""


@dataclass
class Timeouts:
    instance: float = 900.0  # the group noticing the dead instance and launching the next one
    node: float = 1200.0  # the replacement booting, joining and becoming Ready
    etcd: float = 900.0
    validation: float = 600.0


@dataclass
class DrillPlan:
    member: int
    group: GroupState
    instance: Instance
    members: int
    etcd: live_etcd.EtcdHealth

    def lines(self) -> list[str]:
        single = self.members == 1
        return [
            f"Drill: terminate control-plane member {self.member}: instance {self.instance.id} (node "
            f"{self.instance.node}, {self.instance.az}, Auto Scaling group {self.group.name})",
            f"  etcd now: {len(self.etcd.healthy)} of {self.members} members healthy, leader "
            f"{self.etcd.to_dict()['leader']}",
            "  the API is DOWN until the replacement is back (one member)" if single else
            f"  etcd keeps quorum ({self.members - 1} of {self.members} members) and the API stays up",
            "  then: the group launches a replacement, which re-attaches the member's etcd volume and rejoins; "
            "kubeaws follows it: " + " -> ".join(PHASES),
        ]


@dataclass
class DrillResult:
    member: int
    terminated: str
    replacement: str = ""
    node: str = ""
    #: (phase, seconds after the termination), in order
    phases: list[tuple[str, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.phases[-1][1] if self.phases else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.member, "terminated": self.terminated, "replacement": self.replacement,
                "node": self.node, "phases": [{"phase": p, "seconds": round(s, 1)} for p, s in self.phases],
                "secondsToRecover": round(self.seconds, 1)}


def member_group(spec: ClusterSpec, member: int) -> str:
    """The Auto Scaling group of control-plane member `member`; DrillInputError when the spec has none."""
    if spec.spec.mode != "kubeadm":
        raise DrillInputError("the drill is for kubeadm clusters: EKS runs its own control plane")
    count = spec.spec.control_plane.count
    if not 0 <= member < count:
        raise DrillInputError(f"--member {member}: the spec's control plane has members 0 to {count - 1} "
                              "(spec.controlPlane.count)")
    return cluster_groups(spec)[f"control-plane-{member}"]


def plan_drill(spec: ClusterSpec, ctx: AwsContext, kube: KubeClient, member: int, *, force: bool = False,
               etcd_timeout: float = 120.0) -> DrillPlan:
    """What the drill will do, or DrillRefused saying why it must not (nothing is changed here)."""
    name = member_group(spec, member)
    found = read_groups(ctx, [name])
    if not found:
        raise DrillRefused(f"Auto Scaling group {name} of member {member} does not exist: run `kubeaws apply`")
    group = found[0]
    live = group.live
    if len(live) != 1 or live[0].lifecycle != "InService":
        states = ", ".join(f"{i.id} {i.lifecycle}" for i in live) or "none"
        raise DrillRefused(f"member {member} is not one InService instance ({states}): it is being replaced or "
                           "was never launched; wait, then `kubeaws doctor --live`")
    count = spec.spec.control_plane.count
    if count == 1 and not force:
        raise DrillRefused("the cluster has one control-plane member: terminating it takes the Kubernetes API "
                           "down until its replacement is back (several minutes). Use --force to do it anyway")
    etcd = live_etcd.read_etcd(spec, kube, ctx.policy, timeout=etcd_timeout)
    problems = [f.message for f in live_etcd.etcd_findings(etcd) if f.severity == "error" or f.check ==
                "etcd.unreadable"]
    if not problems and len(etcd.members or []) != count:
        problems.append(f"etcd has {len(etcd.members or [])} members, the spec {count}")
    if problems:
        raise DrillRefused("etcd is not entirely healthy, so losing one more member could lose quorum: "
                           + "; ".join(problems) + ". Fix that first (`kubeaws doctor -f SPEC --live`)")
    return DrillPlan(member, group, live[0], count, etcd)


def run_drill(spec: ClusterSpec, ctx: AwsContext, kube: KubeClient, plan: DrillPlan, *,
              timeouts: Timeouts | None = None, say: Callable[[str], None] = lambda _: None) -> DrillResult:
    """Terminate the member's instance and follow the replacement; DrillFailed when a phase times out."""
    timeouts = timeouts or Timeouts()
    policy = ctx.policy
    result = DrillResult(plan.member, plan.instance.id)
    start = policy.clock()

    def reached(phase: str) -> None:
        result.phases.append((phase, policy.clock() - start))
        say(f"{policy.clock() - start:5.0f}s  {phase}")

    def wait(what: str, timeout: float, check: Callable[[], Any], every: float = POLL_SECONDS) -> Any:
        deadline = policy.clock() + timeout
        while True:
            found = check()
            if found:
                return found
            if policy.clock() >= deadline:
                done = ", ".join(f"{p} at {s:.0f}s" for p, s in result.phases)
                raise DrillFailed(f"{what}: not within {timeout:.0f}s (reached: {done}). The cluster is left as "
                                  "it is: `kubeaws doctor -f SPEC --live` shows where it stands")
            policy.sleep(every)

    ctx.call("ec2", "terminate_instances", InstanceIds=[plan.instance.id])
    reached("terminated")

    def replacement() -> tuple[str, str] | None:
        group = read_groups(ctx, [plan.group.name])
        for instance in group[0].live if group else []:
            if instance.id == plan.instance.id or instance.lifecycle != "InService":
                continue
            reservations = ctx.call("ec2", "describe_instances", InstanceIds=[instance.id])["Reservations"]
            ec2 = reservations[0]["Instances"][0] if reservations else {}
            if (ec2.get("State") or {}).get("Name") == "running" and ec2.get("PrivateDnsName"):
                return instance.id, str(ec2["PrivateDnsName"])
        return None

    result.replacement, result.node = wait(f"a new instance in {plan.group.name}", timeouts.instance, replacement)
    reached("new instance running")
    say(f"replacement {result.replacement} (node {result.node})")

    def node_ready() -> bool:
        node = kube.get_node(result.node)
        return node is not None and node_is_ready(node)

    wait(f"node {result.node} Ready", timeouts.node, node_ready)
    reached("node Ready")
    if plan.instance.node and plan.instance.node != result.node:
        kube.delete_node(plan.instance.node)

    def etcd_healthy() -> bool:
        health = live_etcd.read_etcd(spec, kube, policy, timeout=min(120.0, timeouts.etcd))
        return health.all_healthy and len(health.members or []) == plan.members

    wait("etcd healthy with every member", timeouts.etcd, etcd_healthy, ETCD_POLL_SECONDS)
    reached("etcd healthy")
    cluster = KubeCluster(kube, spec, policy, say)
    left: list[str] = []

    def valid() -> bool:
        left[:] = cluster.problems()
        return not left

    try:
        wait("every node Ready and kube-system running", timeouts.validation, valid)
    except DrillFailed as exc:
        raise DrillFailed(f"{exc}; left: {'; '.join(left)}") from None
    reached("validated")
    return result
