"""Retry policy for AWS calls: throttling and 5xx with exponential backoff and full jitter, bounded waits
for eventual consistency, and DependencyViolation retries on delete.

Called by `aws.session.AwsContext.call` (every AWS call kubeaws makes goes through it) and by resource
kinds that wait for a state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError, ReadTimeoutError

from kubeaws.errors import AwsCallError, WaitTimeout

T = TypeVar("T")

THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
     "RequestTimeoutException", "InsufficientInstanceCapacity"}
)
DEPENDENCY_CODES = frozenset({"DependencyViolation", "ResourceInUse", "InvalidIPAddress.InUse"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, or '' for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def is_retryable(exc: BaseException) -> bool:
    """Throttling, server-side (5xx) and connection errors: worth another try after a pause."""
    if isinstance(exc, ConnectionError | EndpointConnectionError | ReadTimeoutError):
        return True
    code = error_code(exc)
    return code in THROTTLE_CODES or code in TRANSIENT_CODES or http_status(exc) >= 500


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

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


FAST_POLICY = RetryPolicy(base_delay=0.01, max_delay=0.05, consistency_timeout=5.0, dependency_timeout=10.0,
                          poll_interval=0.02)


def call_with_retry(fn: Callable[[], T], operation: str, policy: RetryPolicy,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `fn`; retry throttling / 5xx / connection errors with backoff. Other errors propagate unchanged."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            attempt += 1
            if attempt >= policy.max_attempts:
                code = error_code(exc) or type(exc).__name__
                raise AwsCallError(operation, code, f"still failing after {attempt} attempts: {exc}") from exc
            sleep(policy.backoff(attempt))


def retry_on_codes(fn: Callable[[], T], codes: Iterable[str], timeout: float, what: str,
                   policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `fn`, retrying while it fails with one of `codes` (e.g. InvalidVpcID.NotFound right after the
    VPC was created, or DependencyViolation while ENIs drain), for at most `timeout` seconds."""
    wanted = frozenset(codes)
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            return fn()
        except ClientError as exc:
            code = error_code(exc)
            if code not in wanted or time.monotonic() >= deadline:
                raise
            attempt += 1
            sleep(min(policy.backoff(attempt) + policy.base_delay, max(0.0, deadline - time.monotonic())))
    raise AssertionError(what)  # pragma: no cover


def wait_until(check: Callable[[], T | None], timeout: float, what: str, policy: RetryPolicy,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Poll `check` until it returns a value that is not None, or raise WaitTimeout naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        sleep(policy.poll_interval)
