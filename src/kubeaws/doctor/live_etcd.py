"""The etcd part of `kubeaws doctor --live` (kubeadm clusters).

From the state bucket (kubeaws.etcd_ops.list_snapshots: one LIST and one small GET per snapshot, read-only),
with `etcdBackup`, the age of the newest snapshot:
- `etcd.no-snapshot` (error): no snapshot at all, although the timer should have taken one (the cluster was
  initialized, `join/initialized`, longer than the timer's first delay plus twice its period ago);
- `etcd.snapshot-old` (warning): the newest is older than twice the timer's period (`etcdBackup.everyMinutes`):
  the timer or the upload is failing on every member (`journalctl -u kubeaws-etcd-backup` on a member says why);
- `etcd.snapshots-unreadable` (warning): the bucket could not be listed.

From etcd itself, through the control-plane probe (kubeaws.member_probe: etcdctl on a control-plane node, run
by a short-lived Job through the API; that module says why this channel), parsed from etcdctl's own output
(`endpoint status -w json`, `endpoint health -w json`, `member list -w json`, `alarm list`):
- `etcd.member-unhealthy` (error): a member that does not answer or says it is unhealthy, one added but never
  started, or one the API shows no etcd pod for;
- `etcd.no-leader` (error): no member knows a leader (no quorum: the API cannot write);
- `etcd.db-size` (warning above 80% of the quota, error above 95%): etcd refuses writes once the quota is
  reached (NOSPACE). The quota is the member's `--quota-backend-bytes`, else etcd's default 2 GiB (kubeaws'
  kubeadm configuration sets none);
- `etcd.alarm` (error): an active alarm (NOSPACE: the cluster is read-only; CORRUPT: a member's data differs);
- `etcd.cluster-id-mismatch` (error): the members do not all belong to one etcd cluster;
- `etcd.unreadable` (warning): the probe could not run or etcdctl said nothing readable.

`read_etcd` is also what `kubeaws drill` checks etcd with before and after. Called by
doctor.live_control_plane (the probe's findings) and doctor.live.check_live (the snapshots).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.doctor.findings import Finding
from kubeaws.errors import KubeawsError
from kubeaws.spec.models import ClusterSpec

if TYPE_CHECKING:
    from kubeaws.aws.retry import RetryPolicy
    from kubeaws.kube_client import KubeClient
    from kubeaws.member_probe import Reading

#: The timer's first run after a member boots (OnBootSec of kubeaws-etcd-backup.timer).
BOOT_DELAY = 600
INITIALIZED = "join/initialized"


def _initialized_at(ctx: AwsContext, bucket: str) -> float | None:
    """When the first member finished `kubeadm init` (the object it writes then), None before."""
    try:
        head = ctx.call("s3", "head_object", Bucket=bucket, Key=INITIALIZED)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return float(head["LastModified"].timestamp())


def check_snapshots(spec: ClusterSpec, ctx: AwsContext, *, now: float | None = None) -> list[Finding]:
    """The snapshot-age findings (none for EKS or without etcdBackup)."""
    from kubeaws import etcd_ops

    backup = spec.spec.etcd_backup
    if spec.spec.mode != "kubeadm" or backup is None:
        return []
    resource = f"cluster {spec.metadata.name} etcd"
    try:
        bucket = etcd_ops.state_bucket(spec, ctx)
        snaps = etcd_ops.list_snapshots(ctx, bucket)
    except (KubeawsError, BotoCoreError, ClientError) as exc:
        return [Finding("warning", "etcd.snapshots-unreadable", f"the etcd snapshots could not be listed: {exc}",
                        resource, "check the credentials' access to the state bucket")]
    now = time.time() if now is None else now
    limit = 2 * backup.every_minutes * 60
    if not snaps:
        started = _initialized_at(ctx, bucket)
        if started is None or now - started < BOOT_DELAY + limit:
            return []  # not initialized yet, or the timer has not had its first chances
        return [Finding("error", "etcd.no-snapshot", f"no etcd snapshot in s3://{bucket}/{etcd_ops.PREFIX}: the "
                        "cluster cannot be restored if its control plane is lost", resource,
                        "take one now with `kubeaws etcd snapshot -f SPEC`; if the timer never uploaded one, "
                        "`journalctl -u kubeaws-etcd-backup` on a member says why")]
    age = now - snaps[0].time.timestamp()
    if age > limit:
        return [Finding("warning", "etcd.snapshot-old", f"the newest etcd snapshot ({snaps[0].id}) is "
                        f"{age / 3600:.1f} h old, more than twice the timer's period ({backup.every_minutes} min)",
                        resource, "the backup timer is failing on every member: `journalctl -u "
                        "kubeaws-etcd-backup` on a member says why; `kubeaws etcd snapshot -f SPEC` takes one now")]
    return []


# -- etcd's health, from etcdctl's output on a member ---------------------------------------------------------
FAILED_STATUS = re.compile(r"^Failed to get the status of endpoint (\S+) \((.*)\)$")
ALARM = re.compile(r"memberID:(\d+) alarm:([A-Z_]+)")
WARN_SHARE, ERROR_SHARE = 0.80, 0.95
ALARM_HINTS = {
    "NOSPACE": "etcd is read-only: compact and defragment it, then `etcdctl alarm disarm` (etcd's "
               "maintenance guide, 'Space quota'); find what filled it (events, a controller writing in a loop)",
    "CORRUPT": "a member's data differs from the others: replace that member (`kubeaws rollout -f SPEC --group "
               "control-plane-<i> --force`) or restore from a snapshot (`kubeaws etcd restore`)",
}


def _json_docs(text: str) -> list[Any]:
    """Every line of a container log that is an etcdctl JSON answer (its client's JSON log lines left out)."""
    docs = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(("[", "{")):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(doc, dict) and "level" in doc and "msg" in doc):
            docs.append(doc)
    return docs


