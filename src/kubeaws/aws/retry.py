"""Retry policy for AWS calls: throttling, dropped connections and 5xx with exponential backoff and full
jitter (a mutation whose outcome is unknown is retried only when a repeat cannot duplicate anything, see
`aws.errors`), bounded waits for eventual consistency, and DependencyViolation retries on delete.

Called by `aws.session.AwsContext.call` (every AWS call kubeaws makes goes through it) and by resource
kinds that wait for a state. Every wait reads the time and sleeps through its policy (`RetryPolicy.clock`,
`RetryPolicy.sleep`), so tests run the real budgets on a fake clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubeaws.aws.errors import (
    DEPENDENCY_CODES,
    THROTTLE_CODES,
    TRANSIENT_CODES,
    AmbiguousOutcome,
    ErrorClass,
    classify,
    error_code,
    http_status,
)
from kubeaws.errors import AwsCallError, WaitTimeout

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Throttling, connection errors (sent or not) and server-side (5xx) errors: worth another try after a
    pause, for a read. A mutation retries only some of them (`call_with_retry`)."""
    return classify(exc) in (ErrorClass.THROTTLED, ErrorClass.UNSENT, ErrorClass.AMBIGUOUS)


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry. Tests shrink the delays; the defaults suit real AWS."""

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 20.0
    # Eventual consistency: an ID returned by a create call may be unknown to the next call for a while.
    consistency_timeout: float = 60.0
    # DependencyViolation on delete: ENIs of NAT gateways and load balancers take minutes to go away.
    dependency_timeout: float = 900.0
    # Polling interval for state waits (NAT gateway available, instance running...).
    poll_interval: float = 5.0
    # After a create whose outcome is unknown: how long to keep looking for what it may have made before
    # creating again (EC2 describes lag a create by a few seconds).
    settle_timeout: float = 10.0
    #: Where waits read the time and how they pause (tests give a fake clock: real budgets, no real sleep).
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


FAST_POLICY = RetryPolicy(base_delay=0.01, max_delay=0.05, consistency_timeout=5.0, dependency_timeout=10.0,
                          poll_interval=0.02, settle_timeout=0.05)


def call_with_retry(fn: Callable[[], T], operation: str, policy: RetryPolicy,
                    sleep: Callable[[float], None] | None = None, *, mutating: bool = False,
                    repeatable: bool = True, already: Callable[[BaseException], T | None] | None = None) -> T:
    """Run `fn` and retry what is worth retrying, with backoff; other errors propagate unchanged.

    A read (`mutating` False) is retried on throttling, connection errors and 5xx. A mutation is retried on
    throttling and on a connection never made (AWS did nothing); when the outcome is unknown (no answer
    after the request left, a 5xx) it is retried only if `repeatable` (a token, or a repeat that cannot
    duplicate), else `AmbiguousOutcome` is raised for the caller to resolve by looking. After such an
    unknown outcome, an error answer for which `already` returns a value (the repeat says the effect is
    already in place: a duplicate rule, a missing resource on delete) returns that value."""
    pause = sleep or policy.sleep
    attempt = 0
    unknown_before = False
    while True:
        try:
            return fn()
        except Exception as exc:
            kind = classify(exc)
            if unknown_before and already is not None:
                done = already(exc)
                if done is not None:
                    return done
            if kind not in (ErrorClass.THROTTLED, ErrorClass.UNSENT, ErrorClass.AMBIGUOUS):
                raise
            if kind is ErrorClass.AMBIGUOUS and mutating:
                if not repeatable:
                    raise AmbiguousOutcome(operation, exc) from exc
                unknown_before = True
            attempt += 1
            if attempt >= policy.max_attempts:
                code = error_code(exc) or type(exc).__name__
                raise AwsCallError(operation, code, f"still failing after {attempt} attempts: {exc}") from exc
            pause(policy.backoff(attempt))


def retry_on_codes(fn: Callable[[], T], codes: Iterable[str], timeout: float, what: str,
                   policy: RetryPolicy, sleep: Callable[[float], None] | None = None) -> T:
    """Run `fn`, retrying while it fails with one of `codes` (e.g. InvalidVpcID.NotFound right after the
    VPC was created, or DependencyViolation while ENIs drain), for at most `timeout` seconds; then raise
    `RetriesExhausted` (the last error, saying what was waited for). An inner `RetriesExhausted` is not
    retried again: its budget is spent."""
    from botocore.exceptions import ClientError

    from kubeaws.aws.exhausted import RetriesExhausted

    wanted = frozenset(codes)
    pause = sleep or policy.sleep
    started = policy.clock()
    deadline = started + timeout
    attempt = 0
    while True:
        try:
            return fn()
        except ClientError as exc:
            code = error_code(exc)
            if code not in wanted or isinstance(exc, RetriesExhausted):
                raise
            attempt += 1
            now = policy.clock()
            if now >= deadline:
                raise RetriesExhausted(exc, what, now - started, attempt) from exc
            pause(min(policy.backoff(attempt) + policy.base_delay, max(0.0, deadline - now)))


def wait_until(check: Callable[[], T | None], timeout: float, what: str, policy: RetryPolicy,
               sleep: Callable[[float], None] | None = None) -> T:
    """Poll `check` until it returns a value that is not None, or raise WaitTimeout naming `what`."""
    pause = sleep or policy.sleep
    deadline = policy.clock() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if policy.clock() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        pause(policy.poll_interval)


#: Re-exported for the modules that read the codes and helpers from here.
def __getattr__(name: str) -> Any:
    """`RetriesExhausted`, imported on first use (it is a botocore error: aws.exhausted)."""
    if name == "RetriesExhausted":
        from kubeaws.aws.exhausted import RetriesExhausted

        return RetriesExhausted
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEPENDENCY_CODES", "FAST_POLICY", "THROTTLE_CODES", "TRANSIENT_CODES", "AmbiguousOutcome",
           "RetryPolicy", "call_with_retry", "error_code", "http_status", "is_retryable",
           "retry_on_codes", "wait_until"]
