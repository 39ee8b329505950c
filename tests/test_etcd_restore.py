"""`kubeaws etcd restore`'s orchestration (kubeaws.etcd_restore, kubeaws.cli.etcd) on the moto server: the
members are stand-ins that follow the member agent's protocol (tests/test_etcd_restore.py's FakeMember: what
bootstrap/templates/etcd-restore.sh.j2 does with each command, as state changes and a log), ticked on every
sleep of the policy's fake clock; the cluster's validation is KubeCluster.problems() on the fake Kubernetes API.
Asserted: the order (every member stopped before any restore, every restore before any start, the API asked only
once etcd is back), one snapshot/token/initial cluster for all, a kill before every write to the state bucket
followed by a run of the same command that finishes with each member restored exactly once, a failed member
rolling every member back, and the refusals. What the agent does on a real etcd is tests/test_etcd_restore_real.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import etcd_restore
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.etcd_ops import state_bucket
from kubeaws.kube_client import KubeClient
from kubeaws.rollout.kube_ops import KubeCluster
from kubeaws.spec.models import ClusterSpec
from tests import kube_objects as ko
from tests.helpers import BASE, make_spec, merge
from tests.kube_fake import FakeApi, serve, test_pki, url

SNAP = "member-1/20250601T120000Z"
NOW = dt.datetime(2025, 6, 1, 15, 0, tzinfo=dt.UTC)
NODES = ["ip-10-0-1-10", "ip-10-0-2-20", "ip-10-0-3-30"]


class Killed(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.on_sleep: list[Callable[[], None]] = []

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for tick in self.on_sleep:
            tick()


def context(endpoint: str, clock: Clock) -> AwsContext:
    policy = dataclasses.replace(FAST_POLICY, clock=lambda: clock.now, sleep=clock.sleep)
    return AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), cluster="dev", policy=policy)


def get(ctx: AwsContext, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read())
    except Exception:
        return None


class FakeMember:
    """A member's agent as the protocol has it: reads current, plan.json and command; acts on its state; reports
    member-<i>.json. `fail` = a step ("prepare", "stop", "restore") this member fails."""

    def __init__(self, ctx: AwsContext, bucket: str, index: int, log: list[str], fail: str = "") -> None:
        self.ctx, self.bucket, self.index, self.log, self.fail = ctx, bucket, index, log, fail
        self.state = ""
        self.data = "old-data"
        self.cluster_id = "c0ffee"
        self.name, self.peer = NODES[index], f"https://10.0.{index + 1}.{(index + 1) * 10}:2380"
        self.base, self.plan = "", dict[str, str]()

    def report(self, state: str, error: str = "") -> None:
        self.state = state
        doc = {"member": self.index, "state": state, "name": self.name, "peerURL": self.peer,
               "clusterId": self.cluster_id, **({"error": error} if error else {})}
        self.ctx.call("s3", "put_object", Bucket=self.bucket, Key=f"{self.base}member-{self.index}.json",
                      Body=json.dumps(doc).encode())

    def tick(self) -> None:
        op = (get(self.ctx, self.bucket, etcd_restore.CURRENT) or b"").decode()
        if not op or self.state in ("started", "rolled-back"):
            return
        self.base = f"etcd-restore/{op}/"
        command = json.loads(get(self.ctx, self.bucket, self.base + "command") or b"{}")
        step = command.get("step", "")
        if step == "rollback":
            self.log.append(f"rollback {self.index}")
            if self.data.startswith("restored"):
                self.data = "old-data"
            self.report("rolled-back")
        elif self.state == "":
            plan = json.loads(get(self.ctx, self.bucket, self.base + "plan.json") or b"{}")
            assert get(self.ctx, self.bucket, plan["snapshot"]) is not None
            assert (get(self.ctx, self.bucket, self.base + "agent.sh") or b"").startswith(b"#!/bin/bash")
            self.plan = plan
            self.report("failed", "prepare: snapshot hash 1, expected 2") if self.fail == "prepare" else \
                self.report("ready")
        elif self.state == "ready" and step in ("stop", "restore", "start"):
            self.log.append(f"stop {self.index}")
            self.report("failed", "stop: still running") if self.fail == "stop" else self.report("stopped")
        elif self.state == "stopped" and step == "restore":
            self.log.append(f"restore {self.index} {self.plan['snapshot']} {self.plan['token']} "
                            f"{command['initialCluster']}")
            if self.fail == "restore":
                self.report("failed", "restore: etcdutl: snapshot file has wrong CRC")
                return
            self.data = f"restored {self.plan['token']}"
            self.report("restored")
        elif self.state == "restored" and step == "start":
            self.log.append(f"start {self.index}")
            self.cluster_id = f"new-{self.plan['token'][-6:]}"
            self.report("started")


@pytest.fixture
def kube() -> Iterator[tuple[FakeApi, KubeClient]]:
    pki = test_pki()
    with serve(pki["cert"], pki["key"]) as server:
        for name in NODES:
            server.add(ko.node(name, labels={"node-role.kubernetes.io/control-plane": ""}))
            server.add(ko.pod(f"etcd-{name}", "kube-system", node_name=name, labels={"component": "etcd"},
                              mirror=True))
        yield server, KubeClient(url(server), pki["ca"], "k8s-aws-v1.test", FAST_POLICY)


def setup(ctx: AwsContext, spec: ClusterSpec, cluster_version: str = "1.31", snap_version: str = "1.31") -> str:
    bucket = state_bucket(spec, ctx)
    ctx.call("s3", "create_bucket", Bucket=bucket)

    def put(key: str, body: str) -> None:
        ctx.call("s3", "put_object", Bucket=bucket, Key=key, Body=body.encode())

    put("cluster/cluster.json", json.dumps({"kubernetesVersion": cluster_version}))
    for i, node in enumerate(NODES):
        put(f"etcd/members/member-{i}", f"{i:016x} {node}\n")
    put(f"etcd-backups/{SNAP}.db", "snapshot")
    put(f"etcd-backups/{SNAP}.json", json.dumps({"hash": 2, "revision": 4242, "totalKey": 9, "member": 1,
                                                 "time": SNAP.split("/")[1], "kubernetesVersion": snap_version}))
    return bucket


class World:
    def __init__(self, endpoint: str, kube: tuple[FakeApi, KubeClient], fail: dict[int, str] | None = None) -> None:
        self.clock = Clock()
        self.ctx = context(endpoint, self.clock)
        self.spec = make_spec(controlPlane={"count": 3})
        self.bucket = setup(self.ctx, self.spec)
        self.log: list[str] = []
        self.members = [FakeMember(self.ctx, self.bucket, i, self.log, (fail or {}).get(i, "")) for i in range(3)]
        self.clock.on_sleep.append(self.tick)
        self.server, self.client = kube
        self.cluster = KubeCluster(self.client, self.spec, self.ctx.policy)

    def tick(self) -> None:
        for member in self.members:
            member.tick()

    def validate(self) -> list[str]:
        self.log.append("validate")
        return self.cluster.problems()

    def run(self, checkpoint: Callable[[str], None] = lambda _: None) -> etcd_restore.RestoreResult:
        plan = etcd_restore.plan_restore(self.spec, self.ctx, SNAP, now=NOW)
        return etcd_restore.run_restore(self.spec, self.ctx, plan, validate=self.validate, checkpoint=checkpoint,
                                        poll=2.0)


def assert_restored_once_in_order(world: World) -> None:
    log = world.log
    kinds = [e.split()[0] for e in log]
    assert sorted(e for e in log if e.startswith("stop")) == ["stop 0", "stop 1", "stop 2"]
    restores = [e for e in log if e.startswith("restore")]
    assert sorted(r.split()[1] for r in restores) == ["0", "1", "2"]  # each member restored exactly once
    assert len({" ".join(r.split()[2:]) for r in restores}) == 1  # one snapshot, token and initial cluster
    snapshot, token, initial = restores[0].split()[2:]
    assert snapshot == f"etcd-backups/{SNAP}.db" and token.startswith("kubeaws-dev-")
    assert initial == ",".join(f"{n}=https://10.0.{i + 1}.{(i + 1) * 10}:2380" for i, n in enumerate(NODES))
    assert max(i for i, k in enumerate(kinds) if k == "stop") < min(i for i, k in enumerate(kinds) if k == "restore")
    assert max(i for i, k in enumerate(kinds) if k == "restore") < min(i for i, k in enumerate(kinds) if k == "start")
    assert max(i for i, k in enumerate(kinds) if k == "start") < kinds.index("validate")  # no API use before
    assert "rollback" not in kinds
    assert {m.data for m in world.members} == {f"restored {token}"}
    assert len({m.cluster_id for m in world.members}) == 1 and world.members[0].cluster_id != "c0ffee"
    assert get(world.ctx, world.bucket, etcd_restore.CURRENT) is None


def test_restore_stops_all_restores_all_starts_all_then_validates(endpoint: str,
                                                                   kube: tuple[FakeApi, KubeClient]) -> None:
    world = World(endpoint, kube)
    writes: list[str] = []
    result = world.run(writes.append)
    assert_restored_once_in_order(world)
    assert writes == ["plan.json", "agent.sh", "state.json prepare", "current", "state.json stop", "command stop",
                      "state.json restore", "command restore", "state.json start", "command start",
                      "state.json validate", "state.json done", "result.json", "current delete"]
    assert result.cluster_id == world.members[0].cluster_id and result.snapshot == SNAP
    assert result.downtime is not None and 0 < result.downtime < 60  # fake clock: 2 s polls
    outcome = json.loads(get(world.ctx, world.bucket, f"etcd-restore/{result.op}/result.json") or b"{}")
    assert outcome["outcome"] == "restored" and outcome["clusterId"] == result.cluster_id


@pytest.mark.parametrize("kill_at", range(14))
def test_a_kill_before_any_write_is_resumed_by_running_it_again(endpoint: str, kube: tuple[FakeApi, KubeClient],
                                                                kill_at: int) -> None:
    world = World(endpoint, kube)
    seen: list[str] = []

    def checkpoint(name: str) -> None:
        seen.append(name)
        if len(seen) == kill_at + 1:
            raise Killed(name)

    with pytest.raises(Killed):
        world.run(checkpoint)
    for _ in range(3):  # time passes: the members act on whatever the killed run wrote
        world.clock.sleep(60)
    result = world.run()
    assert_restored_once_in_order(world)
    assert result.cluster_id == world.members[0].cluster_id


@pytest.mark.parametrize("step", ["prepare", "stop", "restore"])
def test_a_member_that_fails_rolls_every_member_back(endpoint: str, kube: tuple[FakeApi, KubeClient],
                                                     step: str) -> None:
    world = World(endpoint, kube, fail={1: step})
    with pytest.raises(etcd_restore.RestoreFailed, match="rolled back") as failed:
        world.run()
    assert f"member 1: {step}:" in str(failed.value)
    assert sorted(e for e in world.log if e.startswith("rollback")) == ["rollback 0", "rollback 1", "rollback 2"]
    assert not any(e.startswith(("start", "validate")) for e in world.log)
    assert {m.data for m in world.members} == {"old-data"} and {m.state for m in world.members} == {"rolled-back"}
    assert get(world.ctx, world.bucket, etcd_restore.CURRENT) is None


def test_a_member_that_never_answers_rolls_back_at_the_timeout(endpoint: str,
                                                               kube: tuple[FakeApi, KubeClient]) -> None:
    world = World(endpoint, kube)
    world.members = world.members[:2]  # member 2's instance is down: nothing answers for it
    plan = etcd_restore.plan_restore(world.spec, world.ctx, SNAP, now=NOW)
    with pytest.raises(etcd_restore.RestoreFailed) as failed:
        etcd_restore.run_restore(world.spec, world.ctx, plan, validate=world.validate,
                                 timeouts=etcd_restore.Timeouts(prepare=60, rollback=60))
    assert "member 2 (ip-10-0-3-30): no answer" in str(failed.value) and "not confirmed" in str(failed.value)
    assert not any(e.startswith(("stop", "restore", "start")) for e in world.log)
    assert get(world.ctx, world.bucket, etcd_restore.CURRENT) is not None  # kept: running it again retries


def test_validation_waits_for_the_cluster(endpoint: str, kube: tuple[FakeApi, KubeClient]) -> None:
    world = World(endpoint, kube)
    server = world.server
    server.set_ready(NODES[2], False)

    def node_back() -> None:
        if "validate" in world.log:
            server.set_ready(NODES[2], True)

    world.clock.on_sleep.append(node_back)
    world.run()
    assert world.log.count("validate") >= 2


def test_refusals(endpoint: str, kube: tuple[FakeApi, KubeClient]) -> None:
    world = World(endpoint, kube)
    ctx, spec = world.ctx, world.spec
    ctx.call("s3", "put_object", Bucket=world.bucket, Key="cluster/cluster.json",
             Body=json.dumps({"kubernetesVersion": "1.32"}).encode())
    with pytest.raises(etcd_restore.RestoreRefused, match=r"taken on Kubernetes 1.31, the cluster runs 1.32"):
        etcd_restore.plan_restore(spec, ctx, SNAP)
    with pytest.raises(etcd_restore.RestoreRefused, match="no such snapshot"):
        etcd_restore.plan_restore(spec, ctx, "member-0/20990101T000000Z")
    ctx.call("s3", "put_object", Bucket=world.bucket, Key="cluster/cluster.json",
             Body=json.dumps({"kubernetesVersion": "1.31"}).encode())
    ctx.call("s3", "put_object", Bucket=world.bucket, Key="etcd-backups/member-0/20250602T000000Z.db", Body=b"x")
    ctx.call("s3", "put_object", Bucket=world.bucket, Key="etcd-backups/member-0/20250602T000000Z.json",
             Body=json.dumps({"hash": 1, "revision": 1, "kubernetesVersion": "1.31"}).encode())
    with pytest.raises(Killed):
        world.run(lambda name: (_ for _ in ()).throw(Killed()) if name == "command stop" else None)
    with pytest.raises(etcd_restore.RestoreRefused, match=f"a restore from snapshot {SNAP} is in progress"):
        etcd_restore.plan_restore(spec, ctx, "member-0/20250602T000000Z")
    plan = etcd_restore.plan_restore(spec, ctx, SNAP)
    assert plan.resuming == "stop"
    text = "\n".join(plan.lines(NOW))
    assert "EVERYTHING written to the cluster after 2025-06-01 12:00:00 UTC is lost" in text
    assert "API is DOWN" in text and "member 2 (ip-10-0-3-30)" in text and "interrupted in phase stop" in text
    with pytest.raises(etcd_restore.RestoreRefused, match="EKS"):
        etcd_restore.plan_restore(make_spec(mode="eks"), ctx, SNAP)


def test_cli_refuses_without_confirmation_and_a_version_mismatch(endpoint: str, tmp_path: Path,
                                                                  kube: tuple[FakeApi, KubeClient]) -> None:
    from kubeaws.cli.main import app

    world = World(endpoint, kube)
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(merge(BASE, {"spec": {"controlPlane": {"count": 3}}})))
    runner = CliRunner()
    result = runner.invoke(app, ["etcd", "restore", "-f", str(spec_file), "--snapshot", SNAP])
    assert result.exit_code == 2, result.output
    assert "is lost" in result.output and "--yes" in result.output
    assert get(world.ctx, world.bucket, etcd_restore.CURRENT) is None  # nothing started
    world.ctx.call("s3", "put_object", Bucket=world.bucket, Key="cluster/cluster.json",
                   Body=json.dumps({"kubernetesVersion": "1.30"}).encode())
    result = runner.invoke(app, ["etcd", "restore", "-f", str(spec_file), "--snapshot", SNAP, "--yes"])
    assert result.exit_code == 2 and "the cluster runs 1.30" in result.output