def parse_status(text: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """`etcdctl endpoint status -w json`: (endpoint -> its Status, endpoint -> why it gave none)."""
    statuses = {str(item["Endpoint"]): dict(item["Status"]) for doc in _json_docs(text) if isinstance(doc, list)
                for item in doc if isinstance(item, dict) and "Endpoint" in item and "Status" in item}
    failed = {m.group(1): m.group(2) for line in text.splitlines() if (m := FAILED_STATUS.match(line.strip()))}
    return statuses, failed


def parse_health(text: str) -> dict[str, tuple[bool, str]]:
    """`etcdctl endpoint health -w json`: endpoint -> (healthy, error)."""
    return {str(item["endpoint"]): (bool(item.get("health")), str(item.get("error") or ""))
            for doc in _json_docs(text) if isinstance(doc, list)
            for item in doc if isinstance(item, dict) and "endpoint" in item}


def parse_members(text: str) -> list[dict[str, Any]] | None:
    """`etcdctl member list -w json`: the members (None when the log holds no answer)."""
    for doc in _json_docs(text):
        if isinstance(doc, dict) and "members" in doc:
            return [dict(m) for m in doc["members"] or []]
    return None


def parse_alarms(text: str) -> list[tuple[int, str]]:
    """`etcdctl alarm list`: (member ID, alarm) per line ("memberID:<decimal> alarm:NOSPACE")."""
    return [(int(m.group(1)), m.group(2)) for m in ALARM.finditer(text)]


@dataclass
class EtcdHealth:
    """etcd as one member's etcdctl saw it (`node`), or why it could not be read (`error`)."""

    node: str
    endpoints: tuple[str, ...] = ()
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    health: dict[str, tuple[bool, str]] = field(default_factory=dict)
    members: list[dict[str, Any]] | None = None
    alarms: list[tuple[int, str]] = field(default_factory=list)
    quota: int = 0
    error: str = ""

    @property
    def healthy(self) -> list[str]:
        return sorted(e for e, (ok, _) in self.health.items() if ok)

    @property
    def all_healthy(self) -> bool:
        """Every endpoint asked answered healthy and every member is started and reached."""
        return not self.error and bool(self.endpoints) and not etcd_findings(self, errors_only=True)

    def leader(self) -> int:
        """The leader's member ID as most members see it (0: none knows one)."""
        known = [int(s.get("leader") or 0) for s in self.statuses.values() if s.get("leader")]
        return max(sorted(set(known)), key=known.count) if known else 0

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "endpoints": list(self.endpoints), "healthy": self.healthy,
                "members": len(self.members or []), "leader": f"{self.leader():x}" if self.leader() else None,
                "alarms": [f"{m:x}:{a}" for m, a in self.alarms], "error": self.error or None}


def from_reading(reading: Reading, endpoints: tuple[str, ...], quota: int) -> EtcdHealth:
    """Parse the etcd containers' logs of a probe."""
    health = EtcdHealth(reading.node, endpoints, quota=quota, error=reading.error)
    if reading.error:
        return health
    health.statuses, health.failed = parse_status(reading.logs.get("etcd-status", ""))
    health.health = parse_health(reading.logs.get("etcd-health", ""))
    health.members = parse_members(reading.logs.get("etcd-members", ""))
    health.alarms = parse_alarms(reading.logs.get("etcd-alarms", ""))
    if not health.statuses and not health.health:
        said = " | ".join(line for text in reading.logs.values() for line in text.strip().splitlines()[-2:])
        health.error = f"etcdctl on {reading.node} gave no status: {said or 'no output'}"
    return health


