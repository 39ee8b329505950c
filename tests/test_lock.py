"""The per-cluster lock (kubeaws.lock, kubeaws.cli.locking) on the moto server's S3 conditional writes: taken
once, refused to a second run naming the holder, waited for, taken over when stale (compare-and-swap on the
ETag), broken by `kubeaws unlock`; its home (the state bucket) made before anything else by apply; apply,
rollout and delete all take it; delete leaves nothing behind. Clocks are fake: no test waits for real time.

moto adaptation: moto checks a conditional write and stores the object in two steps without a lock of its
own, so two writes at the very same instant could both pass there (AWS makes them atomic). The two-process
test therefore starts the second run once the first holds the lock: it proves the waiting and the
no-duplicates outcome, while the single-winner property of If-None-Match is AWS's, exercised here one
write at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.lock import LOCK_KEY, ClusterLock, LockHeld, read
from tests.helpers import BASE, make_spec

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []
        self.on_sleep: list[Any] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()


def home(ctx: AwsContext) -> str:
    bucket = api.lock_home(make_spec(), ctx, create=True)
    assert bucket is not None
    return bucket


def lock(ctx: AwsContext, bucket: str, command: str, clock: Clock, said: list[str] | None = None) -> ClusterLock:
    return ClusterLock(ctx, bucket, command, clock=clock, sleep=clock.sleep, renew_every=3600.0,
                       say=(said.append if said is not None else None))


def test_one_holder_at_a_time_and_the_second_is_told_who(ctx: AwsContext) -> None:
    bucket, clock = home(ctx), Clock()
    first, second = lock(ctx, bucket, "kubeaws apply", clock), lock(ctx, bucket, "kubeaws delete", clock)
    first.acquire()
    holder = second.try_acquire()
    assert holder is not None and holder.id == first.holder.id and holder.command == "kubeaws apply"
    with pytest.raises(LockHeld, match=r"cluster dev is locked by `kubeaws apply` by .+@.+ \(pid \d+\) since .*"
                                       r"--lock-timeout.*kubeaws unlock"):
        second.acquire(timeout=0)
    first.release()
    assert read(ctx, bucket) is None
    second.acquire()
    assert read(ctx, bucket) is not None and read(ctx, bucket)[0].command == "kubeaws delete"  # type: ignore[index]
    second.release()


def test_the_second_run_waits_for_the_first(ctx: AwsContext) -> None:
    bucket, clock, said = home(ctx), Clock(), []
    first, second = lock(ctx, bucket, "kubeaws apply", clock), lock(ctx, bucket, "kubeaws rollout", clock, said)
    first.acquire()
    clock.on_sleep.append(lambda: first.release() if clock.now - 1_800_000_000.0 >= 20 else None)
    second.acquire(timeout=600)
    assert said[0].startswith("waiting for the cluster lock, held by `kubeaws apply`")
    assert 20 <= clock.now - 1_800_000_000.0 < 30 and read(ctx, bucket)[0].id == second.holder.id  # type: ignore[index]
    with pytest.raises(LockHeld):
        lock(ctx, bucket, "kubeaws apply", clock).acquire(timeout=60)  # waits 60 s (fake), then names it
    second.release()


def test_a_stale_lock_is_taken_over_and_its_old_holder_knows(ctx: AwsContext) -> None:
    """A holder that stopped renewing (its process died) is taken over after `stale_after`; were it alive
    after all, its next renewal finds the lock no longer its own (compare-and-swap on the ETag) and says so."""
    bucket, clock, said = home(ctx), Clock(), []
    dead = lock(ctx, bucket, "kubeaws apply", clock)
    dead.acquire()
    clock.now += 300
    assert dead.renew()  # alive: renewing keeps it
    clock.now += 599
    assert lock(ctx, bucket, "kubeaws delete", clock).try_acquire() is not None, "not stale yet"
    clock.now += 2
    late = lock(ctx, bucket, "kubeaws delete", clock, said)
    late.acquire()
    assert said and said[0].startswith("took over a stale lock: `kubeaws apply`")
    assert not dead.renew() and dead.lost
    dead.release()  # must not remove the new holder's lock
    assert read(ctx, bucket)[0].id == late.holder.id  # type: ignore[index]
    late.release()


def test_renewal_keeps_the_lock_fresh(ctx: AwsContext) -> None:
    """The renewal thread rewrites `renewed` (real thread, a short period); release stops it."""
    bucket = home(ctx)
    held = ClusterLock(ctx, bucket, "kubeaws apply", renew_every=0.05)
    held.acquire()
    first = read(ctx, bucket)
    assert first is not None
    deadline = time.monotonic() + 30
    while read(ctx, bucket)[1] == first[1]:  # type: ignore[index]
        assert time.monotonic() < deadline, "the lock was never renewed"
        time.sleep(0.05)
    held.release()
    assert read(ctx, bucket) is None and not held.lost


def spec_file(tmp_path: Path, **spec: Any) -> Path:
    path = tmp_path / "cluster.yaml"
    doc = json.loads(json.dumps(BASE))
    doc["spec"].update(spec)
    path.write_text(yaml.safe_dump(doc))
    return path


def vpcs(ctx: AwsContext) -> list[str]:
    found = ctx.call("ec2", "describe_vpcs", Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]}])
    return [v["VpcId"] for v in found["Vpcs"]]


def test_apply_delete_and_rollout_refuse_a_held_lock_before_any_change(ctx: AwsContext, tmp_path: Path) -> None:
    """The lock's home is made first (the state bucket, nothing else); a run holding the lock makes apply,
    delete and rollout exit 1 naming it, with nothing created; `kubeaws unlock` breaks it (with a warning);
    then apply converges (0 changes after), and delete leaves no bucket and no lock behind."""
    path = spec_file(tmp_path)
    bucket = home(ctx)
    other = ClusterLock(ctx, bucket, "kubeaws apply", renew_every=3600.0)
    other.acquire()
    runner = CliRunner()
    for command in (["apply", "--yes"], ["rollout", "--yes"], ["delete", "--yes"]):
        answer = runner.invoke(app, [*command, "-f", str(path)])
        assert answer.exit_code == 1, answer.output
        assert "cluster dev is locked by `kubeaws apply`" in answer.output
    assert vpcs(ctx) == []
    answer = runner.invoke(app, ["unlock", "-f", str(path), "--yes"])
    assert answer.exit_code == 0 and "warning" in answer.output and "Unlocked" in answer.output
    assert read(ctx, bucket) is None and runner.invoke(app, ["unlock", "-f", str(path)]).exit_code == 0

    answer = runner.invoke(app, ["apply", "-f", str(path), "--yes", "--no-rollout"])
    assert answer.exit_code == 0, answer.output
    assert read(ctx, bucket) is None, "released"
    assert api.plan(make_spec(), ctx).pending == 0, "the bucket policy the lock's home lacked is on"
    answer = runner.invoke(app, ["delete", "-f", str(path), "--yes"])
    assert answer.exit_code == 0, answer.output
    assert vpcs(ctx) == [] and api.lock_home(make_spec(), ctx, create=False) is None


def test_two_applies_at_once_never_both_act(ctx: AwsContext, tmp_path: Path) -> None:
    """Two `kubeaws apply` processes of one new cluster: the second starts while the first holds the lock
    (see the module docstring), waits for it, then finds nothing (or little) to do: one VPC, one NAT gateway
    per AZ, one of every named resource."""
    path = spec_file(tmp_path)
    env = {**os.environ, "AWS_ENDPOINT_URL": str(ctx.settings.endpoint_url), "AWS_DEFAULT_REGION": ctx.region}
    command = [sys.executable, "-m", "kubeaws.cli.main", "apply", "-f", str(path), "--yes", "--no-rollout",
               "--lock-timeout", "5m"]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bucket = None
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline:
        bucket = bucket or api.lock_home(make_spec(), ctx, create=False)
        if bucket and read(ctx, bucket) is not None:
            break
        time.sleep(0.02)
    second = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    _, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert len(vpcs(ctx)) == 1
    nats = ctx.call("ec2", "describe_nat_gateways", Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]},
                                                              {"Name": "state", "Values": ["available", "pending"]}])
    assert len(nats["NatGateways"]) == len({n["SubnetId"] for n in nats["NatGateways"]})
    if "waiting for the cluster lock, held by `kubeaws apply`" in err2:
        # It planned before the first was done, waited, and planned again under the lock.
        assert "the cluster changed since that plan" in err2
    else:  # the first was done before the second asked for the lock
        assert "Nothing to apply" in out2 + err2 or "the cluster changed since that plan" in err2
    assert api.plan(make_spec(), ctx).pending == 0
    assert LOCK_KEY and read(ctx, api.lock_home(make_spec(), ctx, create=False) or "") is None
