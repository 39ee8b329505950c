"""The AWS cloud controller manager (cloud-provider-aws), kubeadm only (EKS runs its own): node lifecycle and
addresses, the `providerID` other addons read, and Services of type LoadBalancer (classic ELBs and NLBs).

Applied at boot (`boot=True`): kubelets run with `--cloud-provider=external`, so every node keeps the
`node.cloudprovider.kubernetes.io/uninitialized` taint until this controller initializes it; a cluster whose
API kubeaws cannot reach from where apply runs must still get schedulable nodes. Permissions: on the
control-plane instance role (it runs on the control plane). Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons.descriptor import Addon, Versioned
from kubeaws.addons.policy import ELB, ec2, load_balancers, owned, used
from kubeaws.partition import arn, service_principal

#: Kubernetes minor -> cloud-controller-manager tag (the newest entry for a later minor).
TAGS = {"1.30": "v1.30.8", "1.31": "v1.31.7", "1.32": "v1.32.3", "1.33": "v1.33.0"}


def cloud_provider_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """cloud-provider-aws (its documented control-plane policy, docs/prerequisites.md) minus the legacy in-tree
    volume actions (the EBS CSI driver has them, scoped) and KMS. Every write is scoped to this cluster: what it
    creates must carry `kubernetes.io/cluster/<cluster>=owned` in the create call (it does: `buildTags` in
    TagSpecifications / Tags), what it changes or deletes must already carry it."""
    lbs = load_balancers(partition)
    elb_principal = service_principal(ELB, partition)
    return [
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
            "autoscaling:DescribeTags", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances",
            "ec2:DescribeInstanceTopology", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRegions",
            "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeTags",
            "ec2:DescribeVolumes", "ec2:DescribeVolumesModifications", "ec2:DescribeSnapshots",
            "ec2:DescribeVpcs", f"{ELB}:Describe*"]},
        # A load balancer's security group: created tagged for the cluster, in a VPC the cluster uses.
        {"Sid": "CreateLoadBalancerSecurityGroups", "Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"],
         "Resource": [ec2("security-group", partition)], "Condition": owned(cluster, "aws:RequestTag")},
        # (The group ARN is listed because CreateSecurityGroup needs it in every statement; a group being
        # created has no tags, so this statement never allows it: the one above does.)
        {"Sid": "SecurityGroupsInClusterVpc", "Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"],
         "Resource": [ec2("security-group", partition), ec2("vpc", partition)], "Condition": used(cluster)},
        {"Sid": "TagSecurityGroupsOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": [ec2("security-group", partition)],
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}},
        # readRepairClusterTags: other tags of its own groups (the guarded keys stay denied: GuardClusterTags*).
        {"Sid": "TagClusterSecurityGroups", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": [ec2("security-group", partition)], "Condition": owned(cluster)},
        # The nodes' groups (owned, or brought and tagged shared) get the load balancers' ingress rules.
        {"Sid": "ClusterSecurityGroupRules", "Effect": "Allow", "Resource": [ec2("security-group", partition)],
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
         "Condition": used(cluster)},
        {"Sid": "DeleteClusterSecurityGroups", "Effect": "Allow", "Action": ["ec2:DeleteSecurityGroup"],
         "Resource": [ec2("security-group", partition)], "Condition": owned(cluster)},
        {"Sid": "ClusterRoutes", "Effect": "Allow", "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
         "Resource": [ec2("route-table", partition)], "Condition": owned(cluster)},
        {"Sid": "ClusterInstances", "Effect": "Allow", "Action": ["ec2:ModifyInstanceAttribute"],
         "Resource": [ec2("instance", partition)], "Condition": owned(cluster)},
        {"Sid": "CreateLoadBalancers", "Effect": "Allow", "Resource": lbs,
         "Action": [f"{ELB}:CreateLoadBalancer", f"{ELB}:CreateTargetGroup"],
         "Condition": owned(cluster, "aws:RequestTag")},
        # Tags in CreateLoadBalancer / CreateTargetGroup need AddTags too. Only when the request carries the
        # cluster tag, and GuardClusterTagsElb denies that on anything but a create.
        {"Sid": "TagLoadBalancersOnCreate", "Effect": "Allow", "Action": [f"{ELB}:AddTags"], "Resource": lbs,
         "Condition": owned(cluster, "aws:RequestTag")},
        {"Sid": "ClusterLoadBalancers", "Effect": "Allow", "Resource": lbs, "Condition": owned(cluster),
         "Action": [
            f"{ELB}:AddTags", f"{ELB}:ApplySecurityGroupsToLoadBalancer", f"{ELB}:AttachLoadBalancerToSubnets",
            f"{ELB}:ConfigureHealthCheck", f"{ELB}:CreateListener", f"{ELB}:CreateLoadBalancerListeners",
            f"{ELB}:CreateLoadBalancerPolicy", f"{ELB}:DeleteLoadBalancer", f"{ELB}:DeleteLoadBalancerListeners",
            f"{ELB}:DeleteTargetGroup", f"{ELB}:DeregisterInstancesFromLoadBalancer", f"{ELB}:DeregisterTargets",
            f"{ELB}:DetachLoadBalancerFromSubnets", f"{ELB}:ModifyLoadBalancerAttributes",
            f"{ELB}:ModifyTargetGroup", f"{ELB}:RegisterInstancesWithLoadBalancer", f"{ELB}:RegisterTargets",
            f"{ELB}:SetLoadBalancerPoliciesForBackendServer", f"{ELB}:SetLoadBalancerPoliciesOfListener"]},
        # Listeners of NLBs: cloud-provider-aws does not tag them, so no tag can scope these two actions; the
        # ARN keeps them to NLB listeners (the aws-load-balancer-controller leaves them on "*"). parliament:
        # RESOURCE_MISMATCH (ALB listener ARNs left out on purpose: cloud-provider-aws makes no ALB), allowed
        # in tests/test_iam_parliament.py.
        {"Sid": "NetworkLoadBalancerListeners", "Effect": "Allow",
         "Action": [f"{ELB}:ModifyListener", f"{ELB}:DeleteListener"],
         "Resource": [arn(partition, ELB, "listener/net/*/*/*", "*", "*")]},
        {"Sid": "LoadBalancerServiceLinkedRole", "Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole"],
         "Resource": [arn(partition, "iam", f"role/aws-service-role/{elb_principal}/"
                          "AWSServiceRoleForElasticLoadBalancing", account="*")],
         "Condition": {"StringEquals": {"iam:AWSServiceName": elb_principal}}},
    ]


ADDON = Addon(
    name="cloud-provider-aws", option="cloud_provider_aws", order=20, template="cloud-provider-aws.yaml.j2", boot=True,
    versioned={"cloud-controller-manager": Versioned("registry.k8s.io/provider-aws/cloud-controller-manager",
                                                     TAGS)},
    control_plane_statements=cloud_provider_statements,
)
