"""Bucket, ClusterPki and StateObject kinds against the moto server.

moto evaluates bucket policies crudely: any Deny statement (with or without a Condition) denies every
object request, because moto knows neither the caller's principal nor its condition keys. So the policy
the model really writes (with `tls_only` and the Deny statements) is checked for CONTENT with
get_bucket_policy on a bucket used for nothing else, and the object tests run on a bucket whose Desired has
an allow-only policy and `tls_only=False`."""

from __future__ import annotations

import json
from typing import Any

import pytest

import kubeaws.resources.bucket
import kubeaws.resources.pki
import kubeaws.resources.state_object  # noqa: F401  (registers the kinds until registry.MODULES lists them)
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, owned_tags, tag_dict
from kubeaws.errors import OwnershipError
from kubeaws.model.state import PUBLIC_ACCESS_BLOCK, bucket_policy, state_bucket_name
from kubeaws.pki import ca_cert_hash
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.bucket import HASH_TAG

BUCKET = registry.get("Bucket")
PKI = registry.get("ClusterPki")
OBJECT = registry.get("StateObject")
ACCOUNT = "123456789012"
NAME = state_bucket_name("dev", ACCOUNT, "us-east-1")
CP_ARN = f"arn:aws:iam::{ACCOUNT}:role/kubeaws/dev/dev-control-plane"
NODE_ARN = f"arn:aws:iam::{ACCOUNT}:role/kubeaws/dev/dev-node"


def allow_only(name: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ControlPlane", "Effect": "Allow", "Principal": {"AWS": CP_ARN}, "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]}]}


def bucket_desired(name: str = NAME, *, real_policy: bool = False, versioning: bool = True) -> Desired:
    policy = bucket_policy("dev", ACCOUNT, "us-east-1", CP_ARN, NODE_ARN) if real_policy else allow_only(name)
    return Desired("Bucket", "state", {"name": name, "versioning": versioning, "encryption": "AES256",
                                       "public_access_block": dict(PUBLIC_ACCESS_BLOCK), "policy": policy,
                                       "tls_only": real_policy},
                   tags=owned_tags("dev", "Bucket", "state", "dev-state"))


def only(kind: Any, ctx: AwsContext) -> tuple[Observed, dict[tuple[str, str], int]]:
    with ctx.counting() as log:
        found = kind.list_owned(ctx)
    assert len(found) == 1, found
    return found[0], dict(log.snapshot())


@pytest.fixture
def bucket(ctx: AwsContext) -> str:
    ctx.account_id()  # the plan's sts lookup caches it in the context
    BUCKET.create(ctx, bucket_desired())
    return NAME


