"""`kubeaws etcd snapshot` and `kubeaws etcd list` (kubeaws.etcd_ops, kubeaws.cli.etcd) on the moto server and the
fake Kubernetes API (tests/kube_fake.py): the Job created with the right spec on a healthy member, its
completion simulated (the node's part: the snapshot and its status JSON put in the bucket, the Job marked
succeeded) through the retry policy's sleep, the new object found and checked; the list read from objects on
moto. What the node's script does for real is tests/test_etcd_real.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import etcd_ops
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.kube_client import KubeClient
from kubeaws.spec.models import ClusterSpec
from tests import kube_objects as ko
from tests.helpers import BASE, make_spec, merge
from tests.kube_fake import FakeApi, serve, test_pki, url

JOB = f"{etcd_ops.JOBS}/"


@pytest.fixture
def kube() -> Iterator[tuple[FakeApi, KubeClient]]:
    pki = test_pki()
    with serve(pki["cert"], pki["key"]) as server:
        yield server, KubeClient(url(server), pki["ca"], "k8s-aws-v1.test", FAST_POLICY)


class Clock:
    """The policy's clock: sleeping advances it, and the first sleep runs `on_sleep` (the node's work)."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None) -> None:
        self.now, self.sleeps, self.on_sleep = 1000.0, 0, on_sleep

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.sleeps == 1:
            self.on_sleep()


def context(endpoint: str, clock: Clock) -> AwsContext:
    policy = dataclasses.replace(FAST_POLICY, clock=lambda: clock.now, sleep=clock.sleep)
    return AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), cluster="dev", policy=policy)


def control_plane(server: FakeApi, healthy_etcd: dict[str, bool]) -> None:
    for name, ready in healthy_etcd.items():
        server.add(ko.node(name, labels={etcd_ops.CONTROL_PLANE_LABEL: ""}))
        etcd = ko.pod(f"etcd-{name}", "kube-system", node_name=name, labels={"component": "etcd"}, ready=ready,
                      mirror=True)
        server.add(etcd)
    server.add(ko.node("worker-1"))


def put(ctx: AwsContext, bucket: str, key: str, body: bytes | str) -> None:
    ctx.call("s3", "put_object", Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def status_json(member: int, ts: str, revision: int = 42) -> str:
    return json.dumps({"hash": 123456, "revision": revision, "totalKey": 17, "totalSize": 20480, "member": member,
                       "time": ts, "kubernetesVersion": "1.31"})


def setup_bucket(ctx: AwsContext, spec: ClusterSpec) -> str:
    bucket = etcd_ops.state_bucket(spec, ctx)
    ctx.call("s3", "create_bucket", Bucket=bucket)
    put(ctx, bucket, "etcd/members/member-0", "8e9e05c52164694d ip-10-0-1-10\n")
    put(ctx, bucket, "etcd/members/member-1", "91bc3c398fb3c146 ip-10-0-2-20\n")
    put(ctx, bucket, "etcd-backups/member-1/20250101T000000Z.db", b"old")
    return bucket


def the_job(server: FakeApi) -> tuple[str, dict[str, Any]]:
    jobs = [(p, o) for p, o in server.objects.items() if p.startswith(JOB)]
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_snapshot_runs_the_members_script_in_a_job_on_a_healthy_member(endpoint: str,
                                                                          kube: tuple[FakeApi, KubeClient]) -> None:
    server, client = kube
    spec = make_spec(mirrors={"imageRepository": "registry.example.cn/k8s"})
    seen: dict[str, Any] = {}

    def node_runs_the_job() -> None:  # what the pod does on ip-10-0-2-20 (member 1), and the timer of member 0
        path, job = the_job(server)
        seen["job"] = json.loads(json.dumps(job))
        put(ctx, bucket, "etcd-backups/member-0/20250601T120000Z.db", b"timer")
        put(ctx, bucket, "etcd-backups/member-1/20250601T120001Z.db", b"x" * 2048)
        put(ctx, bucket, "etcd-backups/member-1/20250601T120001Z.json", status_json(1, "20250601T120001Z"))
        server.objects[path]["status"] = {"succeeded": 1}

    clock = Clock(node_runs_the_job)
    ctx = context(endpoint, clock)
    bucket = setup_bucket(ctx, spec)
    control_plane(server, {"ip-10-0-1-10": False, "ip-10-0-2-20": True})
    said: list[str] = []
    snap = etcd_ops.take_snapshot(spec, ctx, client, say=said.append)

    assert snap.key == "etcd-backups/member-1/20250601T120001Z.db" and snap.id == "member-1/20250601T120001Z"
    assert (snap.member, snap.size, snap.revision, snap.hash, snap.kubernetes_version) == (1, 2048, 42, 123456, "1.31")
    job = seen["job"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["namespace"] == "kube-system" and job["spec"]["backoffLimit"] == 0
    assert pod["nodeName"] == "ip-10-0-2-20" and pod["hostPID"] is True and pod["restartPolicy"] == "Never"
    assert {"operator": "Exists"} in pod["tolerations"]
    assert container["securityContext"] == {"privileged": True}
    assert container["command"] == ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "/bin/bash",
                                    "/usr/local/lib/kubeaws/etcd-backup.sh"]
    assert container["image"] == "registry.example.cn/k8s/library/busybox:1.36.1"  # mirrors.imageRepository
    assert not [p for p in server.objects if p.startswith(JOB)]  # deleted once done
    assert any("member 1" in line for line in said)
    assert clock.sleeps == 1


def test_snapshot_failures_say_why(endpoint: str, kube: tuple[FakeApi, KubeClient]) -> None:
    server, client = kube
    spec = make_spec()

    def fail() -> None:
        path, _ = the_job(server)
        server.objects[path]["status"] = {"failed": 1}

    ctx = context(endpoint, Clock(fail))
    setup_bucket(ctx, spec)
    with pytest.raises(etcd_ops.EtcdOpError, match="no control-plane node is Ready"):
        etcd_ops.take_snapshot(spec, ctx, client)
    control_plane(server, {"ip-10-0-1-10": True})
    with pytest.raises(etcd_ops.EtcdOpError, match="ip-10-0-9-9 is not a Ready control-plane node"):
        etcd_ops.take_snapshot(spec, ctx, client, node="ip-10-0-9-9")
    with pytest.raises(etcd_ops.EtcdOpError, match="failed"):
        etcd_ops.take_snapshot(spec, ctx, client)
    assert the_job(server)  # a failed Job is left for inspection

    server.objects.clear()
    control_plane(server, {"ip-10-0-1-10": True})
    slow = context(endpoint, Clock())  # the Job never finishes: the deadline on the policy's clock
    with pytest.raises(etcd_ops.EtcdOpError, match="did not finish in 60s"):
        etcd_ops.take_snapshot(spec, slow, client, timeout=60)

    no_backup = make_spec(etcdBackup=None)
    with pytest.raises(etcd_ops.EtcdOpError, match="etcdBackup is off"):
        etcd_ops.take_snapshot(no_backup, ctx, client)


def test_snapshot_without_status_json_is_not_verified(endpoint: str, kube: tuple[FakeApi, KubeClient]) -> None:
    server, client = kube
    spec = make_spec()

    def unverified() -> None:
        path, _ = the_job(server)
        put(ctx, bucket, "etcd-backups/member-0/20250601T120000Z.db", b"x")
        server.objects[path]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}

    ctx = context(endpoint, Clock(unverified))
    bucket = setup_bucket(ctx, spec)
    control_plane(server, {"ip-10-0-1-10": True})
    with pytest.raises(etcd_ops.EtcdOpError, match="no status JSON"):
        etcd_ops.take_snapshot(spec, ctx, client)


