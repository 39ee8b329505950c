"""etcd operations on a running kubeadm cluster: an on-demand snapshot (`take_snapshot`) and the list of the
snapshots in the state bucket (`list_snapshots`). Called by the CLI (`kubeaws etcd snapshot|list`,
kubeaws.cli.etcd) and by `doctor --live` (the age of the newest snapshot, kubeaws.doctor.live_etcd).

Where snapshots live: `s3://<state bucket>/etcd-backups/member-<i>/<ts>.db` (`<ts>` = `%Y%m%dT%H%M%SZ`, UTC),
each with `<ts>.json` next to it: the `etcdutl snapshot status -w json` of the file (hash, revision, totalKey,
totalSize) plus `member`, `time` and `kubernetesVersion` (the version in `cluster/cluster.json`). Both are
written by the member's own script, /usr/local/lib/kubeaws/etcd-backup.sh (bootstrap template
etcd-backup.sh.j2), which verifies the snapshot with etcdutl before uploading it and prunes the oldest beyond
`etcdBackup.keep` together with their JSON.

The channel of `kubeaws etcd snapshot`: a Kubernetes Job through the API kubeaws already reaches (directly,
or through the bastion tunnel for a private endpoint: kubeaws.reach). The Job's one pod is pinned to a
healthy member's node (`nodeName`, tolerating every taint), privileged with `hostPID`, and runs
`nsenter -t 1 -m -u -i -n -p -- /bin/bash /usr/local/lib/kubeaws/etcd-backup.sh`: the very script the
member's timer runs and the tests run against a real etcd, with the member's own etcd client certificate and
instance role. Why this channel:
- no inbound port and no new secret: kubeaws already holds admin access to the API, and the script uses
  what the node already has (its etcd healthcheck certificate, its instance role for S3);
- an S3 command object watched by the timer would answer only at the timer's next tick (minutes), and
  needs a watcher on every member; SSM Run Command needs the SSM agent on the AMI, its outbound endpoint
  and extra IAM on the node role — none of which kubeaws clusters have today;
- the cost: a pod with host privileges for the length of one snapshot (kube-system, deleted once done, a TTL
  of one hour otherwise), and the tool image (busybox, for `nsenter`) pulled once per member — from
  `mirrors.imageRepository` when the spec sets one, the rule the addons' images follow.
kubeaws waits for the Job on the retry policy's clock, finds the new object by listing the member's prefix
before and after (the member index from `etcd/members/member-<i>`, which names the node), and checks its
status JSON (a revision and a hash) before reporting it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.addons.versions import mirror_image
from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.bootstrap.userdata import LIB_DIR
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import APPLY_CONTENT_TYPE, KubeClient, node_is_ready
from kubeaws.model.state import state_bucket_name
from kubeaws.spec.models import ClusterSpec

PREFIX = "etcd-backups/"
MEMBERS_PREFIX = "etcd/members/"
BACKUP_SCRIPT = f"{LIB_DIR}/etcd-backup.sh"
#: The Job's image: only `nsenter` (a busybox applet) is needed, everything else runs in the host's namespaces.
TOOL_IMAGE = "docker.io/library/busybox:1.36.1"
NAMESPACE = "kube-system"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
KEY = re.compile(r"^etcd-backups/member-(\d+)/(\d{8}T\d{6}Z)\.db$")
TS_FORMAT = "%Y%m%dT%H%M%SZ"
POLL_SECONDS = 2.0


class EtcdOpError(KubeawsError):
    """An etcd operation could not be done (the message says why and what to do)."""


@dataclass(frozen=True)
class Snapshot:
    """One snapshot in the state bucket. `revision`, `hash`, `total_keys` and `kubernetes_version` come from
    its status JSON (None/"" when the object has none: snapshots taken before kubeaws wrote it)."""

    key: str
    member: int
    time: dt.datetime
    size: int
    revision: int | None = None
    hash: int | None = None
    total_keys: int | None = None
    kubernetes_version: str = ""

    @property
    def id(self) -> str:
        """How a user names it: `member-<i>/<ts>`."""
        return self.key.removeprefix(PREFIX).removesuffix(".db")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "member": self.member, "time": self.time.strftime(TS_FORMAT),
                "size": self.size, "revision": self.revision, "hash": self.hash, "totalKeys": self.total_keys,
                "kubernetesVersion": self.kubernetes_version}


def state_bucket(spec: ClusterSpec, ctx: AwsContext) -> str:
    return state_bucket_name(spec.metadata.name, ctx.account_id(), spec.spec.region)


def parse_key(key: str) -> tuple[int, dt.datetime] | None:
    """(member, time) of a snapshot key, None for anything else under the prefix."""
    found = KEY.match(key)
    if found is None:
        return None
    when = dt.datetime.strptime(found.group(2), TS_FORMAT).replace(tzinfo=dt.UTC)
    return int(found.group(1)), when


def _objects(ctx: AwsContext, bucket: str, prefix: str) -> dict[str, int]:
    """Key -> size of every object under `prefix`."""
    items = ctx.paginate("s3", "list_objects_v2", "Contents", Bucket=bucket, Prefix=prefix)
    return {str(o["Key"]): int(o.get("Size", 0)) for o in items}


def _status(ctx: AwsContext, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _snapshot(ctx: AwsContext, bucket: str, key: str, size: int, with_status: bool) -> Snapshot | None:
    parsed = parse_key(key)
    if parsed is None:
        return None
    status = _status(ctx, bucket, key.removesuffix(".db") + ".json") if with_status else None
    status = status or {}

    def number(name: str) -> int | None:
        value = status.get(name)
        return int(value) if isinstance(value, int | float) else None

    return Snapshot(key, parsed[0], parsed[1], size, number("revision"), number("hash"), number("totalKey"),
                    str(status.get("kubernetesVersion") or ""))


def list_snapshots(ctx: AwsContext, bucket: str) -> list[Snapshot]:
    """Every snapshot in the state bucket, newest first (one LIST, then one GET per status JSON: fine for
    the dozens `etcdBackup.keep` holds)."""
    try:
        objects = _objects(ctx, bucket, PREFIX)
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
        raise EtcdOpError(f"the state bucket {bucket} does not exist: the cluster is not deployed (or "
                          "--profile/--region point elsewhere)") from None
    found = [s for key, size in objects.items()
             if (s := _snapshot(ctx, bucket, key, size, key.removesuffix(".db") + ".json" in objects))]
    return sorted(found, key=lambda s: (s.time, s.member), reverse=True)


# -- the snapshot Job ---------------------------------------------------------------------------------------
def snapshot_job(spec: ClusterSpec, node: str, name: str, deadline_seconds: int) -> dict[str, Any]:
    """The Job that runs the member's backup script on `node` in the host's namespaces."""
    labels = {"app.kubernetes.io/managed-by": "kubeaws", "kubeaws.io/operation": "etcd-snapshot"}
    image = mirror_image(TOOL_IMAGE, spec.spec.mirrors.image_repository)
    container = {"name": "etcd-snapshot", "image": image, "imagePullPolicy": "IfNotPresent",
                 "command": ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "/bin/bash", BACKUP_SCRIPT],
                 "securityContext": {"privileged": True},
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    pod = {"nodeName": node, "hostPID": True, "hostNetwork": True, "restartPolicy": "Never",
           "automountServiceAccountToken": False, "priorityClassName": "system-node-critical",
           "tolerations": [{"operator": "Exists"}], "containers": [container]}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline_seconds, "ttlSecondsAfterFinished": 3600,
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return (pod.get("status") or {}).get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def healthy_members(kube: KubeClient) -> list[str]:
    """Control-plane nodes that are Ready and whose etcd static pod (`etcd-<node>`) runs and is ready, by name."""
    nodes = {n["metadata"]["name"] for n in kube.list_nodes(CONTROL_PLANE_LABEL) if node_is_ready(n)}
    pods = (kube.get(PODS, {"labelSelector": "component=etcd"}) or {}).get("items") or []
    return sorted(p["spec"].get("nodeName") for p in pods
                  if p["spec"].get("nodeName") in nodes and _pod_ready(p))


def member_of_node(ctx: AwsContext, bucket: str) -> dict[str, int]:
    """Node name -> member index, from the records the members write (`etcd/members/member-<i>`: "<id> <node>")."""
    out: dict[str, int] = {}
    for key in _objects(ctx, bucket, MEMBERS_PREFIX):
        index = key.removeprefix(MEMBERS_PREFIX + "member-")
        if not index.isdigit():
            continue
        words = ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read().decode().split()
        if len(words) >= 2:
            out[words[1]] = int(index)
    return out


def _job_state(job: dict[str, Any] | None) -> str:
    """"succeeded", "failed" or "running"."""
    status = (job or {}).get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if status.get("succeeded") or conditions.get("Complete") == "True":
        return "succeeded"
    if status.get("failed") or conditions.get("Failed") == "True":
        return "failed"
    return "running"


def _pod_log(kube: KubeClient, job: str) -> str:
    """The last lines the Job's pod printed (best effort: '' when none can be read)."""
    pods = (kube.get(PODS, {"labelSelector": f"job-name={job}"}) or {}).get("items") or []
    for pod in pods:
        status, body = kube.request("GET", f"{PODS}/{pod['metadata']['name']}/log", query={"tailLines": "20"})
        if status == 200 and isinstance(body, dict) and body.get("message"):
            return str(body["message"]).strip()
    return ""


