"""Instance types (spec.instance_types, spec.resolve, engine.instance_types): an unknown type is a spec error
(exit 2, field path, line, did-you-mean) before any change, in every mode and for every machine; a type newer
than the bundled table is accepted when ec2:DescribeInstanceTypes knows it, and its limits then come from
AWS's answer; `render` (no AWS) refuses what plan refuses, and with the AWS VPC CNI gives kubelet the max pods
the ENIs allow on kubeadm too.

moto (server mode, the conftest fixtures) answers DescribeInstanceTypes from its own copy of AWS's list, which
is newer than the bundled table: m8g.large (3 ENIs x 10 addresses, 2 vCPUs, 8 GiB) is there and not in the
table. moto ignores MaxResults/NextToken there (one page); the code pages anyway (AwsContext.paginate).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.access import render_artifacts
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.engine.instance_types import instance_types, resolved
from kubeaws.errors import SpecError
from kubeaws.model import build
from kubeaws.resources.base import Computed
from kubeaws.spec.instance_types import BUNDLED, InstanceTypeInfo, InstanceTypes, from_describe
from kubeaws.spec.load import load_spec_text
from kubeaws.spec.maxpods import effective_max_pods, group_max_pods
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.nodegroups import node_labels
from kubeaws.spec.resolve import resolve, unresolved
from tests.conftest import EXAMPLES

NEW = "m8g.large"  # in moto's (AWS's) list, not in the bundled table
EKS_TEXT = (EXAMPLES / "eks.yaml").read_text()
DEV_TEXT = (EXAMPLES / "dev.yaml").read_text()


def eks_with(types: str) -> str:
    return EKS_TEXT.replace("instanceTypes: [m5.large, m5a.large]", f"instanceTypes: [{types}]")


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def problems(exc: pytest.ExceptionInfo[SpecError]) -> dict[str, Any]:
    return {p.path: p for p in exc.value.problems}


# -- the lookup ------------------------------------------------------------------------------------------
def test_from_describe_reads_the_table_fields_and_skips_incomplete_items() -> None:
    answer = [{"InstanceType": "x1.big", "NetworkInfo": {"MaximumNetworkInterfaces": 4,
                                                          "Ipv4AddressesPerInterface": 15},
               "VCpuInfo": {"DefaultVCpus": 8}, "MemoryInfo": {"SizeInMiB": 32768}},
              {"InstanceType": "x1.odd", "VCpuInfo": {"DefaultVCpus": 2}}]
    assert from_describe(answer) == {"x1.big": InstanceTypeInfo(enis=4, ipv4_per_eni=15, vcpus=8, memory_mib=32768)}


def test_facts_from_aws_win_and_feed_max_pods_and_labels() -> None:
    """The spec->model layer reads the facts it is given: an answer for NEW unlike any table entry gives
    4 x (15 - 1) + 2 = 58 pods and the label 8cpu-32gib."""
    facts = InstanceTypes(extra={NEW: InstanceTypeInfo(enis=4, ipv4_per_eni=15, vcpus=8, memory_mib=32768)},
                          asked_aws=True)
    spec = resolve(load_spec_text(eks_with(NEW)), facts)
    assert group_max_pods(spec, "self-managed") == effective_max_pods(spec, "self-managed") == 58
    assert node_labels(spec.spec.node_groups[1])["kubeaws.io/instance-spec"] == "8cpu-32gib"
    graph = build(spec)
    user_data = graph["LaunchTemplate/ng-self-managed"].props["user_data"]
    assert isinstance(user_data, Computed) and user_data.args["max_pods"] == 58  # the nodeadm NodeConfig's
    assert graph["AutoScalingGroup/ng-self-managed"].tags["kubeaws.io/instance-spec"] == "8cpu-32gib"


def test_unknown_type_suggestions_prefer_the_family_aws_listed() -> None:
    facts = BUNDLED.with_answer([{"InstanceType": "m8g.large", "NetworkInfo": {"MaximumNetworkInterfaces": 3,
                                                                                "Ipv4AddressesPerInterface": 10},
                                  "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 8192}}],
                                asked=["m8g.lrge"])
    assert "m8g.large" not in facts  # listed for did-you-mean only: not asked for
    assert facts.suggestions("m8g.lrge")[0] == "m8g.large"
    assert BUNDLED.suggestions("m5.lrge")[0] == "m5.large"


# -- offline: render, the model without AWS facts ----------------------------------------------------------
@pytest.mark.parametrize(("text", "fragment", "path"), [
    pytest.param(eks_with("m5.large, m5.lrge"), "instanceTypes: [m5.large, m5.lrge]",
                 "spec.nodeGroups[1].instanceTypes[1]", id="eks-node-group"),
    pytest.param(DEV_TEXT.replace("instanceTypes: [m5.large]", "instanceTypes: [m5.lrge]"),
                 "instanceTypes: [m5.lrge]", "spec.nodeGroups[0].instanceTypes[0]", id="kubeadm-node-group"),
    pytest.param(DEV_TEXT.replace("count: 1, instanceType: m5.large", "count: 1, instanceType: m5.lrge"),
                 "instanceType: m5.lrge", "spec.controlPlane.instanceType", id="kubeadm-control-plane"),
    pytest.param(DEV_TEXT.replace("instanceType: t3.micro", "instanceType: t3.mikro"), "t3.mikro",
                 "spec.access.bastion.instanceType", id="bastion"),
])
def test_render_refuses_a_mistyped_type_with_its_line(text: str, fragment: str, path: str) -> None:
    spec = load_spec_text(text, "c.yaml")  # the form is right: loading leaves existence to resolve
    with pytest.raises(SpecError) as info:
        render_artifacts(spec)
    problem = problems(info)[path]
    assert problem.line == line_of(text, fragment) and info.value.source == "c.yaml"
    assert "did you mean `" in problem.hint and "does not ask AWS" in problem.message
    with pytest.raises(SpecError):
        build(spec)  # the model without AWS facts refuses it too


def test_render_refuses_a_type_newer_than_the_table_saying_plan_accepts_it() -> None:
    spec = load_spec_text(eks_with(NEW))
    with pytest.raises(SpecError) as info:
        render_artifacts(spec)
    problem = problems(info)["spec.nodeGroups[1].instanceTypes[0]"]
    assert "(it has no m8g types)" in problem.message and "did you mean" not in problem.hint
    assert "`kubeaws plan`" in problem.hint and "DescribeInstanceTypes" in problem.hint


def test_render_cli_exit_2(tmp_path: Path) -> None:
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text(eks_with("m5.lrge"))
    result = CliRunner().invoke(app, ["render", "-f", str(spec_file), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "spec.nodeGroups[1].instanceTypes[0]" in result.output and "m5.large" in result.output
    assert "Traceback" not in result.output


def test_kubeadm_with_the_vpc_cni_sets_kubelet_max_pods_from_the_enis() -> None:
    """kubelet's default (110) would schedule pods a t3.medium cannot address (17 with the VPC CNI)."""
    text = DEV_TEXT.replace("cni: calico", "cni: aws-vpc-cni").replace("instanceTypes: [m5.large]",
                                                                      "instanceTypes: [t3.medium]")
    files = render_artifacts(load_spec_text(text))
    user_data = files["user-data/node-general.yaml"]
    assert "kubeletconfiguration+merge.yaml" in user_data and "maxPods: 17" in user_data
    assert "/etc/kubeaws/patches" in files["kubeadm/join-general.yaml"]
    overlay = render_artifacts(load_spec_text(text.replace("cni: aws-vpc-cni", "cni: calico")))
    assert "maxPods" not in overlay["user-data/node-general.yaml"]  # overlay CNI: kubelet's default