def test_bucket_settings_and_real_policy_content(ctx: AwsContext) -> None:
    """The policy read back is the one the kind puts, on AWS and on the emulator alike: Deny statements
    included."""
    desired = bucket_desired(real_policy=True)
    created = BUCKET.create(ctx, desired)
    pab = ctx.call("s3", "get_public_access_block", Bucket=NAME)["PublicAccessBlockConfiguration"]
    assert pab == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                   "RestrictPublicBuckets": True}
    rules = ctx.call("s3", "get_bucket_encryption", Bucket=NAME)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert ctx.call("s3", "get_bucket_versioning", Bucket=NAME)["Status"] == "Enabled"
    owner = ctx.call("s3", "get_bucket_ownership_controls", Bucket=NAME)["OwnershipControls"]["Rules"]
    assert owner == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    doc = json.loads(ctx.call("s3", "get_bucket_policy", Bucket=NAME)["Policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert by_sid["DenyOtherAccounts"]["Condition"] == {"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}
    assert by_sid["NodesReadOnly"]["Principal"] == {"AWS": NODE_ARN}
    assert by_sid["NodesClusterInfoOnly"]["NotResource"] == [f"arn:aws:s3:::{NAME}/cluster/*",
                                                            f"arn:aws:s3:::{NAME}/join/token"]
    assert all(s["Effect"] == "Deny" or s["Principal"] == {"AWS": CP_ARN} for s in doc["Statement"])
    tags = tag_dict(ctx.call("s3", "get_bucket_tagging", Bucket=NAME)["TagSet"])
    assert tags == {**desired.tags, HASH_TAG: created.fields["config_hash"]}


def test_the_real_policy_does_not_lock_kubeaws_out_on_the_emulator(ctx: AwsContext) -> None:
    """moto judges a bucket policy for an unknown caller without request context, so a conditional or
    per-principal Deny would refuse every request; the emulator's server leaves those statements out of its
    judgement only (kubeaws.local.moto_server), while the bucket keeps the whole policy."""
    BUCKET.create(ctx, bucket_desired(real_policy=True))
    doc = json.loads(ctx.call("s3", "get_bucket_policy", Bucket=NAME)["Policy"])
    denies = {s["Sid"] for s in doc["Statement"] if s["Effect"] == "Deny"}
    assert {"DenyInsecureTransport", "DenyOtherAccounts", "NodesReadOnly"} <= denies
    ctx.call("s3", "put_object", Bucket=NAME, Key="cluster/x", Body=b"1")  # not locked out
    assert ctx.call("s3", "get_object", Bucket=NAME, Key="cluster/x")["Body"].read() == b"1"


def test_the_emulator_still_judges_an_unconditional_deny(ctx: AwsContext) -> None:
    """Only what moto cannot judge is left out: a Deny of everyone without conditions still refuses."""
    from botocore.exceptions import ClientError

    BUCKET.create(ctx, bucket_desired())
    ctx.call("s3", "put_bucket_policy", Bucket=NAME, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Nobody", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{NAME}/*"}]}))
    with pytest.raises(ClientError):
        ctx.call("s3", "put_object", Bucket=NAME, Key="cluster/x", Body=b"1")
    ctx.call("s3", "delete_bucket_policy", Bucket=NAME)


def test_bucket_lifecycle(ctx: AwsContext) -> None:
    desired = bucket_desired()
    BUCKET.create(ctx, desired)
    found, calls = only(BUCKET, ctx)
    assert calls == {("resourcegroupstaggingapi", "GetResources"): 1}
    assert found.id == NAME and found.fields["name"] == NAME and found.logical_key == "Bucket/state"
    assert BUCKET.diff(found, desired) == {}

    suspended = bucket_desired(versioning=False)
    diff = BUCKET.diff(found, suspended)
    assert set(diff) == {"config_hash"}
    BUCKET.update(ctx, found, suspended, diff)
    assert ctx.call("s3", "get_bucket_versioning", Bucket=NAME)["Status"] == "Suspended"
    found, _ = only(BUCKET, ctx)
    assert BUCKET.diff(found, suspended) == {} and BUCKET.diff(found, desired) != {}
    BUCKET.update(ctx, found, desired, BUCKET.diff(found, desired))
    found, _ = only(BUCKET, ctx)
    assert BUCKET.diff(found, desired) == {}

    for i in range(3):  # versions and delete markers
        ctx.call("s3", "put_object", Bucket=NAME, Key="etcd-backups/0/x.db", Body=str(i).encode())
    ctx.call("s3", "delete_object", Bucket=NAME, Key="etcd-backups/0/x.db")
    BUCKET.delete(ctx, found)
    BUCKET.delete(ctx, found)
    assert BUCKET.list_owned(ctx) == []
    assert NAME not in [b["Name"] for b in ctx.call("s3", "list_buckets")["Buckets"]]


def test_untagged_bucket_of_ours_is_adopted_others_refused(ctx: AwsContext) -> None:
    ctx.call("s3", "create_bucket", Bucket=NAME)  # a create interrupted before its tags
    desired = bucket_desired()
    assert BUCKET.find_conflict(ctx, desired) is None
    BUCKET.create(ctx, desired)
    found, _ = only(BUCKET, ctx)
    assert BUCKET.diff(found, desired) == {}
    ctx.call("s3", "create_bucket", Bucket="kubeaws-dev-other")
    ctx.call("s3", "put_bucket_tagging", Bucket="kubeaws-dev-other",
             Tagging={"TagSet": [{"Key": CLUSTER_TAG, "Value": "prod"}]})
    other = bucket_desired("kubeaws-dev-other")
    assert BUCKET.find_conflict(ctx, other) is not None
    with pytest.raises(OwnershipError):
        BUCKET.create(ctx, other)


