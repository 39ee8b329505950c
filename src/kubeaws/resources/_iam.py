"""Shared plumbing for the IAM kinds (iam_role, instance_profile): policy documents as dicts, names from
ARNs, the path that scopes a cluster's IAM resources, and retries for IAM's eventual consistency.

Used only by the modules of `kubeaws.resources`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext

T = TypeVar("T")

NOT_FOUND = "NoSuchEntity"


def cluster_path(cluster: str) -> str:
    """The IAM path of every role and instance profile of a cluster."""
    return f"/kubeaws/{cluster}/"


def name_from(name_or_arn: str) -> str:
    """`arn:aws:iam::123:role/some/path/name` -> `name`; a plain name is returned as is."""
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def document(value: Any) -> dict[str, Any]:
    """A policy document as a dict: IAM returns URL-encoded JSON (botocore usually decodes it already)."""
    if isinstance(value, dict):
        return value
    text = str(value)
    if text.startswith("%7B") or text.startswith("%7b"):
        text = urllib.parse.unquote(text)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def dumps(doc: Any) -> str:
    """Compact JSON (IAM counts policy size without whitespace, but compact keeps requests small)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def ignoring_missing(fn: Callable[[], T]) -> T | None:
    """Run `fn`; None when the entity is already gone."""
    from botocore.exceptions import ClientError
    try:
        return fn()
    except ClientError as exc:
        if error_code(exc) == NOT_FOUND:
            return None
        raise


def while_propagating(ctx: AwsContext, fn: Callable[[], T], what: str,
                      codes: Iterable[str] = (NOT_FOUND,)) -> T:
    """A call on an IAM entity created a moment ago: IAM is eventually consistent, retry its NotFound."""
    return retry_on_codes(fn, codes, timeout=ctx.policy.consistency_timeout, what=what, policy=ctx.policy)
