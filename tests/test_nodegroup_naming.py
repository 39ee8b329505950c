"""Node-group team and instance-spec labels/tags and the optional naming pattern (spec/nodegroups.py,
spec/instance_types.py): the table's specs, the labels and tags on launch templates, Auto Scaling groups and
managed node groups in both modes, node-template tags equal to what the bootstrap registers, the names a
pattern renders and each validation error, and an apply on the moto server.

moto applies a launch template's instance TagSpecifications to the instances an Auto Scaling group launches,
but not its volume TagSpecifications (its ASG passes only instance tags to RunInstances): the volume tags are
therefore checked on the launch template version AWS launches from, not on moto's volumes. The EKS apply
answers the EKS APIs moto lacks (access entries, add-ons) with test_eks_e2e's FakeEks.
"""

from __future__ import annotations

import base64
import gzip
import json
from importlib.resources import files
from typing import Any

import pytest
import yaml

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.bootstrap.eks import node_config
from kubeaws.errors import SpecError
from kubeaws.model import build
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Computed, Desired, Observed, Ref
from kubeaws.resources.eks_nodegroup import EksNodegroup
from kubeaws.spec import instance_types
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.nodegroups import check_node_groups, group_name, launch_template_name, node_labels, render_pattern
from kubeaws.spec.resolve import resolve
from kubeaws.spec.validate import validate
from tests.conftest import make_ctx
from tests.helpers import make_spec
from tests.test_eks_e2e import connect

CA = "k8s.io/cluster-autoscaler/node-template/label/"
EKS: dict[str, Any] = {"mode": "eks", "network": {"cni": "aws-vpc-cni"}}
GROUPS = [{"name": "general", "instanceTypes": ["m5.large"], "team": "payments",
           "labels": {"workload": "web"}, "tags": {"cost-center": "42"}},
          {"name": "small", "instanceTypes": ["t3.medium", "m5.large"], "capacity": "spot", "team": "search"}]


def _props(graph: Graph, key: str) -> dict[str, Any]:
    return graph[key].props


def _template_labels(tags: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix(CA): v for k, v in tags.items() if k.startswith(CA)}


def _labels_flag(value: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in value.split(","))


def _evaluate(value: Computed) -> Any:
    """A Computed with every Ref replaced by a stand-in (what the engine resolves at apply time)."""
    args = {k: ("https://endpoint" if isinstance(v, Ref) else v) for k, v in value.args.items()}
    return value.fn(**args)


# -- the instance-type table -------------------------------------------------------------------------------
@pytest.mark.parametrize(("instance_type", "spec"), [
    ("m5.large", "2cpu-8gib"), ("t3.medium", "2cpu-4gib"), ("r5.2xlarge", "8cpu-64gib"), ("c5.2xlarge", "8cpu-16gib"),
    ("t3.nano", "2cpu-512mib"), ("i3.large", "2cpu-15616mib"), ("m5.24xlarge", "96cpu-384gib"),
])
def test_instance_spec(instance_type: str, spec: str) -> None:
    assert instance_types.instance_spec(instance_type) == spec


def test_every_table_entry_has_memory_from_moto() -> None:
    with gzip.open(str(files("moto.ec2.resources") / "instance_types.json.gz")) as source:
        raw = json.load(source)
    table = instance_types.table()
    assert len(table) > 100
    for name, entry in table.items():
        assert entry.memory_mib == raw[name]["MemoryInfo"]["SizeInMiB"] > 0, name
        assert entry.vcpus == raw[name]["VCpuInfo"]["DefaultVCpus"] >= 1, name


def test_unknown_type_has_no_spec_label() -> None:
    spec = make_spec(nodeGroups=[{"name": "odd", "instanceTypes": ["x9.large"]}])
    with pytest.raises(instance_types.UnknownInstanceType):
        instance_types.instance_spec("x9.large")
    assert node_labels(spec.spec.node_groups[0]) == {"kubeaws.io/node-group": "odd", "kubeaws.io/capacity": "on-demand"}


