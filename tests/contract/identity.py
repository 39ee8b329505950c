"""Contract scenarios of the IAM, S3 and KMS kinds: IamRole, InstanceProfile, Bucket, ClusterPki, StateObject,
KmsKey. Prerequisites (a role, the cluster's bucket) are made with plain calls, untagged.

S3's CreateBucket takes no tags: the Bucket scenario says so, and the tests check the tagging call comes
right after it (and that the bucket is found again by its tags). Objects in the bucket (ClusterPki,
StateObject) carry no tags at all: ownership is the cluster's own bucket.

Used by tests/contract/scenarios.py.
"""

from __future__ import annotations

import json
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.resources._s3 import cluster_bucket, state_bucket_name
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.bucket import HASH_TAG
from kubeaws.resources.pki import PKI_NAME
from tests.contract.harness import Scenario, tags_for

TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
MANAGED = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
PUBLIC_ACCESS_BLOCK = {"block_public_acls": True, "ignore_public_acls": True, "block_public_policy": True,
                       "restrict_public_buckets": True}


def role(ctx: AwsContext, name: str) -> dict[str, Any]:
    """A raw IAM role trusting EC2 (and EKS): RoleName, Arn..."""
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "eks.amazonaws.com"]},
         "Action": "sts:AssumeRole"}]}
    made: dict[str, Any] = ctx.call("iam", "create_role", RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return dict(made["Role"])


def _iam_role(ctx: AwsContext) -> Desired:
    """With an inline and a managed policy: its delete removes both first."""
    props = {"name": f"{ctx.cluster}-nodes", "path": f"/kubeaws/{ctx.cluster}/", "assume_role_policy": TRUST,
             "inline_policies": {"state": {"Version": "2012-10-17", "Statement": [
                 {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}]}},
             "managed_policy_arns": [MANAGED]}
    return Desired("IamRole", "nodes", props, tags=tags_for(ctx, "IamRole", "nodes"))


def _in_a_profile(ctx: AwsContext, found: Observed) -> None:
    """An instance profile holding the role: its delete takes the role out first."""
    name = f"{ctx.cluster}-raw"
    ctx.call("iam", "create_instance_profile", InstanceProfileName=name)
    ctx.call("iam", "add_role_to_instance_profile", InstanceProfileName=name, RoleName=found.fields["name"])


def _instance_profile(ctx: AwsContext) -> Desired:
    props = {"name": f"{ctx.cluster}-nodes", "path": f"/kubeaws/{ctx.cluster}/",
             "role_name": role(ctx, f"{ctx.cluster}-raw")["RoleName"]}
    return Desired("InstanceProfile", "nodes", props, tags=tags_for(ctx, "InstanceProfile", "nodes"))


def _bucket(ctx: AwsContext) -> Desired:
    props = {"name": state_bucket_name(ctx.cluster, ctx.account_id(), ctx.region), "versioning": True,
             "encryption": "AES256", "public_access_block": dict(PUBLIC_ACCESS_BLOCK), "policy": None,
             "tls_only": True}
    return Desired("Bucket", "state", props, tags=tags_for(ctx, "Bucket", "state"))


def _with_an_object(ctx: AwsContext, found: Observed) -> None:
    """A backup in the bucket: its delete empties it first."""
    ctx.call("s3", "put_object", Bucket=found.id, Key="backups/etcd.db", Body=b"snapshot")


def _raw_bucket(ctx: AwsContext) -> str:
    name = cluster_bucket(ctx)
    ctx.call("s3", "create_bucket", Bucket=name)
    ctx.call("s3", "put_bucket_versioning", Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _cluster_pki(ctx: AwsContext) -> Desired:
    return Desired("ClusterPki", PKI_NAME, {"bucket": _raw_bucket(ctx), "prefix": "pki/"},
                   tags=tags_for(ctx, "ClusterPki", PKI_NAME))


def _state_object(ctx: AwsContext) -> Desired:
    key = "cluster/cluster.json"
    return Desired("StateObject", key, {"bucket": _raw_bucket(ctx), "key": key, "content": '{"endpoint": "x"}'},
                   tags=tags_for(ctx, "StateObject", key))


def _kms_key(ctx: AwsContext) -> Desired:
    props = {"description": f"kubeaws {ctx.cluster} secrets", "alias": f"alias/kubeaws/{ctx.cluster}", "policy": None}
    return Desired("KmsKey", "secrets", props, tags=tags_for(ctx, "KmsKey", "secrets"))


OBJECTS = "objects carry no tags: ownership is the cluster's own bucket, found by its deterministic name"

IDENTITY = [
    Scenario("IamRole", _iam_role, changes={"name": {"name": "other"}, "path": {"path": "/other/"}},
             delete_calls=(("iam", "DetachRolePolicy"), ("iam", "DeleteRolePolicy"),
                           ("iam", "RemoveRoleFromInstanceProfile"), ("iam", "DeleteRole")),
             before_delete=_in_a_profile, create_call=("iam", "CreateRole")),
    Scenario("InstanceProfile", _instance_profile, changes={"name": {"name": "other"}, "path": {"path": "/other/"}},
             delete_calls=(("iam", "RemoveRoleFromInstanceProfile"), ("iam", "DeleteInstanceProfile")),
             create_call=("iam", "CreateInstanceProfile")),
    Scenario("Bucket", _bucket, changes={"name": {"name": "kubeaws-other-0123456789"}},
             delete_calls=(("s3", "DeleteObjects"), ("s3", "DeleteBucket")), before_delete=_with_an_object,
             create_call=("s3", "CreateBucket"), markers=frozenset({HASH_TAG}),
             tags_after_create="S3 CreateBucket takes no tags (PutBucketTagging is the only way to tag a bucket)"),
    Scenario("ClusterPki", _cluster_pki, changes={"bucket": {"bucket": "other"}, "prefix": {"prefix": "other/"}},
             delete_calls=(("s3", "DeleteObjects"),), create_call=None, untagged=OBJECTS),
    Scenario("StateObject", _state_object,
             changes={"bucket": {"bucket": "other"}, "key": {"key": "cluster/other.json"}},
             delete_calls=(("s3", "DeleteObjects"),), create_call=None, untagged=OBJECTS),
    Scenario("KmsKey", _kms_key, changes={"alias": {"alias": "alias/kubeaws/other"}},
             delete_calls=(("kms", "ScheduleKeyDeletion"), ("kms", "DeleteAlias")), create_call=("kms", "CreateKey")),
]