def test_list_reads_every_snapshot_with_its_status(endpoint: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec()
    ctx = context(endpoint, Clock())
    bucket = setup_bucket(ctx, spec)  # member-1/20250101T000000Z.db: from before the status JSON
    put(ctx, bucket, "etcd-backups/member-0/20250601T120000Z.db", b"y" * 4096)
    put(ctx, bucket, "etcd-backups/member-0/20250601T120000Z.json", status_json(0, "20250601T120000Z", 99))
    put(ctx, bucket, "etcd-backups/member-2/20250301T000000Z.db", b"z")
    put(ctx, bucket, "etcd-backups/member-2/20250301T000000Z.json", "not json")
    put(ctx, bucket, "etcd-backups/member-2/notes.txt", "ignored")

    snaps = etcd_ops.list_snapshots(ctx, bucket)
    assert [s.id for s in snaps] == ["member-0/20250601T120000Z", "member-2/20250301T000000Z",
                                     "member-1/20250101T000000Z"]
    assert snaps[0].to_dict() == {"id": "member-0/20250601T120000Z", "key": "etcd-backups/member-0/20250601T120000Z.db",
                                  "member": 0, "time": "20250601T120000Z", "size": 4096, "revision": 99,
                                  "hash": 123456, "totalKeys": 17, "kubernetesVersion": "1.31"}
    assert snaps[1].revision is None and snaps[2].revision is None and snaps[2].size == 3

    from kubeaws.cli.main import app

    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(merge(BASE, {})))
    runner = CliRunner()
    result = runner.invoke(app, ["etcd", "list", "-f", str(spec_file), "--output", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["bucket"] == bucket and [s["id"] for s in doc["snapshots"]] == [s.id for s in snaps]
    text = runner.invoke(app, ["etcd", "list", "-f", str(spec_file)])
    assert text.exit_code == 0 and "member-0/20250601T120000Z" in text.stdout and "99" in text.stdout

    ctx.call("s3", "delete_object", Bucket=bucket, Key="etcd-backups/member-2/notes.txt")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(merge(BASE, {"metadata": {"name": "gone"}})))
    missing = runner.invoke(app, ["etcd", "list", "-f", str(other)])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_doctor_reports_the_age_of_the_newest_snapshot(endpoint: str) -> None:
    import datetime as dt

    from kubeaws.doctor.live_etcd import check_snapshots

    spec = make_spec(etcdBackup={"everyMinutes": 30, "keep": 10})
    ctx = context(endpoint, Clock())
    bucket = etcd_ops.state_bucket(spec, ctx)
    assert [f.check for f in check_snapshots(spec, ctx)] == ["etcd.snapshots-unreadable"]  # no bucket yet
    ctx.call("s3", "create_bucket", Bucket=bucket)
    assert check_snapshots(spec, ctx) == []  # not initialized yet: no snapshot expected
    put(ctx, bucket, "join/initialized", "")
    assert check_snapshots(spec, ctx) == []  # just initialized: the timer has not run yet
    (none,) = check_snapshots(spec, ctx, now=dt.datetime.now(dt.UTC).timestamp() + 71 * 60)
    assert (none.severity, none.check) == ("error", "etcd.no-snapshot")
    put(ctx, bucket, "etcd-backups/member-0/20250601T120000Z.db", b"x")
    taken = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC).timestamp()
    assert check_snapshots(spec, ctx, now=taken + 59 * 60) == []  # within 2 x 30 min
    (old,) = check_snapshots(spec, ctx, now=taken + 61 * 60)
    assert (old.severity, old.check) == ("warning", "etcd.snapshot-old") and "member-0/20250601T120000Z" in old.message
    assert check_snapshots(make_spec(etcdBackup=None), ctx, now=taken + 86400) == []