# -- labels and tags -----------------------------------------------------------------------------------
def test_labels_and_tags_kubeadm() -> None:
    spec = make_spec(nodeGroups=GROUPS)
    graph = build(spec)
    lt, asg = graph["LaunchTemplate/ng-general"], graph["AutoScalingGroup/ng-general"]
    want = {"kubeaws.io/team": "payments", "kubeaws.io/instance-spec": "2cpu-8gib", "kubeaws.io/node-group": "general"}
    for tags in (lt.props["instance_tags"], lt.props["volume_tags"], lt.tags, asg.tags):
        assert want.items() <= tags.items()
        assert tags["cost-center"] == "42"
    assert asg.tags["kubeaws.io/capacity"] == "on-demand"
    # Mixed sizes: the spec of the first type (what the scale-from-zero node template describes).
    small = graph["AutoScalingGroup/ng-small"]
    assert small.tags["kubeaws.io/instance-spec"] == "2cpu-4gib"
    assert _template_labels(small.tags) == {"kubeaws.io/node-group": "small", "kubeaws.io/capacity": "spot",
                                            "kubeaws.io/team": "search", "kubeaws.io/instance-spec": "2cpu-4gib"}


@pytest.mark.parametrize("group", ["general", "small"])
def test_node_template_labels_equal_the_kubeadm_join_labels(group: str) -> None:
    spec = make_spec(nodeGroups=GROUPS)
    graph = build(spec)
    user_data = _evaluate(_props(graph, f"LaunchTemplate/ng-{group}")["user_data"])
    doc = yaml.safe_load(user_data.removeprefix("#cloud-config\n"))
    (entry,) = [f for f in doc["write_files"] if f["path"] == f"/etc/kubeaws/kubeadm/join-{group}.yaml"]
    content = entry["content"]
    if entry.get("encoding") == "gz+b64":
        content = gzip.decompress(base64.b64decode(content)).decode()
    (join,) = yaml.safe_load_all(content)
    args = {a["name"]: a["value"] for a in join["nodeRegistration"]["kubeletExtraArgs"]}
    labels = _labels_flag(args["node-labels"])
    assert labels == _template_labels(graph[f"AutoScalingGroup/ng-{group}"].tags)
    assert labels["kubeaws.io/team"] and labels["kubeaws.io/instance-spec"]


def test_labels_and_tags_eks_self_managed_and_managed() -> None:
    spec = make_spec(**EKS, nodeGroups=[GROUPS[0], {**GROUPS[1], "type": "managed"}])
    graph = build(spec)
    # Self-managed: the NodeConfig's --node-labels are the node-template labels.
    asg = graph["AutoScalingGroup/ng-general"]
    user_data = _props(graph, "LaunchTemplate/ng-general")["user_data"]
    assert isinstance(user_data, Computed)
    config = node_config(spec, "general", "https://endpoint", "Q0E=", "10.96.0.0/12", 29)
    labels_flag = config["spec"]["kubelet"]["flags"][0]
    assert labels_flag.removeprefix("--node-labels=") in _evaluate(user_data)
    assert _labels_flag(labels_flag.removeprefix("--node-labels=")) == _template_labels(asg.tags)
    assert asg.tags["kubeaws.io/team"] == "payments" and asg.tags["kubeaws.io/instance-spec"] == "2cpu-8gib"
    # Managed: EKS labels the nodes with `labels`; the node group and its launch template carry the tags.
    ng, lt = graph["EksNodegroup/small"], graph["LaunchTemplate/mng-small"]
    assert ng.props["labels"] == _template_labels(ng.tags) == {
        "kubeaws.io/node-group": "small", "kubeaws.io/capacity": "spot", "kubeaws.io/team": "search",
        "kubeaws.io/instance-spec": "2cpu-4gib"}
    for tags in (lt.props["instance_tags"], lt.props["volume_tags"], lt.tags, ng.tags):
        assert tags["kubeaws.io/team"] == "search" and tags["kubeaws.io/instance-spec"] == "2cpu-4gib"