def take_snapshot(spec: ClusterSpec, ctx: AwsContext, kube: KubeClient, *, node: str | None = None,
                  timeout: float = 600.0, say: Callable[[str], None] = lambda _: None) -> Snapshot:
    """A snapshot now, from a healthy member (`node`: this one), uploaded next to the timer's and checked;
    EtcdOpError when it cannot be made. Waits at most `timeout` seconds on the context policy's clock."""
    if spec.spec.mode != "kubeadm":
        raise EtcdOpError("etcd snapshots are for kubeadm clusters: EKS runs and backs up its own etcd")
    if spec.spec.etcd_backup is None:
        raise EtcdOpError("spec.etcdBackup is off, so the members have no backup script: set etcdBackup (e.g. "
                          "{everyMinutes: 30, keep: 48}), `kubeaws apply` and roll the control plane")
    bucket = state_bucket(spec, ctx)
    healthy = healthy_members(kube)
    if node is None:
        if not healthy:
            raise EtcdOpError("no control-plane node is Ready with a ready etcd pod: no healthy member to take a "
                              "snapshot from (`kubeaws doctor --live` shows the control plane's state)")
        node = healthy[0]
    elif node not in healthy:
        raise EtcdOpError(f"{node} is not a Ready control-plane node with a ready etcd pod "
                          f"(healthy: {', '.join(healthy) or 'none'})")
    members = member_of_node(ctx, bucket)
    member = members.get(node)
    prefix = PREFIX + (f"member-{member}/" if member is not None else "")
    before = set(_objects(ctx, bucket, prefix))
    name = f"kubeaws-etcd-snapshot-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    job = snapshot_job(spec, node, name, int(timeout))
    say(f"Job {NAMESPACE}/{name} on {node}" + (f" (member {member})" if member is not None else ""))
    path = f"{JOBS}/{name}"
    status, payload = kube.request("PATCH", path, job, APPLY_CONTENT_TYPE, {"fieldManager": "kubeaws",
                                                                             "force": "true"})
    if not 200 <= status < 300:
        raise EtcdOpError(f"cannot create Job {name}: {status} {payload}")
    policy = ctx.policy
    deadline = policy.clock() + timeout
    while (state := _job_state(kube.get(path))) == "running":
        if policy.clock() >= deadline:
            raise EtcdOpError(f"Job {NAMESPACE}/{name} did not finish in {timeout:.0f}s (left in place: "
                              f"kubectl -n {NAMESPACE} describe job {name}; logs {_pod_log(kube, name)!r})")
        policy.sleep(POLL_SECONDS)
    if state == "failed":
        raise EtcdOpError(f"the snapshot Job {NAMESPACE}/{name} on {node} failed (left in place for an hour): "
                          f"{_pod_log(kube, name) or f'kubectl -n {NAMESPACE} logs job/{name}'}")
    kube.delete(path)
    after = _objects(ctx, bucket, prefix)
    new = sorted(k for k in set(after) - before if parse_key(k))
    if not new:
        raise EtcdOpError(f"the Job on {node} succeeded but no new snapshot is under s3://{bucket}/{prefix}")
    snap = _snapshot(ctx, bucket, new[-1], after[new[-1]], True)
    if snap is None or snap.revision is None or snap.hash is None:
        raise EtcdOpError(f"s3://{bucket}/{new[-1]} has no status JSON with a revision and a hash: not verified")
    return snap
