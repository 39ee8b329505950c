"""IAM builder (mode kubeadm): the control-plane and node roles with least-privilege inline policies, and the
instance profiles wrapping them; or, for roles the user brings (`iam.controlPlaneRole` / `iam.nodeRole`,
a name or ARN), a brought IamRole and an owned InstanceProfile around it.

Each policy is a pure function returning the policy dict (unit-tested). Called by the kubeadm model wiring
(`model.build`) before the state bucket (model/state.py), whose policy needs the role ARNs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeaws.aws.tags import CLUSTER_TAG, k8s_cluster_tag
from kubeaws.model.common import Builder
from kubeaws.model.flows import CONTROL_PLANE, NODES
from kubeaws.model.irsa import cluster_autoscaler_policy
from kubeaws.resources.base import Computed, Ref
from kubeaws.resources.instance_profile import profile_name

ECR_READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
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


def trust_policy() -> dict[str, Any]:
    """EC2 instances may assume the role."""
    return {"Version": VERSION, "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                               "Action": "sts:AssumeRole"}]}


def _owned(cluster: str, key: str = "aws:ResourceTag") -> dict[str, Any]:
    """Scope to resources tagged `kubernetes.io/cluster/<cluster>=owned`: the tag every kubeaws resource
    carries, that Auto Scaling propagates to instances, and that the EBS CSI driver puts on its volumes
    (`--k8s-tag-cluster-id`). (`kubeaws.io/cluster` is NOT on ASG instances: it would make them look like
    kubeaws-managed instances.)"""
    return {"StringEquals": {f"{key}/{k8s_cluster_tag(cluster)}": "owned"}}


def cloud_provider_statements(cluster: str) -> list[dict[str, Any]]:
    """cloud-provider-aws (its documented control-plane policy) minus the legacy in-tree volume actions
    (the EBS CSI driver has them, scoped) and KMS; writes to EC2 resources scoped to the cluster."""
    k8s = f"aws:ResourceTag/{k8s_cluster_tag(cluster)}"
    return [
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
            "autoscaling:DescribeTags", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances",
            "ec2:DescribeInstanceTopology", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRegions",
            "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeTags",
            "ec2:DescribeVolumes", "ec2:DescribeVolumesModifications", "ec2:DescribeSnapshots",
            "ec2:DescribeVpcs", "elasticloadbalancing:Describe*"]},
        {"Sid": "LoadBalancerSecurityGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:CreateSecurityGroup"]},
        {"Sid": "ClusterSecurityGroupRules", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
                    "ec2:DeleteSecurityGroup"],
         "Condition": {"StringLike": {k8s: ["owned", "shared"]}}},
        {"Sid": "TagLoadBalancerSecurityGroups", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": ["arn:aws:ec2:*:*:security-group/*"]},
        {"Sid": "ClusterRoutesAndInstances", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:CreateRoute", "ec2:DeleteRoute", "ec2:ModifyInstanceAttribute"],
         "Condition": _owned(cluster)},
        {"Sid": "LoadBalancers", "Effect": "Allow", "Resource": "*", "Action": [
            "elasticloadbalancing:AddTags", "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
            "elasticloadbalancing:AttachLoadBalancerToSubnets", "elasticloadbalancing:ConfigureHealthCheck",
            "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateLoadBalancer",
            "elasticloadbalancing:CreateLoadBalancerListeners", "elasticloadbalancing:CreateLoadBalancerPolicy",
            "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteListener",
            "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteLoadBalancerListeners",
            "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
            "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:DetachLoadBalancerFromSubnets",
            "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyLoadBalancerAttributes",
            "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
            "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
            "elasticloadbalancing:SetLoadBalancerPoliciesOfListener"]},
        {"Sid": "LoadBalancerServiceLinkedRole", "Effect": "Allow", "Resource": "*",
         "Action": ["iam:CreateServiceLinkedRole"],
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
    ]


def ebs_csi_statements(cluster: str) -> list[dict[str, Any]]:
    """The EBS CSI driver's documented policy (AmazonEBSCSIDriverPolicy), every write scoped to volumes,
    snapshots and instances tagged `kubernetes.io/cluster/<cluster>=owned` (the driver runs with
    `--k8s-tag-cluster-id=<cluster>`, so the volumes it creates carry that tag)."""
    volumes = ["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:snapshot/*"]
    return [
        {"Sid": "CreateClusterVolumes", "Effect": "Allow", "Action": ["ec2:CreateVolume", "ec2:CreateSnapshot"],
         "Resource": volumes, "Condition": _owned(cluster, "aws:RequestTag")},
        {"Sid": "CreateVolumesFromSnapshots", "Effect": "Allow", "Action": ["ec2:CreateVolume"],
         "Resource": ["arn:aws:ec2:*:*:snapshot/*"], "Condition": _owned(cluster)},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": volumes,
         "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}}},
        {"Sid": "ClusterVolumes", "Effect": "Allow", "Resource": volumes,
         "Action": ["ec2:ModifyVolume", "ec2:CreateSnapshot", "ec2:DeleteTags"], "Condition": _owned(cluster)},
        {"Sid": "DeleteDriverVolumes", "Effect": "Allow", "Action": ["ec2:DeleteVolume", "ec2:DeleteSnapshot"],
         "Resource": volumes, "Condition": {"StringEquals": {
             f"aws:ResourceTag/{k8s_cluster_tag(cluster)}": "owned",
             "aws:ResourceTag/ebs.csi.aws.com/cluster": "true"}}},
    ]


def attach_statements(cluster: str) -> list[dict[str, Any]]:
    """Attach/detach the cluster's volumes (etcd data, CSI) and the API ENI to the cluster's instances: both
    the volume/ENI and the instance must carry `kubernetes.io/cluster/<cluster>=owned`. (A replaced single
    member force-detaches the API ENI from its dead predecessor: DetachNetworkInterface.)"""
    return [
        {"Sid": "AttachClusterVolumes", "Effect": "Allow",
         "Action": ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:AttachNetworkInterface",
                    "ec2:DetachNetworkInterface"],
         "Resource": ["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:instance/*",
                      "arn:aws:ec2:*:*:network-interface/*"],
         "Condition": _owned(cluster)},
        {"Sid": "ProtectClusterTag", "Effect": "Deny", "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
         "Resource": "*",
         "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": [CLUSTER_TAG]},
                       "Null": {"ec2:CreateAction": "true"}}},
    ]


def self_health_statements(cluster: str, role: str) -> list[dict[str, Any]]:
    """An instance whose bootstrap failed marks itself unhealthy so that its Auto Scaling group replaces it:
    only in the cluster's groups of its own role (`kubeaws.io/role`), so that a node can never get a
    control-plane member replaced."""
    condition = _owned(cluster)
    condition["StringEquals"][f"aws:ResourceTag/{ROLE_TAG}"] = role
    return [{"Sid": "ReportOwnHealth", "Effect": "Allow", "Action": ["autoscaling:SetInstanceHealth"],
             "Resource": "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*",
             "Condition": condition}]


def cluster_autoscaler_statements(cluster: str) -> list[dict[str, Any]]:
    """The cluster-autoscaler's permissions (its AWS documentation, the same as its EKS IRSA role): on a
    kubeadm cluster it runs on the control plane with that role."""
    return [{**statement, "Sid": f"ClusterAutoscaler{statement['Sid']}"}
            for statement in cluster_autoscaler_policy(cluster)["Statement"]]


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def control_plane_policy(cluster: str, bucket: str, cluster_autoscaler: bool = False) -> dict[str, Any]:
    """Everything the control plane runs needs: cloud-provider-aws, the EBS CSI driver, its own volumes
    and ENI, its health report, read/write of the state bucket, and the cluster-autoscaler's permissions
    when that addon is on."""
    state = [
        {"Sid": "StateBucket", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": [bucket_arn(bucket)]},
        # AbortMultipartUpload: a failed upload of a large etcd snapshot leaves no parts behind
        {"Sid": "StateObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": [f"{bucket_arn(bucket)}/*"]},
    ]
    statements = [*cloud_provider_statements(cluster), *ebs_csi_statements(cluster),
                  *attach_statements(cluster), *self_health_statements(cluster, CONTROL_PLANE), *state]
    if cluster_autoscaler:
        statements += cluster_autoscaler_statements(cluster)
    return {"Version": VERSION, "Statement": statements}


def node_policy(cluster: str, bucket: str) -> dict[str, Any]:
    """Nodes: read the cluster info and the join token from the state bucket, describe instances, report
    their own failed bootstrap. Nothing else (ECR read comes from the AWS managed policy)."""
    return {"Version": VERSION, "Statement": [
        {"Sid": "ClusterInfo", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{bucket_arn(bucket)}/cluster/*", f"{bucket_arn(bucket)}/join/token"]},
        {"Sid": "Describe", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"},
        *self_health_statements(cluster, NODES),
    ]}


POLICIES = {"control-plane": control_plane_policy, "node": node_policy}


def build_iam(b: Builder, bucket: Ref | Computed | str) -> IamRefs:
    """The two roles (owned or brought) and their instance profiles; `bucket` is the state bucket name."""
    iam = b.spec.spec.iam
    brought = {"control-plane": iam.control_plane_role, "node": iam.node_role}
    path = f"/kubeaws/{b.cluster}/"
    arns: dict[str, Ref] = {}
    for logical in ROLES:
        name = profile_name(b.cluster, logical)
        if brought[logical]:
            role = b.brought("IamRole", logical, str(brought[logical]))
        else:
            args: dict[str, Any] = {"cluster": b.cluster, "bucket": bucket}
            if logical == "control-plane":
                args["cluster_autoscaler"] = b.spec.spec.addons.cluster_autoscaler is not None
            policy = Computed(POLICIES[logical], args, f"{logical} policy")
            role = b.owned("IamRole", logical, {
                "name": name, "path": path, "assume_role_policy": trust_policy(),
                "inline_policies": {f"kubeaws-{logical}": policy},
                "managed_policy_arns": [ECR_READ_ONLY],
            })
        b.owned("InstanceProfile", logical, {
            "name": name, "path": path, "role_name": Ref(role.kind, role.name, "name")})
        arns[logical] = Ref(role.kind, role.name, "arn")
    return IamRefs(
        control_plane_profile=Ref("InstanceProfile", "control-plane", "name"),
        node_profile=Ref("InstanceProfile", "node", "name"),
        control_plane_role_arn=arns["control-plane"], node_role_arn=arns["node"])