def test_without_team_no_team_label() -> None:
    graph = build(make_spec())
    asg = graph["AutoScalingGroup/ng-general"]
    assert "kubeaws.io/team" not in asg.tags and "kubeaws.io/team" not in _template_labels(asg.tags)
    assert asg.tags["kubeaws.io/instance-spec"] == "2cpu-8gib"


# -- names ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [None, "{cluster}-{name}"])
def test_default_names_are_unchanged(pattern: str | None) -> None:
    """No pattern, or one rendering the default: the names kubeaws always gave (nothing is replaced)."""
    spec = make_spec(**EKS, nodeGroupNamePattern=pattern, nodeGroups=[GROUPS[0], {**GROUPS[1], "type": "managed"}])
    graph = build(spec)
    assert _props(graph, "AutoScalingGroup/ng-general")["name"] == "dev-general"
    assert _props(graph, "LaunchTemplate/ng-general")["name"] == "dev-ng-general"
    assert graph["AutoScalingGroup/ng-general"].tags["Name"] == "dev-ng-general"
    assert _props(graph, "EksNodegroup/small")["nodegroup_name"] == "dev-small"
    assert _props(graph, "LaunchTemplate/mng-small")["name"] == "dev-mng-small"
    assert graph["LaunchTemplate/mng-small"].props["instance_tags"]["Name"] == "dev-mng-small"


def test_pattern_names_every_resource_of_a_group() -> None:
    spec = make_spec("prod", **EKS, nodeGroupNamePattern="{team}-{spec}-{cluster}",
                     nodeGroups=[GROUPS[0],
                                 {**GROUPS[1], "type": "managed", "namePattern": "{cluster}-{capacity}-{name}"}])
    assert validate(spec) == []
    graph = build(spec)
    lt, asg = graph["LaunchTemplate/ng-general"], graph["AutoScalingGroup/ng-general"]
    assert asg.props["name"] == lt.props["name"] == "payments-2cpu-8gib-prod"
    assert asg.tags["Name"] == lt.tags["Name"] == lt.props["instance_tags"]["Name"] == "payments-2cpu-8gib-prod"
    assert lt.props["volume_tags"]["Name"] == "payments-2cpu-8gib-prod"
    managed, mlt = graph["EksNodegroup/small"], graph["LaunchTemplate/mng-small"]
    assert managed.props["nodegroup_name"] == mlt.props["name"] == managed.tags["Name"] == "prod-spot-small"
    # The graph keys stay: a pattern change is a replacement of the same logical resources.
    assert {"AutoScalingGroup/ng-general", "EksNodegroup/small"} <= set(graph.keys())


@pytest.mark.parametrize(("instance_type", "shape"), [
    ("r5.2xlarge", "8c64g"), ("m5.large", "2c8g"), ("t3.medium", "2c4g"), ("c5.2xlarge", "8c16g"),
    ("t3.nano", "2c512m"), ("i3.large", "2c15616m"),
])
def test_shape_placeholder(instance_type: str, shape: str) -> None:
    """{shape}: the compact form teams use in group names (8c64g), from the first instance type."""
    spec = make_spec("prod", nodeGroupNamePattern="{team}-{shape}-{cluster}",
                     nodeGroups=[{**GROUPS[0], "instanceTypes": [instance_type]}])
    assert validate(spec) == []
    ng = spec.spec.node_groups[0]
    assert group_name(spec, ng) == launch_template_name(spec, ng) == f"payments-{shape}-prod"
    assert build(spec)["AutoScalingGroup/ng-general"].props["name"] == f"payments-{shape}-prod"


