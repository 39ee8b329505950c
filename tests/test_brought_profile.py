"""A brought IAM role that is already in an instance profile is used through that profile (issue #11 item 7):
the plan finds it read-only (ListInstanceProfilesForRole) and says so, apply makes no `<cluster>-node`
profile and the launch templates name the role's own profile, delete leaves it as it was. A role in no
profile still gets kubeaws' own (tests/test_kubeadm.py::test_brought_roles), and a cluster that already has
its own profile around the role keeps it.

moto adaptation: ListInstanceProfiles ignores PathPrefix, so profiles are filtered by path here.
"""

from __future__ import annotations

import json
from typing import Any

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine.render import plan_text
from kubeaws.resources.instance_profile import pick_role_profile
from tests.helpers import make_spec

TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def make_role(ctx: AwsContext, role: str, profile: str | None = None, path: str = "/") -> None:
    iam = ctx.client("iam")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    if profile:
        iam.create_instance_profile(InstanceProfileName=profile, Path=path)
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)


def profiles_at(ctx: AwsContext, path: str) -> dict[str, list[str]]:
    found = ctx.client("iam").list_instance_profiles()["InstanceProfiles"]
    return {p["InstanceProfileName"]: [r["RoleName"] for r in p["Roles"]] for p in found if p["Path"] == path}


def template_profiles(ctx: AwsContext) -> dict[str, str]:
    """Launch template name -> the instance profile its latest version names."""
    ec2 = ctx.client("ec2")
    out = {}
    for lt in ec2.describe_launch_templates()["LaunchTemplates"]:
        data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"], Versions=["$Latest"])[
            "LaunchTemplateVersions"][0]["LaunchTemplateData"]
        out[lt["LaunchTemplateName"]] = (data.get("IamInstanceProfile") or {}).get("Name", "")
    return out


def test_pick_role_profile() -> None:
    def p(name: str, path: str = "/") -> dict[str, Any]:
        return {"InstanceProfileName": name, "Path": path, "Arn": f"arn:aws:iam::1:instance-profile{path}{name}"}

    assert pick_role_profile("dev", "nodes", []) is None
    assert pick_role_profile("dev", "nodes", [p("b"), p("a")])["InstanceProfileName"] == "a"  # type: ignore[index]
    # The console's profile of the same name as the role comes first.
    assert pick_role_profile("dev", "nodes", [p("a"), p("nodes")])["InstanceProfileName"] == "nodes"  # type: ignore[index]
    # This cluster's own profile around the role is kept (no switch for a cluster made by an earlier kubeaws).
    assert pick_role_profile("dev", "nodes", [p("nodes"), p("dev-node", "/kubeaws/dev/")]) is None
    # Another kubeaws cluster's profile is never borrowed (it goes when that cluster is deleted).
    assert pick_role_profile("dev", "nodes", [p("prod-node", "/kubeaws/prod/")]) is None
    assert pick_role_profile("dev", "nodes", [p("prod-node", "/kubeaws/prod/"), p("x", "/team/")])[  # type: ignore[index]
        "InstanceProfileName"] == "x"


def test_brought_node_role_used_through_its_profile(ctx: AwsContext) -> None:
    make_role(ctx, "platform-node", profile="platform-node-profile", path="/platform/")
    make_role(ctx, "platform-cp")  # in no profile: kubeaws makes its own around it
    spec = make_spec(iam={"nodeRole": "platform-node", "controlPlaneRole": "platform-cp"})

    with ctx.counting() as calls:
        plan = api.plan(spec, ctx)
    assert calls.mutating() == 0, calls.snapshot()
    assert calls.snapshot()[("iam", "ListInstanceProfilesForRole")] == 2
    creates = {c.key for c in plan.changes if c.action == "create"}
    assert "InstanceProfile/control-plane" in creates and "InstanceProfile/node" not in creates
    node = next(c for c in plan.changes if c.key == "InstanceProfile/node")
    assert node.action == "noop" and node.actual is not None and node.actual.attrs["name"] == "platform-node-profile"
    text = plan_text(plan)
    assert "IAM role platform-node (brought) is already in instance profile platform-node-profile" in text
    assert any("platform-node-profile" in note for note in plan.to_dict()["notes"])

    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    assert profiles_at(ctx, "/kubeaws/dev/") == {"dev-control-plane": ["platform-cp"]}
    lts = template_profiles(ctx)
    assert lts["dev-ng-general"] == "platform-node-profile"
    assert lts["dev-control-plane"] == "dev-control-plane"
    assert api.plan(spec, ctx).pending == 0

    result = api.delete(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert profiles_at(ctx, "/kubeaws/dev/") == {}
    assert profiles_at(ctx, "/platform/") == {"platform-node-profile": ["platform-node"]}


def test_cluster_keeps_its_own_profile_around_a_brought_role(ctx: AwsContext) -> None:
    """A cluster applied while the role was in no profile has kubeaws' `dev-node`; the role gets another
    profile later: the cluster keeps its own (no switch, no roll), and nothing is planned."""
    make_role(ctx, "platform-node")
    spec = make_spec(iam={"nodeRole": "platform-node"})
    assert api.apply(spec, ctx).ok
    assert profiles_at(ctx, "/kubeaws/dev/")["dev-node"] == ["platform-node"]
    iam = ctx.client("iam")
    iam.create_instance_profile(InstanceProfileName="platform-node")
    iam.add_role_to_instance_profile(InstanceProfileName="platform-node", RoleName="platform-node")

    plan = api.plan(spec, ctx)
    assert plan.pending == 0, plan_text(plan)
    assert template_profiles(ctx)["dev-ng-general"] == "dev-node"
    assert not any("already in instance profile" in note for note in plan.notes)


def test_eks_brought_node_role_profile_in_the_graph() -> None:
    """EKS self-managed nodes: the same brought profile with kubeaws' own as its fallback."""
    from kubeaws.model import build

    spec = make_spec(mode="eks", iam={"nodeRole": "arn:aws:iam::123456789012:role/team/nodes"},
                     network={"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"})
    graph = build(spec)
    profile = graph["InstanceProfile/node"]
    assert profile.brought_id == "role:arn:aws:iam::123456789012:role/team/nodes"
    assert profile.fallback is not None and profile.fallback.props["name"] == "dev-node"
    template = graph["LaunchTemplate/ng-general"]
    assert "InstanceProfile/node" in template.refs()
