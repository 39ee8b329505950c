"""The cluster's certificate authorities and keys in the state bucket (kind `ClusterPki`): generated ONCE by
`create` (kubeaws.pki) and uploaded under `pki/` with SSE-S3; never regenerated, never updated.

`pki/ca.crt` is uploaded last and is the completion marker: `list_owned` (ONE ListObjectsV2 on the
cluster's bucket, whose name is derived from the cluster, account and region) reports the PKI present
exactly when it exists. The CA's discovery hash travels in a marker key `pki/ca-cert-hash/sha256:<hex>`
(uploaded before ca.crt) so the `ca_cert_hash` attribute needs no GetObject. Contents are never logged.
Called by the engine through the registry.
"""

from __future__ import annotations

from typing import Any

from kubeaws.aws.errors import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.resources._s3 import cluster_bucket, list_prefix, object_tags, purge
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

#: The one ClusterPki of a cluster (the model must use this name).
PKI_NAME = "main"
PKI_PREFIX = "pki/"
HASH_MARKER = "ca-cert-hash/"


def _exists(ctx: AwsContext, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError
    try:
        ctx.call("s3", "head_object", Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


@register
class ClusterPki(Kind):
    """CAs, service-account keys and the encryption key under `pki/`; fields `bucket`, `prefix`; attrs
    `ca_cert_hash` (kubeadm's discovery hash, when known)."""

    kind = "ClusterPki"
    service = "s3"
    rank = 16
    modes = frozenset({"kubeadm"})
    immutable = frozenset({"bucket", "prefix"})
    taggable = False  # objects carry no tags: ownership is the cluster's own bucket

    def _observed(self, ctx: AwsContext, bucket: str, prefix: str, ca_hash: str | None) -> Observed:
        return Observed(self.kind, f"{bucket}/{prefix}", {"bucket": bucket, "prefix": prefix},
                        object_tags(ctx, self.kind, PKI_NAME), attrs={"ca_cert_hash": ca_hash})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        bucket = cluster_bucket(ctx)
        items = list_prefix(ctx, bucket, PKI_PREFIX)
        keys = {i["Key"] for i in items or []}
        if f"{PKI_PREFIX}ca.crt" not in keys:
            return []
        marker = f"{PKI_PREFIX}{HASH_MARKER}"
        hashes = sorted(k.removeprefix(marker) for k in keys if k.startswith(marker))
        return [self._observed(ctx, bucket, PKI_PREFIX, hashes[0] if len(hashes) == 1 else None)]

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        from botocore.exceptions import ClientError
        bucket, prefix = desired.props["bucket"], desired.props.get("prefix") or PKI_PREFIX
        if not prefix.endswith("/"):
            raise KubeawsError(f"ClusterPki prefix must end with '/': {prefix!r}")
        # Imported here: cryptography costs ~25 ms at import, and only a create needs it (not every plan).
        from kubeaws.pki import PKI_FILES, ca_cert_hash, generate_cluster_pki

        if _exists(ctx, bucket, f"{prefix}ca.crt"):
            # Already generated (an earlier run whose result was lost): never regenerate.
            body = ctx.call("s3", "get_object", Bucket=bucket, Key=f"{prefix}ca.crt")["Body"].read()
            return self._observed(ctx, bucket, prefix, ca_cert_hash(body))
        files = generate_cluster_pki()
        ca_hash = ca_cert_hash(files["ca.crt"])
        for name in PKI_FILES:
            if name != "ca.crt":
                self._put(ctx, bucket, f"{prefix}{name}", files[name])
        self._put(ctx, bucket, f"{prefix}{HASH_MARKER}{ca_hash}", ca_hash.encode())
        try:
            # Last, and only if absent: a concurrent run cannot replace a CA that is already in use.
            self._put(ctx, bucket, f"{prefix}ca.crt", files["ca.crt"], IfNoneMatch="*")
        except ClientError as exc:
            if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            theirs = ctx.call("s3", "get_object", Bucket=bucket, Key=f"{prefix}ca.crt")["Body"].read()
            if theirs == files["ca.crt"]:  # ours: a repeat of a put whose answer was lost
                return self._observed(ctx, bucket, prefix, ca_hash)
            raise KubeawsError(f"another run created the cluster CA in s3://{bucket}/{prefix} at the same time; "
                               "run apply again") from exc
        return self._observed(ctx, bucket, prefix, ca_hash)

    @staticmethod
    def _put(ctx: AwsContext, bucket: str, key: str, body: bytes, **extra: Any) -> None:
        ctx.call("s3", "put_object", Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256",
                 ContentType="application/octet-stream", **extra)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        raise NotImplementedError("ClusterPki is never updated: the CAs live as long as the cluster")

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Every version of every file under the prefix (the bucket's own delete would remove them too)."""
        purge(ctx, actual.fields["bucket"], actual.fields["prefix"])