def test_shape_placeholder_needs_a_known_type() -> None:
    """As {spec}: a type neither the table nor AWS knows is refused by `spec.resolve`, at the type's field."""
    spec = make_spec(nodeGroupNamePattern="{shape}-{name}", nodeGroups=[{"name": "a", "instanceTypes": ["r5.2xlarg"]}])
    assert _problems(spec) == []
    with pytest.raises(SpecError) as info:
        resolve(spec)
    assert [p.path for p in info.value.problems] == ["spec.nodeGroups[0].instanceTypes[0]"]


def test_render_pattern() -> None:
    spec = make_spec("prod", nodeGroups=GROUPS)
    ng = spec.spec.node_groups[0]
    assert render_pattern("{team}-{spec}-{cluster}", {"team": "payments", "spec": "2cpu-8gib", "cluster": "prod"}) \
        == "payments-2cpu-8gib-prod"
    assert group_name(spec, ng) == "prod-general" and launch_template_name(spec, ng) == "prod-ng-general"


def _problems(spec: ClusterSpec) -> list[tuple[str, str, str]]:
    found = check_node_groups(spec)
    assert [(p.path, p.message) for p in found] == [(p.path, p.message) for p in validate(spec)
                                                   if p in found]  # reported by spec validation too
    return [(p.path, p.message, p.hint) for p in found]


def test_unknown_placeholder_lists_the_known_ones() -> None:
    (problem,) = _problems(make_spec(nodeGroupNamePattern="{cluster}-{owner}"))
    assert problem[0] == "spec.nodeGroupNamePattern" and "{owner}" in problem[1]
    assert all(f"{{{p}}}" in problem[2] for p in ("cluster", "name", "team", "spec", "shape", "capacity"))


def test_unbalanced_brace_and_empty_pattern() -> None:
    (problem,) = _problems(make_spec(nodeGroups=[{"name": "a", "namePattern": "{cluster-{name}"}]))
    assert problem[0] == "spec.nodeGroups[0].namePattern" and "brace" in problem[1]
    (problem,) = _problems(make_spec(nodeGroupNamePattern=""))
    assert "empty" in problem[1]


def test_team_placeholder_needs_a_team() -> None:
    spec = make_spec(nodeGroupNamePattern="{team}-{name}",
                     nodeGroups=[{"name": "a", "team": "x"}, {"name": "b"}])
    (problem,) = _problems(spec)
    assert problem[0] == "spec.nodeGroups[1].team"
    assert "`b` has no team" in problem[1] and "spec.nodeGroupNamePattern" in problem[1]
    # A group's own pattern without {team} lifts the need.
    fixed = make_spec(nodeGroupNamePattern="{team}-{name}",
                      nodeGroups=[{"name": "a", "team": "x"}, {"name": "b", "namePattern": "{cluster}-{name}"}])
    assert _problems(fixed) == []


@pytest.mark.parametrize("team", ["Payments", "-x", "a_b", "x" * 64])
def test_invalid_team(team: str) -> None:
    (problem,) = _problems(make_spec(nodeGroups=[{"name": "a", "team": team}]))
    assert problem[0] == "spec.nodeGroups[0].team" and team in problem[1] and "lowercase" in problem[2]


def test_spec_placeholder_needs_a_known_type() -> None:
    """Loading leaves a type outside the table to `spec.resolve` (AWS may know it); resolving against the table
    alone refuses it, once, at the type's field."""
    spec = make_spec(nodeGroupNamePattern="{spec}-{name}", nodeGroups=[{"name": "a", "instanceTypes": ["m5.larg"]}])
    assert _problems(spec) == []
    with pytest.raises(SpecError) as info:
        resolve(spec)
    (problem,) = info.value.problems
    assert problem.path == "spec.nodeGroups[0].instanceTypes[0]" and "`m5.larg`" in problem.message
    assert "`m5.large`" in problem.hint


def test_rendered_names_must_be_unique() -> None:
    spec = make_spec(nodeGroupNamePattern="{team}-{spec}",
                     nodeGroups=[{"name": "a", "team": "x"}, {"name": "b", "team": "x"}])
    problems = _problems(spec)
    assert {p[0] for p in problems} == {"spec.nodeGroupNamePattern"}
    assert any("Auto Scaling group name `x-2cpu-8gib`" in p[1] and "nodeGroups[0]" in p[1] for p in problems)
    assert any("launch template name `x-2cpu-8gib`" in p[1] for p in problems)
    assert all("{name}" in p[2] for p in problems)


