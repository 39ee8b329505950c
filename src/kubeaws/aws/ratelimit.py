"""Client-side request-rate limits: kubeaws keeps under the EC2 API's request-token buckets itself instead of
sending requests that AWS answers with RequestLimitExceeded (and then retrying them in bursts), and caps how
many requests it has in flight (`kubeaws apply|delete|rollout --parallelism N`).

Each request first takes a token from its bucket (a botocore `before-call` handler on the context's session,
blocking the calling thread until the token is there); a bucket holds at most its capacity and refills at its
rate. The figures are AWS's, from "Request throttling for the Amazon EC2 API" (EC2 Developer Guide,
https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, read 2026-12):

- request rate limiting is per API action ("each API is evaluated individually"), per account and region; the
  bucket's size and refill depend on the action's category:
  non-mutating (Describe*/List*/Get*/Search*) 100 tokens, refill 20/s; the same unfiltered and unpaginated
  (DescribeInstances, DescribeInstanceStatus, DescribeNetworkInterfaces, DescribeSecurityGroups,
  DescribeSnapshots, DescribeSpotInstanceRequests, DescribeVolumes with neither a filter nor a page size)
  50, refill 10/s; mutating 50, refill 5/s; resource-intensive (AuthorizeSecurityGroupIngress,
  RevokeSecurityGroupIngress, CreateKeyPair, ...) 50, refill 5/s; and "uncategorized" actions with their own
  figures (CreateTags 100/10, RunInstances 5/2, TerminateInstances 100/5, CreateNatGateway 10/1, ...: UNCATEGORIZED);
- resource rate limiting on top, per instance: RunInstances and StartInstances 1000 tokens refilling 2/s,
  TerminateInstances and StopInstances 1000 refilling 20/s.

kubeaws takes SHARE of each bucket (capacity and refill): the account's buckets are shared with the
cluster's own controllers (cluster-autoscaler, cloud-provider-aws, the VPC CNI) and every other tool of the
account. Other services publish no per-action buckets; their requests only count against `concurrency`
(throttling there is retried with backoff by aws/retry.py, as everywhere).

The clock is injectable (`clock`, `sleep`): tests run the real figures on a fake clock. On the local emulator
(which throttles nothing) `AwsContext` installs no rates unless given a limiter. Used by aws/session.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rate:
    """A token bucket's size (burst) and refill (tokens per second)."""

    capacity: float
    refill: float

    def scaled(self, share: float) -> Rate:
        return Rate(max(1.0, self.capacity * share), self.refill * share)


NON_MUTATING = Rate(100, 20)
UNFILTERED = Rate(50, 10)
MUTATING = Rate(50, 5)
RESOURCE_INTENSIVE = Rate(50, 5)
#: Non-mutating actions that draw on the smaller bucket when sent with neither a filter nor a page size.
UNFILTERED_ACTIONS = frozenset({"DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces",
                                "DescribeSecurityGroups", "DescribeSnapshots", "DescribeSpotInstanceRequests",
                                "DescribeVolumes"})
RESOURCE_INTENSIVE_ACTIONS = frozenset({
    "AcceptVpcPeeringConnection", "AuthorizeSecurityGroupIngress", "CancelSpotInstanceRequests", "CreateKeyPair",
    "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection", "RejectVpcPeeringConnection",
    "RevokeSecurityGroupIngress", "RequestSpotInstances"})
#: The uncategorized actions kubeaws sends (the page lists more), with their own buckets.
UNCATEGORIZED: dict[str, Rate] = {
    "AssignPrivateIpAddresses": Rate(100, 5), "AssociateIamInstanceProfile": Rate(100, 5),
    "CreateLaunchTemplateVersion": Rate(100, 5), "CreateNatGateway": Rate(10, 1),
    "CreateNetworkInterface": Rate(100, 5), "CreateSnapshot": Rate(100, 5), "CreateTags": Rate(100, 10),
    "CreateVolume": Rate(100, 5), "DeleteNatGateway": Rate(10, 1), "DeleteNetworkInterface": Rate(100, 5),
    "DeleteSnapshot": Rate(100, 5), "DeleteTags": Rate(100, 10), "DeleteVolume": Rate(100, 5),
    "DeregisterImage": Rate(100, 5), "DisassociateIamInstanceProfile": Rate(100, 5),
    "ModifyInstanceMetadataOptions": Rate(100, 5), "ModifyLaunchTemplate": Rate(100, 5),
    "ModifyNetworkInterfaceAttribute": Rate(100, 5), "RunInstances": Rate(5, 2), "StartInstances": Rate(5, 2),
    "TerminateInstances": Rate(100, 5), "UnassignPrivateIpAddresses": Rate(100, 5),
}
#: Resource rate limiting: action -> (bucket, the request parameter whose count is the instances).
RESOURCE: dict[str, tuple[Rate, str]] = {
    "RunInstances": (Rate(1000, 2), "MaxCount"), "StartInstances": (Rate(1000, 2), "InstanceId"),
    "TerminateInstances": (Rate(1000, 20), "InstanceId"), "StopInstances": (Rate(1000, 20), "InstanceId"),
}
#: The part of each AWS bucket kubeaws uses (the rest is left to the cluster's controllers and other tools).
SHARE = 0.8

