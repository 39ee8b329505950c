"""cluster-autoscaler: scales the cluster's Auto Scaling groups tagged for discovery. kubeadm: on the control
plane with the control-plane instance role; EKS: on the nodes with an IRSA role, applied through the
Kubernetes API (no EKS add-on). Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons.descriptor import Addon, Irsa, Versioned
from kubeaws.partition import arn

#: Kubernetes minor -> cluster-autoscaler tag (the newest entry for a later minor).
TAGS = {"1.30": "v1.30.5", "1.31": "v1.31.3", "1.32": "v1.32.2", "1.33": "v1.33.0"}


def cluster_autoscaler_policy(cluster: str, partition: str = "aws") -> dict[str, Any]:
    """Read what it needs everywhere (its documented policy, cluster-autoscaler/cloudprovider/aws/README.md);
    scale and terminate only the Auto Scaling groups tagged for discovery by this cluster
    (`k8s.io/cluster-autoscaler/<cluster>=owned`; no role of the cluster may put that tag on a group: the
    control plane's tag guards, and no autoscaling tagging action anywhere); describe only this cluster's
    managed node groups."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Discover", "Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements"]},
        {"Sid": "DescribeClusterNodegroups", "Effect": "Allow", "Action": ["eks:DescribeNodegroup"],
         "Resource": [arn(partition, "eks", f"nodegroup/{cluster}/*/*", "*", "*")]},
        {"Sid": "ScaleOwnGroups", "Effect": "Allow",
         "Resource": [arn(partition, "autoscaling", "autoScalingGroup:*:autoScalingGroupName/*", "*", "*")],
         "Action": [
            "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
            "autoscaling:UpdateAutoScalingGroup"],
         "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}}},
    ]}


def cluster_autoscaler_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The same permissions for the control-plane instance role (kubeadm), their Sids prefixed."""
    return [{**statement, "Sid": f"ClusterAutoscaler{statement['Sid']}"}
            for statement in cluster_autoscaler_policy(cluster, partition)["Statement"]]


ADDON = Addon(
    name="cluster-autoscaler", option="cluster_autoscaler", order=50, template="cluster-autoscaler.yaml.j2",
    modes=frozenset({"kubeadm", "eks"}),
    versioned={"cluster-autoscaler": Versioned("registry.k8s.io/autoscaling/cluster-autoscaler", TAGS)},
    control_plane_statements=cluster_autoscaler_statements,
    irsa=Irsa("kube-system", "cluster-autoscaler", policy=cluster_autoscaler_policy),
)