def test_rendered_name_must_not_take_the_control_planes() -> None:
    (problem, *_) = _problems(make_spec(nodeGroups=[{"name": "a", "namePattern": "{cluster}-control-plane-0"}]))
    assert problem[0] == "spec.nodeGroups[0].namePattern" and "the control plane" in problem[1]


def test_rendered_names_within_aws_limits() -> None:
    long = "a" * 28
    spec = make_spec(long, **EKS, nodeGroupNamePattern="{cluster}-{name}-{capacity}-{spec}",
                     nodeGroups=[{"name": "b" * 20, "type": "managed"}])
    (problem,) = _problems(spec)
    assert problem[0] == "spec.nodeGroupNamePattern" and "EKS node group name" in problem[1]
    assert "AWS allows 1-63" in problem[1]
    # Without a pattern, the default name of a managed group is checked too.
    (problem,) = _problems(make_spec(long, **EKS, nodeGroups=[{"name": "b" * 40, "type": "managed"}]))
    assert problem[0] == "spec.nodeGroups[0].name" and "69 characters" in problem[1]
    # Self-managed groups: launch templates allow 128.
    spec = make_spec(nodeGroupNamePattern="{cluster}-" + "x" * 130 + "-{name}")
    assert any("launch template name" in p[1] and "3-128" in p[1] for p in _problems(spec))


def test_rendered_names_use_characters_aws_accepts() -> None:
    (problem, *_) = _problems(make_spec(nodeGroupNamePattern="{cluster}.{name}"))
    assert problem[0] == "spec.nodeGroupNamePattern" and "`dev.general`" in problem[1] and "'-'" in problem[2]


# -- replacement of a renamed managed node group ----------------------------------------------------------
def test_renamed_managed_group_is_replaced_not_refused() -> None:
    kind = EksNodegroup()
    fields = {"cluster_name": "dev", "nodegroup_name": "dev-general", "node_role_arn": "arn:aws:iam::1:role/n",
              "subnet_ids": ["subnet-1"], "launch_template": {"id": "lt-old", "version": "1"},
              "scaling": {"min": 1, "max": 2, "desired": 1}, "labels": {}, "taints": [],
              "capacity_type": "ON_DEMAND", "instance_types": ["m5.large"]}
    actual = Observed("EksNodegroup", "dev/dev-general", fields, {}, "ACTIVE")
    renamed = Desired("EksNodegroup", "general", {**fields, "nodegroup_name": "x-2cpu-8gib-dev",
                                                  "launch_template": {"id": "lt-new", "version": 1}})
    diff = kind.diff(actual, renamed)
    assert set(diff) & kind.immutable == {"nodegroup_name"} and not set(diff) & kind.refuse_change
    same_name = Desired("EksNodegroup", "general", {**fields, "launch_template": {"id": "lt-new", "version": 1}})
    assert "launch_template_id" in kind.diff(actual, same_name)  # under the same name: still refused


