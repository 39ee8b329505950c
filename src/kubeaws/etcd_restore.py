"""`kubeaws etcd restore`: etcd's documented disaster-recovery procedure run on every control-plane member of a
kubeadm cluster, from ONE snapshot, as a new etcd cluster (a new cluster token; each member restored under its
own name and peer URL, the initial cluster made of the current members' names and peer URLs); the API servers
and etcd stopped on all members first, restored each, then started all, then the cluster validated. Called by
kubeaws.cli.etcd (`plan_restore`, then `run_restore` once confirmed).

The channel: the state bucket. Every member with `etcdBackup` runs kubeaws-etcd-restore.timer, whose
etcd-restore-watch.sh reads `etcd-restore/current` once a minute; while it names an operation `<op>`, it runs
`etcd-restore/<op>/agent.sh` (bootstrap/templates/etcd-restore.sh.j2, rendered here for the operation). kubeaws
writes commands to `etcd-restore/<op>/command`, each member reports in `etcd-restore/<op>/member-<i>.json`.
Why not the Job channel of `kubeaws etcd snapshot`: a restore is most needed when etcd has lost quorum, when the
API (and so any Job) is down; and between the stop and the start of the API servers nothing but the members
themselves can act. No inbound port, no secret but the instance role the members already have.

The operation's phases are kept in `etcd-restore/<op>/state.json` (written before each command), so a killed
`kubeaws etcd restore` run again with the same snapshot resumes where it stopped: prepare (every member
downloads and checks the snapshot: nothing changed yet) -> stop (all) -> restore (all) -> start (all) ->
validate (one etcd cluster ID on every member, a new one; nodes Ready, kube-system pods Running) -> done. A member
that fails to prepare, stop or restore, or does not answer in time, sends every member back to its data
directory as it was (moved aside, never deleted): the cluster never runs members of two different etcd clusters.
Once started, nothing is rolled back (the restored cluster takes writes from then on); a validation that does
not pass is reported and can be run again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.bootstrap.restore_agent import render_restore_agent
from kubeaws.errors import KubeawsError
from kubeaws.etcd_ops import EtcdOpError, Snapshot, list_snapshots, member_of_node, state_bucket
from kubeaws.spec.models import ClusterSpec

PREFIX = "etcd-restore/"
CURRENT = f"{PREFIX}current"
#: The order of a restore; "rollback" and "rolled-back" leave it.
PHASES = ("prepare", "stop", "restore", "start", "validate", "done")
#: What each phase waits for every member to report.
REACHED = {"prepare": "ready", "stop": "stopped", "restore": "restored", "start": "started",
           "rollback": "rolled-back"}
OP = re.compile(r"^[A-Za-z0-9-]+$")


class RestoreRefused(KubeawsError):
    """The restore cannot start as asked (another snapshot's restore in progress, a version mismatch...)."""


class RestoreFailed(EtcdOpError):
    """The restore stopped; the message says in which state it left the cluster and what to do."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds each phase waits for every member (prepare includes the timer's pickup and the download)."""

    prepare: float = 900.0
    stop: float = 300.0
    restore: float = 600.0
    start: float = 600.0
    validate: float = 900.0
    rollback: float = 600.0


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do. `resuming`: the phase an interrupted run of the same snapshot left."""

    op: str
    bucket: str
    snapshot: Snapshot
    members: dict[int, str]  # member index -> its node (from etcd/members/member-<i>), "" when not recorded
    cluster_version: str
    token: str
    resuming: str | None = None

    def lines(self, now: dt.datetime) -> list[str]:
        age = now - self.snapshot.time
        hours = age.total_seconds() / 3600
        members = ", ".join(f"member {i} ({node or 'node not recorded'})" for i, node in sorted(self.members.items()))
        out = [f"Restore etcd of the cluster from snapshot {self.snapshot.id} (revision {self.snapshot.revision}, "
               f"taken {self.snapshot.time:%Y-%m-%d %H:%M:%S} UTC, {hours:.1f} h ago, Kubernetes "
               f"{self.snapshot.kubernetes_version}).",
               f"- EVERYTHING written to the cluster after {self.snapshot.time:%Y-%m-%d %H:%M:%S} UTC is lost "
               "(objects created, changed or deleted since then).",
               "- The Kubernetes API is DOWN from the stop of the API servers until etcd and the API servers are back "
               "on every member (a few minutes; workloads keep running, nothing is scheduled meanwhile).",
               f"- Members: {members}: the API server and etcd stopped on all, each restored as a member of a new "
               f"etcd cluster (token {self.token}), then all started; each data directory as it was is kept aside "
               "on its etcd volume.",
               f"- Members pick the restore up within a minute (kubeaws-etcd-restore.timer); operation {self.op}."]
        if self.resuming:
            out.append(f"- Resuming operation {self.op}, interrupted in phase {self.resuming}.")
        return out


@dataclass
class RestoreResult:
    op: str
    snapshot: str
    cluster_id: str
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    downtime: float | None = None  # seconds from the stop command to a validated cluster (policy clock)

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.op, "snapshot": self.snapshot, "clusterId": self.cluster_id,
                "members": {str(i): m for i, m in sorted(self.members.items())}, "downtimeSeconds": self.downtime}


# -- state bucket I/O -----------------------------------------------------------------------------------------
def _get(ctx: AwsContext, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise


def _get_json(ctx: AwsContext, bucket: str, key: str) -> dict[str, Any] | None:
    body = _get(ctx, bucket, key)
    if body is None:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _put(ctx: AwsContext, bucket: str, key: str, body: str | dict[str, Any]) -> None:
    text = json.dumps(body, sort_keys=True) if isinstance(body, dict) else body
    ctx.call("s3", "put_object", Bucket=bucket, Key=key, Body=text.encode(), ServerSideEncryption="AES256")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def current_operation(ctx: AwsContext, bucket: str) -> str | None:
    """The restore in progress (its operation ID), None when there is none."""
    body = _get(ctx, bucket, CURRENT)
    op = (body or b"").decode(errors="replace").strip()
    return op if op and OP.match(op) else None


# -- the plan -------------------------------------------------------------------------------------------------
def plan_restore(spec: ClusterSpec, ctx: AwsContext, snapshot_id: str, *,
                 now: dt.datetime | None = None) -> RestorePlan:
    """The restore of `snapshot_id` (`member-<i>/<ts>`, as `kubeaws etcd list` shows it), or the interrupted one
    of the same snapshot; RestoreRefused when it must not run (the message says why and what to do)."""
    if spec.spec.mode != "kubeadm":
        raise RestoreRefused("etcd restore is for kubeadm clusters: EKS runs and restores its own etcd")
    if spec.spec.etcd_backup is None:
        raise RestoreRefused("spec.etcdBackup is off: the members have neither snapshots nor the restore timer "
                             "(kubeaws-etcd-restore.timer); set etcdBackup, `kubeaws apply` and roll the control "
                             "plane (`kubeaws rollout --control-plane`)")
    bucket = state_bucket(spec, ctx)
    snaps = {s.id: s for s in list_snapshots(ctx, bucket)}
    snap = snaps.get(snapshot_id.removeprefix(PREFIX).removesuffix(".db"))
    if snap is None:
        newest = ", ".join(list(snaps)[:3]) or "none"
        raise RestoreRefused(f"--snapshot {snapshot_id}: no such snapshot in s3://{bucket}/etcd-backups/ (newest: "
                             f"{newest}); `kubeaws etcd list -f SPEC` lists them")
    ongoing = current_operation(ctx, bucket)
    if ongoing is not None:
        plan = _get_json(ctx, bucket, f"{PREFIX}{ongoing}/plan.json") or {}
        state = _get_json(ctx, bucket, f"{PREFIX}{ongoing}/state.json") or {}
        if plan.get("snapshot") != snap.key:
            other = str(plan.get("snapshot", "?")).removeprefix("etcd-backups/").removesuffix(".db")
            raise RestoreRefused(f"a restore from snapshot {other} is in progress (operation {ongoing}, phase "
                                 f"{state.get('phase', '?')}): finish it first with `kubeaws etcd restore -f SPEC "
                                 f"--snapshot {other}`")
        members = {int(i): str(n) for i, n in (plan.get("members") or {}).items()}
        return RestorePlan(ongoing, bucket, snap, members, str(plan.get("clusterVersion", "")),
                           str(plan.get("token", "")), str(state.get("phase") or "prepare"))
    cluster = _get_json(ctx, bucket, "cluster/cluster.json") or {}
    version = str(cluster.get("kubernetesVersion") or "")
    if not snap.kubernetes_version:
        raise RestoreRefused(f"snapshot {snap.id} does not say which Kubernetes version wrote it (no status JSON "
                             "with kubernetesVersion next to it): restoring it could put objects of another version "
                             "under this cluster's API servers; take a new snapshot or pick one `kubeaws etcd list` "
                             "shows with a version")
    if not version:
        raise RestoreRefused(f"s3://{bucket}/cluster/cluster.json names no Kubernetes version: is the cluster "
                             "deployed?")
    if _minor(snap.kubernetes_version) != _minor(version):
        raise RestoreRefused(f"snapshot {snap.id} was taken on Kubernetes {snap.kubernetes_version}, the cluster runs "
                             f"{version}: the API servers of {version} would serve objects stored by "
                             f"{snap.kubernetes_version} (skipped storage migrations, removed API versions). Restore "
                             f"a snapshot taken on {_minor(version)}, or first bring the cluster to "
                             f"{_minor(snap.kubernetes_version)}")
    count = spec.spec.control_plane.count
    nodes = {index: node for node, index in member_of_node(ctx, bucket).items()}
    members = {i: nodes.get(i, "") for i in range(count)}
    now = now or dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(f"{snap.key} {now.isoformat()}".encode()).hexdigest()[:6]
    op = f"{now:%Y%m%dT%H%M%SZ}-{digest}"
    return RestorePlan(op, bucket, snap, members, version, f"kubeaws-{spec.metadata.name}-{op}")


# -- the run --------------------------------------------------------------------------------------------------
class _Run:
    def __init__(self, spec: ClusterSpec, ctx: AwsContext, plan: RestorePlan, validate: Callable[[], list[str]],
                 say: Callable[[str], None], checkpoint: Callable[[str], None], timeouts: Timeouts,
                 poll: float) -> None:
        self.spec, self.ctx, self.plan = spec, ctx, plan
        self.validate, self.say, self.checkpoint, self.timeouts, self.poll = validate, say, checkpoint, timeouts, poll
        self.base = f"{PREFIX}{plan.op}/"
        self.state: dict[str, Any] = {}

    def put(self, name: str, body: str | dict[str, Any]) -> None:
        self.checkpoint(f"{name} {body.get('phase') or body.get('step') or ''}".strip()
                        if isinstance(body, dict) else name)
        _put(self.ctx, self.plan.bucket, self.base + name, body)

    def enter(self, phase: str, **extra: Any) -> None:
        self.state.update(phase=phase, **extra)
        self.state.setdefault("times", {})[phase] = self.ctx.policy.clock()
        self.put("state.json", dict(self.state))

    def command(self, step: str, **extra: Any) -> None:
        self.put("command", {"step": step, **extra})

    def statuses(self) -> dict[int, dict[str, Any]]:
        out = {}
        for i in self.plan.members:
            doc = _get_json(self.ctx, self.plan.bucket, f"{self.base}member-{i}.json")
            if doc is not None:
                out[i] = doc
        return out

    def wait(self, phase: str, timeout: float) -> tuple[dict[int, dict[str, Any]], str | None]:
        """Every member's status once all reached the phase's state: (statuses, None); or (statuses, why not)
        as soon as one failed, or at the timeout."""
        want = REACHED[phase]
        policy = self.ctx.policy
        deadline = policy.clock() + timeout
        shown: dict[int, str] = {}
        while True:
            found = self.statuses()
            for i, doc in sorted(found.items()):
                if shown.get(i) != doc.get("state"):
                    shown[i] = str(doc.get("state"))
                    self.say(f"member {i}: {doc.get('state')}" + (f" ({doc['error']})" if doc.get("error") else ""))
            failed = [f"member {i}: {d.get('error') or 'failed'}" for i, d in sorted(found.items())
                      if d.get("state") == "failed"]
            if failed and phase != "rollback":
                return found, "; ".join(failed)
            if all(found.get(i, {}).get("state") == want for i in self.plan.members):
                return found, None
            if policy.clock() >= deadline:
                late = [f"member {i} ({self.plan.members[i] or '?'}): "
                        f"{found.get(i, {}).get('state', 'no answer')}" for i in self.plan.members
                        if found.get(i, {}).get("state") != want]
                return found, f"not {want} after {timeout:.0f}s: {', '.join(late)}"
            policy.sleep(self.poll)

    def finish(self, result: dict[str, Any]) -> None:
        self.put("result.json", result)
        self.checkpoint("current delete")
        self.ctx.call("s3", "delete_object", Bucket=self.plan.bucket, Key=CURRENT)

    def rollback(self, why: str) -> RestoreFailed:
        """Every member back to its data as it was; the error to raise."""
        if self.state.get("phase") != "rollback":
            self.enter("rollback", reason=why)
        why = str(self.state.get("reason") or why)
        self.say(f"rolling back every member: {why}")
        self.command("rollback")
        _, problem = self.wait("rollback", self.timeouts.rollback)
        if problem:
            return RestoreFailed(
                f"the restore failed ({why}) and the rollback is not confirmed: {problem}. The members that did not "
                f"answer keep their data aside in /var/lib/etcd/etcd-restore-{self.plan.op}/aside; run the same "
                "`kubeaws etcd restore` again to retry the rollback")
        self.finish({"outcome": "rolled-back", "reason": why})
        return RestoreFailed(f"the restore failed and was rolled back: every member runs its data from before the "
                             f"restore again ({why})")

    def start_operation(self) -> None:
        plan = self.plan
        self.put("plan.json", {"op": plan.op, "bucket": plan.bucket, "snapshot": plan.snapshot.key,
                               "hash": plan.snapshot.hash, "revision": plan.snapshot.revision, "token": plan.token,
                               "clusterVersion": plan.cluster_version,
                               "members": {str(i): n for i, n in plan.members.items()}})
        self.put("agent.sh", render_restore_agent(self.spec, plan.bucket))
        self.enter("prepare")
        self.checkpoint("current")
        _put(self.ctx, plan.bucket, CURRENT, plan.op)

    def run(self) -> RestoreResult:
        plan, t = self.plan, self.timeouts
        self.state = _get_json(self.ctx, plan.bucket, self.base + "state.json") or {}
        if not self.state or current_operation(self.ctx, plan.bucket) != plan.op:
            self.start_operation()
        phase = str(self.state.get("phase"))
        if phase == "rollback":
            raise self.rollback(str(self.state.get("reason")))
        if phase == "prepare":
            self.say(f"waiting for the members to download and check snapshot {plan.snapshot.id} "
                     "(picked up within a minute)")
            found, problem = self.wait("prepare", t.prepare)
            if problem:
                raise self.rollback(f"prepare: {problem}")
            self.enter(phase := "stop", previousClusterIds=sorted({str(d.get("clusterId") or "")
                                                                  for d in found.values()} - {""}))
        if phase == "stop":
            self.say("stopping the API server and etcd on every member")
            self.command("stop")
            _, problem = self.wait("stop", t.stop)
            if problem:
                raise self.rollback(f"stop: {problem}")
            self.enter(phase := "restore")
        if phase == "restore":
            found = self.statuses()
            initial = ",".join(f"{found[i]['name']}={found[i]['peerURL']}" for i in sorted(plan.members)
                               if found.get(i, {}).get("name") and found[i].get("peerURL"))
            if len(initial.split(",")) != len(plan.members):
                raise self.rollback("restore: a member did not report its etcd name and peer URL")
            self.say(f"restoring every member from {plan.snapshot.id}: initial cluster {initial}")
            self.command("restore", initialCluster=initial)
            _, problem = self.wait("restore", t.restore)
            if problem:
                raise self.rollback(f"restore: {problem}")
            self.enter(phase := "start")
        if phase == "start":
            self.say("starting etcd and the API server on every member")
            self.command("start")
            _, problem = self.wait("start", t.start)
            if problem:
                raise RestoreFailed(f"every member was restored, but the start is not confirmed: {problem}. Nothing "
                                    "is rolled back once members started; run the same `kubeaws etcd restore` again "
                                    "to wait for them (`journalctl -u kubeaws-etcd-restore` on the member says why)")
            self.enter(phase := "validate")
        found = self.statuses()
        if phase == "validate":
            return self.validated(found)
        result = self.result(found)  # done: only the end of the operation was left
        self.finish({"outcome": "restored", **result.to_dict()})
        return result

    def validated(self, found: dict[int, dict[str, Any]]) -> RestoreResult:
        ids = {str(d.get("clusterId", "")) for d in found.values()}
        old = set(self.state.get("previousClusterIds") or [])
        if len(ids) != 1 or "" in ids:
            raise RestoreFailed(f"the members report different etcd clusters after the restore: "
                                f"{ {i: d.get('clusterId') for i, d in sorted(found.items())} }")
        if ids & old:
            raise RestoreFailed(f"the members still report the etcd cluster {ids.pop()} of before the restore")
        self.say(f"etcd: one new cluster {next(iter(ids))} on every member; validating the cluster through the API")
        policy = self.ctx.policy
        deadline = policy.clock() + self.timeouts.validate
        while True:
            try:
                problems = self.validate()
            except Exception as exc:  # an API still starting answers with any error
                problems = [f"the Kubernetes API does not answer yet: {exc}"]
            if not problems:
                break
            if policy.clock() >= deadline:
                raise RestoreFailed(f"etcd is restored on every member, but the cluster is not valid after "
                                    f"{self.timeouts.validate:.0f}s: {'; '.join(problems[:5])}. Run the same "
                                    "`kubeaws etcd restore` again to validate again")
            policy.sleep(self.poll)
        self.enter("done")
        result = self.result(found)
        self.finish({"outcome": "restored", **result.to_dict()})
        return result

    def result(self, found: dict[int, dict[str, Any]]) -> RestoreResult:
        times = self.state.get("times") or {}
        downtime = times["done"] - times["stop"] if "done" in times and "stop" in times else None
        members = {i: {"name": d.get("name"), "memberId": d.get("memberId")} for i, d in found.items()}
        cluster = next((str(d.get("clusterId")) for d in found.values()), "")
        return RestoreResult(self.plan.op, self.plan.snapshot.id, cluster, members, downtime)


def run_restore(spec: ClusterSpec, ctx: AwsContext, plan: RestorePlan, *, validate: Callable[[], list[str]],
                say: Callable[[str], None] = lambda _: None, checkpoint: Callable[[str], None] = lambda _: None,
                timeouts: Timeouts | None = None, poll: float = 2.0) -> RestoreResult:
    """Run (or resume) the restore `plan`. `validate`: the cluster's problems through the API (nodes not Ready,
    kube-system pods not Running; [] when valid), asked until it answers [] once etcd is back. `checkpoint` is
    called with the name of each write to the state bucket before it is made (tests interrupt there).
    RestoreFailed when it stops (rolled back, or left in a phase that running it again resumes)."""
    return _Run(spec, ctx, plan, validate, say, checkpoint, timeouts or Timeouts(), poll).run()
