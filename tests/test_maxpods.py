"""Max pods with the AWS VPC CNI (model/maxpods.py): the formula against EKS' published values, prefix
delegation caps, custom networking, the bundled table, unknown types and the maxPods validation helper."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.model import maxpods
from kubeaws.model.maxpods import (
    UnknownInstanceType,
    check_max_pods,
    effective_max_pods,
    group_max_pods,
    kubelet_max_pods,
    max_pods,
    max_pods_from,
)
from kubeaws.spec.instance_types import InstanceTypeInfo, InstanceTypes
from tests.helpers import make_spec

EKS: dict[str, Any] = {"mode": "eks", "network": {"cni": "aws-vpc-cni"}}


@pytest.mark.parametrize(("instance_type", "expected"), [
    ("t3.medium", 17), ("m5.large", 29), ("m5.xlarge", 58), ("c5.18xlarge", 737), ("t3.micro", 4),
    ("m5.24xlarge", 737), ("r5.large", 29), ("t4g.medium", 17), ("m6i.large", 29),
])
def test_eni_formula_matches_eks_values(instance_type: str, expected: int) -> None:
    assert max_pods(instance_type) == expected


def test_prefix_delegation_caps() -> None:
    assert max_pods("m5.large", prefix_delegation=True) == 110
    assert max_pods("m5.24xlarge", prefix_delegation=True) == 250  # 96 vCPUs > 30
    assert max_pods("t3.micro", prefix_delegation=True) == 2 * (1 * 16) + 2  # below the cap
    assert max_pods_from(3, 10, 30, prefix_delegation=True) == 110  # 30 vCPUs is not "above 30"
    assert max_pods_from(8, 30, 32, prefix_delegation=True) == 250


def test_custom_networking_uses_one_eni_fewer() -> None:
    assert max_pods("m5.large", custom_networking=True) == 2 * 9 + 2
    assert max_pods_from(3, 10, 2, custom_networking=True) == 20


def test_pure_core_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        max_pods_from(0, 10, 2)


def test_table_covers_the_common_families() -> None:
    table = maxpods.table()
    for family in ("t3", "t3a", "m5", "m5a", "m6i", "m7i", "c5", "c6i", "r5", "r5a", "r6i", "i3", "g4dn", "t4g",
                   "m6g", "m7g", "c7g", "r7g"):
        assert any(name.startswith(f"{family}.") for name in table), family
    assert all(lim.enis >= 2 and lim.ipv4_per_eni >= 2 and lim.vcpus >= 1 for lim in table.values())
    assert all(lim.memory_mib >= 512 for lim in table.values())  # for the kubeaws.io/instance-spec label


def test_unknown_type_suggests_close_matches() -> None:
    with pytest.raises(UnknownInstanceType, match=r"did you mean m5\.large") as info:
        max_pods("m5.larg")
    assert "m5.large" in info.value.suggestions
    assert isinstance(info.value, LookupError)


def test_group_max_pods_is_the_minimum_over_types() -> None:
    spec = make_spec(**EKS, nodeGroups=[{"name": "mixed", "instanceTypes": ["m5.xlarge", "t3.medium"]}])
    assert group_max_pods(spec, "mixed") == 17
    pd = make_spec(**EKS, eks={"prefixDelegation": True},
                   nodeGroups=[{"name": "big", "instanceTypes": ["m5.24xlarge", "c5.24xlarge"]}])
    assert group_max_pods(pd, "big") == 250
    with pytest.raises(ValueError, match="no node group named 'nope'"):
        group_max_pods(spec, "nope")


def test_effective_max_pods_prefers_the_spec() -> None:
    spec = make_spec(**EKS, nodeGroups=[{"name": "a", "instanceTypes": ["m5.large"], "maxPods": 20},
                                        {"name": "b", "instanceTypes": ["m5.large"]}])
    assert effective_max_pods(spec, "a") == 20
    assert effective_max_pods(spec, "b") == 29


def test_check_max_pods_names_the_limit_and_type() -> None:
    spec = make_spec(**EKS, nodeGroups=[{"name": "ok", "instanceTypes": ["m5.xlarge"], "maxPods": 58},
                                        {"name": "bad", "instanceTypes": ["m5.xlarge", "t3.medium"], "maxPods": 40}])
    (problem,) = check_max_pods(spec)
    assert problem.path == "spec.nodeGroups[1].maxPods"
    assert "t3.medium" in problem.message and "(17)" in problem.message
    assert "prefixDelegation" in problem.hint


def test_check_max_pods_scope() -> None:
    big = [{"name": "g", "instanceTypes": ["m5.large"], "maxPods": 110}]
    assert check_max_pods(make_spec(**EKS, eks={"prefixDelegation": True}, nodeGroups=big)) == []
    assert check_max_pods(make_spec(nodeGroups=big)) == []  # calico: not bound by ENIs
    unknown = [{"name": "g", "instanceTypes": ["x9.large"], "maxPods": 500}]
    assert check_max_pods(make_spec(**EKS, nodeGroups=unknown)) == []  # left to `kubeaws doctor`


def test_kubelet_max_pods_of_a_kubeadm_group() -> None:
    """kubeadm nodes: the group's maxPods, else with the VPC CNI what the ENIs allow, else kubelet's default."""
    groups = [{"name": "a", "instanceTypes": ["t3.medium", "m5.large"]}, {"name": "b", "maxPods": 12}]
    vpc_cni = make_spec(network={"cni": "aws-vpc-cni"}, nodeGroups=groups)
    assert (kubelet_max_pods(vpc_cni, "a"), kubelet_max_pods(vpc_cni, "b")) == (17, 12)
    calico = make_spec(nodeGroups=groups)
    assert (kubelet_max_pods(calico, "a"), kubelet_max_pods(calico, "b")) == (None, 12)


def test_group_limits_come_from_the_facts_the_spec_carries() -> None:
    spec = make_spec(**EKS, nodeGroups=[{"name": "g", "instanceTypes": ["x9.large"], "maxPods": 60}])
    with pytest.raises(UnknownInstanceType):
        group_max_pods(spec, "g")
    facts = InstanceTypes(extra={"x9.large": InstanceTypeInfo(enis=4, ipv4_per_eni=15, vcpus=4, memory_mib=16384)})
    resolved = spec.with_instance_types(facts)
    assert group_max_pods(resolved, "g") == 58 == max_pods("x9.large", types=facts)
    (problem,) = check_max_pods(resolved)
    assert "x9.large" in problem.message and "(58)" in problem.message
