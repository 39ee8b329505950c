"""IAM builder (mode kubeadm): the control-plane and node roles with least-privilege inline policies, and the
instance profiles wrapping them; or, for roles the user brings (`iam.controlPlaneRole` / `iam.nodeRole`,
a name or ARN), a brought IamRole and the instance profile it is already in (else an owned one around it:
`instance_profile`).

Each policy is a pure function returning the policy dict (unit-tested). Called by the kubeadm model wiring
(`model.build`) before the state bucket (model/state.py), whose policy needs the role ARNs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubeaws.addons import DESCRIPTORS, enabled
from kubeaws.addons.policy import ELB
from kubeaws.addons.policy import ec2 as _ec2
from kubeaws.addons.policy import owned as _owned
from kubeaws.aws.tags import K8S_CLUSTER_PREFIX, owned_tags
from kubeaws.model.common import Builder
from kubeaws.model.flows import CONTROL_PLANE, NODES
from kubeaws.partition import arn, managed_policy, partition_of, service_principal
from kubeaws.resources.base import Computed, Desired, Ref
from kubeaws.resources.instance_profile import profile_name, role_profile_id

ECR_READ_ONLY_NAME = "AmazonEC2ContainerRegistryReadOnly"
#: The ECR read-only managed policy in the commercial partition (`managed_policy` for the others).
ECR_READ_ONLY = managed_policy("aws", ECR_READ_ONLY_NAME)
VERSION = "2012-10-17"
ROLE_TAG = "kubeaws.io/role"
ROLES = ("control-plane", "node")


@dataclass
class IamRefs:
    """What later builders need: instance profile names (launch templates) and role ARNs (bucket policy)."""

    control_plane_profile: Ref | str
    node_profile: Ref | str
    control_plane_role_arn: Ref | str
    node_role_arn: Ref | str


def trust_policy(partition: str = "aws") -> dict[str, Any]:
    """EC2 instances may assume the role."""
    return {"Version": VERSION, "Statement": [{"Effect": "Allow",
                                               "Principal": {"Service": service_principal("ec2", partition)},
                                               "Action": "sts:AssumeRole"}]}


#: Tag keys that decide what a role may touch (the tag guards): no role changes them on an existing resource.
GUARDED_TAG_KEYS = [f"{K8S_CLUSTER_PREFIX}*", "kubeaws.io/*", "k8s.io/cluster-autoscaler/*"]


def tag_guard_statements() -> list[dict[str, Any]]:
    """Deny adding, changing or removing a guarded tag key except in the call that creates the resource:
    without this, a role allowed to tag could put `kubernetes.io/cluster/<name>=owned` on any security group
    or volume and so unlock every write scoped to that tag."""
    keys = {"ForAnyValue:StringLike": {"aws:TagKeys": GUARDED_TAG_KEYS}}
    return [
        {"Sid": "GuardClusterTagsEc2", "Effect": "Deny", "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
         "Resource": "*", "Condition": {**keys, "Null": {"ec2:CreateAction": "true"}}},
        {"Sid": "GuardClusterTagsElb", "Effect": "Deny", "Action": [f"{ELB}:AddTags", f"{ELB}:RemoveTags"],
         "Resource": "*", "Condition": {**keys, "Null": {f"{ELB}:CreateAction": "true"}}},
    ]


def attach_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """Attach/detach the cluster's volumes (etcd data, CSI) and the API ENI to the cluster's instances: both
    the volume/ENI and the instance must carry `kubernetes.io/cluster/<cluster>=owned`. (A replaced single
    member force-detaches the API ENI from its dead predecessor: DetachNetworkInterface.) The tag guards
    (`tag_guard_statements`) keep the role from tagging anything else into the cluster."""
    return [
        {"Sid": "AttachClusterVolumes", "Effect": "Allow",
         "Action": ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:AttachNetworkInterface",
                    "ec2:DetachNetworkInterface"],
         "Resource": [_ec2("volume", partition), _ec2("instance", partition),
                      _ec2("network-interface", partition)],
         "Condition": _owned(cluster)},
    ]


def self_health_statements(cluster: str, role: str, partition: str = "aws") -> list[dict[str, Any]]:
    """An instance whose bootstrap failed marks itself unhealthy so that its Auto Scaling group replaces it:
    only in the cluster's groups of its own role (`kubeaws.io/role`), so that a node can never get a
    control-plane member replaced."""
    condition = _owned(cluster)
    condition["StringEquals"][f"aws:ResourceTag/{ROLE_TAG}"] = role
    return [{"Sid": "ReportOwnHealth", "Effect": "Allow", "Action": ["autoscaling:SetInstanceHealth"],
             "Resource": arn(partition, "autoscaling", "autoScalingGroup:*:autoScalingGroupName/*", "*", "*"),
             "Condition": condition}]


def addon_statements(cluster: str, addons: Sequence[str], role: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The statements the named addons need on an instance role (`control-plane` or `node`), from their
    descriptors, in the registry's order."""
    out: list[dict[str, Any]] = []
    for addon in DESCRIPTORS:
        statements = addon.control_plane_statements if role == "control-plane" else addon.node_statements
        if addon.name in addons and statements is not None:
            out += statements(cluster, partition)
    return out


