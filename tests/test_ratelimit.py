"""The client-side request-rate limiter (aws/ratelimit.py) on a fake clock: AWS's EC2 bucket figures
(burst, then the refill rate), per action and category independently, per region, the resource bucket of
RunInstances, the share kubeaws leaves to others, the in-flight cap, and the limiter installed on the
context's session (every client's requests wait for their token before they are sent)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kubeaws.aws.ratelimit import MUTATING, Rate, RateLimiter, ec2_draws
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from tests.conftest import REGION
from tests.helpers import FakeClock


def limiter(clock: FakeClock, share: float = 1.0, **kw: Any) -> RateLimiter:
    return RateLimiter(share=share, clock=clock.monotonic, sleep=clock.sleep, **kw)


def send(lim: RateLimiter, action: str, n: int, body: dict[str, Any] | None = None, region: str = REGION) -> None:
    for _ in range(n):
        lim.acquire(region, "ec2", action, body or {})


def test_burst_then_refill_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    send(lim, "CreateVpc", 50)  # a mutating action: 50 tokens at once
    assert clock.now == 0 and clock.sleeps == 0
    send(lim, "CreateVpc", 1)
    assert clock.now == pytest.approx(1 / 5)  # then 5 per second
    send(lim, "CreateVpc", 49)
    assert clock.now == pytest.approx(50 / 5)
    assert lim.stats.delayed == 50
    clock.sleep(100)  # idle: the bucket fills up to its capacity, no further
    send(lim, "CreateVpc", 50)
    before = clock.now
    send(lim, "CreateVpc", 1)
    assert clock.now - before == pytest.approx(0.2)


def test_actions_and_categories_have_their_own_buckets() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    send(lim, "CreateVpc", 50)
    send(lim, "CreateSubnet", 50)  # another mutating action: its own bucket (AWS evaluates each API alone)
    send(lim, "DescribeVpcs", 100)  # non-mutating: 100
    send(lim, "CreateTags", 100)  # uncategorized, 100
    send(lim, "CreateVpc", 1, region="eu-west-1")  # another region
    assert clock.now == 0
    send(lim, "DescribeVpcs", 1)
    assert clock.now == pytest.approx(1 / 20)


def test_unfiltered_describes_draw_on_the_smaller_bucket() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    send(lim, "DescribeInstances", 50)
    assert clock.now == 0
    send(lim, "DescribeInstances", 1)
    assert clock.now == pytest.approx(1 / 10)
    start = clock.now
    send(lim, "DescribeInstances", 100, {"MaxResults": "1000"})  # paginated: the standard bucket, untouched
    send(lim, "DescribeInstances", 0, {"Filter.1.Name": "tag-key"})
    assert clock.now == start


def test_run_instances_takes_a_resource_token_per_instance() -> None:
    assert [d[0] for d in ec2_draws("RunInstances", {"MaxCount": "3"})] == ["RunInstances", "RunInstances/instances"]
    clock = FakeClock()
    lim = limiter(clock)
    lim.acquire(REGION, "ec2", "RunInstances", {"MaxCount": "1000"})
    assert clock.now == 0
    lim.acquire(REGION, "ec2", "RunInstances", {"MaxCount": "4"})
    assert clock.now == pytest.approx(4 / 2)  # the resource bucket refills 2 instances per second
    assert [d[2] for d in ec2_draws("TerminateInstances", {"InstanceId.1": "i-1", "InstanceId.2": "i-2"})] == [1, 2]


def test_share_leaves_room_for_the_clusters_own_controllers() -> None:
    clock = FakeClock()
    lim = limiter(clock, share=0.8)
    send(lim, "CreateVpc", 40)
    assert clock.now == 0
    send(lim, "CreateVpc", 1)
    assert clock.now == pytest.approx(1 / (MUTATING.refill * 0.8))
    assert Rate(2, 1).scaled(0.1) == Rate(1.0, 0.1)  # a bucket never shrinks below one token


def test_other_services_and_the_unlimited_limiter_never_wait() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    for _ in range(500):
        lim.acquire(REGION, "autoscaling", "CreateAutoScalingGroup", {})
    free = RateLimiter.unlimited()
    for _ in range(500):
        free.acquire(REGION, "ec2", "CreateVpc", {})
    assert clock.now == 0 and free.stats.delayed == 0


def test_in_flight_cap() -> None:
    lim = RateLimiter.unlimited()
    lim.set_concurrency(2)
    active, peak = [0], [0]
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        with lim.slot():
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            release.wait(5)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for _ in range(200):  # until two hold a slot (the others queue behind them)
        with lock:
            if active[0] == 2:
                break
        time.sleep(0.005)
    release.set()
    for t in threads:
        t.join(5)
    assert peak[0] == 2
    with pytest.raises(ValueError):
        lim.set_concurrency(0)


def test_the_context_sends_no_request_before_its_token(endpoint: str) -> None:
    clock = FakeClock()
    lim = RateLimiter(lambda service, action, body: [(action, Rate(2, 1), 1.0)] if service == "ec2" else [],
                      share=1.0, clock=clock.monotonic, sleep=clock.sleep)
    ctx = AwsContext(AwsSettings(region=REGION, endpoint_url=endpoint), cluster="dev", policy=FAST_POLICY,
                     limiter=lim)
    seen: list[float] = []
    ctx.add_hook("before-send", lambda **_: seen.append(clock.now))
    for _ in range(5):
        ctx.call("ec2", "describe_vpcs")
    ctx.call("sts", "get_caller_identity")  # not EC2: no bucket
    assert seen == [0, 0, 1, 2, 3, 3]
    assert ctx.in_region("eu-west-1").limiter is lim  # one limiter per session, buckets per region
    on_emulator = AwsContext(AwsSettings(region=REGION, endpoint_url=endpoint), cluster="dev")
    assert on_emulator.limiter.draws("ec2", "CreateVpc", {}) == []  # the emulator throttles nothing
    on_aws = AwsContext(AwsSettings(region=REGION), cluster="dev")
    assert on_aws.limiter.draws("ec2", "CreateVpc", {}) == [("CreateVpc", MUTATING, 1.0)]
