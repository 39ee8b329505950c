"""Pods per node with the AWS VPC CNI: every pod takes a VPC address from one of the node's ENIs, so the
instance type bounds how many pods a node can run (docs/eks.md, "Max pods").

Formulas (those of EKS' `eni-max-pods.txt` / `max-pods-calculator.sh`):

* secondary IPs: `ENIs x (IPv4 per ENI - 1) + 2` (t3.medium -> 17, m5.large -> 29). The `- 1` is each ENI's
  primary address, the `+ 2` the host-network pods (aws-node, kube-proxy).
* prefix delegation (`eks.prefixDelegation`): `ENIs x ((IPv4 per ENI - 1) x 16) + 2`, capped at 110, or at
  250 on types with more than 30 vCPUs.
* custom networking: the primary ENI serves no pod, so one ENI fewer.

The limits come from the instance-type facts the spec was resolved against (`spec.instance_types`: the bundled
table, plus ec2:DescribeInstanceTypes' answer for newer types once `spec.resolve` ran); a group reads them from
`NodeGroupSpec.instance_type_facts`. A type unknown there raises `UnknownInstanceType` (`spec.resolve` refuses
such a spec before anything reads it).

Lives in the spec layer because spec validation (`check_max_pods`), the model (EKS nodeadm user data) and the
kubeadm node bootstrap (kubelet's maxPods with the VPC CNI) all need it, and the bootstrap may not import the
model (`model.maxpods` re-exports this module). Pure.
"""

from __future__ import annotations

from kubeaws.errors import FieldProblem
from kubeaws.spec.instance_types import BUNDLED, InstanceTypeInfo, InstanceTypes, UnknownInstanceType
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec

#: Cap of max pods with prefix delegation (EKS' recommendation), and above `LARGE_VCPUS` vCPUs.
PREFIX_CAP = 110
PREFIX_CAP_LARGE = 250
LARGE_VCPUS = 30
#: IPv4 addresses in a delegated /28 prefix.
PREFIX_SIZE = 16


def max_pods_from(enis: int, ipv4_per_eni: int, vcpus: int, prefix_delegation: bool = False,
                  custom_networking: bool = False) -> int:
    """The pure formula (see the module docstring)."""
    if enis < 1 or ipv4_per_eni < 1 or vcpus < 1:
        raise ValueError(f"needs positive limits, got enis={enis} ipv4_per_eni={ipv4_per_eni} vcpus={vcpus}")
    usable = enis - 1 if custom_networking else enis
    if prefix_delegation:
        cap = PREFIX_CAP_LARGE if vcpus > LARGE_VCPUS else PREFIX_CAP
        return min(usable * ((ipv4_per_eni - 1) * PREFIX_SIZE) + 2, cap)
    return usable * (ipv4_per_eni - 1) + 2


def max_pods_of(info: InstanceTypeInfo, prefix_delegation: bool = False, custom_networking: bool = False) -> int:
    """The formula on one type's facts."""
    return max_pods_from(info.enis, info.ipv4_per_eni, info.vcpus, prefix_delegation, custom_networking)


def max_pods(instance_type: str, prefix_delegation: bool = False, custom_networking: bool = False,
             types: InstanceTypes = BUNDLED) -> int:
    """Max pods of an instance type (t3.medium -> 17, m5.large -> 29), from `types` (the bundled table by
    default); UnknownInstanceType when `types` does not know it."""
    return max_pods_of(types.info(instance_type), prefix_delegation, custom_networking)


def _group(spec: ClusterSpec, group: str) -> NodeGroupSpec:
    for ng in spec.spec.node_groups:
        if ng.name == group:
            return ng
    raise ValueError(f"no node group named {group!r}")


def group_max_pods(spec: ClusterSpec, group: str) -> int:
    """The smallest max pods over the group's instance types (a node of any of them can run that many),
    with the spec's `eks.prefixDelegation`, from the group's instance-type facts. Raises UnknownInstanceType
    for a type they do not know."""
    ng = _group(spec, group)
    pd = spec.spec.eks.prefix_delegation
    return min(max_pods(t, prefix_delegation=pd, types=ng.instance_type_facts) for t in ng.instance_types)


def effective_max_pods(spec: ClusterSpec, group: str) -> int:
    """The group's `maxPods` when set, else `group_max_pods`: the value the EKS node bootstrap uses."""
    ng = _group(spec, group)
    return ng.max_pods if ng.max_pods is not None else group_max_pods(spec, group)


def kubelet_max_pods(spec: ClusterSpec, group: str) -> int | None:
    """The maxPods a kubeadm node's kubelet must be given: the group's `maxPods` when set; with the AWS VPC
    CNI, what the ENIs allow (kubelet's own default, 110, would let pods be scheduled that get no address:
    17 fit on a t3.medium); with an overlay CNI, None (kubelet's default)."""
    ng = _group(spec, group)
    if ng.max_pods is not None:
        return ng.max_pods
    return group_max_pods(spec, group) if spec.spec.cni == "aws-vpc-cni" else None


def check_max_pods(spec: ClusterSpec) -> list[FieldProblem]:
    """Problems of `nodeGroups[].maxPods` asking for more pods than an instance type allows with the AWS
    VPC CNI. Other CNIs are not bound by ENIs (nothing to check); types the group's facts do not know are
    skipped here (`spec.resolve` reports them)."""
    if spec.spec.cni != "aws-vpc-cni":
        return []
    pd = spec.spec.eks.prefix_delegation
    problems: list[FieldProblem] = []
    for index, ng in enumerate(spec.spec.node_groups):
        if ng.max_pods is None:
            continue
        for instance_type in ng.instance_types:
            try:
                limit = max_pods(instance_type, prefix_delegation=pd, types=ng.instance_type_facts)
            except UnknownInstanceType:
                continue
            if ng.max_pods > limit:
                how = " with prefix delegation" if pd else ""
                problems.append(FieldProblem(
                    f"spec.nodeGroups[{index}].maxPods",
                    f"{ng.max_pods} pods exceed what {instance_type} allows with the AWS VPC CNI{how} "
                    f"({limit})",
                    f"set maxPods to at most {limit}, pick a larger instance type"
                    + ("" if pd else ", or enable eks.prefixDelegation")))
                break
    return problems