def pki_desired(bucket: str) -> Desired:
    return Desired("ClusterPki", "main", {"bucket": bucket, "prefix": "pki/"},
                   tags=owned_tags("dev", "ClusterPki", "main", "dev-main"))


def test_pki_generated_once_and_never_again(ctx: AwsContext, bucket: str) -> None:
    assert PKI.list_owned(ctx) == []
    desired = pki_desired(bucket)
    created = PKI.create(ctx, desired)
    found, calls = only(PKI, ctx)
    assert calls == {("s3", "ListObjectsV2"): 1}
    assert found.fields == desired.props and found.logical_key == "ClusterPki/main"
    assert PKI.diff(found, desired) == {}
    ca = ctx.call("s3", "get_object", Bucket=bucket, Key="pki/ca.crt")
    assert ca["ServerSideEncryption"] == "AES256"
    ca_pem = ca["Body"].read()
    assert found.attr("ca_cert_hash") == created.attr("ca_cert_hash") == ca_cert_hash(ca_pem)
    keys = {o["Key"] for o in ctx.call("s3", "list_objects_v2", Bucket=bucket, Prefix="pki/")["Contents"]}
    assert {"pki/ca.key", "pki/etcd/ca.crt", "pki/front-proxy-ca.key", "pki/sa.pub", "pki/encryption-key"} <= keys

    again = PKI.create(ctx, desired)  # e.g. a lost answer: adopts, never regenerates
    assert again.attr("ca_cert_hash") == ca_cert_hash(ca_pem)
    assert ctx.call("s3", "get_object", Bucket=bucket, Key="pki/ca.crt")["Body"].read() == ca_pem
    assert len(ctx.call("s3", "list_object_versions", Bucket=bucket, Prefix="pki/ca.crt")["Versions"]) == 1

    PKI.delete(ctx, found)
    assert PKI.list_owned(ctx) == []
    assert "Contents" not in ctx.call("s3", "list_objects_v2", Bucket=bucket, Prefix="pki/")


def test_state_objects(ctx: AwsContext, bucket: str) -> None:
    desired = Desired("StateObject", "cluster/cluster.json",
                      {"bucket": bucket, "key": "cluster/cluster.json", "content": '{"port": 6443}'})
    OBJECT.create(ctx, desired)
    found, calls = only(OBJECT, ctx)
    # cluster.json's body is read too: its kubernetesVersion guards version moves (tests/test_upgrade.py)
    assert calls == {("s3", "ListObjectsV2"): 1, ("s3", "GetObject"): 1}
    assert found.logical_key == "StateObject/cluster/cluster.json"
    assert OBJECT.diff(found, desired) == {}
    changed = Desired("StateObject", desired.name, {**desired.props, "content": '{"port": 443}'})
    diff = OBJECT.diff(found, changed)
    assert set(diff) == {"content"}
    OBJECT.update(ctx, found, changed, diff)
    found, _ = only(OBJECT, ctx)
    assert OBJECT.diff(found, changed) == {}
    body = ctx.call("s3", "get_object", Bucket=bucket, Key="cluster/cluster.json")["Body"].read()
    assert body == b'{"port": 443}'
    OBJECT.delete(ctx, found)
    OBJECT.delete(ctx, found)
    assert OBJECT.list_owned(ctx) == []
    assert ctx.call("s3", "list_object_versions", Bucket=bucket, Prefix="cluster/").get("Versions") is None


def test_objects_of_a_missing_bucket_are_simply_absent(ctx: AwsContext) -> None:
    assert PKI.list_owned(ctx) == [] and OBJECT.list_owned(ctx) == []
