"""EC2 instance profiles wrapping the cluster's roles (kind `InstanceProfile`), at path `/kubeaws/<cluster>/`.

`list_owned` = ONE paginated `list_instance_profiles(PathPrefix=/kubeaws/<cluster>/)`. IAM listings return
no tags, so ownership comes from the path and the logical name from the profile name, which must be
`<cluster>-<logical name>` (`profile_name`): the kind rebuilds the ownership tags from those and does not
diff tags (they are still written by CreateInstanceProfile). create = CreateInstanceProfile (tags) +
AddRoleToInstanceProfile; update swaps the role.

A brought role's profile (`iam.nodeRole` / `iam.controlPlaneRole`): the model brings `role:<role name or
ARN>` (`role_profile_id`) with an owned profile as its `fallback`. `get` (read-only, ONE
ListInstanceProfilesForRole per role) answers with the role's own profile when it has one that no kubeaws
cluster made (path outside `/kubeaws/`; the one named like the role first, else the first by name): it is
then used as it is, never changed, tagged nor deleted, and the plan says so in its notes. It answers nothing
when the role has none, or when it is already in this cluster's profile (made before, by kubeaws: kept, so
that a cluster made by an earlier kubeaws does not switch profiles); the planner then plans the fallback.

A new profile takes a few seconds to be usable by EC2 ("Invalid IAM Instance Profile"): kinds that launch
instances retry `is_propagation_error` failures, or call `wait_for_instance_profile` first.
Called by the engine through the registry, and by the compute kinds for the propagation helpers.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from kubeaws.aws.errors import already_done, error_code, is_already_exists
from kubeaws.aws.retry import retry_on_codes, wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, k8s_cluster_tag, tag_list
from kubeaws.errors import OwnershipError
from kubeaws.resources._iam import NOT_FOUND, cluster_path, ignoring_missing, name_from, while_propagating
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

#: Prefix of a brought profile's ID: `role:<role name or ARN>`, the profile the role is in.
ROLE_PROFILE = "role:"
#: IAM path prefix of everything kubeaws makes (`/kubeaws/<cluster>/`).
KUBEAWS_PATH = "/kubeaws/"


def profile_name(cluster: str, logical: str) -> str:
    """The instance profile (and role) name for a logical name: `<cluster>-<logical>`."""
    return f"{cluster}-{logical}"


def role_profile_id(role: str) -> str:
    """The brought ID of the instance profile a brought role (name or ARN) is in."""
    return f"{ROLE_PROFILE}{role}"


def pick_role_profile(cluster: str, role: str, profiles: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Which of the role's profiles (ListInstanceProfilesForRole) the cluster uses as brought: None when one
    is this cluster's own (kept) or when none was made outside kubeaws; else the one named like the role (the
    console's convention), else the first by name."""
    if any(p.get("Path") == cluster_path(cluster) for p in profiles):
        return None
    theirs = sorted((p for p in profiles if not str(p.get("Path", "/")).startswith(KUBEAWS_PATH)),
                    key=lambda p: (p["InstanceProfileName"] != role, p["InstanceProfileName"]))
    return theirs[0] if theirs else None


def is_propagation_error(exc: BaseException) -> bool:
    """EC2 refusing a freshly created instance profile (RunInstances, CreateLaunchTemplate, ASGs)."""
    from botocore.exceptions import ClientError
    if not isinstance(exc, ClientError):
        return False
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) in ("InvalidParameterValue", "ValidationError") and "instance profile" in message.lower()


def wait_for_instance_profile(ctx: AwsContext, name: str, timeout: float | None = None) -> dict[str, Any]:
    """Poll GetInstanceProfile until the profile exists with a role; return it. EC2 may still need a few
    more seconds after this: callers also retry `is_propagation_error`."""
    def check() -> dict[str, Any] | None:
        resp = ignoring_missing(lambda: ctx.call("iam", "get_instance_profile", InstanceProfileName=name))
        profile: dict[str, Any] | None = resp["InstanceProfile"] if resp else None
        return profile if profile and profile.get("Roles") else None

    return wait_until(check, timeout or ctx.policy.consistency_timeout, f"instance profile {name}", ctx.policy)


