"""IAM roles of the cluster's machines (kind `IamRole`): trust policy, inline policies and attached managed
policies, at path `/kubeaws/<cluster>/`.

`list_owned` = ONE paginated `get_account_authorization_details(Filter=["Role"])`, which returns every
role with its inline policies, attached policies and tags, keeping the roles tagged for the cluster. Tags
go in CreateRole; policies follow, so a crash in between shows as a diff on the next plan. A role may be
brought by name or ARN (`get`): it is then only tagged `shared` (IAM TagRole / UntagRole), never changed
otherwise nor deleted. Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import is_already_exists
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, is_owned_by, owner_of, tag_dict, tag_list
from kubeaws.errors import OwnershipError
from kubeaws.resources._iam import NOT_FOUND, document, dumps, ignoring_missing, name_from, while_propagating
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

#: DeleteRole's in-use answers: something still attached (DeleteConflict: IAM is eventually consistent, the
#: detachments just made may not be visible yet), or another change to the role in flight.
IN_USE = frozenset({"DeleteConflict", "ConcurrentModification"})


@register
class IamRole(Kind):
    """An IAM role; `id` is the role name (or, for a brought role, the name or ARN given in the spec)."""

    kind = "IamRole"
    service = "iam"
    rank = 12
    immutable = frozenset({"name", "path"})
    set_fields = frozenset({"managed_policy_arns"})
    supports_brought = True

    def observe(self, role: Mapping[str, Any], inline: dict[str, dict[str, Any]], managed: list[str],
                role_id: str | None = None) -> Observed:
        fields = {"name": role["RoleName"], "path": role.get("Path", "/"),
                  "assume_role_policy": document(role.get("AssumeRolePolicyDocument") or "{}"),
                  "inline_policies": inline, "managed_policy_arns": sorted(managed)}
        return Observed(self.kind, role_id or role["RoleName"], fields, tag_dict(role.get("Tags")),
                        attrs={"arn": role["Arn"], "name": role["RoleName"], "role_id": role.get("RoleId")})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        roles = ctx.paginate("iam", "get_account_authorization_details", "RoleDetailList", Filter=["Role"])
        found = []
        for role in roles:
            if tag_dict(role.get("Tags")).get(CLUSTER_TAG) != ctx.cluster:
                continue
            inline = {p["PolicyName"]: document(p["PolicyDocument"]) for p in role.get("RolePolicyList", [])}
            managed = [p["PolicyArn"] for p in role.get("AttachedManagedPolicies", [])]
            found.append(self.observe(role, inline, managed))
        return found

    def _get_role(self, ctx: AwsContext, name: str) -> dict[str, Any] | None:
        resp = ignoring_missing(lambda: ctx.call("iam", "get_role", RoleName=name))
        return resp["Role"] if resp else None

    def get(self, ctx: AwsContext, ids: list[str]) -> list[Observed]:
        """Brought roles by name or ARN (one GetRole each; only tags and the ARN matter for them)."""
        found = []
        for given in ids:
            role = self._get_role(ctx, name_from(given))
            if role is None or (given.startswith("arn:") and role["Arn"] != given):
                continue
            found.append(self.observe(role, {}, [], role_id=given))
        return found

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        name = desired.props.get("name")
        role = self._get_role(ctx, name) if isinstance(name, str) else None
        if role is None or is_owned_by(tag_dict(role.get("Tags")), ctx.cluster):
            return None
        return self.observe(role, {}, [])

    # -- change ------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        props = desired.props
        try:
            role = ctx.call("iam", "create_role", RoleName=props["name"], Path=props["path"],
                            AssumeRolePolicyDocument=dumps(props["assume_role_policy"]),
                            Description=f"kubeaws cluster {ctx.cluster}", Tags=tag_list(desired.tags))["Role"]
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            role = self._get_role(ctx, props["name"])
            if role is None:
                raise
            tags = tag_dict(role.get("Tags"))
            if not is_owned_by(tags, ctx.cluster):
                who = f"kubeaws cluster {owner_of(tags)!r}" if owner_of(tags) else "someone else"
                raise OwnershipError(f"IAM role {props['name']!r} already exists and belongs to {who}. Delete or "
                                     "rename it, or bring it with iam.controlPlaneRole / iam.nodeRole") from exc
            # Ours already (an earlier create whose answer was lost): reconcile everything below.
            current = self.list_owned_one(ctx, role)
            return self.update(ctx, current, desired, self.diff(current, desired))
        empty = self.observe({**role, "Tags": tag_list(desired.tags)}, {}, [])
        return self.update(ctx, empty, desired, self.diff(empty, desired))

    def list_owned_one(self, ctx: AwsContext, role: Mapping[str, Any]) -> Observed:
        """One role with its inline and attached policies (three calls: only on the adopt path)."""
        name = role["RoleName"]
        inline = {}
        for policy in ctx.paginate("iam", "list_role_policies", "PolicyNames", RoleName=name):
            doc = ctx.call("iam", "get_role_policy", RoleName=name, PolicyName=policy)["PolicyDocument"]
            inline[policy] = document(doc)
        managed = [p["PolicyArn"] for p in ctx.paginate("iam", "list_attached_role_policies", "AttachedPolicies",
                                                         RoleName=name)]
        return self.observe(role, inline, managed)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        name = actual.attrs.get("name") or name_from(actual.id)
        iam = partial(ctx.call, "iam")
        rest = set(diff) - {"tags", "assume_role_policy", "inline_policies", "managed_policy_arns"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        fields = dict(actual.fields)
        if "assume_role_policy" in diff:
            doc = desired.props["assume_role_policy"]
            while_propagating(ctx, lambda: ctx.call("iam", "update_assume_role_policy", RoleName=name,
                                                    PolicyDocument=dumps(doc)), f"IAM role {name}")
            fields["assume_role_policy"] = doc
        if "inline_policies" in diff:
            have: dict[str, Any] = actual.fields.get("inline_policies") or {}
            want: dict[str, Any] = desired.props["inline_policies"] or {}
            for policy, doc in sorted(want.items()):
                if self.canonical("", have.get(policy)) != self.canonical("", doc):
                    while_propagating(ctx, partial(iam, "put_role_policy", RoleName=name, PolicyName=policy,
                                                   PolicyDocument=dumps(doc)), f"IAM role {name}")
            for policy in sorted(set(have) - set(want)):
                ignoring_missing(partial(iam, "delete_role_policy", RoleName=name, PolicyName=policy))
            fields["inline_policies"] = want
        if "managed_policy_arns" in diff:
            have_arns = set(actual.fields.get("managed_policy_arns") or [])
            want_arns = set(desired.props["managed_policy_arns"] or [])
            for arn in sorted(want_arns - have_arns):
                while_propagating(ctx, partial(iam, "attach_role_policy", RoleName=name, PolicyArn=arn),
                                  f"IAM role {name}")
            for arn in sorted(have_arns - want_arns):
                ignoring_missing(partial(iam, "detach_role_policy", RoleName=name, PolicyArn=arn))
            fields["managed_policy_arns"] = sorted(want_arns)
        tags = dict(actual.tags)
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
            tags.update(diff["tags"][1])
        return Observed(self.kind, actual.id, fields, tags, actual.state, dict(actual.attrs))

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Detach managed policies, delete inline ones, leave instance profiles, delete the role. Refuses a
        role this cluster does not own (brought roles only lose their tag, through remove_tags)."""
        if not is_owned_by(actual.tags, ctx.cluster):
            raise OwnershipError(f"refusing to delete IAM role {actual.id}: not owned by cluster {ctx.cluster!r}")
        name = actual.attrs.get("name") or name_from(actual.id)
        iam = partial(ctx.call, "iam")

        def listing(operation: str, key: str) -> list[Any]:
            return ignoring_missing(lambda: ctx.paginate("iam", operation, key, RoleName=name)) or []

        for policy in listing("list_attached_role_policies", "AttachedPolicies"):
            ignoring_missing(partial(iam, "detach_role_policy", RoleName=name, PolicyArn=policy["PolicyArn"]))
        for policy in listing("list_role_policies", "PolicyNames"):
            ignoring_missing(partial(iam, "delete_role_policy", RoleName=name, PolicyName=policy))
        for profile in listing("list_instance_profiles_for_role", "InstanceProfiles"):
            ignoring_missing(partial(iam, "remove_role_from_instance_profile", RoleName=name,
                                     InstanceProfileName=profile["InstanceProfileName"]))
        ignoring_missing(lambda: retry_on_codes(
            lambda: ctx.call("iam", "delete_role", RoleName=name), IN_USE,
            timeout=ctx.policy.consistency_timeout, what=f"IAM role {name} to be detached", policy=ctx.policy))

    # -- tags (IAM, not EC2) -----------------------------------------------------------------------
    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            ctx.call("iam", "tag_role", RoleName=name_from(resource_id), Tags=tag_list(tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        if keys:
            ignoring_missing(lambda: ctx.call("iam", "untag_role", RoleName=name_from(resource_id),
                                              TagKeys=list(keys)))


__all__ = ["NOT_FOUND", "IamRole"]
