"""The doctor's AWS quota checks (doctor/capacity.py `check_quotas`, issue #14 item 3): a spec at 100-300 node
groups that reaches a default quota is told so before apply; each check with a failing and a passing case."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.doctor import check_spec
from kubeaws.doctor.findings import Finding
from tests.helpers import make_spec


def groups(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"g{i:03d}", "size": {"min": 0, "desired": 0, "max": 1}, **extra} for i in range(n)]


def one_group(size_max: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "big", "size": {"min": 1, "desired": 1, "max": size_max}, **extra}]


EKS = {"mode": "eks", "network": {"cni": "aws-vpc-cni"}}
CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    # (case, spec overrides, check, severity expected or None for no finding of the check)
    ("asg over the quota", {"nodeGroups": groups(500)}, "quota.auto-scaling-groups", "error"),
    ("asg half the quota", {"nodeGroups": groups(300)}, "quota.auto-scaling-groups", "warning"),
    ("asg well under", {"nodeGroups": groups(100)}, "quota.auto-scaling-groups", None),
    ("managed groups over", {**EKS, "nodeGroups": groups(31, type="managed")}, "quota.managed-node-groups", "error"),
    ("managed group too large", {**EKS, "nodeGroups": one_group(451, type="managed")}, "quota.managed-node-groups",
     "error"),
    ("managed groups within", {**EKS, "nodeGroups": groups(30, type="managed")}, "quota.managed-node-groups", None),
    ("rules over", {"network": {"nodePortCIDRs": [f"198.18.{i}.0/24" for i in range(30)]}},
     "quota.security-group-rules", "error"),
    ("rules within", {"network": {"nodePortCIDRs": [f"198.18.{i}.0/24" for i in range(10)]}},
     "quota.security-group-rules", None),
    ("cilium nodes over", {"network": {"cni": "cilium", "podCIDR": "192.168.0.0/16"}, "nodeGroups": one_group(300)},
     "quota.pod-cidr-nodes", "error"),
    ("cilium wider pod cidr", {"network": {"cni": "cilium", "podCIDR": "10.128.0.0/14"}, "nodeGroups": one_group(300)},
     "quota.pod-cidr-nodes", None),
    ("flannel nodes over", {"network": {"cni": "flannel", "podCIDR": "192.168.0.0/16"}, "nodeGroups": one_group(256)},
     "quota.pod-cidr-nodes", "error"),
    ("calico more nodes than blocks", {"network": {"cni": "calico"}, "nodeGroups": one_group(1100)},
     "quota.pod-cidr-nodes", "warning"),
    ("calico within", {"network": {"cni": "calico"}, "nodeGroups": one_group(1000)}, "quota.pod-cidr-nodes", None),
]


@pytest.mark.parametrize(("overrides", "check", "severity"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_quota(overrides: dict[str, Any], check: str, severity: str | None) -> None:
    found: list[Finding] = [f for f in check_spec(make_spec(**overrides)).findings if f.check == check]
    if severity is None:
        assert found == []
    else:
        assert found and {f.severity for f in found} == {severity}, found
        assert all(f.hint and f.resource for f in found)


def test_messages_name_the_numbers() -> None:
    spec = make_spec(network={"cni": "cilium", "podCIDR": "192.168.0.0/16"}, nodeGroups=one_group(300))
    [finding] = [f for f in check_spec(spec).findings if f.check == "quota.pod-cidr-nodes"]
    # 2**9 = 512 ranges of /24 hold 301 nodes
    assert "301 nodes" in finding.message and "256" in finding.message and "/15 " in finding.hint
    assert finding.resource == "spec.network.podCIDR"