def read_etcd(spec: ClusterSpec, kube: KubeClient, policy: RetryPolicy, *, node: str | None = None,
              timeout: float = 120.0, avoid: frozenset[str] = frozenset()) -> EtcdHealth:
    """etcd's health read by the probe on `node` (default: the first Ready control-plane node with an etcd
    pod, not in `avoid`). Never raises for etcd's state: `error` says what could not be read."""
    from kubeaws import member_probe as mp

    pods = mp.etcd_pods(kube)
    if node is None:
        ready = [n for n in mp.ready_control_plane(kube) if n in pods and n not in avoid]
        if not ready:
            return EtcdHealth("", error="no Ready control-plane node with an etcd pod to run etcdctl on")
        node = ready[0]
    target = mp.etcd_target(pods, node)
    if target is None:
        return EtcdHealth(node, error=f"the API shows no etcd pod on {node}")
    reading = mp.run_probes(spec, kube, policy, {node: (target, False)}, timeout=timeout)[node]
    return from_reading(reading, target.endpoints, mp.quota_bytes(pods[node]))


def _hex(member_id: Any) -> str:
    return f"{int(member_id):x}" if isinstance(member_id, int) else str(member_id)


def etcd_findings(h: EtcdHealth, *, errors_only: bool = False) -> list[Finding]:
    """The findings of one reading (see the module docstring)."""
    where = "etcd"
    if h.error:
        return [] if errors_only else [Finding(
            "warning", "etcd.unreadable", f"etcd's health could not be read: {h.error}", where,
            "`kubectl -n kube-system get pods -l component=etcd -o wide`; on a member: `crictl ps --name etcd`")]
    found: list[Finding] = []
    for endpoint in h.endpoints:
        ok, error = h.health.get(endpoint, (False, h.failed.get(endpoint, "no answer")))
        if not ok:
            found.append(Finding("error", "etcd.member-unhealthy", f"etcd member {endpoint} is unhealthy: "
                                 f"{error or 'unhealthy'}", where, "on its node: `crictl logs $(crictl ps -q "
                                 "--name etcd)`; a member whose instance is gone is replaced by its Auto Scaling "
                                 "group (`kubeaws doctor --live` lists the instances)"))
    reached = set(h.endpoints)
    for member in h.members or []:
        urls = set(member.get("clientURLs") or [])
        if not member.get("name"):
            found.append(Finding("error", "etcd.member-unhealthy", f"etcd member {_hex(member.get('ID'))} "
                                 f"({', '.join(member.get('peerURLs') or [])}) was added but never started",
                                 where, "its instance failed to join: read its /var/log/cloud-init-output.log; "
                                 "`etcdctl member remove` it if no instance will start it"))
        elif urls and not urls & reached:
            found.append(Finding("error", "etcd.member-unhealthy", f"etcd member {member['name']} "
                                 f"({', '.join(sorted(urls))}) has no etcd pod the API shows", where,
                                 "its node is gone or not registered: `kubeaws doctor --live` shows the control "
                                 "plane's instances and nodes"))
    if h.statuses and not h.leader():
        found.append(Finding("error", "etcd.no-leader", f"no etcd member knows a leader (asked "
                             f"{len(h.statuses)}): etcd has no quorum, the API cannot write", where,
                             "bring the members back (their instances, their etcd pods); with a majority lost "
                             "for good, `kubeaws etcd restore` from a snapshot"))
    cluster_ids = {_hex((s.get("header") or {}).get("cluster_id")) for s in h.statuses.values()}
    if len(cluster_ids) > 1:
        by_id = {cid: sorted(e for e, s in h.statuses.items() if _hex((s.get("header") or {}).get("cluster_id"))
                             == cid) for cid in cluster_ids}
        found.append(Finding("error", "etcd.cluster-id-mismatch", "the etcd members belong to different clusters: "
                             + "; ".join(f"{cid}: {', '.join(e)}" for cid, e in sorted(by_id.items())), where,
                             "a member was started from other data (a restore not run on every member?): "
                             "`kubeaws etcd restore` all members from one snapshot"))
    for m, alarm in h.alarms:
        found.append(Finding("error", "etcd.alarm", f"etcd alarm {alarm} is active (member {m:x})", where,
                             ALARM_HINTS.get(alarm, "`etcdctl alarm list`; etcd's maintenance guide")))
    if errors_only:
        return [f for f in found if f.severity == "error"]
    for endpoint, status in sorted(h.statuses.items()):
        size = int(status.get("dbSize") or 0)
        share = size / h.quota if h.quota else 0.0
        if share > WARN_SHARE:
            in_use = int(status.get("dbSizeInUse") or 0)
            found.append(Finding(
                "error" if share > ERROR_SHARE else "warning", "etcd.db-size",
                f"etcd member {endpoint}: database {size / 2**20:.1f} MiB is {share:.0%} of its quota "
                f"{h.quota / 2**20:.0f} MiB ({in_use / 2**20:.1f} MiB in use): at 100% etcd refuses writes",
                where, "defragment it (`etcdctl defrag`, one member at a time) to return the unused space; if "
                "the data in use grows, find the writer (events, CRDs) or raise quota-backend-bytes"))
    return found
