"""IAM roles for service accounts (IRSA) on EKS: a role per addon that calls AWS (cluster-autoscaler, EBS CSI
driver), trusted only by that addon's Kubernetes service account through the cluster's OIDC provider, with
least-privilege permissions.

Called by model.eks. Pure.
"""

from __future__ import annotations

from typing import Any

from kubeaws.model.common import Builder
from kubeaws.partition import STS_AUDIENCE, arn, managed_policy, partition_of
from kubeaws.resources.base import Computed, Ref

EBS_CSI_POLICY_NAME = "service-role/AmazonEBSCSIDriverPolicy"
#: The EBS CSI driver's managed policy in the commercial partition (`managed_policy` for the others).
EBS_CSI_POLICY = managed_policy("aws", EBS_CSI_POLICY_NAME)


def web_identity_trust(provider_arn: str, issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Only `system:serviceaccount:<namespace>:<service_account>` of this cluster may assume the role."""
    host = issuer.removeprefix("https://")
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                                       f"{host}:aud": STS_AUDIENCE}},
    }]}


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


def irsa_role(b: Builder, logical: str, namespace: str, service_account: str,
              inline: dict[str, Any] | None = None, managed: list[str] | None = None) -> Ref:
    """A role assumable only by one service account of the cluster; returns a Ref to its ARN."""
    trust = Computed(web_identity_trust, {
        "provider_arn": Ref("OidcProvider", "main", "arn"), "issuer": Ref("EksCluster", "main", "oidc_issuer"),
        "namespace": namespace, "service_account": service_account}, f"{logical} trust policy")
    role = b.owned("IamRole", logical, {
        "name": b.display(logical), "path": f"/kubeaws/{b.cluster}/", "assume_role_policy": trust,
        "inline_policies": {f"kubeaws-{logical}": inline} if inline else {},
        "managed_policy_arns": sorted(managed or [])})
    return Ref(role.kind, role.name, "arn")


def build_irsa(b: Builder) -> dict[str, Ref]:
    """IRSA roles of the addons the spec enables; addon name -> role ARN."""
    addons = b.spec.spec.addons
    partition = partition_of(b.spec.spec.region)
    roles: dict[str, Ref] = {}
    if addons.cluster_autoscaler is not None:
        roles["cluster-autoscaler"] = irsa_role(b, "cluster-autoscaler", "kube-system", "cluster-autoscaler",
                                                inline=cluster_autoscaler_policy(b.cluster, partition))
    if addons.ebs_csi is not None:
        roles["ebs-csi"] = irsa_role(b, "ebs-csi", "kube-system", "ebs-csi-controller-sa",
                                     managed=[managed_policy(partition, EBS_CSI_POLICY_NAME)])
    return roles