# -- with AWS (moto server) --------------------------------------------------------------------------------
def test_a_table_only_spec_asks_aws_nothing(ctx: AwsContext) -> None:
    spec = load_spec_text(EKS_TEXT)
    assert unresolved(spec) == []
    with ctx.counting() as calls:
        assert instance_types(spec, ctx) is BUNDLED
    assert calls.snapshot() == {}


def test_a_newer_type_is_accepted_with_aws_limits(ctx: AwsContext) -> None:
    spec = load_spec_text(eks_with(f"{NEW}, m5.large"))
    with ctx.counting() as calls:
        done = resolved(spec, ctx)
    assert calls.snapshot() == {("ec2", "DescribeInstanceTypes"): 1}  # one call, for the unknown name only
    facts = done.spec.node_groups[1].instance_type_facts
    assert facts.source(NEW) == "aws" and facts.source("m5.large") == "table"
    assert group_max_pods(done, "self-managed") == 29  # min(m8g.large 3 x 9 + 2, m5.large 29)
    assert node_labels(done.spec.node_groups[1])["kubeaws.io/instance-spec"] == "2cpu-8gib"
    plan = api.plan(spec, ctx)
    assert any(c.key == "LaunchTemplate/ng-self-managed" for c in plan.changes)


def test_a_type_aws_does_not_know_is_refused_before_any_change(ctx: AwsContext) -> None:
    text = DEV_TEXT.replace("instanceTypes: [m5.large]", "instanceTypes: [m8g.lrge]")
    spec = load_spec_text(text, "dev.yaml")
    with ctx.counting() as calls, pytest.raises(SpecError) as info:
        api.apply(spec, ctx)
    assert calls.mutating() == 0
    assert set(calls.snapshot()) == {("ec2", "DescribeInstanceTypes")}  # the names, then their family
    problem = problems(info)["spec.nodeGroups[0].instanceTypes[0]"]
    assert problem.line == line_of(text, "m8g.lrge")
    assert "AWS offers in us-east-1" in problem.message and "did you mean `m8g.large`" in problem.hint


