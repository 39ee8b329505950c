"""Every AWS partition: a cluster in cn-north-1 (aws-cn) or us-gov-west-1 (aws-us-gov) names nothing of another
partition, in `kubeaws render` (every artifact) and in the plan on the moto server (every desired value).
us-east-1 is held by the existing goldens (tests/golden/, test_plan_golden.py), which this change leaves alone.

moto has no public SSM AMI parameters outside the commercial partition, so the planned specs name an AMI that
moto serves in every region (the render needs none).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kubeaws import api, partition
from kubeaws.access import render_artifacts
from kubeaws.aws.session import AwsContext
from kubeaws.eks_auth import presigned_url
from kubeaws.spec.models import ClusterSpec
from tests.conftest import EXAMPLES, make_ctx

REGIONS = {"cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov"}
ARN = re.compile(r"arn:(aws[a-z-]*):")
AMAZONAWS = re.compile(r"[\w.-]*\.amazonaws\.com(?:\.cn)?")
#: A moto-provided (Ubuntu) AMI ID present in every region of the emulator.
MOTO_AMI = "ami-1e749f67"


def spec_in(example: str, region: str, ami: str | None = None) -> ClusterSpec:
    """An example spec moved to `region`, with every addon that writes a policy, aws-auth and access entries."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text().replace("us-east-1", region))
    body = doc["spec"]
    body["addons"] = {**body.get("addons", {}), "clusterAutoscaler": {}, "ebsCSI": {}}
    if body["mode"] == "eks":
        body["eks"]["authenticationMode"] = "API_AND_CONFIG_MAP"
    if ami:
        body["access"].setdefault("bastion", {})["ami"] = ami
        if "controlPlane" in body:
            body["controlPlane"]["ami"] = ami
        for group in body["nodeGroups"]:
            group["ami"] = ami
    return ClusterSpec.model_validate(doc)


def foreign(text: str, region: str) -> list[str]:
    """Everything in `text` that belongs to another partition than the region's."""
    pid = REGIONS[region]
    problems = [f"ARN of partition {m}" for m in sorted(set(ARN.findall(text))) if m != pid]
    suffix = partition.dns_suffix(region)
    # amazonaws.com names that are not endpoints: service principals (the partition's own form), the IRSA
    # audience, the Kubernetes annotation key of IRSA.
    allowed = {partition.service_principal(s, pid) for s in ("ec2", "eks", "elasticloadbalancing")}
    allowed |= {partition.STS_AUDIENCE, "eks.amazonaws.com"}
    for name in sorted(set(AMAZONAWS.findall(text))):
        if name in allowed:
            continue
        if not name.endswith("." + suffix):
            problems.append(f"host {name} (the partition's DNS suffix is {suffix})")
        elif suffix == "amazonaws.com" and name.endswith(".com.cn"):
            problems.append(f"host {name} of aws-cn")
    if pid != "aws-cn" and ".amazonaws.com.cn" in text:
        problems.append("a China name")
    return problems


# -- the helper ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "pid", "suffix"), [
    ("us-east-1", "aws", "amazonaws.com"), ("eu-central-2", "aws", "amazonaws.com"),
    ("cn-north-1", "aws-cn", "amazonaws.com.cn"), ("cn-northwest-1", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-west-1", "aws-us-gov", "amazonaws.com"), ("us-gov-east-1", "aws-us-gov", "amazonaws.com"),
    ("cn-south-9", "aws-cn", "amazonaws.com.cn"),  # not in botocore's list yet: by its regionRegex
])
def test_partition_and_dns_suffix_of_a_region(region: str, pid: str, suffix: str) -> None:
    assert partition.partition_of(region) == pid
    assert partition.dns_suffix(region) == suffix
    assert partition.endpoint_host("sts", region) == f"sts.{region}.{suffix}"


def test_arns_principals_and_managed_policies() -> None:
    assert partition.arn("aws-cn", "s3", "bkt") == "arn:aws-cn:s3:::bkt"
    assert partition.role_arn("aws-us-gov", "123456789012", "/kubeaws/c/c-node") == \
        "arn:aws-us-gov:iam::123456789012:role/kubeaws/c/c-node"
    assert partition.managed_policy("aws-cn", "service-role/AmazonEBSCSIDriverPolicy") == \
        "arn:aws-cn:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    assert partition.service_principal("ec2", "aws-cn") == "ec2.amazonaws.com.cn"
    assert partition.service_principal("ec2", "aws-us-gov") == "ec2.amazonaws.com"
    assert partition.service_principal("eks", "aws-cn") == "eks.amazonaws.com"


def test_foreign_finds_what_it_looks_for() -> None:
    """The checker itself: each kind of leftover is reported (so a clean result means something)."""
    assert foreign('"arn:aws:iam::aws:policy/X"', "cn-north-1") == ["ARN of partition aws"]
    assert foreign("https://oidc.eks.cn-north-1.amazonaws.com/id/X", "cn-north-1")
    assert foreign('"Service": "ec2.amazonaws.com"', "cn-north-1")
    assert foreign("sts.us-gov-west-1.amazonaws.com.cn", "us-gov-west-1")
    assert foreign("arn:aws-cn:s3:::b https://oidc.eks.cn-north-1.amazonaws.com.cn/id/X", "cn-north-1") == []


def test_eks_token_is_signed_for_the_partitions_sts_endpoint() -> None:
    assert urlsplit(presigned_url("c", "cn-north-1")).hostname == "sts.cn-north-1.amazonaws.com.cn"
    assert urlsplit(presigned_url("c", "us-gov-west-1")).hostname == "sts.us-gov-west-1.amazonaws.com"


# -- render ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("example", ["dev", "eks"])
@pytest.mark.parametrize("region", sorted(REGIONS))
def test_render_names_nothing_of_another_partition(example: str, region: str) -> None:
    files = render_artifacts(spec_in(example, region))
    problems = {path: found for path, text in files.items() if (found := foreign(text, region))}
    assert not problems
    pid = REGIONS[region]
    policies = "".join(text for path, text in files.items() if path.startswith(("iam/", "s3/", "kms/")))
    assert f"arn:{pid}:" in policies  # the documents are there and name the partition
    if example == "eks":
        auth = yaml.safe_load(files["eks/aws-auth.yaml"])
        assert all(r["rolearn"].startswith(f"arn:{pid}:iam::") for r in yaml.safe_load(auth["data"]["mapRoles"]))
        entries = json.loads(files["eks/access-entries.json"])["accessEntries"]
        assert all(e["principalArn"].startswith(f"arn:{pid}:iam::") for e in entries)
        trust = json.loads(files["iam/ebs-csi-trust-policy.json"])["Statement"][0]
        assert f"oidc.eks.{region}.{partition.dns_suffix(region)}/id/" in json.dumps(trust)
        node = json.loads(files["iam/node-trust-policy.json"])["Statement"][0]["Principal"]["Service"]
        assert node == partition.service_principal("ec2", pid)


# -- plan on the moto server -----------------------------------------------------------------------

@pytest.mark.parametrize("example", ["dev", "eks"])
@pytest.mark.parametrize("region", sorted(REGIONS))
def test_plan_names_nothing_of_another_partition(endpoint: str, example: str, region: str) -> None:
    spec = spec_in(example, region, ami=MOTO_AMI)
    ctx: AwsContext = make_ctx(endpoint, cluster=spec.metadata.name, region=region)
    plan = api.plan(spec, ctx)
    text = json.dumps(plan.to_dict(), default=str)
    assert plan.summary()["create"] > 30
    assert not foreign(text, region)
    assert f"arn:{REGIONS[region]}:iam::" in text