#: (bucket name, its rate, tokens this request takes)
Draw = tuple[str, Rate, float]


def _is_read(action: str) -> bool:
    return action.startswith(("Describe", "List", "Get", "Search"))


def ec2_draws(action: str, body: Mapping[str, Any]) -> list[Draw]:
    """The EC2 buckets one request of `action` takes from, with `body` its query parameters (EC2 query
    protocol: `Filter.1.Name`, `MaxResults`, `InstanceId.1`, ...)."""
    if action in UNCATEGORIZED:
        draws: list[Draw] = [(action, UNCATEGORIZED[action], 1.0)]
    elif action in RESOURCE_INTENSIVE_ACTIONS:
        draws = [(action, RESOURCE_INTENSIVE, 1.0)]
    elif _is_read(action):
        narrowed = any(k == "MaxResults" or k.startswith("Filter.") for k in body)
        draws = [(action, NON_MUTATING, 1.0)] if narrowed or action not in UNFILTERED_ACTIONS else [
            (f"{action}/unfiltered", UNFILTERED, 1.0)]
    else:
        draws = [(action, MUTATING, 1.0)]
    if action in RESOURCE:
        rate, param = RESOURCE[action]
        if param == "MaxCount":
            count = float(body.get("MaxCount") or 1)
        else:
            count = float(sum(1 for k in body if k.startswith(f"{param}.")) or 1)
        draws.append((f"{action}/instances", rate, count))
    return draws


def aws_draws(service: str, action: str, body: Mapping[str, Any]) -> list[Draw]:
    """The buckets of a request to AWS: EC2's published ones; none for other services."""
    return ec2_draws(action, body) if service == "ec2" else []


class TokenBucket:
    """One bucket. `reserve` takes tokens at once, letting the balance go below zero, and says how long until
    the balance is back at zero: concurrent callers queue in arrival order and none can overdraw twice.
    Thread-safe."""

    def __init__(self, rate: Rate, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, tokens: float = 1.0) -> float:
        with self._lock:
            now = self._clock()
            if now > self._stamp:
                self._tokens = min(self.rate.capacity, self._tokens + (now - self._stamp) * self.rate.refill)
                self._stamp = now
            self._tokens -= tokens
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate.refill


@dataclass
class LimiterStats:
    """What the limiter did: requests that waited for a token and the time they waited in all."""

    delayed: int = 0
    waited: float = 0.0


class RateLimiter:
    """Token buckets per (region, service, bucket) from `draws`, at `share` of their figures, and at most
    `concurrency` requests in flight (None: no cap). Thread-safe; one per AWS session."""

    def __init__(self, draws: Callable[[str, str, Mapping[str, Any]], list[Draw]] = aws_draws, *,
                 share: float = SHARE, concurrency: int | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.draws = draws
        self.share = share
        self.clock = clock
        self.sleep = sleep
        self.stats = LimiterStats()
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self._slots: threading.BoundedSemaphore | None = None
        self.concurrency: int | None = None
        self.set_concurrency(concurrency)

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """No buckets, no cap (the local emulator, which throttles nothing)."""
        return cls(lambda service, action, body: [])

    def set_concurrency(self, concurrency: int | None) -> None:
        """At most `concurrency` requests in flight from now on (None: no cap). Set before the requests start."""
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `concurrency` in-flight slots for the block (no-op without a cap)."""
        slots = self._slots
        if slots is None:
            yield
            return
        with slots:
            yield

    def bucket(self, region: str, service: str, name: str, rate: Rate) -> TokenBucket:
        key = (region, service, name)
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = TokenBucket(rate.scaled(self.share), self.clock)
            return found

    def acquire(self, region: str, service: str, action: str, body: Mapping[str, Any] | None = None) -> float:
        """Block until the request's tokens are there; return the seconds waited."""
        wait = 0.0
        for name, rate, tokens in self.draws(service, action, body or {}):
            wait = max(wait, self.bucket(region, service, name, rate).reserve(tokens))
        if wait > 0:
            with self._lock:
                self.stats.delayed += 1
                self.stats.waited += wait
            self.sleep(wait)
        return wait

    def before_call(self, model: Any, params: Any = None, request_signer: Any = None, **_: Any) -> None:
        """The botocore `before-call` handler (registered on the session by AwsContext)."""
        body = params.get("body") if isinstance(params, dict) else None
        region = str(getattr(request_signer, "region_name", "") or "")
        self.acquire(region, model.service_model.service_name, model.name, body if isinstance(body, dict) else {})
