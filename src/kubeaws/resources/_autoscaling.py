"""Shared plumbing for the compute kinds (launch_template, auto_scaling_group): riding out IAM eventual
consistency and the tags that must not reach the instances an Auto Scaling group launches.

Used only by the modules of `kubeaws.resources`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.errors import WaitTimeout

T = TypeVar("T")

#: Tags that identify a kubeaws-managed resource of one kind. Instances and volumes an ASG or a launch
#: template creates must not carry them: `Instance` / `Volume` list_owned would take those instances for
#: resources of their own (found by `kubeaws.io/cluster`), and the planner would delete them as leftovers.
IDENTITY_TAGS = frozenset({CLUSTER_TAG, RESOURCE_TAG})

#: How AWS words "this instance profile does not exist (yet)": EC2 (InvalidParameterValue,
#: "iamInstanceProfile.name is invalid") and Auto Scaling (ValidationError, "Invalid IAM Instance Profile").
_PROFILE_MESSAGE = re.compile(r"iam ?instance ?profile|instance profile", re.IGNORECASE)
_PROFILE_CODES = frozenset({"InvalidParameterValue", "ValidationError", "InvalidParameterCombination"})


def is_profile_not_visible(exc: ClientError) -> bool:
    """True for the errors AWS gives while a just-created instance profile is not visible to EC2 yet."""
    return error_code(exc) in _PROFILE_CODES and bool(_PROFILE_MESSAGE.search(str(exc)))


def retry_matching(ctx: AwsContext, fn: Callable[[], T], transient: Callable[[ClientError], bool],
                   what: str, timeout: float | None = None) -> T:
    """Run `fn`, retrying while it fails with an error `transient` accepts, for at most `timeout` seconds
    (default: the policy's consistency window). The last error propagates."""
    from botocore.exceptions import ClientError
    last: list[ClientError] = []

    def attempt() -> tuple[T] | None:
        try:
            return (fn(),)
        except ClientError as exc:
            if not transient(exc):
                raise
            last[:] = [exc]
            return None

    limit = ctx.policy.consistency_timeout if timeout is None else timeout
    try:
        return wait_until(attempt, limit, what, ctx.policy)[0]
    except WaitTimeout:
        if last:
            raise last[0] from None
        raise


def until_profile_visible(ctx: AwsContext, fn: Callable[[], T], what: str) -> T:
    """A call naming an instance profile created a moment ago (IAM is eventually consistent)."""
    return retry_matching(ctx, fn, is_profile_not_visible, what)


def launch_tags(tags: dict[str, str], drop: Iterable[str] = IDENTITY_TAGS) -> dict[str, str]:
    """`tags` without the kubeaws identity tags (what launched instances and volumes may carry)."""
    dropped = frozenset(drop)
    return {k: v for k, v in tags.items() if k not in dropped}
