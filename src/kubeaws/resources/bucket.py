"""The cluster's state bucket (kind `Bucket`): private, encrypted (SSE-S3), versioned, owner-enforced, with
a bucket policy (the model's statements, plus a TLS-only Deny when `tls_only`).

Found with ONE `resourcegroupstaggingapi.get_resources` call (S3 has no describe-by-tag). S3 cannot take
tags in CreateBucket, so create tags the bucket right after (ownership tags first, settings next, then the
`kubeaws.io/config-hash` tag as the completion marker). A crash between CreateBucket and the first tagging
leaves an untagged bucket that the tag search cannot see: when that search finds no bucket of the cluster,
`list_owned` also looks at the deterministic name (`state_bucket_name(cluster, account, region)`: one
GetBucketTagging with ExpectedBucketOwner = this account) and reports a bucket there as owned unless its tags
name another cluster, with the ownership tags rebuilt from the name (`name_tags`). So `delete` removes it
and the next apply adopts it (its missing config hash shows as a diff; the update writes every tag).
Settings are not read back (that would be five Get calls): the config hash stands for them. Called by the
engine through the registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubeaws.aws.errors import already_done, error_code
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, is_owned_by, k8s_cluster_tag, owner_of, tag_dict, tag_list
from kubeaws.errors import OwnershipError
from kubeaws.partition import arn, partition_of
from kubeaws.resources._s3 import NO_BUCKET, cluster_bucket, purge, state_bucket_name
from kubeaws.resources.base import Desired, Diff, Kind, Observed, contains_unknown
from kubeaws.resources.registry import register

__all__ = ["HASH_TAG", "LOGICAL_NAME", "Bucket", "config_hash", "policy_document", "state_bucket_name"]

HASH_TAG = "kubeaws.io/config-hash"
#: The logical name of the cluster's one bucket (model.state builds `Bucket/state`; api.lock_home too).
LOGICAL_NAME = "state"
#: GetBucketTagging answers meaning "no bucket of ours by that name": none, or another account's.
NOT_OURS = (NO_BUCKET, "AccessDenied", "AllAccessDisabled", "PermanentRedirect")
#: Bumped when the kind applies settings differently, so existing buckets get them re-applied.
CONFIG_VERSION = "1"
SETTINGS = ("versioning", "encryption", "public_access_block", "policy", "tls_only")
PUBLIC_ACCESS_KEYS = {"block_public_acls": "BlockPublicAcls", "ignore_public_acls": "IgnorePublicAcls",
                      "block_public_policy": "BlockPublicPolicy",
                      "restrict_public_buckets": "RestrictPublicBuckets"}


def config_hash(props: Mapping[str, Any]) -> str:
    """A short hash of the settings props (and of how this kind applies them)."""
    settings = {k: props.get(k) for k in SETTINGS}
    blob = json.dumps([CONFIG_VERSION, settings], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tls_statement(bucket: str, partition: str = "aws") -> dict[str, Any]:
    bucket_arn = arn(partition, "s3", bucket)
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def policy_document(name: str, props: Mapping[str, Any], partition: str = "aws") -> dict[str, Any] | None:
    """The bucket policy to put: the model's statements, then the TLS-only Deny when `tls_only` (its ARNs in
    the bucket's partition). The same document on AWS and on the local emulator (whose server evaluates the
    Deny statements it can, kubeaws.local.moto_server)."""
    statements = list((props.get("policy") or {}).get("Statement") or [])
    if props.get("tls_only"):
        statements.append(tls_statement(name, partition))
    return {"Version": "2012-10-17", "Statement": statements} if statements else None


def name_tags(cluster: str) -> dict[str, str]:
    """The ownership tags the deterministic name of a cluster's bucket stands for."""
    return {CLUSTER_TAG: cluster, RESOURCE_TAG: f"Bucket/{LOGICAL_NAME}", k8s_cluster_tag(cluster): "owned"}


