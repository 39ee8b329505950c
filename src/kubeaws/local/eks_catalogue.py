"""What the local emulator's EKS front offers as fixed data: the add-ons and their versions (DescribeAddonVersions,
CreateAddon's default version) and the access policies (ListAccessPolicies, AssociateAccessPolicy's check).

The add-on versions follow EKS's naming (`v<upstream>-eksbuild.<n>`; kube-proxy tracks the cluster's minor
version, the others serve every supported minor) but are the emulator's catalogue, not EKS's current one:
nothing is installed anywhere, the emulator only records which version an add-on is at. The access policies
are EKS's managed ones, by name (`arn:<partition>:eks::aws:cluster-access-policy/<name>`).

Used by kubeaws.local.eks_state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Kubernetes minor versions the catalogue has versions for.
MINORS = tuple(f"1.{m}" for m in range(28, 38))


@dataclass(frozen=True)
class AddonSpec:
    """One add-on: its type, owner, publisher, whether it needs an IAM role, and its versions, newest first,
    each with the minors it serves (the first version serving a minor is that minor's default)."""

    name: str
    type: str
    owner: str
    publisher: str
    requires_iam: bool
    versions: tuple[tuple[str, tuple[str, ...]], ...]


def _kube_proxy() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((f"v{minor}.0-eksbuild.1", (minor,)) for minor in reversed(MINORS))


ADDONS: dict[str, AddonSpec] = {a.name: a for a in (
    AddonSpec("vpc-cni", "networking", "aws", "eks", True,
              (("v1.19.2-eksbuild.1", MINORS), ("v1.18.6-eksbuild.1", MINORS))),
    AddonSpec("kube-proxy", "networking", "aws", "eks", False, _kube_proxy()),
    AddonSpec("coredns", "networking", "aws", "eks", False,
              (("v1.11.4-eksbuild.2", MINORS), ("v1.11.3-eksbuild.1", MINORS))),
    AddonSpec("aws-ebs-csi-driver", "storage", "aws", "eks", True,
              (("v1.38.1-eksbuild.1", MINORS), ("v1.37.0-eksbuild.1", MINORS))),
    AddonSpec("metrics-server", "observability", "community", "eks", False, (("v0.7.2-eksbuild.1", MINORS),)),
    AddonSpec("eks-pod-identity-agent", "security", "aws", "eks", False, (("v1.3.4-eksbuild.1", MINORS),)),
    AddonSpec("snapshot-controller", "storage", "aws", "eks", False, (("v8.1.0-eksbuild.2", MINORS),)),
)}

#: EKS's managed access policies.
ACCESS_POLICIES = ("AmazonEKSAdminPolicy", "AmazonEKSAdminViewPolicy", "AmazonEKSClusterAdminPolicy",
                   "AmazonEKSEditPolicy", "AmazonEKSViewPolicy", "AmazonEKSAutoNodePolicy",
                   "AmazonEKSBlockStoragePolicy", "AmazonEKSComputePolicy", "AmazonEKSLoadBalancingPolicy",
                   "AmazonEKSNetworkingPolicy")


def policy_arn(partition: str, name: str) -> str:
    return f"arn:{partition}:eks::aws:cluster-access-policy/{name}"


def default_version(addon: str, minor: str) -> str | None:
    """The version CreateAddon installs when none is given: the newest serving `minor`."""
    spec = ADDONS.get(addon)
    if spec is None:
        return None
    return next((v for v, minors in spec.versions if minor in minors), None)


def serves(addon: str, version: str, minor: str) -> bool:
    """Whether `version` of `addon` exists and serves Kubernetes `minor`."""
    spec = ADDONS.get(addon)
    return spec is not None and any(v == version and minor in minors for v, minors in spec.versions)


def addon_info(spec: AddonSpec, minor: str | None) -> dict[str, Any] | None:
    """DescribeAddonVersions' AddonInfo for one add-on (only versions serving `minor` when given); None when
    no version is left."""
    versions = []
    for version, minors in spec.versions:
        shown = [m for m in minors if minor is None or m == minor]
        if not shown:
            continue
        versions.append({
            "addonVersion": version, "architecture": ["amd64", "arm64"], "computeTypes": ["ec2"],
            "compatibilities": [{"clusterVersion": m, "platformVersions": ["*"],
                                 "defaultVersion": default_version(spec.name, m) == version} for m in shown],
            "requiresConfiguration": False, "requiresIamPermissions": spec.requires_iam})
    if not versions:
        return None
    return {"addonName": spec.name, "type": spec.type, "addonVersions": versions, "publisher": spec.publisher,
            "owner": spec.owner}
