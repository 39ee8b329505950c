"""A crash between a create and what makes the resource findable (issue #10 item 3, docs/reliability.md: "A crash
between create and tag").

Every kind puts its tags in its create call (tests/test_engine.py checks EC2's; the others pass `Tags`/`tags`
to CreateRole, CreateInstanceProfile, CreateOpenIDConnectProvider, CreateLoadBalancer, CreateTargetGroup,
CreateListener, CreateAutoScalingGroup, CreateKey and the EKS creates), except two:

- `Bucket`: S3 CreateBucket takes no tags; PutBucketTagging follows. A process killed in between leaves an
  untagged state bucket, found by its deterministic name. Killed for real: tests/crash_child.py applies the
  HA-shaped spec with one worker and SIGKILLs itself right after the CreateBucket answer (its position is
  measured by a complete run). The lock's own creation of the bucket (api.lock_home, before any plan) is
  cut with a botocore hook raising a BaseException nothing in kubeaws catches, at PutBucketTagging.
- `KmsKey`: CreateKey carries the tags, but the key was found by its alias only, made by CreateAlias after.
  Cut the same way at CreateAlias during an EKS apply (moto's EKS gaps answered by tests/fake_aws.FakeEks).

Each case is followed either by a delete, which must leave nothing in any service (EC2 and the rest read with
plain describes, tagged or not; KMS keys may only be pending deletion), or by an apply, which must adopt what
the crash left and converge (nothing pending, nothing twice).
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.model import build
from kubeaws.resources import registry
from kubeaws.resources._s3 import cluster_bucket
from kubeaws.resources.bucket import HASH_TAG, LOGICAL_NAME
from tests.conftest import make_ctx
from tests.crash_child import ha_spec
from tests.fake_aws import FakeEks
from tests.helpers import make_spec
from tests.test_faults import inventory, run_child

EKS_SPEC = make_spec(mode="eks", network={"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
                     access={"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
                     nodeGroups=[{"name": "general", "instanceTypes": ["m5.large"],
                                  "size": {"min": 1, "desired": 1, "max": 2}}])


class Killed(BaseException):
    """The process dying: a BaseException, so no `except Exception` in kubeaws runs anything after it."""


def kill_at(operation: str) -> Any:
    def handler(model: Any, **_: Any) -> None:
        if model.name == operation:
            raise Killed(operation)
    return handler


def bucket_tags(ctx: AwsContext) -> dict[str, str] | None:
    """The state bucket's tags; None when there is no bucket."""
    try:
        tag_set = ctx.call("s3", "get_bucket_tagging", Bucket=cluster_bucket(ctx))["TagSet"]
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "NoSuchTagSet":
            return {}
        if code == "NoSuchBucket":
            return None
        raise
    return {t["Key"]: t["Value"] for t in tag_set}