@register
class Bucket(Kind):
    """The state bucket; `fields` = `name` and `config_hash` (settings are compared through the hash)."""

    kind = "Bucket"
    service = "s3"
    rank = 14
    modes = frozenset({"kubeadm"})
    #: GetResources; with no tagged bucket, GetBucketTagging at the deterministic name (and the account ID
    #: it embeds, when the context has not read it yet).
    list_reads = 3
    immutable = frozenset({"name"})
    refuse_change = frozenset({"name"})

    # -- find --------------------------------------------------------------------------------------
    def observe(self, name: str, tags: dict[str, str]) -> Observed:
        return Observed(self.kind, name, {"name": name, "config_hash": tags.get(HASH_TAG)}, tags,
                        attrs={"name": name})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        """The buckets tagged for the cluster; when there is none, the one at the deterministic name, tagged
        or not (a create interrupted before its tagging, or a tag search lagging behind)."""
        items = ctx.paginate("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                             ResourceTypeFilters=["s3"],
                             TagFilters=[{"Key": CLUSTER_TAG, "Values": [ctx.cluster]}])
        found = []
        for item in items:
            tags = tag_dict(item.get("Tags"))
            if tags.get(CLUSTER_TAG) == ctx.cluster:
                found.append(self.observe(item["ResourceARN"].rsplit(":", 1)[-1], tags))
        if not found:
            by_name = self.find_by_name(ctx)
            found += [by_name] if by_name is not None else []
        return found

    def find_by_name(self, ctx: AwsContext) -> Observed | None:
        """The bucket at the cluster's deterministic name in this account, as owned: its own tags when they
        name the cluster, the ownership tags the name stands for when it has none of ours (the name embeds
        the cluster, account and region: no one else makes it). None when there is no such bucket, it is
        another account's, or its tags name another cluster."""
        name = cluster_bucket(ctx)
        tags = self._tags(ctx, name, expected_owner=ctx.account_id())
        if tags is None or tags.get(CLUSTER_TAG) not in (None, ctx.cluster):
            return None
        if tags.get(CLUSTER_TAG) == ctx.cluster:
            return self.observe(name, tags)
        return self.observe(name, {**tags, **name_tags(ctx.cluster)})

    def _tags(self, ctx: AwsContext, name: str, expected_owner: str | None = None) -> dict[str, str] | None:
        """The bucket's tags ({} if untagged); None when it does not exist or is not ours to read
        (with `expected_owner`: not in that account)."""
        from botocore.exceptions import ClientError
        owner = {"ExpectedBucketOwner": expected_owner} if expected_owner else {}
        try:
            return tag_dict(ctx.call("s3", "get_bucket_tagging", Bucket=name, **owner).get("TagSet"))
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchTagSet":
                return {}
            if code in NOT_OURS:
                return None
            raise

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """A bucket of that name owned by another cluster or another account. An untagged bucket of ours
        with the deterministic name is a create interrupted before tagging: not a conflict, adopted."""
        from botocore.exceptions import ClientError
        name = desired.props.get("name")
        if not isinstance(name, str):
            return None
        try:
            ctx.call("s3", "head_bucket", Bucket=name)
        except ClientError as exc:
            if error_code(exc) in ("404", NO_BUCKET, "NotFound"):
                return None
            return self.observe(name, {})  # 403: the name is taken by another account
        tags = self._tags(ctx, name) or {}
        if tags.get(CLUSTER_TAG) not in (None, ctx.cluster):
            return self.observe(name, tags)
        return None

    # -- compare -----------------------------------------------------------------------------------
    def diff(self, actual: Observed, desired: Desired) -> Diff:
        changes: Diff = {}
        name = desired.props.get("name")
        if contains_unknown(name) or actual.fields.get("name") != name:
            changes["name"] = (actual.fields.get("name"), name)
        have = actual.fields.get("config_hash")
        if contains_unknown({k: desired.props.get(k) for k in SETTINGS}):
            changes["config_hash"] = (have, desired.props.get("policy"))
        elif have != config_hash(desired.props):
            changes["config_hash"] = (have, config_hash(desired.props))
        tag_changes = {k: v for k, v in desired.tags.items() if k != HASH_TAG and actual.tags.get(k) != v}
        if tag_changes:
            changes["tags"] = ({k: actual.tags.get(k) for k in tag_changes}, tag_changes)
        return changes

    # -- change ------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        from botocore.exceptions import ClientError
        name = desired.props["name"]
        # us-east-1 answers CreateBucket with success for a bucket we already own: check ownership first.
        clash = self.find_conflict(ctx, desired)
        if clash is not None:
            owner = owner_of(clash.tags)
            raise OwnershipError(f"S3 bucket {name!r} already exists and belongs to "
                                 + (f"kubeaws cluster {owner!r}" if owner else "another AWS account")
                                 + "; kubeaws derives the name from the cluster name, account and region")
        params: dict[str, Any] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
        if ctx.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        try:
            ctx.call("s3", "create_bucket", **params)
        except ClientError as exc:
            if error_code(exc) == "BucketAlreadyExists":
                raise OwnershipError(f"S3 bucket name {name!r} is taken by another AWS account") from exc
            if not already_done(exc, "CreateBucket"):  # an interrupted create of ours: adopt it
                raise
        tags = {k: v for k, v in desired.tags.items() if k != HASH_TAG}
        self._put_tags(ctx, name, tags, wait=True)  # ownership first: from now on list_owned finds it
        self._configure(ctx, name, desired.props)
        tags[HASH_TAG] = config_hash(desired.props)
        self._put_tags(ctx, name, tags)  # completion marker
        return self.observe(name, tags)

    def _configure(self, ctx: AwsContext, name: str, props: Mapping[str, Any]) -> None:
        """Apply every setting (each call is idempotent: the whole set is re-applied on any change)."""
        pab = props.get("public_access_block") or {}
        ctx.call("s3", "put_public_access_block", Bucket=name, PublicAccessBlockConfiguration={
            aws: bool(pab.get(key, True)) for key, aws in PUBLIC_ACCESS_KEYS.items()})
        ctx.call("s3", "put_bucket_ownership_controls", Bucket=name,
                 OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
        ctx.call("s3", "put_bucket_encryption", Bucket=name, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": props.get("encryption") or "AES256"}}]})
        ctx.call("s3", "put_bucket_versioning", Bucket=name, VersioningConfiguration={
            "Status": "Enabled" if props.get("versioning") else "Suspended"})
        document = policy_document(name, props, partition_of(ctx.region))
        if document is None:
            ctx.call("s3", "delete_bucket_policy", Bucket=name)
        else:
            ctx.call("s3", "put_bucket_policy", Bucket=name, Policy=json.dumps(document))

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "config_hash"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        tags = {**actual.tags, **{k: v for k, v in desired.tags.items() if k != HASH_TAG}}
        if "config_hash" in diff:
            tags.pop(HASH_TAG, None)  # a crash while configuring must show as a diff again
            self._put_tags(ctx, actual.id, tags)
            self._configure(ctx, actual.id, desired.props)
            tags[HASH_TAG] = config_hash(desired.props)
        self._put_tags(ctx, actual.id, tags)
        return self.observe(actual.id, tags)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Every object version and delete marker, then the bucket. Refuses a bucket that is not ours."""
        from botocore.exceptions import ClientError
        if not is_owned_by(actual.tags, ctx.cluster):
            raise OwnershipError(f"refusing to delete S3 bucket {actual.id}: not owned by cluster {ctx.cluster!r}")
        purge(ctx, actual.id)

        def remove() -> None:
            try:
                ctx.call("s3", "delete_bucket", Bucket=actual.id)
            except ClientError as exc:
                if error_code(exc) != NO_BUCKET:
                    raise

        # Objects written concurrently (an etcd backup timer) make it non-empty again: purge and retry.
        def attempt() -> None:
            try:
                remove()
            except ClientError as exc:
                if error_code(exc) == "BucketNotEmpty":
                    purge(ctx, actual.id)
                raise

        retry_on_codes(attempt, {"BucketNotEmpty"}, timeout=ctx.policy.consistency_timeout,
                       what=f"S3 bucket {actual.id} to be empty", policy=ctx.policy)

    # -- tags --------------------------------------------------------------------------------------
    def _put_tags(self, ctx: AwsContext, name: str, tags: Mapping[str, str], wait: bool = False) -> None:
        """PutBucketTagging replaces the whole tag set. Right after CreateBucket the bucket may briefly be
        unknown (NoSuchBucket): retried then."""
        def put() -> Any:
            return ctx.call("s3", "put_bucket_tagging", Bucket=name, Tagging={"TagSet": tag_list(tags)})

        if wait:
            retry_on_codes(put, {NO_BUCKET}, timeout=ctx.policy.consistency_timeout,
                           what=f"S3 bucket {name} to be visible", policy=ctx.policy)
        else:
            put()

    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._put_tags(ctx, resource_id, {**(self._tags(ctx, resource_id) or {}), **tags})

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        current = self._tags(ctx, resource_id) or {}
        left = {k: v for k, v in current.items() if k not in keys}
        if left == current:
            return
        if left:
            self._put_tags(ctx, resource_id, left)
        else:
            ctx.call("s3", "delete_bucket_tagging", Bucket=resource_id)
