"""The rollout's AWS side on the moto server: `kubeaws apply` of a changed node group writes a new launch-
template version and leaves the instances alone (groups stay pinned to their version); the rollout (cloud
only here: no Kubernetes API behind the emulator) moves the group to the new version and replaces its
instances, keeping capacity, then nothing is left to roll. moto adaptations: instances are InService at once
and moto reports an instance's launch version as the group's current one, so outdatedness is read from the
`aws:ec2launchtemplate:version` tag EC2 puts on every instance (as kubeaws does on AWS)."""

from __future__ import annotations

from typing import Any

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.rollout.aws_ops import AwsCloud
from kubeaws.rollout.inventory import BASE_TAG, read_groups
from kubeaws.rollout.planner import plan_rollout
from kubeaws.rollout.runner import Runner, Timeouts
from tests.helpers import make_spec

GROUP = {"name": "general", "instanceTypes": ["m5.large"], "size": {"min": 2, "desired": 2, "max": 2}}


def apply_ok(spec: Any, ctx: AwsContext) -> None:
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]


def test_apply_writes_a_version_and_the_rollout_moves_the_group(ctx: AwsContext) -> None:
    apply_ok(make_spec(nodeGroups=[GROUP]), ctx)
    names = ["dev-control-plane-0", "dev-general"]
    before = {g.name: g for g in read_groups(ctx, names)}
    assert before["dev-general"].pinned == "1" and not before["dev-general"].outdated()
    original = {i.id for i in before["dev-general"].live}

    apply_ok(make_spec(nodeGroups=[{**GROUP, "labels": {"team": "a"}}]), ctx)  # new node user data
    groups = {g.name: g for g in read_groups(ctx, names)}
    general = groups["dev-general"]
    assert general.pinned == "1" and general.target == 2, "apply never moves a group"
    assert {i.id for i in general.outdated()} == original
    assert not groups["dev-control-plane-0"].outdated(), "the control plane's template did not change"

    plan = plan_rollout(list(groups.values()))
    assert [g.group.name for g in plan.groups] == ["dev-general"]
    cloud = AwsCloud(ctx)
    result = Runner(cloud, None, ctx.policy, Timeouts(ready=30)).run(plan)
    assert set(result.replaced) == original
    after = cloud.read("dev-general")
    assert after.pinned == "2" and len(after.live) == 2 and not after.outdated()
    assert not {i.id for i in after.live} & original
    assert (after.desired, after.max_size) == (2, 2) and BASE_TAG not in after.tags
    assert plan_rollout(read_groups(ctx, names)).empty