# -- on the moto server -----------------------------------------------------------------------------------
def _instances(ctx: AwsContext, group: str) -> list[dict[str, Any]]:
    found = ctx.call("ec2", "describe_instances",
                     Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": [group]},
                              {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def test_apply_names_and_tags_on_the_emulator(endpoint: str) -> None:
    ctx = make_ctx(endpoint, cluster="prod")
    groups = [{"name": "general", "instanceTypes": ["m5.large"], "team": "payments",
               "size": {"min": 1, "desired": 1, "max": 2}}]
    before = make_spec("prod", nodeGroups=groups)
    assert api.apply(before, ctx).ok
    assert [g["AutoScalingGroupName"] for g in ctx.call("autoscaling", "describe_auto_scaling_groups",
                                                        AutoScalingGroupNames=["prod-general"])["AutoScalingGroups"]]

    spec = make_spec("prod", nodeGroupNamePattern="{team}-{spec}-{cluster}", nodeGroups=groups)
    plan = api.plan(spec, ctx)
    replaced = {(c.kind, c.name) for c in plan.changes if c.action == "replace"}
    assert replaced == {("AutoScalingGroup", "ng-general"), ("LaunchTemplate", "ng-general")}
    result = api.apply(spec, ctx, plan=plan)
    assert result.ok, result.failed
    # The new group is created before the old one is deleted.
    order = [(e.kind, e.action) for e in result.events if e.state == "done" and e.kind == "AutoScalingGroup"]
    assert order == [("AutoScalingGroup", "replace"), ("AutoScalingGroup", "delete")]

    groups_now = ctx.call("autoscaling", "describe_auto_scaling_groups")["AutoScalingGroups"]
    assert sorted(g["AutoScalingGroupName"] for g in groups_now) == ["payments-2cpu-8gib-prod", "prod-control-plane-0"]
    (instance,) = _instances(ctx, "payments-2cpu-8gib-prod")
    tags = _tags(instance)
    assert tags["Name"] == "payments-2cpu-8gib-prod"
    assert tags["kubeaws.io/team"] == "payments" and tags["kubeaws.io/instance-spec"] == "2cpu-8gib"
    assert tags[CA + "kubeaws.io/team"] == "payments" and tags[CA + "kubeaws.io/instance-spec"] == "2cpu-8gib"
    (template,) = ctx.call("ec2", "describe_launch_templates",
                           LaunchTemplateNames=["payments-2cpu-8gib-prod"])["LaunchTemplates"]
    (version,) = ctx.call("ec2", "describe_launch_template_versions", LaunchTemplateId=template["LaunchTemplateId"],
                          Versions=["$Default"])["LaunchTemplateVersions"]
    specs = {s["ResourceType"]: _tags(s) for s in version["LaunchTemplateData"]["TagSpecifications"]}
    for resource in ("instance", "volume"):
        assert specs[resource]["kubeaws.io/team"] == "payments", resource
        assert specs[resource]["kubeaws.io/instance-spec"] == "2cpu-8gib", resource
        assert specs[resource]["Name"] == "payments-2cpu-8gib-prod", resource
    assert not ctx.call("ec2", "describe_launch_templates",
                        Filters=[{"Name": "launch-template-name", "Values": ["prod-ng-general"]}])["LaunchTemplates"]

    again = api.plan(spec, ctx)
    assert [(c.action, c.key) for c in again.changes if c.action != "noop"] == []


def test_eks_apply_with_pattern_then_rename(ctx: AwsContext) -> None:
    """EKS on the moto server (its missing APIs answered by test_eks_e2e's FakeEks): both kinds of groups are
    named by the pattern and carry team/spec; a re-plan is clean; a new pattern replaces them, new ones first."""
    connect(ctx)
    groups = [{"name": "general", "instanceTypes": ["m5.large"], "team": "payments",
               "size": {"min": 1, "desired": 1, "max": 2}},
              {"name": "batch", "type": "managed", "instanceTypes": ["t3.medium"], "capacity": "spot",
               "team": "data", "size": {"min": 1, "desired": 1, "max": 2}}]
    base: dict[str, Any] = {**EKS, "access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
                            "eks": {"authenticationMode": "API"}}
    spec = make_spec(**base, nodeGroupNamePattern="{team}-{spec}-{cluster}", nodeGroups=groups)
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    (asg,) = ctx.call("autoscaling", "describe_auto_scaling_groups")["AutoScalingGroups"]
    assert asg["AutoScalingGroupName"] == "payments-2cpu-8gib-dev"
    assert {"kubeaws.io/team": "payments", "kubeaws.io/instance-spec": "2cpu-8gib"}.items() <= _tags(asg).items()
    assert ctx.call("eks", "list_nodegroups", clusterName="dev")["nodegroups"] == ["data-2cpu-4gib-dev"]
    managed = ctx.call("eks", "describe_nodegroup", clusterName="dev", nodegroupName="data-2cpu-4gib-dev")["nodegroup"]
    assert {"kubeaws.io/team": "data", "kubeaws.io/instance-spec": "2cpu-4gib"}.items() <= managed["labels"].items()
    assert managed["tags"]["kubeaws.io/team"] == "data"
    names = sorted(lt["LaunchTemplateName"] for lt in ctx.call("ec2", "describe_launch_templates")["LaunchTemplates"])
    assert names == ["data-2cpu-4gib-dev", "payments-2cpu-8gib-dev"]
    assert api.plan(spec, ctx).pending == 0

    renamed = make_spec(**base, nodeGroupNamePattern="{cluster}-{team}-{capacity}", nodeGroups=groups)
    plan = api.plan(renamed, ctx)
    assert {(c.kind, c.name) for c in plan.changes if c.action == "replace"} == {
        ("AutoScalingGroup", "ng-general"), ("LaunchTemplate", "ng-general"), ("EksNodegroup", "batch"),
        ("LaunchTemplate", "mng-batch")}
    result = api.apply(renamed, ctx, plan=plan)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    done = [(e.kind, e.action) for e in result.events if e.state == "done" and e.kind == "EksNodegroup"]
    assert done == [("EksNodegroup", "replace"), ("EksNodegroup", "delete")]
    assert ctx.call("eks", "list_nodegroups", clusterName="dev")["nodegroups"] == ["dev-data-spot"]
    (asg,) = ctx.call("autoscaling", "describe_auto_scaling_groups")["AutoScalingGroups"]
    assert asg["AutoScalingGroupName"] == "dev-payments-on-demand"
    assert api.plan(renamed, ctx).pending == 0


def test_swapping_names_in_one_apply_is_refused(endpoint: str) -> None:
    """Two groups swapping AWS names in one apply: each create would meet the other's group under its new name
    (and take it for its own, both being the cluster's). The plan refuses and says to rename in two steps;
    the two steps work."""
    from kubeaws.engine.plan import PlanError

    ctx = make_ctx(endpoint, cluster="prod")

    def spec_with(a: str, b: str) -> Any:
        size = {"min": 0, "desired": 0, "max": 1}
        return make_spec("prod", nodeGroups=[{"name": "a", "namePattern": a, "size": size},
                                             {"name": "b", "namePattern": b, "size": size}])

    assert api.apply(spec_with("{cluster}-x", "{cluster}-y"), ctx).ok
    with pytest.raises(PlanError) as refused:
        api.plan(spec_with("{cluster}-y", "{cluster}-x"), ctx)
    text = str(refused.value)
    assert "AutoScalingGroup/ng-a: its new name 'prod-y' is still held by AutoScalingGroup/ng-b" in text
    assert "AutoScalingGroup/ng-b: its new name 'prod-x' is still held by AutoScalingGroup/ng-a" in text
    assert "Rename in two steps" in text
    for a, b in (("{cluster}-z", "{cluster}-y"), ("{cluster}-z", "{cluster}-x"), ("{cluster}-y", "{cluster}-x")):
        result = api.apply(spec_with(a, b), ctx)
        assert result.ok, result.failed
    names = sorted(g["AutoScalingGroupName"] for g in ctx.call("autoscaling", "describe_auto_scaling_groups")
                   ["AutoScalingGroups"] if g["AutoScalingGroupName"].startswith("prod-") and "control" not in
                   g["AutoScalingGroupName"])
    assert names == ["prod-x", "prod-y"]
    groups = ctx.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=["prod-y"])
    [tags] = [{t["Key"]: t["Value"] for t in g["Tags"]} for g in groups["AutoScalingGroups"]]
    assert tags["kubeaws.io/resource"] == "AutoScalingGroup/ng-a"