def cluster_keys(ctx: AwsContext, pending_too: bool = False) -> list[str]:
    """The KMS keys tagged for the cluster (a key has no name; moto makes untagged ones of its own, e.g. for
    encrypted volumes), without those pending deletion unless `pending_too`."""
    keys = []
    for key in ctx.call("kms", "list_keys")["Keys"]:
        tags = {t["TagKey"]: t["TagValue"] for t in ctx.call("kms", "list_resource_tags", KeyId=key["KeyId"])["Tags"]}
        state = ctx.call("kms", "describe_key", KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
        if tags.get(CLUSTER_TAG) == ctx.cluster and (pending_too or state != "PendingDeletion"):
            keys.append(key["KeyId"])
    return keys


def kms_left(ctx: AwsContext) -> list[str]:
    """The cluster's KMS keys not pending deletion, and its aliases."""
    aliases = [a["AliasName"] for a in ctx.call("kms", "list_aliases")["Aliases"]
               if a["AliasName"].startswith(f"alias/kubeaws/{ctx.cluster}")]
    return cluster_keys(ctx) + aliases


def nothing_left(ctx: AwsContext, before: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """What exists in any service for the cluster (empty when nothing): EC2, ELBv2, IAM and S3 by name, path
    or anything new since `before` (tagged or not, tests/test_faults.inventory), whatever carries the cluster's
    tag, KMS keys not pending deletion and aliases, EKS clusters, OIDC providers."""
    was = before or {}
    found: dict[str, Any] = {kind: ids - was.get(kind, set()) for kind, ids in inventory(ctx).items()
                             if ids - was.get(kind, set())}
    tagged = ctx.call("resourcegroupstaggingapi", "get_resources",
                      TagFilters=[{"Key": CLUSTER_TAG, "Values": [ctx.cluster]}])["ResourceTagMappingList"]
    # Keys stay (pending deletion), terminated instances and deleted NAT gateways a while: their live ones
    # are counted above.
    gone = (":kms:", ":instance/", ":natgateway/")
    live = [r["ResourceARN"] for r in tagged if not any(part in r["ResourceARN"] for part in gone)]
    if live:
        found["tagged"] = live
    if kms_left(ctx):
        found["kms"] = kms_left(ctx)
    if ctx.cluster in ctx.call("eks", "list_clusters")["clusters"]:
        found["eks"] = ctx.cluster
    providers = [p["Arn"] for p in ctx.call("iam", "list_open_id_connect_providers")["OpenIDConnectProviderList"]]
    mine = [arn for arn in providers if {t["Key"]: t["Value"] for t in ctx.call(
        "iam", "get_open_id_connect_provider", OpenIDConnectProviderArn=arn).get("Tags", [])}.get(CLUSTER_TAG)
        == ctx.cluster]
    if mine:
        found["oidc"] = mine
    return found


# -- Bucket: a real SIGKILL right after CreateBucket ----------------------------------------------------
@pytest.fixture(scope="module")
def kill_point(moto_server: str) -> int:
    """k such that the k-th mutating call of the HA apply (one worker) is CreateBucket: measured by a
    complete run (its cluster is deleted again), not assumed."""
    full = run_child(moto_server, "cutlen", 0)
    assert full.returncode == 0, full.stderr[-3000:]
    operations: list[str] = json.loads(full.stdout.strip().splitlines()[-1])["operations"]
    assert api.delete(ha_spec("cutlen"), make_ctx(moto_server, "cutlen")).ok
    k = operations.index("CreateBucket") + 1
    assert operations[k] == "PutBucketTagging"  # the next call is the tagging the kill prevents
    return k


def killed_after_create_bucket(moto_server: str, kill_point: int, cluster: str) -> AwsContext:
    """`cluster`'s HA apply, SIGKILLed right after CreateBucket was answered: the bucket exists, untagged.
    Each test has a cluster of its own on the worker's moto server."""
    killed = run_child(moto_server, cluster, kill_point)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    assert f"killed after mutating call {kill_point}: CreateBucket\n" in killed.stderr
    ctx = make_ctx(moto_server, cluster)
    assert bucket_tags(ctx) == {}  # untagged: invisible to a search by tag
    return ctx


def test_delete_after_a_kill_before_the_bucket_is_tagged(moto_server: str, kill_point: int) -> None:
    before = inventory(make_ctx(moto_server, "cutdel"))
    ctx = killed_after_create_bucket(moto_server, kill_point, "cutdel")
    status = api.status(ha_spec("cutdel"), ctx, every_kind=True)
    assert [o.id for o in status.observation.owned["Bucket"]] == [cluster_bucket(ctx)]
    deleted = api.delete(ha_spec("cutdel"), ctx)
    assert deleted.ok, [(e.key, e.error) for e in deleted.failed]
    assert ("Bucket", "done") in {(e.kind, e.state) for e in deleted.events}
    assert bucket_tags(ctx) is None
    assert nothing_left(ctx, before) == {}
    assert all(not kind.list_owned(ctx) for kind in registry.kinds().values())


def test_apply_after_a_kill_before_the_bucket_is_tagged(moto_server: str, kill_point: int) -> None:
    before = inventory(make_ctx(moto_server, "cutapp"))
    ctx, spec = killed_after_create_bucket(moto_server, kill_point, "cutapp"), ha_spec("cutapp")
    again = api.apply(spec, ctx)
    assert again.ok, [(e.key, e.error) for e in again.failed + again.skipped]
    assert {(e.kind, e.action) for e in again.events if e.kind == "Bucket"} == {("Bucket", "update")}  # adopted
    assert api.plan(spec, ctx).pending == 0
    tags = bucket_tags(ctx) or {}
    assert tags[CLUSTER_TAG] == "cutapp" and tags[RESOURCE_TAG] == f"Bucket/{LOGICAL_NAME}" and HASH_TAG in tags
    graph = build(spec)
    made = {kind: len(ids - before[kind]) for kind, ids in inventory(ctx).items()}
    assert made == {kind: len(graph.of_kind(kind)) for kind in made}  # nothing twice
    assert api.delete(spec, ctx).ok and nothing_left(ctx, before) == {}


# -- Bucket: the lock's home, cut before its tagging ---------------------------------------------------------
def test_delete_after_the_lock_home_was_cut_before_tagging(ctx: AwsContext) -> None:
    """`apply` makes the state bucket first, for its lock; cut there, the next `delete` finds and removes it."""
    spec, before = make_spec(), inventory(ctx)  # moto's default VPC and subnets
    ctx.add_hook("before-call.s3.PutBucketTagging", kill_at("PutBucketTagging"))
    with pytest.raises(Killed):
        api.lock_home(spec, ctx, create=True)
    fresh = AwsContext(ctx.settings, cluster="dev", policy=ctx.policy)  # a new process: no cut
    assert bucket_tags(fresh) == {}
    assert api.lock_home(spec, fresh, create=False) == cluster_bucket(fresh)  # the lock can live there
    deleted = api.delete(spec, fresh)
    assert deleted.ok and [e.kind for e in deleted.events if e.state == "done"] == ["Bucket"]
    assert bucket_tags(fresh) is None and nothing_left(fresh, before) == {}


def test_an_untagged_bucket_of_another_cluster_or_account_is_not_ours(ctx: AwsContext) -> None:
    """Found by name only when the name is this cluster's and its tags, if any, name no other cluster."""
    name = cluster_bucket(ctx)
    ctx.call("s3", "create_bucket", Bucket=name)
    ctx.call("s3", "put_bucket_tagging", Bucket=name, Tagging={"TagSet": [{"Key": CLUSTER_TAG, "Value": "other"}]})
    assert registry.get("Bucket").list_owned(ctx) == []
    other = AwsContext(ctx.settings, cluster="devx")  # another cluster: another name
    ctx.call("s3", "delete_bucket_tagging", Bucket=name)
    assert registry.get("Bucket").list_owned(other) == []
    assert [o.id for o in registry.get("Bucket").list_owned(ctx)] == [name]


# -- KmsKey: cut between CreateKey (tagged) and CreateAlias --------------------------------------------------
def cut_eks_apply_at_create_alias(ctx: AwsContext) -> AwsContext:
    """An EKS apply cut at CreateAlias: the key exists, tagged, with no alias. Returns a context without the cut."""
    FakeEks().install(ctx)
    ctx.add_hook("before-call.kms.CreateAlias", kill_at("CreateAlias"))
    with pytest.raises(Killed):
        api.apply(EKS_SPEC, ctx, max_workers=1)
    fresh = AwsContext(ctx.settings, cluster="dev", policy=ctx.policy)  # a new process: no cut
    FakeEks().install(fresh)
    keys = cluster_keys(fresh)
    assert len(keys) == 1 and not fresh.call("kms", "list_aliases", KeyId=keys[0])["Aliases"]
    return fresh


def test_delete_after_a_cut_before_the_key_alias(ctx: AwsContext) -> None:
    before = inventory(ctx)
    fresh = cut_eks_apply_at_create_alias(ctx)
    deleted = api.delete(EKS_SPEC, fresh)
    assert deleted.ok, [(e.key, e.error) for e in deleted.failed]
    assert ("KmsKey", "done") in {(e.kind, e.state) for e in deleted.events}
    assert nothing_left(fresh, before) == {}
    assert all(not kind.list_owned(fresh) for kind in registry.kinds().values())


def test_apply_after_a_cut_before_the_key_alias(ctx: AwsContext) -> None:
    fresh = cut_eks_apply_at_create_alias(ctx)
    again = api.apply(EKS_SPEC, fresh)
    assert again.ok, [(e.key, e.error) for e in again.failed + again.skipped]
    assert {(e.kind, e.action) for e in again.events if e.kind == "KmsKey"} == {("KmsKey", "update")}  # adopted
    assert api.plan(EKS_SPEC, fresh).pending == 0
    keys = cluster_keys(fresh)
    assert len(keys) == 1  # no second key
    assert [a["AliasName"] for a in fresh.call("kms", "list_aliases", KeyId=keys[0])["Aliases"]] == [
        "alias/kubeaws/dev"]