@register
class InstanceProfile(Kind):
    """An instance profile holding one role; `id` is the profile name; attrs `arn`, `name`."""

    kind = "InstanceProfile"
    service = "iam"
    rank = 13
    immutable = frozenset({"name", "path"})
    taggable = False  # IAM listings return no tags: ownership is the path, tags are not diffed
    supports_brought = True  # only as `role:<role>` (the profile a brought role is in), see the module doc

    def observe(self, ctx: AwsContext, profile: dict[str, Any]) -> Observed:
        name = profile["InstanceProfileName"]
        roles = profile.get("Roles") or []
        logical = name.removeprefix(f"{ctx.cluster}-")
        tags = {CLUSTER_TAG: ctx.cluster, RESOURCE_TAG: f"{self.kind}/{logical}", k8s_cluster_tag(ctx.cluster): "owned"}
        return Observed(self.kind, name, {"name": name, "path": profile.get("Path", "/"),
                                          "role_name": roles[0]["RoleName"] if roles else None},
                        tags, attrs={"arn": profile["Arn"], "name": name})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        path = cluster_path(ctx.cluster)
        profiles = ctx.paginate("iam", "list_instance_profiles", "InstanceProfiles", PathPrefix=path)
        return [self.observe(ctx, p) for p in profiles if p.get("Path") == path]

    def get(self, ctx: AwsContext, ids: list[str]) -> list[Observed]:
        """The profiles brought roles are in (`role:<name or ARN>`), as `pick_role_profile` chooses them:
        ONE ListInstanceProfilesForRole per role, read-only. A missing role has none."""
        found = []
        for given in ids:
            if not given.startswith(ROLE_PROFILE):
                continue  # a profile is brought only through its role
            role = name_from(given.removeprefix(ROLE_PROFILE))
            profiles = ignoring_missing(partial(ctx.paginate, "iam", "list_instance_profiles_for_role",
                                                "InstanceProfiles", RoleName=role)) or []
            chosen = pick_role_profile(ctx.cluster, role, profiles)
            if chosen is None:
                continue
            name = chosen["InstanceProfileName"]
            note = (f"IAM role {role} (brought) is already in instance profile {name}: its instances use that "
                    "profile as it is (kubeaws neither changes nor deletes it)")
            found.append(Observed(self.kind, given, {"name": name, "path": chosen.get("Path", "/"),
                                                     "role_name": role},
                                  attrs={"arn": chosen["Arn"], "name": name, "plan_note": note}))
        return found

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        name = desired.props.get("name")
        if not isinstance(name, str):
            return None
        resp = ignoring_missing(lambda: ctx.call("iam", "get_instance_profile", InstanceProfileName=name))
        if resp is None or resp["InstanceProfile"].get("Path") == cluster_path(ctx.cluster):
            return None
        return self.observe(ctx, resp["InstanceProfile"])

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        from botocore.exceptions import ClientError
        props = desired.props
        name, path = props["name"], props["path"]
        if path != cluster_path(ctx.cluster) or not name.startswith(f"{ctx.cluster}-"):
            raise ValueError(f"instance profile {name!r} at {path!r}: must be <cluster>-<name> at "
                             f"{cluster_path(ctx.cluster)}")
        try:
            profile = ctx.call("iam", "create_instance_profile", InstanceProfileName=name, Path=path,
                               Tags=tag_list(desired.tags))["InstanceProfile"]
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            profile = ctx.call("iam", "get_instance_profile", InstanceProfileName=name)["InstanceProfile"]
            if profile.get("Path") != path:
                raise OwnershipError(f"instance profile {name!r} already exists outside {path} (not created by "
                                     "kubeaws for this cluster): delete or rename it") from exc
        current = self.observe(ctx, profile)
        return self.update(ctx, current, desired, self.diff(current, desired))

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"role_name"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        if "role_name" not in diff:
            return actual
        name, old, new = actual.id, actual.fields.get("role_name"), desired.props.get("role_name")
        if old:
            ignoring_missing(partial(ctx.call, "iam", "remove_role_from_instance_profile",
                                     InstanceProfileName=name, RoleName=old))
        if new:
            self._add_role(ctx, name, new)
        return Observed(self.kind, name, {**actual.fields, "role_name": new}, dict(actual.tags), actual.state,
                        dict(actual.attrs))

    @staticmethod
    def _add_role(ctx: AwsContext, name: str, role: str) -> None:
        """Put `role` in the profile. A profile holds one role: LimitExceeded when `role` is already the one
        in it (an earlier run, or a repeat whose first answer was lost) means already as wanted."""
        from botocore.exceptions import ClientError
        try:
            # Both the profile and the role may have been created a moment ago.
            while_propagating(ctx, partial(ctx.call, "iam", "add_role_to_instance_profile",
                                           InstanceProfileName=name, RoleName=role), f"instance profile {name}")
        except ClientError as exc:
            if not already_done(exc, "AddRoleToInstanceProfile"):
                raise
            profile = ctx.call("iam", "get_instance_profile", InstanceProfileName=name)["InstanceProfile"]
            if [r["RoleName"] for r in profile.get("Roles") or []] != [role]:
                raise

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Remove the role (as currently attached), then delete the profile; NotFound counts as gone."""
        name = actual.id
        resp = ignoring_missing(lambda: ctx.call("iam", "get_instance_profile", InstanceProfileName=name))
        if resp is None:
            return
        for role in resp["InstanceProfile"].get("Roles") or []:
            ignoring_missing(partial(ctx.call, "iam", "remove_role_from_instance_profile",
                                     InstanceProfileName=name, RoleName=role["RoleName"]))
        ignoring_missing(lambda: retry_on_codes(
            lambda: ctx.call("iam", "delete_instance_profile", InstanceProfileName=name), {"DeleteConflict"},
            timeout=ctx.policy.consistency_timeout, what=f"instance profile {name} to be free", policy=ctx.policy))


__all__ = ["NOT_FOUND", "InstanceProfile", "is_propagation_error", "pick_role_profile", "profile_name",
           "role_profile_id", "wait_for_instance_profile"]
