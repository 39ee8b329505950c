"""Fault injection against the moto server: an apply interrupted after k AWS calls (the k-th call
succeeding in AWS but its answer lost) followed by a new apply converges with no duplicates; throttling and
5xx answers injected with a botocore hook are retried and the apply still converges."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from kubeaws import api
from kubeaws.aws.session import is_read_operation
from kubeaws.model import build
from kubeaws.resources import registry
from tests.conftest import make_ctx, reset_moto
from tests.helpers import make_spec

# The HA shape: NLB + target group + listener, IAM, state bucket and objects, 3 etcd volumes, ASGs, EIPs.
SPEC = make_spec(controlPlane={"count": 3}, access={"bastion": {"elasticIP": True}},
                 network={"natGateway": "perAZ", "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]})


class Crash(Exception):
    """Stands for the process dying: the call went out, the answer never came back."""


class CrashAfter:
    """`after-call` hook: the k-th mutating call (and every one after it) raises after AWS has done it."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self, model: Any, **_: Any) -> None:
        if is_read_operation(model.name):
            return
        with self.lock:
            self.n += 1
            if self.n >= self.k:
                raise Crash(f"crash after call {self.n} ({model.name})")


# An apply of SPEC makes ~90 mutating calls: interrupt it early, in the middle and near the end.
@pytest.mark.parametrize("k", [1, 2, 5, 13, 34, 55, 72, 88])
def test_interrupted_apply_converges_without_duplicates(moto_server: str, k: int) -> None:
    reset_moto(moto_server)
    crashing = make_ctx(moto_server)
    crashing.add_hook("after-call", CrashAfter(k))
    first = api.apply(SPEC, crashing)
    assert not first.ok

    ctx = make_ctx(moto_server)
    second = api.apply(SPEC, ctx)
    assert second.ok, [(e.key, e.error) for e in second.failed + second.skipped]
    assert api.plan(SPEC, ctx).pending == 0
    graph = build(SPEC)
    for name, kind in registry.kinds().items():
        assert len(kind.list_owned(ctx)) == len(graph.of_kind(name)), name


class Flaky:
    """`before-send` hook answering every 3rd EC2 request with Throttling or 503 instead of sending it."""

    def __init__(self) -> None:
        self.n = 0
        self.injected = 0
        self.lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        with self.lock:
            self.n += 1
            if self.n % 3:
                return None
            self.injected += 1
            throttle = self.injected % 2 == 1
        body = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                b"</Message></Error></Errors><RequestID>x</RequestID></Response>") if throttle else b""
        return AWSResponse(request.url, 400 if throttle else 503, {}, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_throttling_and_5xx_are_retried(ctx: Any) -> None:
    flaky = Flaky()
    ctx.add_hook("before-send.ec2", flaky)
    result = api.apply(SPEC, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert flaky.injected > 10
    assert api.plan(SPEC, ctx).pending == 0
    assert api.delete(SPEC, ctx).ok
