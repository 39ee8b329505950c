"""Small objects kubeaws writes to the state bucket for the cluster's machines (kind `StateObject`), e.g.
`cluster/cluster.json` (API endpoint, CA hash, versions, CIDRs).

Contract: every StateObject key lives under `cluster/` and its logical name IS its key (objects carry no
tags, so `list_owned` rebuilds the `kubeaws.io/resource` tag from the key). `list_owned` = ONE
ListObjectsV2(Prefix="cluster/") on the cluster's bucket; `fields.content_md5` is the object's ETag
(the MD5 of the content: single-part upload, SSE-S3) and `diff` compares it with the MD5 of the desired
`content`. update = put again. Called by the engine through the registry.

`cluster/cluster.json` also guards the Kubernetes version of a kubeadm cluster: its
`kubernetesVersion` is the version the cluster was last applied at. `list_owned` reads that one object's
body (ONE GetObject more, a few hundred bytes: S3 listings carry neither object metadata nor tags, so no
cheaper place would be seen without a request per object) into `attrs["kubernetes_version"]`, and `diff`
refuses, at plan time, a move kubeadm cannot make: a downgrade, or a skip over a minor version (kubeadm
upgrades one minor at a time, and API servers must stay within one minor of each other while members are
replaced). The refusal is a `SpecError` naming `spec.kubernetesVersion` (exit 2) with the path to take,
e.g. `1.31 -> 1.32 -> 1.33`. Patch releases move freely (kubeaws pins them per minor).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.errors import FieldProblem, KubeawsError, SpecError
from kubeaws.resources._s3 import cluster_bucket, list_prefix, object_tags, purge
from kubeaws.resources.base import Desired, Diff, Kind, Observed, contains_unknown
from kubeaws.resources.registry import register

STATE_PREFIX = "cluster/"
#: The object whose `kubernetesVersion` is the version the cluster was last applied at.
CLUSTER_INFO = "cluster/cluster.json"
VERSION_FIELD = ("spec", "kubernetesVersion")


class KubernetesVersionError(SpecError):
    """`spec.kubernetesVersion` asks for a version change kubeadm cannot make (a downgrade, or more than one
    minor version at once). Exit code 2, like any spec problem."""


def content_md5(content: str) -> str:
    return hashlib.md5(content.encode(), usedforsecurity=False).hexdigest()


def minor_of(version: str) -> tuple[int, int]:
    """(major, minor) of "1.31", "1.31.13" or "v1.31.13"."""
    major, _, rest = str(version).lstrip("v").partition(".")
    return int(major), int(rest.split(".")[0] or 0)


def upgrade_path(have: str, want: str) -> str:
    """`1.31 -> 1.32 -> 1.33`: every minor from `have` to `want` (one step per apply and rollout)."""
    (hmaj, hmin), (wmaj, wmin) = minor_of(have), minor_of(want)
    if hmaj != wmaj or wmin < hmin:
        return f"{hmaj}.{hmin} -> {wmaj}.{wmin}"
    return " -> ".join(f"{hmaj}.{m}" for m in range(hmin, wmin + 1))


def check_version_move(have: str, want: str) -> None:
    """Refuse a downgrade or a skip of a minor version (patch releases move freely); the error names the
    field, what is wrong and the path to take."""
    (hmaj, hmin), (wmaj, wmin) = minor_of(have), minor_of(want)
    if (wmaj, wmin) < (hmaj, hmin):
        raise KubernetesVersionError([FieldProblem(
            ".".join(VERSION_FIELD),
            f"the cluster runs Kubernetes {hmaj}.{hmin}: kubeadm cannot downgrade it to {wmaj}.{wmin}",
            f'put kubernetesVersion back to "{hmaj}.{hmin}" (a downgrade needs a new cluster and a restore of '
            "its workloads)")])
    if wmaj != hmaj or wmin > hmin + 1:
        raise KubernetesVersionError([FieldProblem(
            ".".join(VERSION_FIELD),
            f"the cluster runs Kubernetes {hmaj}.{hmin}: kubeadm upgrades one minor version at a time, so it "
            f"cannot move to {wmaj}.{wmin} at once (path: {upgrade_path(have, want)})",
            f'set kubernetesVersion to "{hmaj}.{hmin + 1}", apply and roll the cluster out (kubeaws rollout), '
            "then repeat for each step of the path")])


def json_version(content: Any) -> str | None:
    """`kubernetesVersion` of a cluster.json text, None when absent or not JSON."""
    if not isinstance(content, str | bytes):
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return None
    version = body.get("kubernetesVersion") if isinstance(body, dict) else None
    return str(version) if version else None


@register
class StateObject(Kind):
    """One object under `cluster/`; fields `bucket`, `key`, `content_md5`."""

    kind = "StateObject"
    service = "s3"
    rank = 17
    modes = frozenset({"kubeadm"})
    immutable = frozenset({"bucket", "key"})
    taggable = False  # objects carry no tags: ownership is the cluster's own bucket
    list_reads = 2  # ListObjectsV2 + GetObject of cluster.json (its kubernetesVersion)

    def _observed(self, ctx: AwsContext, bucket: str, key: str, md5: str, version: str | None = None) -> Observed:
        attrs: dict[str, Any] = {"url": f"s3://{bucket}/{key}"}
        if version:
            attrs["kubernetes_version"] = version
        return Observed(self.kind, f"{bucket}/{key}", {"bucket": bucket, "key": key, "content_md5": md5},
                        object_tags(ctx, self.kind, key), attrs=attrs)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        bucket = cluster_bucket(ctx)
        items = list_prefix(ctx, bucket, STATE_PREFIX) or []
        out = []
        for item in items:
            version = self._applied_version(ctx, bucket) if item["Key"] == CLUSTER_INFO else None
            out.append(self._observed(ctx, bucket, item["Key"], str(item.get("ETag", "")).strip('"'), version))
        return out

    def _applied_version(self, ctx: AwsContext, bucket: str) -> str | None:
        """The `kubernetesVersion` cluster.json holds (the version last applied)."""
        body = ctx.call("s3", "get_object", Bucket=bucket, Key=CLUSTER_INFO)["Body"].read()
        return json_version(body)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        props = dict(desired.props)
        content = props.pop("content", None)
        props["content_md5"] = content_md5(content) if isinstance(content, str) else content
        changes = super().diff(actual, replace(desired, props=props))
        have, want = actual.attrs.get("kubernetes_version"), json_version(content)
        if "content_md5" in changes and have and want and desired.props.get("key") == CLUSTER_INFO:
            check_version_move(str(have), want)
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
        return self._observed(ctx, bucket, key, content_md5(content),
                              json_version(content) if key == CLUSTER_INFO else None)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"content", "content_md5"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        return self.create(ctx, desired)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Every version of the key (and its delete markers)."""
        purge(ctx, actual.fields["bucket"], exact_key=actual.fields["key"])
