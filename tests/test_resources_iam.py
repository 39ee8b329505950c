"""IamRole and InstanceProfile kinds against the moto server: create with tags in the create call, find
again with ONE read call and a clean diff, update policies / the role, delete (twice); a brought role
(by name or ARN) is only tagged `shared` and untagged again, never changed nor deleted."""

from __future__ import annotations

import json
from typing import Any

import pytest

import kubeaws.resources.iam_role
import kubeaws.resources.instance_profile  # noqa: F401  (registers the kinds until registry.MODULES lists them)
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import RESOURCE_TAG, k8s_cluster_tag, owned_tags, shared_tags, tag_dict
from kubeaws.errors import OwnershipError
from kubeaws.model.iam import ECR_READ_ONLY, trust_policy
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.instance_profile import wait_for_instance_profile

ROLE = registry.get("IamRole")
PROFILE = registry.get("InstanceProfile")
PATH = "/kubeaws/dev/"


def policy(*actions: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}


def role_desired(logical: str = "node", **props: Any) -> Desired:
    base = {"name": f"dev-{logical}", "path": PATH, "assume_role_policy": trust_policy(),
            "inline_policies": {"kubeaws-node": policy("ec2:DescribeInstances")},
            "managed_policy_arns": [ECR_READ_ONLY]}
    return Desired("IamRole", logical, {**base, **props}, tags=owned_tags("dev", "IamRole", logical, f"dev-{logical}"))


def profile_desired(logical: str, role_name: str) -> Desired:
    return Desired("InstanceProfile", logical, {"name": f"dev-{logical}", "path": PATH, "role_name": role_name},
                   tags=owned_tags("dev", "InstanceProfile", logical, f"dev-{logical}"))


def only(kind: Any, ctx: AwsContext) -> tuple[Observed, dict[tuple[str, str], int]]:
    with ctx.counting() as log:
        found = kind.list_owned(ctx)
    assert len(found) == 1, found
    return found[0], dict(log.snapshot())


def test_role_lifecycle(ctx: AwsContext) -> None:
    desired = role_desired()
    created = ROLE.create(ctx, desired)
    role = ctx.call("iam", "get_role", RoleName="dev-node")["Role"]
    assert tag_dict(role["Tags"]) == desired.tags and role["Path"] == PATH
    assert created.attrs["arn"] == role["Arn"] == f"arn:aws:iam::123456789012:role{PATH}dev-node"

    found, calls = only(ROLE, ctx)
    assert calls == {("iam", "GetAccountAuthorizationDetails"): 1}
    assert found.fields == desired.props and found.logical_key == "IamRole/node"
    assert ROLE.diff(found, desired) == {}

    changed = role_desired(inline_policies={"kubeaws-node": policy("ec2:DescribeInstances", "ec2:DescribeTags"),
                                            "extra": policy("s3:ListAllMyBuckets")},
                           managed_policy_arns=[])
    diff = ROLE.diff(found, changed)
    assert set(diff) == {"inline_policies", "managed_policy_arns"}
    ROLE.update(ctx, found, changed, diff)
    found, _ = only(ROLE, ctx)
    assert ROLE.diff(found, changed) == {}
    back = role_desired()
    ROLE.update(ctx, found, back, ROLE.diff(found, back))
    found, _ = only(ROLE, ctx)
    assert ROLE.diff(found, back) == {}, "policies removed again"

    ctx.call("iam", "create_role", RoleName="dev-x", AssumeRolePolicyDocument=json.dumps(trust_policy()))
    with pytest.raises(OwnershipError):  # someone else's role of the same name
        ROLE.create(ctx, role_desired("x"))
    assert ROLE.find_conflict(ctx, role_desired("x")) is not None
    assert ROLE.find_conflict(ctx, back) is None

    profile = PROFILE.create(ctx, profile_desired("node", "dev-node"))
    ROLE.delete(ctx, found)
    ROLE.delete(ctx, found)  # already gone
    assert ROLE.list_owned(ctx) == []
    assert ctx.call("iam", "get_instance_profile", InstanceProfileName=profile.id)["InstanceProfile"]["Roles"] == []