@pytest.mark.parametrize("spec_text", [
    pytest.param(eks_with("m5.large, m5.lrge"), id="eks"),
    pytest.param(DEV_TEXT.replace("instanceType: m5.large}", "instanceType: m5.lrge}"), id="kubeadm"),
])
def test_cli_plan_exits_2_on_a_mistyped_type(spec_text: str, endpoint: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text(spec_text)
    result = CliRunner().invoke(app, ["plan", "-f", str(spec_file)])
    assert result.exit_code == 2, result.output
    assert "did you mean `m5.large`" in result.output and f"{spec_file}:" in result.output
    assert "Traceback" not in result.output


def test_max_pods_asked_beyond_what_aws_facts_allow(ctx: AwsContext) -> None:
    doc = yaml.safe_load(eks_with(NEW))
    doc["spec"]["nodeGroups"][1]["maxPods"] = 40
    spec = ClusterSpec.model_validate(copy.deepcopy(doc))
    with pytest.raises(SpecError) as info:
        resolved(spec, ctx)
    problem = problems(info)["spec.nodeGroups[1].maxPods"]
    assert NEW in problem.message and "(29)" in problem.message


@pytest.mark.parametrize("command", ["plan", "doctor"])
def test_cli_accepts_a_newer_type_aws_knows(command: str, endpoint: str, tmp_path: Path) -> None:
    """plan (whose doctor preflight builds the model too) and doctor ask AWS about m8g.large and go on."""
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text(eks_with(NEW))
    result = CliRunner().invoke(app, [command, "-f", str(spec_file)])
    assert "instance-type table" not in result.output and "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output


def test_a_second_resolution_in_one_run_asks_aws_nothing(ctx: AwsContext) -> None:
    spec = load_spec_text(eks_with(NEW))
    resolved(spec, ctx)
    with ctx.counting() as calls:
        api.plan(spec, ctx)
    assert ("ec2", "DescribeInstanceTypes") not in calls.snapshot()