def bucket_arn(bucket: str, partition: str = "aws") -> str:
    return arn(partition, "s3", bucket)


def control_plane_policy(cluster: str, bucket: str, addons: Sequence[str] = (),
                         partition: str = "aws") -> dict[str, Any]:
    """Everything the control plane runs needs: the `addons` it runs (names; their descriptors' statements:
    cloud-provider-aws, the EBS CSI driver, cluster-autoscaler...), its own volumes and ENI, its health
    report, read/write of the state bucket."""
    state = [
        {"Sid": "StateBucket", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": [bucket_arn(bucket, partition)]},
        # AbortMultipartUpload: a failed upload of a large etcd snapshot leaves no parts behind
        {"Sid": "StateObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": [f"{bucket_arn(bucket, partition)}/*"]},
    ]
    controllers = addon_statements(cluster, addons, "control-plane", partition)
    # The members' own scripts: find the etcd volume and the API ENI, and the instance asking for a kubelet
    # serving certificate (bootstrap/serving_approver.py); only what no addon statement already allows
    # everywhere (cloud-provider-aws' Describe has them all).
    anywhere = {a for st in controllers if st["Resource"] == "*" and "Condition" not in st for a in st["Action"]}
    describe = [a for a in ("ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVolumes")
                if a not in anywhere]
    own = [{"Sid": "MemberDescribe", "Effect": "Allow", "Resource": "*", "Action": describe}] if describe else []
    statements = [*controllers, *own,
                  *attach_statements(cluster, partition), *self_health_statements(cluster, CONTROL_PLANE, partition),
                  *state, *tag_guard_statements()]
    return {"Version": VERSION, "Statement": statements}


def node_policy(cluster: str, bucket: str, addons: Sequence[str] = (), partition: str = "aws") -> dict[str, Any]:
    """Nodes: read the cluster info and the join token from the state bucket, describe instances, report
    their own failed bootstrap, and what the `addons` running on nodes with the node role need (their
    descriptors' node statements). Nothing else (ECR read comes from the AWS managed policy)."""
    return {"Version": VERSION, "Statement": [
        {"Sid": "ClusterInfo", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{bucket_arn(bucket, partition)}/cluster/*", f"{bucket_arn(bucket, partition)}/join/token"]},
        {"Sid": "Describe", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"},
        *self_health_statements(cluster, NODES, partition),
        *addon_statements(cluster, addons, "node", partition),
    ]}


POLICIES: dict[str, Callable[..., dict[str, Any]]] = {"control-plane": control_plane_policy, "node": node_policy}


def instance_profile(b: Builder, logical: str, role: Ref, brought_role: str | None) -> Ref:
    """The instance profile `InstanceProfile/<logical>` around `role`: owned (`<cluster>-<logical>` at
    `/kubeaws/<cluster>/`) for a role kubeaws makes; for a brought role, the profile the role is already in
    (found at plan time, read-only; never changed nor deleted), with the owned one as the fallback when the
    role is in none (resources/instance_profile.py). Used by both modes (EKS: the self-managed nodes')."""
    props = {"name": profile_name(b.cluster, logical), "path": f"/kubeaws/{b.cluster}/",
             "role_name": Ref(role.kind, role.name, "name")}
    if not brought_role:
        return b.owned("InstanceProfile", logical, props)
    owned = Desired("InstanceProfile", logical, props, tags=owned_tags(
        b.cluster, "InstanceProfile", logical, b.display(logical), b.spec.spec.tags))
    b.graph.add(Desired("InstanceProfile", logical, {}, brought_id=role_profile_id(brought_role), fallback=owned))
    return Ref("InstanceProfile", logical)


def build_iam(b: Builder, bucket: Ref | Computed | str) -> IamRefs:
    """The two roles (owned or brought) and their instance profiles; `bucket` is the state bucket name."""
    iam = b.spec.spec.iam
    brought = {"control-plane": iam.control_plane_role, "node": iam.node_role}
    path = f"/kubeaws/{b.cluster}/"
    partition = partition_of(b.spec.spec.region)
    arns: dict[str, Ref] = {}
    for logical in ROLES:
        name = profile_name(b.cluster, logical)
        if brought[logical]:
            role = b.brought("IamRole", logical, str(brought[logical]))
        else:
            args: dict[str, Any] = {"cluster": b.cluster, "bucket": bucket, "partition": partition,
                                    "addons": [addon.name for addon in enabled(b.spec)]}
            policy = Computed(POLICIES[logical], args, f"{logical} policy")
            managed = [ECR_READ_ONLY_NAME, *(name for addon in enabled(b.spec) if logical == "control-plane"
                                             for name in addon.control_plane_managed)]
            role = b.owned("IamRole", logical, {
                "name": name, "path": path, "assume_role_policy": trust_policy(partition),
                "inline_policies": {f"kubeaws-{logical}": policy},
                "managed_policy_arns": [managed_policy(partition, m) for m in managed],
            })
        instance_profile(b, logical, role, brought[logical])
        arns[logical] = Ref(role.kind, role.name, "arn")
    return IamRefs(
        control_plane_profile=Ref("InstanceProfile", "control-plane", "name"),
        node_profile=Ref("InstanceProfile", "node", "name"),
        control_plane_role_arn=arns["control-plane"], node_role_arn=arns["node"])
