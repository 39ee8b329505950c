"""Small objects kubeaws writes to the state bucket for the cluster's machines (kind `StateObject`), e.g.
`cluster/cluster.json` (API endpoint, CA hash, versions, CIDRs).

Contract: every StateObject key lives under `cluster/` and its logical name IS its key (objects carry no
tags, so `list_owned` rebuilds the `kubeaws.io/resource` tag from the key). `list_owned` = ONE
ListObjectsV2(Prefix="cluster/") on the cluster's bucket; `fields.content_md5` is the object's ETag
(the MD5 of the content: single-part upload, SSE-S3) and `diff` compares it with the MD5 of the desired
`content`. update = put again. Called by the engine through the registry.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.resources._s3 import cluster_bucket, list_prefix, object_tags, purge
from kubeaws.resources.base import Desired, Diff, Kind, Observed, contains_unknown
from kubeaws.resources.registry import register

STATE_PREFIX = "cluster/"


def content_md5(content: str) -> str:
    return hashlib.md5(content.encode(), usedforsecurity=False).hexdigest()


@register
class StateObject(Kind):
    """One object under `cluster/`; fields `bucket`, `key`, `content_md5`."""

    kind = "StateObject"
    service = "s3"
    rank = 17
    modes = frozenset({"kubeadm"})
    immutable = frozenset({"bucket", "key"})
    taggable = False  # objects carry no tags: ownership is the cluster's own bucket

    def _observed(self, ctx: AwsContext, bucket: str, key: str, md5: str) -> Observed:
        return Observed(self.kind, f"{bucket}/{key}", {"bucket": bucket, "key": key, "content_md5": md5},
                        object_tags(ctx, self.kind, key), attrs={"url": f"s3://{bucket}/{key}"})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        bucket = cluster_bucket(ctx)
        items = list_prefix(ctx, bucket, STATE_PREFIX) or []
        return [self._observed(ctx, bucket, i["Key"], str(i.get("ETag", "")).strip('"')) for i in items]

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        props = dict(desired.props)
        content = props.pop("content", None)
        props["content_md5"] = content_md5(content) if isinstance(content, str) else content
        changes = super().diff(actual, replace(desired, props=props))
        if "content_md5" in changes and not contains_unknown(content):
            changes["content"] = (f"md5 {changes.pop('content_md5')[0]}", content)
        return changes

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        bucket, key, content = desired.props["bucket"], desired.props["key"], desired.props["content"]
        if not key.startswith(STATE_PREFIX) or desired.name != key:
            raise KubeawsError(f"StateObject {desired.name!r}: the key must start with {STATE_PREFIX!r} and "
                               f"equal the resource name (got key {key!r})")
        ctx.call("s3", "put_object", Bucket=bucket, Key=key, Body=content.encode(), ServerSideEncryption="AES256",
                 ContentType="application/json" if key.endswith(".json") else "text/plain")
        return self._observed(ctx, bucket, key, content_md5(content))

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"content", "content_md5"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        return self.create(ctx, desired)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Every version of the key (and its delete markers)."""
        purge(ctx, actual.fields["bucket"], exact_key=actual.fields["key"])
