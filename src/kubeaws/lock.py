"""The per-cluster lock: one `apply`, `rollout` or `delete` at a time on a cluster, whoever and wherever runs it.

Where it lives. The lock is the object `lock/cluster.lock` in the cluster's state bucket, written with S3
conditional writes: `PutObject If-None-Match: *` takes it (exactly one writer succeeds, the others get 412),
`PutObject If-Match: <etag>` renews it or takes over a stale one (compare-and-swap: two runs breaking the same
stale lock cannot both win), and release deletes it only while it is still ours. The document says who holds
it: a random id, the command, host, user, process, when it was taken and last renewed.

Why the state bucket, though it is itself a created resource. Its name is deterministic (cluster, account,
region: `state_bucket_name`), so every run finds the same home without any other state. A new cluster has no
bucket yet: `apply` creates it first, through the Bucket kind's own create (idempotent: a second run adopts it,
`BucketAlreadyOwnedByYou`), with every setting but the bucket policy, which names roles that do not exist yet
and which the plan that follows puts on. Nothing else is created before the lock is held, and the plan is
made again once it is (the cluster may have changed meanwhile). `rollout` needs an existing cluster, so an
existing bucket. `delete` of a cluster that has no bucket holds no lock (there is nothing it could collide
on but other deletes, which are idempotent); `delete` stops renewing before the bucket itself goes.

Held: renewed every `renew_every` seconds by a thread. Stale: not renewed for `stale_after` seconds (the holder
died): the next run takes it over with a warning naming the old holder. `kubeaws unlock -f SPEC` breaks it
(when the holder is known dead). A renewal that finds the lock no longer ours (someone unlocked it) marks the
lock `lost`: the operation reports it.

Called by kubeaws.api (apply, delete, rollout) and the CLI (`--lock-timeout`, `kubeaws unlock`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError

LOCK_KEY = "lock/cluster.lock"
STALE_AFTER = 600.0
RENEW_EVERY = 60.0
POLL = 5.0
#: The answers of a conditional write that lost: 412 (the condition failed), 409 (a concurrent conditional
#: write to the same key won).
LOST = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class LockHeld(KubeawsError):
    """Another run holds the cluster's lock (exit 1, naming it)."""


@dataclass(frozen=True)
class Holder:
    id: str
    command: str
    host: str
    user: str
    pid: int
    taken: str  # ISO 8601, UTC
    renewed: str

    def describe(self, now: float) -> str:
        age = now - _epoch(self.renewed)
        return (f"`{self.command}` by {self.user}@{self.host} (pid {self.pid}) since {self.taken}, last renewed "
                f"{age:.0f}s ago")


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str) -> float:
    try:
        return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def read(ctx: AwsContext, bucket: str) -> tuple[Holder, str] | None:
    """The current holder and the object's ETag, or None when the lock is free (or the bucket missing)."""
    try:
        answer = ctx.call("s3", "get_object", Bucket=bucket, Key=LOCK_KEY)
    except ClientError as exc:
        if error_code(exc) in MISSING | {"NoSuchBucket"}:
            return None
        raise
    etag = str(answer.get("ETag", ""))
    try:
        doc: dict[str, Any] = json.loads(answer["Body"].read())
        return Holder(**{k: doc[k] for k in Holder.__dataclass_fields__}), etag
    except (ValueError, KeyError, TypeError):
        # Unreadable: treat as held by an unknown run, stale from the object's own age.
        modified = answer.get("LastModified")
        when = _iso(modified.timestamp()) if modified is not None else _iso(0)
        return Holder("?", "unknown", "unknown", "unknown", 0, when, when), etag


