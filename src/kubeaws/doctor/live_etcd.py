"""The etcd part of `kubeaws doctor --live` (kubeadm clusters with `etcdBackup`): the age of the newest snapshot in
the state bucket (kubeaws.etcd_ops.list_snapshots: one LIST and one small GET per snapshot, read-only).

- `etcd.no-snapshot` (error): no snapshot at all, although the timer should have taken one (the cluster was
  initialized, `join/initialized`, longer than the timer's first delay plus twice its period ago);
- `etcd.snapshot-old` (warning): the newest is older than twice the timer's period (`etcdBackup.everyMinutes`):
  the timer or the upload is failing on every member (`journalctl -u kubeaws-etcd-backup` on a member says why);
- `etcd.snapshots-unreadable` (warning): the bucket could not be listed.

Deliberately not here: member health, the leader, the DB size against its quota and alarms. Reading them needs
etcdctl on a member, i.e. the Job channel of `kubeaws etcd snapshot` (a privileged pod, an image pull, up to a
minute), which a read-only, quick doctor should not start; the kubelet's probes of the etcd static pods, which
doctor.live_k8s checks as kube-system pods, cover a member that is down. Called by doctor.live.check_live.
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.doctor.findings import Finding
from kubeaws.errors import KubeawsError
from kubeaws.spec.models import ClusterSpec

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
