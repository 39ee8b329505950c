"""100 node groups on the emulator (issue #14 item 3): apply, re-plan (nothing to change), status and delete
converge with nothing left behind. Before the emulator's EC2 front paged DescribeLaunchTemplates
(local/ec2_front.py), the re-plan saw 15 of the 100 launch templates, planned 85 creates, and the delete left
85 behind.

Minimal groups (size 0, one instance type): what is exercised is listing and paging, not instances. On moto
either fix alone lets 100 templates through (moto returns up to the MaxResults kubeaws now sends, 200); the
front's own paging is tests/test_pages.py's, and fails there without it.
"""

from __future__ import annotations

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine.render import plan_text
from kubeaws.resources import registry
from tests.helpers import make_spec

GROUPS = 100


def test_a_hundred_node_groups_apply_replan_and_delete_cleanly(ctx: AwsContext) -> None:
    groups = [{"name": f"g{i:03d}", "instanceTypes": ["m5.large"], "size": {"min": 0, "desired": 0, "max": 1}}
              for i in range(GROUPS)]
    spec = make_spec(nodeGroups=groups)
    applied = api.apply(spec, ctx, max_workers=16)
    assert applied.ok, [(e.key, e.error) for e in applied.failed + applied.skipped]
    kinds = registry.kinds()
    assert len(kinds["LaunchTemplate"].list_owned(ctx)) >= GROUPS
    assert len(kinds["AutoScalingGroup"].list_owned(ctx)) >= GROUPS

    with ctx.counting() as log:
        again = api.plan(spec, ctx)
    assert again.pending == 0, plan_text(again)
    assert log.mutating() == 0

    report = api.status(spec, ctx, every_kind=True)
    assert report.pending_changes == 0
    deleted = api.delete(spec, ctx, max_workers=16, observation=report.observation)
    assert deleted.ok, [(e.key, e.error) for e in deleted.failed + deleted.skipped]
    leftovers = {name: [o.id for o in kind.list_owned(ctx)] for name, kind in kinds.items()}
    assert {k: v for k, v in leftovers.items() if v} == {}
    assert ctx.paginate("ec2", "describe_launch_templates", "LaunchTemplates") == []
    assert ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups") == []