class ClusterLock:
    """The lock of one cluster for one command. `with lock:` or acquire()/release()."""

    def __init__(self, ctx: AwsContext, bucket: str, command: str, *, stale_after: float = STALE_AFTER,
                 renew_every: float = RENEW_EVERY, poll: float = POLL, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, say: Callable[[str], None] | None = None) -> None:
        self.ctx = ctx
        self.bucket = bucket
        self.stale_after = stale_after
        self.renew_every = renew_every
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.say = say or (lambda _: None)
        now = _iso(clock())
        self.holder = Holder(uuid.uuid4().hex, command, socket.gethostname(), _user(), os.getpid(), now, now)
        self.etag: str | None = None
        self.lost = False
        #: Whether another run held the lock when this one asked for it (waited for, or taken over stale):
        #: then what was read of the cluster before `acquire` may be stale (kubeaws delete reads it again).
        self.contended = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._guard = threading.Lock()

    # -- writing ------------------------------------------------------------------------------------------
    def _put(self, **condition: str) -> str | None:
        """Write our document under `condition`; its ETag, or None when the condition lost."""
        body = json.dumps(asdict(self.holder), sort_keys=True).encode()
        try:
            answer = self.ctx.call("s3", "put_object", Bucket=self.bucket, Key=LOCK_KEY, Body=body,
                                   ContentType="application/json", **condition)
        except ClientError as exc:
            if error_code(exc) in LOST or (condition.get("IfMatch") and error_code(exc) in MISSING):
                return None
            raise
        return str(answer.get("ETag", ""))

    def try_acquire(self) -> Holder | None:
        """Take the lock if it is free or stale; None when taken, else who holds it."""
        etag = self._put(IfNoneMatch="*")
        if etag is not None:
            self.etag = etag
            return None
        current = read(self.ctx, self.bucket)
        if current is None:
            return self.try_acquire()  # released in between
        holder, their_etag = current
        if self.clock() - _epoch(holder.renewed) < self.stale_after:
            return holder
        etag = self._put(IfMatch=their_etag)
        if etag is None:
            return holder  # someone else took it over first
        self.etag = etag
        self.contended = True
        self.say(f"took over a stale lock: {holder.describe(self.clock())} (not renewed for over "
                 f"{self.stale_after:.0f}s: that run is gone)")
        return None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to `timeout` seconds for another holder to finish; LockHeld naming the
        holder otherwise. Starts renewing it."""
        deadline = self.clock() + timeout
        announced = False
        while True:
            holder = self.try_acquire()
            if holder is None:
                break
            self.contended = True
            now = self.clock()
            if now >= deadline:
                raise LockHeld(
                    f"cluster {self.ctx.cluster} is locked by {holder.describe(now)}. Wait for it (run again with "
                    f"--lock-timeout 10m to wait), or, if that run is dead, break the lock with `kubeaws unlock` "
                    f"(it goes stale by itself {self.stale_after:.0f}s after its last renewal)")
            if not announced:
                self.say(f"waiting for the cluster lock, held by {holder.describe(now)}")
                announced = True
            self.sleep(min(self.poll, max(0.0, deadline - now)))
        self._renewer = threading.Thread(target=self._renew_loop, name="kubeaws-lock", daemon=True)
        self._renewer.start()

    def renew(self) -> bool:
        """Write a fresh `renewed` time if the lock is still ours; False (and `lost`) when it is not."""
        with self._guard:
            if self.etag is None or self.lost:
                return False
            self.holder = Holder(**{**asdict(self.holder), "renewed": _iso(self.clock())})
            etag = self._put(IfMatch=self.etag)
            if etag is None:
                self.lost = True
                self.say("the cluster lock was broken by someone else (kubeaws unlock) while this run held it")
                return False
            self.etag = etag
            return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                if not self.renew():
                    return
            except (ClientError, KubeawsError) as exc:  # a missed renewal is retried at the next tick
                self.say(f"could not renew the cluster lock: {exc}")

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=30)

    def release(self) -> None:
        """Stop renewing and remove the lock if it is still ours (a missing bucket or object: nothing to do)."""
        self.stop_renewing()
        with self._guard:
            if self.etag is None or self.lost:
                return
            current = read(self.ctx, self.bucket)
            if current is not None and current[0].id == self.holder.id:
                try:
                    self.ctx.call("s3", "delete_object", Bucket=self.bucket, Key=LOCK_KEY)
                except ClientError as exc:
                    if error_code(exc) not in MISSING | {"NoSuchBucket"}:
                        raise
            self.etag = None

    def __enter__(self) -> ClusterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def unlock(ctx: AwsContext, bucket: str) -> Holder | None:
    """Break the lock whoever holds it; the holder it had (None: it was free)."""
    current = read(ctx, bucket)
    if current is None:
        return None
    try:
        ctx.call("s3", "delete_object", Bucket=bucket, Key=LOCK_KEY)
    except ClientError as exc:
        if error_code(exc) not in MISSING | {"NoSuchBucket"}:
            raise
    return current[0]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
