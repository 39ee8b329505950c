"""Semantic rules (spec.validate), each failing and passing, through the real loader (YAML text in)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from kubeaws.errors import FieldProblem, SpecError
from kubeaws.spec.load import load_spec_text
from kubeaws.spec.validate import format_path, parse_path
from tests.helpers import BASE

DELETE = object()
BROUGHT = {"vpc": {"cidr": DELETE, "id": "vpc-0abc1234"}, "availabilityZones": DELETE,
           "subnets": {"private": ["subnet-0aaa1111", "subnet-0bbb2222"], "public": ["subnet-0ccc3333"]}}
EKS = {"mode": "eks", "network": {"serviceCIDR": "172.20.0.0/16"}, "controlPlane": DELETE}
GOOD_AMI = "ami-0123456789abcdef0"


def apply(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into a copy of `base` (nested dicts merged, DELETE removes a key)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def problems_of(*overrides: dict[str, Any], top: dict[str, Any] | None = None) -> list[FieldProblem]:
    """Problems of BASE with `top` merged into the document and each override merged into `spec`."""
    doc = apply(BASE, top or {})
    for override in overrides:
        doc["spec"] = apply(doc["spec"], override)
    try:
        load_spec_text(yaml.safe_dump(doc, sort_keys=False), "test.yaml")
    except SpecError as exc:
        return exc.problems
    return []


def groups(*overrides: dict[str, Any]) -> dict[str, Any]:
    return {"nodeGroups": [{"name": f"g{i}", **o} for i, o in enumerate(overrides)]}


def tags(n: int, prefix: str = "t") -> dict[str, str]:
    return {f"{prefix}{i}": "v" for i in range(n)}


N = "spec.network"
# (id, spec override(s), top-level override, expected path, message fragment)
FAILING: list[tuple[str, list[dict[str, Any]], dict[str, Any], str, str]] = [
    ("name-uppercase", [], {"metadata": {"name": "Dev"}}, "metadata.name", "not a valid cluster name"),
    ("name-too-long", [], {"metadata": {"name": "a" * 29}}, "metadata.name", "not a valid cluster name"),
    ("name-trailing-dash", [], {"metadata": {"name": "dev-"}}, "metadata.name", "not a valid cluster name"),
    ("metadata-label", [], {"metadata": {"labels": {"a b": "x"}}}, 'metadata.labels["a b"]', "label key"),
    ("group-name", [groups({"name": "Big_Group"})], {}, "spec.nodeGroups[0].name", "not a valid node group"),
    ("group-name-long", [groups({"name": "g" * 41})], {}, "spec.nodeGroups[0].name", "not a valid node group"),
    ("group-duplicate", [groups({"name": "a"}, {"name": "b"}, {"name": "a"})], {}, "spec.nodeGroups[2].name",
     "already used by nodeGroups[0]"),
    ("region", [{"region": "us-east-9"}], {}, "spec.region", "not a known AWS region"),
    ("az-other-region", [{"network": {"availabilityZones": ["us-east-1a", "us-west-2b"]}}], {},
     f"{N}.availabilityZones[1]", "not an availability zone of us-east-1"),
    ("az-duplicate", [{"network": {"availabilityZones": ["us-east-1a", "us-east-1a"]}}], {},
     f"{N}.availabilityZones[1]", "listed twice"),
    ("az-none", [{"network": {"availabilityZones": []}}], {}, f"{N}.availabilityZones", "at least 1"),
    ("az-eks-one", [EKS, {"network": {"availabilityZones": ["us-east-1a"]}}], {}, f"{N}.availabilityZones",
     "at least 2"),
    ("k8s-version", [{"kubernetesVersion": "1.29"}], {}, "spec.kubernetesVersion", "not supported"),
    ("cp-count-2", [{"controlPlane": {"count": 2}}], {}, "spec.controlPlane.count", "not 1, 3 or 5"),
    ("cp-count-4", [{"controlPlane": {"count": 4}}], {}, "spec.controlPlane.count", "not 1, 3 or 5"),
    ("vpc-host-bits", [{"network": {"vpc": {"cidr": "10.0.0.1/16"}}}], {}, f"{N}.vpc.cidr", "host bits"),
    ("vpc-too-big", [{"network": {"vpc": {"cidr": "10.0.0.0/12"}}}], {}, f"{N}.vpc.cidr", "between /16 and /24"),
    ("vpc-too-small", [{"network": {"vpc": {"cidr": "10.0.0.0/25"}}}], {}, f"{N}.vpc.cidr", "between /16 and /24"),
    ("vpc-ipv6", [{"network": {"vpc": {"cidr": "fd00::/56"}}}], {}, f"{N}.vpc.cidr", "IPv6"),
    ("pod-garbage", [{"network": {"podCIDR": "pods"}}], {}, f"{N}.podCIDR", "not a CIDR"),
    ("pod-overlaps-vpc", [{"network": {"podCIDR": "10.0.128.0/17"}}], {}, f"{N}.podCIDR", "overlaps vpc.cidr"),
    ("svc-overlaps-vpc", [{"network": {"serviceCIDR": "10.0.0.0/20"}}], {}, f"{N}.serviceCIDR",
     "overlaps vpc.cidr"),
    ("svc-overlaps-pod", [{"network": {"serviceCIDR": "192.168.0.0/20"}}], {}, f"{N}.serviceCIDR",
     "overlaps podCIDR"),
    ("svc-too-big", [{"network": {"serviceCIDR": "100.0.0.0/8"}}], {}, f"{N}.serviceCIDR", "/12"),
    ("pod-too-small", [{"network": {"podCIDR": "192.168.0.0/25"}}], {}, f"{N}.podCIDR", "/24"),
    ("eks-svc-public", [EKS, {"network": {"serviceCIDR": "100.64.0.0/16"}}], {}, f"{N}.serviceCIDR",
     "EKS does not accept"),
    ("eks-svc-prefix", [EKS, {"network": {"serviceCIDR": "172.20.0.0/25"}}], {}, f"{N}.serviceCIDR",
     "EKS does not accept"),
    ("eks-cni", [EKS, {"network": {"cni": "calico"}}], {}, f"{N}.cni", "not supported in eks mode"),
    ("admin-garbage", [{"access": {"adminCIDRs": ["office"]}}], {}, "spec.access.adminCIDRs[0]", "not a CIDR"),
    ("admin-world", [{"access": {"adminCIDRs": ["0.0.0.0/0"]}}], {}, "spec.access.adminCIDRs[0]",
     "whole internet"),
    ("admin-world-v6", [{"access": {"adminCIDRs": ["::/0"]}}], {}, "spec.access.adminCIDRs[0]", "whole internet"),
    ("public-no-admin", [{"access": {"apiEndpoint": "public", "adminCIDRs": []}}], {}, "spec.access.adminCIDRs",
     "cannot be reached"),
    ("nodeport-garbage", [{"network": {"nodePortCIDRs": ["10.0.0.0/33"]}}], {}, f"{N}.nodePortCIDRs[0]",
     "not a CIDR"),
    ("layout-vpc", [{"network": {"vpc": {"cidr": "10.0.0.0/24"},
                                 "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]}}], {},
     f"{N}.vpc.cidr", "do not fit"),
    ("layout-prefix", [{"network": {"privateSubnetPrefix": 17}}], {}, f"{N}.privateSubnetPrefix", "do not fit"),
    ("layout-public-prefix", [{"network": {"vpc": {"cidr": "10.0.0.0/24"}, "publicSubnetPrefix": 25}}], {},
     f"{N}.publicSubnetPrefix", "do not fit"),
    ("brought-bad-id", [{"network": BROUGHT}, {"network": {"vpc": {"id": "vpc-XYZ"}}}], {}, f"{N}.vpc.id",
     "not a VPC ID"),
    ("brought-no-private", [{"network": BROUGHT}, {"network": {"subnets": {"private": []}}}], {},
     f"{N}.subnets.private", "private subnets"),
    ("brought-no-subnets", [{"network": BROUGHT}, {"network": {"subnets": DELETE}}], {}, f"{N}.subnets.private",
     "private subnets"),
    ("brought-bastion-no-public", [{"network": BROUGHT}, {"network": {"subnets": {"public": []}}}], {},
     f"{N}.subnets.public", "bastion needs a public subnet"),
    ("brought-public-api-no-public", [{"network": BROUGHT}, {"network": {"subnets": {"public": []}}},
                                      {"access": {"apiEndpoint": "public", "bastion": {"enabled": False}}}], {},
     f"{N}.subnets.public", "load balancer"),
    ("brought-bad-subnet", [{"network": BROUGHT}, {"network": {"subnets": {"public": ["sn-1"]}}}], {},
     f"{N}.subnets.public[0]", "not a subnet ID"),
    ("brought-subnet-twice", [{"network": BROUGHT}, {"network": {"subnets": {"public": ["subnet-0aaa1111"]}}}], {},
     f"{N}.subnets.public[0]", "listed twice"),
    ("brought-nat", [{"network": BROUGHT}, {"network": {"natGateway": "single"}}], {}, f"{N}.natGateway",
     "does not manage the routing"),
    ("brought-eks-one-subnet", [EKS, {"network": BROUGHT}, {"network": {"subnets": {"private": ["subnet-0a1"]}}}],
     {}, f"{N}.subnets.private", "two AZs"),
    ("brought-sg-bad-id", [{"network": BROUGHT}, {"network": {"securityGroups": {"nodes": "sg-XYZ"}}}], {},
     f"{N}.securityGroups.nodes", "not a security group ID"),
    ("brought-sg-name-not-id", [{"network": BROUGHT}, {"network": {"securityGroups": {"controlPlane": "team-cp"}}}],
     {}, f"{N}.securityGroups.controlPlane", "not a security group ID"),
    ("brought-sg-short-id", [{"network": BROUGHT}, {"network": {"securityGroups": {"bastion": "sg-0abc"}}}], {},
     f"{N}.securityGroups.bastion", "not a security group ID"),
    ("brought-sg-new-vpc", [{"network": {"securityGroups": {"nodes": "sg-0abc1234"}}}], {}, f"{N}.securityGroups",
     "need a brought VPC"),
    ("brought-sg-lb-eks", [EKS, {"network": BROUGHT}, {"network": {"securityGroups": {"loadBalancer": "sg-0abc1234"}}}],
     {}, f"{N}.securityGroups.loadBalancer", "eks mode has no kubeaws API load balancer"),
    ("brought-sg-bastion-disabled", [{"network": BROUGHT}, {"network": {"securityGroups": {"bastion": "sg-0abc1234"}},
                                                           "access": {"bastion": {"enabled": False}}}], {},
     f"{N}.securityGroups.bastion", "access.bastion.enabled is false"),
    ("brought-sg-unknown-role", [{"network": BROUGHT}, {"network": {"securityGroups": {"workers": "sg-0abc1234"}}}],
     {}, f"{N}.securityGroups.workers", ""),
    ("new-vpc-with-subnets", [{"network": {"subnets": {"private": ["subnet-0aaa1111"]}}}], {}, f"{N}.subnets",
     "only for a brought VPC"),
    ("nat-none-no-mirrors", [{"network": {"natGateway": "none"}}], {}, f"{N}.natGateway", "no outbound"),
    ("nat-none-half-mirrors", [{"network": {"natGateway": "none"}, "mirrors": {"imageRepository": "r.example/k"}}],
     {}, f"{N}.natGateway", "no outbound"),
    ("bastion-ami", [{"access": {"bastion": {"ami": "ami-xyz"}}}], {}, "spec.access.bastion.ami", "not an AMI"),
    ("cp-ami", [{"controlPlane": {"ami": "ubuntu"}}], {}, "spec.controlPlane.ami", "not an AMI"),
    ("group-ami", [groups({"ami": "ami-123"})], {}, "spec.nodeGroups[0].ami", "not an AMI"),
    ("bastion-type", [{"access": {"bastion": {"instanceType": "t3micro"}}}], {}, "spec.access.bastion.instanceType",
     "not an EC2 instance type"),
    ("cp-type", [{"controlPlane": {"instanceType": "large"}}], {}, "spec.controlPlane.instanceType",
     "not an EC2 instance type"),
    ("group-type", [groups({"instanceTypes": ["m5.large", "M5.Large"]})], {},
     "spec.nodeGroups[0].instanceTypes[1]", "not an EC2 instance type"),
    ("group-type-twice", [groups({"instanceTypes": ["m5.large", "m5.large"]})], {},
     "spec.nodeGroups[0].instanceTypes[1]", "listed twice"),
    ("managed-in-kubeadm", [groups({"type": "managed"})], {}, "spec.nodeGroups[0].type", "only in eks mode"),
    ("taint-key", [groups({"taints": [{"key": "-bad", "effect": "NoSchedule"}]})], {},
     "spec.nodeGroups[0].taints[0].key", "not a valid taint key"),
    ("taint-value", [groups({"taints": [{"key": "a", "value": "x y", "effect": "NoSchedule"}]})], {},
     "spec.nodeGroups[0].taints[0].value", "not a valid taint value"),
    ("label-key", [groups({"labels": {"bad key": "x"}})], {}, 'spec.nodeGroups[0].labels["bad key"]',
     "not a valid label key"),
    ("label-prefix", [groups({"labels": {"Example.com/x": "x"}})], {}, 'spec.nodeGroups[0].labels["Example.com/x"]',
     "not a valid label key"),
    ("label-value", [groups({"labels": {"team": "v" * 64}})], {}, "spec.nodeGroups[0].labels.team",
     "not a valid label value"),
    ("label-kubelet", [groups({"labels": {"node-role.kubernetes.io/worker": ""}})], {},
     'spec.nodeGroups[0].labels["node-role.kubernetes.io/worker"]', "NodeRestriction"),
    ("tags-too-many", [{"tags": tags(41)}], {}, "spec.tags", "41 tags"),
    ("tags-aws", [{"tags": {"aws:team": "x"}}], {}, 'spec.tags["aws:team"]', "reserved"),
    ("tags-kubeaws", [{"tags": {"kubeaws.io/cluster": "x"}}], {}, 'spec.tags["kubeaws.io/cluster"]', "reserved"),
    ("tags-group-sum", [{"tags": tags(30)}, groups({"tags": tags(11, "g")})], {}, "spec.nodeGroups[0].tags",
     "add up to 41"),
    ("tags-long-key", [{"tags": {"k" * 129: "v"}}], {}, f"spec.tags.{'k' * 129}", "1-128"),
    ("extra-volumes", [groups({"extraVolumes": [{"size": 10}] * 11})], {}, "spec.nodeGroups[0].extraVolumes",
     "11 extra volumes"),
    ("volume-iops-gp2", [groups({"extraVolumes": [{"size": 10, "type": "gp2", "iops": 3000}]})], {},
     "spec.nodeGroups[0].extraVolumes[0].iops", "cannot be set on gp2"),
    ("volume-io2-no-iops", [{"controlPlane": {"etcdVolume": {"size": 20, "type": "io2"}}}], {},
     "spec.controlPlane.etcdVolume.iops", "need iops"),
    ("volume-throughput", [groups({"rootVolume": {"size": 50, "type": "gp2", "throughput": 200}})], {},
     "spec.nodeGroups[0].rootVolume.throughput", "only be set on gp3"),
    ("mirror-packages", [{"mirrors": {"packages": "mirror.example.cn"}}], {}, "spec.mirrors.packages",
     "not an http(s) URL"),
    ("mirror-images", [{"mirrors": {"imageRepository": "https://r.example.cn"}}], {}, "spec.mirrors.imageRepository",
     "registry prefix"),
    ("kms-arn", [EKS, {"eks": {"encryption": {"kmsKeyArn": "my-key"}}}], {}, "spec.eks.encryption.kmsKeyArn",
     "not a KMS key ARN"),
    ("ebs-csi-without-cloud-provider", [{"addons": {"ebsCSI": {}}}], {}, "spec.addons.ebsCSI",
     "needs the AWS cloud provider"),
    ("public-endpoint-without-nat", [{"access": {"apiEndpoint": "public"}, "network": {"natGateway": "none"}}], {},
     "spec.network.natGateway", "needs a NAT gateway"),
]


@pytest.mark.parametrize(("overrides", "top", "path", "fragment"),
                         [pytest.param(o, t, p, f, id=i) for i, o, t, p, f in FAILING])
def test_rule_fails(overrides: list[dict[str, Any]], top: dict[str, Any], path: str, fragment: str) -> None:
    problems = problems_of(*overrides, top=top)
    hits = [p for p in problems if p.path == path and fragment in p.message]
    assert hits, "\n".join(p.render() for p in problems)
    assert all(p.hint for p in hits), "every problem says how to fix it"
    assert all(p.line for p in hits), "every problem has a line"


PASSING: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("base", [], {}),
    ("name-28", [], {"metadata": {"name": "a" * 27 + "1"}}),
    ("group-name-40", [groups({"name": "g" * 40})], {}),
    ("region-china", [{"region": "cn-north-1", "network": {"availabilityZones": ["cn-north-1a", "cn-north-1b"]}}],
     {}),
    ("region-govcloud", [{"region": "us-gov-west-1",
                          "network": {"availabilityZones": ["us-gov-west-1a", "us-gov-west-1b"]}}], {}),
    ("cp-count-3", [{"controlPlane": {"count": 3}}], {}),
    ("cp-count-5", [{"controlPlane": {"count": 5}}], {}),
    ("vpc-24-one-az", [{"network": {"vpc": {"cidr": "10.0.0.0/24"}, "availabilityZones": ["us-east-1a"]}}], {}),
    ("vpc-23-three-az", [{"network": {"vpc": {"cidr": "10.0.0.0/23"},
                                      "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]}}], {}),
    ("explicit-prefixes", [{"network": {"privateSubnetPrefix": 20, "publicSubnetPrefix": 24}}], {}),
    ("vpc-cni-pods-in-vpc", [{"network": {"cni": "aws-vpc-cni", "podCIDR": "10.0.0.0/16"}}], {}),
    ("eks", [EKS], {}),
    ("eks-managed", [EKS, groups({"type": "managed"})], {}),
    ("admin-world-allowed", [{"access": {"adminCIDRs": ["0.0.0.0/0", "::/0"], "allowWorldAccess": True}}], {}),
    ("admin-ipv6", [{"access": {"adminCIDRs": ["2001:db8::/32"]}}], {}),
    ("public-endpoint", [{"access": {"apiEndpoint": "public"}}], {}),
    ("private-no-admin", [{"access": {"adminCIDRs": []}}], {}),
    ("nodeports", [{"network": {"nodePortCIDRs": ["10.0.0.0/16", "2001:db8::/64"]}}], {}),
    ("brought", [{"network": BROUGHT}], {}),
    ("brought-private-only", [{"network": BROUGHT}, {"network": {"subnets": {"public": []}, "natGateway": "none"},
                                                     "access": {"bastion": {"enabled": False}}}], {}),
    ("brought-with-azs", [{"network": BROUGHT}, {"network": {"availabilityZones": ["us-east-1a"]}}], {}),
    ("brought-eks", [EKS, {"network": BROUGHT}], {}),
    ("brought-sgs", [{"network": BROUGHT}, {"network": {"securityGroups": {
        "controlPlane": "sg-0abc1234", "nodes": "sg-0123456789abcdef0", "bastion": "sg-0abc1235",
        "loadBalancer": "sg-0abc1236"}}}], {}),
    ("brought-sg-shared", [{"network": BROUGHT}, {"network": {"securityGroups": {
        "controlPlane": "sg-0abc1234", "nodes": "sg-0abc1234"}}}], {}),
    ("brought-sgs-eks", [EKS, {"network": BROUGHT}, {"network": {"securityGroups": {
        "controlPlane": "sg-0abc1234", "nodes": "sg-0abc1235"}}}], {}),
    ("brought-sgs-empty", [{"network": {"securityGroups": {}}}], {}),
    ("nat-none-mirrors", [{"network": {"natGateway": "none"},
                           "mirrors": {"imageRepository": "registry.example.cn/k8s",
                                       "packages": "https://mirror.example.cn/k8s"}}], {}),
    ("nat-per-az", [{"network": {"natGateway": "perAZ"}}], {}),
    ("amis", [{"access": {"bastion": {"ami": "ami-12345678"}}, "controlPlane": {"ami": GOOD_AMI}},
              groups({"ami": GOOD_AMI})], {}),
    ("instance-types", [groups({"instanceTypes": ["m5.large", "c7gn.16xlarge", "u-6tb1.metal", "mac2-m2pro.metal"]})],
     {}),
    ("labels-taints", [groups({"labels": {"example.com/role": "db", "node.kubernetes.io/pool": "a", "t": ""},
                               "taints": [{"key": "example.com/dedicated", "value": "db", "effect": "NoExecute"}]})],
     {}),
    ("tags-40", [{"tags": tags(40)}], {}),
    ("extra-volumes-10", [groups({"extraVolumes": [{"size": 10}] * 10})], {}),
    ("volumes", [{"controlPlane": {"etcdVolume": {"size": 20, "type": "io2", "iops": 3000}}},
                 groups({"rootVolume": {"size": 50, "type": "gp3", "iops": 4000, "throughput": 250}})], {}),
    ("kms-arn", [EKS, {"eks": {"encryption": {"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/abcd"}}}], {}),
    ("ebs-csi-with-cloud-provider", [{"addons": {"ebsCSI": {}, "cloudProviderAWS": {}}}], {}),
    ("ebs-csi-eks", [EKS, {"addons": {"ebsCSI": {}}}], {}),
]


@pytest.mark.parametrize(("overrides", "top"), [pytest.param(o, t, id=i) for i, o, t in PASSING])
def test_rule_passes(overrides: list[dict[str, Any]], top: dict[str, Any]) -> None:
    problems = problems_of(*overrides, top=top)
    assert problems == [], "\n".join(p.render() for p in problems)


def test_hints_name_the_fix() -> None:
    by_path = {p.path: p for p in problems_of(
        {"region": "us-east-7", "kubernetesVersion": "1.20", "network": {"vpc": {"cidr": "10.0.0.1/16"}}},
        {"controlPlane": {"count": 2}, "access": {"adminCIDRs": ["0.0.0.0/0"]}}, top={"metadata": {"name": "X"}})}
    assert "us-east-1" in by_path["spec.region"].hint
    assert "1.31" in by_path["spec.kubernetesVersion"].hint
    assert "`10.0.0.0/16`" in by_path["spec.network.vpc.cidr"].hint
    assert "quorum" in by_path["spec.controlPlane.count"].hint
    assert "allowWorldAccess" in by_path["spec.access.adminCIDRs[0]"].hint
    assert "32-character" in by_path["metadata.name"].hint


def test_subnet_hint_names_the_field_that_fixes_it() -> None:
    """A /26 private prefix in a /16: the public prefix it implies (/29) is below the AWS minimum; the fix is
    publicSubnetPrefix (or a shorter private prefix), not a VPC that is already as large as allowed."""
    (problem,) = problems_of({"network": {"privateSubnetPrefix": 26}})
    assert problem.path == "spec.network.publicSubnetPrefix"
    assert "/29" in problem.message and "privateSubnetPrefix + 3" in problem.message
    assert problem.hint.startswith("set publicSubnetPrefix: 28") and "privateSubnetPrefix: 25" in problem.hint
    assert "VPC" not in problem.hint
    small = problems_of({"network": {"vpc": {"cidr": "10.0.0.0/24"},
                                     "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]}})
    assert small[0].path == "spec.network.vpc.cidr" and small[0].hint.startswith("use a /23 VPC")


@pytest.mark.parametrize(
    "parts",
    [["spec", "nodeGroups", 1, "size"], ["metadata", "name"], ["spec", "tags", "a b"],
     ["spec", "nodeGroups", 0, "labels", 'we"ird.io/x'], []],
)
def test_path_round_trip(parts: list[str | int]) -> None:
    assert parse_path(format_path(parts)) == parts


def test_path_format() -> None:
    assert format_path(["spec", "nodeGroups", 1, "labels", "example.com/x"]) == \
        'spec.nodeGroups[1].labels["example.com/x"]'