def test_create_adopts_a_role_of_ours_whose_answer_was_lost(ctx: AwsContext) -> None:
    desired = role_desired()
    ctx.call("iam", "create_role", RoleName="dev-node", Path=PATH,
             AssumeRolePolicyDocument=json.dumps(trust_policy()),
             Tags=[{"Key": k, "Value": v} for k, v in desired.tags.items()])
    ROLE.create(ctx, desired)
    found, _ = only(ROLE, ctx)
    assert ROLE.diff(found, desired) == {}


def test_instance_profile_lifecycle(ctx: AwsContext) -> None:
    for logical in ("node", "control-plane"):
        ROLE.create(ctx, role_desired(logical))
    desired = profile_desired("node", "dev-node")
    created = PROFILE.create(ctx, desired)
    assert created.attrs["arn"].endswith(f":instance-profile{PATH}dev-node")
    assert wait_for_instance_profile(ctx, "dev-node")["Roles"][0]["RoleName"] == "dev-node"
    found, calls = only(PROFILE, ctx)
    assert calls == {("iam", "ListInstanceProfiles"): 1}
    assert found.fields == desired.props and found.logical_key == "InstanceProfile/node"
    assert PROFILE.diff(found, desired) == {}
    assert PROFILE.create(ctx, desired).fields == desired.props, "create again adopts"

    swapped = profile_desired("node", "dev-control-plane")
    diff = PROFILE.diff(found, swapped)
    assert diff == {"role_name": ("dev-node", "dev-control-plane")}
    PROFILE.update(ctx, found, swapped, diff)
    found, _ = only(PROFILE, ctx)
    assert PROFILE.diff(found, swapped) == {}

    ctx.call("iam", "create_instance_profile", InstanceProfileName="dev-other", Path="/")
    assert PROFILE.find_conflict(ctx, profile_desired("other", "dev-node")) is not None
    with pytest.raises(OwnershipError):
        PROFILE.create(ctx, profile_desired("other", "dev-node"))

    PROFILE.delete(ctx, found)
    PROFILE.delete(ctx, found)
    assert PROFILE.list_owned(ctx) == []


@pytest.mark.parametrize("by_arn", [False, True])
def test_brought_role_is_only_tagged_shared(ctx: AwsContext, by_arn: bool) -> None:
    arn = ctx.call("iam", "create_role", RoleName="mine", AssumeRolePolicyDocument=json.dumps(trust_policy()),
                   Tags=[{"Key": "team", "Value": "a"}])["Role"]["Arn"]
    ctx.call("iam", "put_role_policy", RoleName="mine", PolicyName="p", PolicyDocument=json.dumps(policy("s3:*")))
    given = arn if by_arn else "mine"
    desired = Desired("IamRole", "node", {}, tags=shared_tags("dev"), brought_id=given)
    assert ROLE.get(ctx, ["missing", "arn:aws:iam::123456789012:role/other/mine"]) == []
    [found] = ROLE.get(ctx, [given])
    assert found.id == given and found.attrs["arn"] == arn and found.attrs["name"] == "mine"
    diff = ROLE.diff(found, desired)
    assert diff == {"tags": ({k8s_cluster_tag("dev"): None}, shared_tags("dev"))}
    ROLE.update(ctx, found, desired, diff)
    assert ROLE.list_owned(ctx) == [], "a brought role is not owned"
    [found] = ROLE.get(ctx, [given])
    assert ROLE.diff(found, desired) == {} and RESOURCE_TAG not in found.tags
    with pytest.raises(OwnershipError):
        ROLE.delete(ctx, found)
    ROLE.remove_tags(ctx, given, [k8s_cluster_tag("dev")])
    role = ctx.call("iam", "get_role", RoleName="mine")["Role"]
    assert tag_dict(role["Tags"]) == {"team": "a"}
    assert ctx.call("iam", "list_role_policies", RoleName="mine")["PolicyNames"] == ["p"]
