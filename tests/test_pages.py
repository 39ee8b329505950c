"""Every listing asks for an explicit page and follows its tokens (issue #14 item 3): the page-size table
(aws/pages.py) against botocore's models and kubeaws' source, `AwsContext.paginate` sending the size under
each API's own name and following NextToken/Marker to the last page, and the local emulator's EC2 front
(local/ec2_front.py) paging the launch-template describes as EC2 does.

moto adaptation: moto answers DescribeLaunchTemplates / DescribeLaunchTemplateVersions with at most 15 items and
no NextToken; the emulator's EC2 front pages them (the fixture's server, tests/moto_server.py, is the emulator's,
so it has the front), and the tests here are what show that it does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from kubeaws.aws.pages import PAGE_SIZES, with_page_size
from kubeaws.aws.session import AwsContext
from tests.helpers import CallRecorder

SRC = Path(__file__).resolve().parent.parent / "src" / "kubeaws"
#: ctx.paginate("svc", "op", ...) and partial(ctx.paginate, "svc", "op", ...) in kubeaws' source.
PAGINATE = re.compile(r'paginate(?:\(|,)\s*"([a-z0-9]+)",\s*"([a-z0-9_]+)"')
#: Kinds that list through a class attribute (Ec2Kind.describe_op, the ELBv2 controller-made kinds).
DESCRIBE_OP = re.compile(r'describe_op = "([a-z0-9_]+)"')


def paginated_in_source() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        found |= set(PAGINATE.findall(text))
        service = "elbv2" if path.name == "controller_made.py" else "ec2"
        found |= {(service, op) for op in DESCRIBE_OP.findall(text) if op != "describe_addresses"}
    return found


def test_every_listing_in_the_source_has_a_page_size() -> None:
    listed = paginated_in_source()
    assert ("ec2", "describe_launch_templates") in listed and ("ec2", "describe_vpcs") in listed  # the scan works
    assert sorted(listed - set(PAGE_SIZES)) == []


def test_page_sizes_fit_botocore_models() -> None:
    session = botocore.session.get_session()
    for (service, operation), size in PAGE_SIZES.items():
        client = session.create_client(service, region_name="us-east-1", aws_access_key_id="x",
                                       aws_secret_access_key="y")
        limit_key = client.get_paginator(operation)._pagination_cfg.get("limit_key")
        assert limit_key, f"{service}.{operation} has no page size parameter"
        model = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[operation])
        shape = model.input_shape.members[limit_key]
        bounds = shape.metadata
        assert bounds.get("min", 1) <= size <= bounds.get("max", size), (service, operation, size, bounds)


def test_no_page_size_next_to_ids_or_a_callers_own() -> None:
    assert with_page_size("ec2", "describe_instances", "MaxResults", {"Filters": []}) == {
        "Filters": [], "MaxResults": 1000}
    assert with_page_size("ec2", "describe_instances", "MaxResults", {"InstanceIds": ["i-1"]}) == {
        "InstanceIds": ["i-1"]}
    assert with_page_size("ec2", "describe_launch_templates", "MaxResults", {"MaxResults": 5}) == {"MaxResults": 5}
    assert with_page_size("autoscaling", "describe_auto_scaling_groups", "MaxRecords", {}) == {"MaxRecords": 100}
    assert with_page_size("ec2", "describe_addresses", None, {}) == {}


def _templates(ctx: AwsContext, count: int) -> set[str]:
    ids = set()
    for i in range(count):
        made = ctx.call("ec2", "create_launch_template", LaunchTemplateName=f"lt-{i:03d}",
                        LaunchTemplateData={"InstanceType": "t3.micro"},
                        TagSpecifications=[{"ResourceType": "launch-template",
                                            "Tags": [{"Key": "kubeaws.io/cluster", "Value": "dev"}]}])
        ids.add(made["LaunchTemplate"]["LaunchTemplateId"])
    return ids


def test_paginate_sends_the_page_size_and_follows_tokens(ctx: AwsContext) -> None:
    made = _templates(ctx, 23)
    recorder = CallRecorder()
    ctx.add_hook("before-call.ec2.DescribeLaunchTemplates", recorder)
    items = ctx.paginate("ec2", "describe_launch_templates", "LaunchTemplates", MaxResults=5)
    assert {i["LaunchTemplateId"] for i in items} == made and len(items) == 23
    assert len(recorder.calls) == 5  # 5 + 5 + 5 + 5 + 3
    recorder.calls.clear()
    tagged = ctx.paginate("ec2", "describe_launch_templates", "LaunchTemplates",
                          Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]}])
    assert len(tagged) == 23
    assert recorder.calls[0][1]["MaxResults"] == 200  # the API's largest page, asked explicitly


def test_emulator_pages_launch_templates_as_ec2_does(ctx: AwsContext) -> None:
    made = _templates(ctx, 32)
    ec2: Any = ctx.client("ec2")
    first = ec2.describe_launch_templates(MaxResults=15)
    assert len(first["LaunchTemplates"]) == 15 and first["NextToken"]
    # a template deleted between two pages shifts nothing: the token names the last item served
    ec2.delete_launch_template(LaunchTemplateId=first["LaunchTemplates"][0]["LaunchTemplateId"])
    second = ec2.describe_launch_templates(MaxResults=15, NextToken=first["NextToken"])
    third = ec2.describe_launch_templates(MaxResults=15, NextToken=second["NextToken"])
    assert len(second["LaunchTemplates"]) == 15 and len(third["LaunchTemplates"]) == 2 and "NextToken" not in third
    seen = [t["LaunchTemplateId"] for page in (first, second, third) for t in page["LaunchTemplates"]]
    assert len(seen) == len(set(seen)) == 32 and set(seen) == made
    assert len(ec2.describe_launch_templates()["LaunchTemplates"]) == 31  # no MaxResults: every one
    assert ec2.describe_launch_templates(LaunchTemplateNames=["lt-007"])["LaunchTemplates"][0][
        "LaunchTemplateName"] == "lt-007"
    for bad in ({"MaxResults": 201}, {"MaxResults": 5, "NextToken": "not-a-token"}):
        with pytest.raises(ClientError) as info:
            ec2.describe_launch_templates(**bad)
        assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_emulator_pages_launch_template_versions(ctx: AwsContext) -> None:
    ec2: Any = ctx.client("ec2")
    template = ec2.create_launch_template(LaunchTemplateName="many", LaunchTemplateData={
        "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    for _ in range(19):
        ec2.create_launch_template_version(LaunchTemplateId=template, LaunchTemplateData={"InstanceType": "t3.small"})
    versions = ctx.paginate("ec2", "describe_launch_template_versions", "LaunchTemplateVersions",
                            LaunchTemplateId=template)
    assert sorted(int(v["VersionNumber"]) for v in versions) == list(range(1, 21))
    page = ec2.describe_launch_template_versions(LaunchTemplateId=template, MaxResults=7)
    assert [v["VersionNumber"] for v in page["LaunchTemplateVersions"]] == list(range(1, 8)) and page["NextToken"]
