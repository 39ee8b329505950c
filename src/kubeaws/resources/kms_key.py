"""The KMS key encrypting the EKS cluster's Kubernetes secrets (kind `KmsKey`, docs/eks.md), when
`eks.encryption.enabled` and no `kmsKeyArn` is brought. id = the key ID; attrs `arn`, `alias`.

- The alias (`alias/kubeaws/<cluster>`) names the key: `list_owned` = ListAliases (one paginated call),
  keeping the aliases `alias/kubeaws/<cluster>` and `alias/kubeaws/<cluster>/...`, then for each key
  DescribeKey (ARN, state, description), ListResourceTags and GetKeyPolicy: 4 reads for the one key; and
  one `resourcegroupstaggingapi.get_resources` for the keys tagged for the cluster that no alias names
  (read the same way, `alias` None; those pending deletion left out: delete is done with them).
- create: CreateKey with its tags and policy (`policy` None = `root_policy`: the account root may do
  everything, so IAM policies govern the key), then CreateAlias. KMS has no client token: a crash between
  the two leaves a tagged key without alias, found by its tags (above): delete schedules its deletion, and
  the next apply adopts it and gives it its alias (diff `attach_alias`, not a refused `alias` change).
  An alias left on a key of ours pending deletion is moved to the new key.
- update: description, policy, tags. A new alias is refused: the EKS cluster's encryption key can never
  change, and a replacement would schedule the deletion of the key its secrets are encrypted with.
- delete: ScheduleKeyDeletion (7 days: the deletion can still be cancelled), then DeleteAlias of the
  aliases still pointing to it. A key pending deletion is `PendingDeletion` (gone for the planner).

Called by the engine through the registry; `root_policy` also by model builders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code, is_already_exists
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, is_owned_by
from kubeaws.errors import OwnershipError
from kubeaws.partition import partition_of
from kubeaws.resources._ec2 import ignoring
from kubeaws.resources._iam import document, dumps
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

NOT_FOUND = ("NotFoundException",)
PENDING_WINDOW_DAYS = 7


def root_policy(account_id: str, region: str = "us-east-1") -> dict[str, Any]:
    """The key policy allowing the account root every KMS action (IAM policies then grant the rest)."""
    return {"Version": "2012-10-17", "Id": "kubeaws", "Statement": [
        {"Sid": "EnableIamPolicies", "Effect": "Allow",
         "Principal": {"AWS": f"arn:{partition_of(region)}:iam::{account_id}:root"},
         "Action": "kms:*", "Resource": "*"}]}


def kms_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())]


@register
class KmsKey(Kind):
    """A symmetric KMS key found by its alias."""

    kind = "KmsKey"
    service = "kms"
    rank = 11
    modes = frozenset({"eks"})
    refuse_change = frozenset({"alias"})
    gone_states = frozenset({"PendingDeletion", "PendingReplicaDeletion"})
    list_reads = 5  # ListAliases + DescribeKey + ListResourceTags + GetKeyPolicy + GetResources (tagged keys)

    def is_ours(self, ctx: AwsContext, alias: str) -> bool:
        mine = f"alias/kubeaws/{ctx.cluster}"
        return alias == mine or alias.startswith(mine + "/")

    def _read(self, ctx: AwsContext, key_id: str, alias: str | None) -> Observed | None:
        meta = ignoring(lambda: ctx.call("kms", "describe_key", KeyId=key_id)["KeyMetadata"], NOT_FOUND)
        if meta is None:
            return None
        tags = {t["TagKey"]: t["TagValue"] for t in ctx.paginate("kms", "list_resource_tags", "Tags", KeyId=key_id)}
        policy = ctx.call("kms", "get_key_policy", KeyId=key_id, PolicyName="default")["Policy"]
        fields = {"description": meta.get("Description", ""), "alias": alias, "policy": document(policy)}
        attrs = {"arn": meta["Arn"], "alias": alias, "state": meta.get("KeyState")}
        return Observed(self.kind, key_id, fields, tags, str(meta.get("KeyState", "")), attrs)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        aliases = ctx.paginate("kms", "list_aliases", "Aliases")
        found = [self._read(ctx, a["TargetKeyId"], a["AliasName"]) for a in aliases
                 if a.get("TargetKeyId") and self.is_ours(ctx, a["AliasName"])]
        seen = {o.id for o in found if o is not None}
        tagged = ctx.paginate("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                              ResourceTypeFilters=["kms:key"],
                              TagFilters=[{"Key": CLUSTER_TAG, "Values": [ctx.cluster]}])
        for item in tagged:  # keys without alias: a create interrupted between CreateKey and CreateAlias
            key_id = item["ResourceARN"].rsplit("/", 1)[-1]
            if key_id not in seen:
                unnamed = self._read(ctx, key_id, None)
                found.append(unnamed if unnamed is None or unnamed.state not in self.gone_states else None)
        return self.owned_only(ctx, [o for o in found if o is not None])

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """The base diff; `policy` None (the root policy) is not compared. A key without alias (its create
        stopped before CreateAlias) shows `attach_alias`, which update does, instead of a refused `alias`."""
        skip = {"policy"} if desired.props.get("policy") is None else set()
        diff = super().diff(actual, replace(desired, create_only=desired.create_only | skip))
        if "alias" in diff and actual.fields.get("alias") is None:
            diff["attach_alias"] = diff.pop("alias")
        return diff

    # -- change --------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        policy = p.get("policy") or root_policy(ctx.account_id(), ctx.region)
        meta = ctx.call("kms", "create_key", Description=p.get("description") or "", Policy=dumps(policy),
                        KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT",
                        Tags=kms_tags(desired.tags))["KeyMetadata"]
        key_id, alias = str(meta["KeyId"]), str(p["alias"])
        self._attach_alias(ctx, alias, key_id)
        fields = {"description": p.get("description") or "", "alias": alias, "policy": policy}
        return Observed(self.kind, key_id, fields, dict(desired.tags), str(meta.get("KeyState", "Enabled")),
                        {"arn": meta["Arn"], "alias": alias, "state": meta.get("KeyState")})

    def _attach_alias(self, ctx: AwsContext, alias: str, key_id: str) -> None:
        from botocore.exceptions import ClientError
        try:
            ctx.call("kms", "create_alias", AliasName=alias, TargetKeyId=key_id)
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            self._take_alias(ctx, alias, key_id, exc)

    def _take_alias(self, ctx: AwsContext, alias: str, key_id: str, exc: ClientError) -> None:
        """Move `alias` to the new key when it points to a key of ours pending deletion; nothing to do when it
        already names the new key; refuse otherwise."""
        target = next((a.get("TargetKeyId") for a in ctx.paginate("kms", "list_aliases", "Aliases")
                       if a["AliasName"] == alias), None)
        if target == key_id:
            return  # already as wanted: a repeated CreateAlias whose first answer was lost
        old = self._read(ctx, str(target), alias) if target else None
        if old is None or not is_owned_by(old.tags, ctx.cluster) or old.state not in self.gone_states:
            ctx.call("kms", "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=PENDING_WINDOW_DAYS)
            raise OwnershipError(f"KMS alias {alias} already names key {target}, which kubeaws cluster "
                                 f"{ctx.cluster!r} does not own or still uses") from exc
        ctx.call("kms", "update_alias", AliasName=alias, TargetKeyId=key_id)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "description", "policy", "attach_alias"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p = desired.props
        if "attach_alias" in diff:
            self._attach_alias(ctx, str(p["alias"]), actual.id)
        if "description" in diff:
            ctx.call("kms", "update_key_description", KeyId=actual.id, Description=p.get("description") or "")
        if "policy" in diff:
            ctx.call("kms", "put_key_policy", KeyId=actual.id, PolicyName="default", Policy=dumps(p["policy"]))
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
        fields = {**actual.fields, **{k: p[k] for k in diff if k in p}}
        if "attach_alias" in diff:
            fields["alias"] = p["alias"]
        return replace(actual, fields=fields, tags={**actual.tags, **desired.tags})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Schedule the key's deletion (7 days), then delete the aliases still naming it."""
        from botocore.exceptions import ClientError
        try:
            ctx.call("kms", "schedule_key_deletion", KeyId=actual.id, PendingWindowInDays=PENDING_WINDOW_DAYS)
        except ClientError as exc:  # already pending deletion, or gone
            if error_code(exc) not in ("KMSInvalidStateException", *NOT_FOUND):
                raise
        aliases = ignoring(lambda: ctx.paginate("kms", "list_aliases", "Aliases", KeyId=actual.id), NOT_FOUND)
        for alias in aliases or []:
            if self.is_ours(ctx, alias["AliasName"]):
                ignoring(partial(ctx.call, "kms", "delete_alias", AliasName=alias["AliasName"]), NOT_FOUND)

    # -- tags (KMS) ----------------------------------------------------------------------------------
    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            ctx.call("kms", "tag_resource", KeyId=resource_id, Tags=kms_tags(tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        if keys:
            ignoring(lambda: ctx.call("kms", "untag_resource", KeyId=resource_id, TagKeys=list(keys)), NOT_FOUND)
