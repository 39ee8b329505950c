"""Shared plumbing for the S3 kinds (bucket, pki, state_object): the state bucket's deterministic name,
listing a prefix of it with one call, emptying it (every version and delete marker) and the synthetic
ownership tags of objects (S3 listings return no object tags).

Used only by the modules of `kubeaws.resources`; `kubeaws.model.state` re-exports `state_bucket_name`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kubeaws.aws.errors import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, k8s_cluster_tag
from kubeaws.errors import KubeawsError

NO_BUCKET = "NoSuchBucket"
#: DeleteObjects takes at most 1000 keys per request.
DELETE_BATCH = 1000


def state_bucket_name(cluster: str, account_id: str, region: str) -> str:
    """`kubeaws-<cluster>-<sha256(account/region)[:10]>`: deterministic, unique per account and region,
    at most 63 characters (cluster names have at most 28)."""
    digest = hashlib.sha256(f"{account_id}/{region}".encode()).hexdigest()[:10]
    return f"kubeaws-{cluster}-{digest}"


def cluster_bucket(ctx: AwsContext) -> str:
    """The context's state bucket. The account ID is cached by the context (the plan's `sts` lookup has
    usually read it already), so this normally costs no call."""
    return state_bucket_name(ctx.cluster, ctx.account_id(), ctx.region)


def object_tags(ctx: AwsContext, kind: str, name: str) -> dict[str, str]:
    """The ownership tags an object in the cluster's own bucket stands for (it carries none itself)."""
    return {CLUSTER_TAG: ctx.cluster, RESOURCE_TAG: f"{kind}/{name}", k8s_cluster_tag(ctx.cluster): "owned"}


def list_prefix(ctx: AwsContext, bucket: str, prefix: str) -> list[dict[str, Any]] | None:
    """Current objects under `prefix` (ListObjectsV2, one call per 1000 keys); None when the bucket does
    not exist or is not readable (someone else's: the Bucket kind reports that conflict)."""
    from botocore.exceptions import ClientError
    try:
        items: list[dict[str, Any]] = ctx.paginate("s3", "list_objects_v2", "Contents", Bucket=bucket,
                                                   Prefix=prefix)
    except ClientError as exc:
        if error_code(exc) in (NO_BUCKET, "AccessDenied", "AllAccessDisabled"):
            return None
        raise
    return items


def _versions(ctx: AwsContext, bucket: str, prefix: str) -> list[dict[str, str]]:
    """Every object version and delete marker under `prefix` as DeleteObjects entries. ListObjectVersions
    pages with two markers, which the generic paginator does not handle."""
    out: list[dict[str, str]] = []
    markers: dict[str, str] = {}
    while True:
        page = ctx.call("s3", "list_object_versions", Bucket=bucket, Prefix=prefix, MaxKeys=1000, **markers)
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            out.append({"Key": item["Key"], "VersionId": item.get("VersionId") or "null"})
        if not page.get("IsTruncated"):
            return out
        markers = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextVersionIdMarker"):
            markers["VersionIdMarker"] = page["NextVersionIdMarker"]


def purge(ctx: AwsContext, bucket: str, prefix: str = "", exact_key: str | None = None) -> int:
    """Delete every version and delete marker under `prefix` (or of `exact_key` only); returns how many.
    A missing bucket counts as already empty."""
    from botocore.exceptions import ClientError
    try:
        entries = _versions(ctx, bucket, exact_key if exact_key is not None else prefix)
    except ClientError as exc:
        if error_code(exc) == NO_BUCKET:
            return 0
        raise
    if exact_key is not None:
        entries = [e for e in entries if e["Key"] == exact_key]
    for i in range(0, len(entries), DELETE_BATCH):
        batch = entries[i:i + DELETE_BATCH]
        resp = ctx.call("s3", "delete_objects", Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise KubeawsError(f"could not delete {len(errors)} object version(s) of s3://{bucket}, e.g. "
                               f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}")
    return len(entries)
