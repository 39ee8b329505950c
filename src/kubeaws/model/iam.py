"""IAM builder (mode kubeadm): the control-plane and node roles with least-privilege inline policies, and the
instance profiles wrapping them; or, for roles the user brings (`iam.controlPlaneRole` / `iam.nodeRole`,
a name or ARN), a brought IamRole and the instance profile it is already in (else an owned one around it:
`instance_profile`).

Each policy is a pure function returning the policy dict (unit-tested). Called by the kubeadm model wiring
(`model.build`) before the state bucket (model/state.py), whose policy needs the role ARNs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeaws.aws.tags import K8S_CLUSTER_PREFIX, k8s_cluster_tag, owned_tags
from kubeaws.model.common import Builder
from kubeaws.model.flows import CONTROL_PLANE, NODES
from kubeaws.model.irsa import cluster_autoscaler_policy
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


def _owned(cluster: str, key: str = "aws:ResourceTag") -> dict[str, Any]:
    """Scope to resources tagged `kubernetes.io/cluster/<cluster>=owned`: the tag every kubeaws resource
    carries, that Auto Scaling propagates to instances, that cloud-provider-aws puts on the security groups,
    load balancers and target groups it creates, and that the EBS CSI driver puts on its volumes and snapshots
    (`--k8s-tag-cluster-id`). (`kubeaws.io/cluster` is NOT on ASG instances: it would make them look like
    kubeaws-managed instances.)"""
    return {"StringEquals": {f"{key}/{k8s_cluster_tag(cluster)}": "owned"}}


def _used(cluster: str) -> dict[str, Any]:
    """Resources of the cluster, owned or brought (`kubernetes.io/cluster/<cluster>=owned|shared`)."""
    return {"StringLike": {f"aws:ResourceTag/{k8s_cluster_tag(cluster)}": ["owned", "shared"]}}


def _ec2(kind: str, partition: str) -> str:
    return arn(partition, "ec2", f"{kind}/*", "*", "*")


#: Tag keys that decide what a role may touch (the tag guards): no role changes them on an existing resource.
GUARDED_TAG_KEYS = [f"{K8S_CLUSTER_PREFIX}*", "kubeaws.io/*", "k8s.io/cluster-autoscaler/*"]
ELB = "elasticloadbalancing"


def load_balancers(partition: str) -> list[str]:
    """Classic ELB, NLB / ALB and target group ARNs (cloud-provider-aws makes classic ELBs and NLBs)."""
    return [arn(partition, ELB, resource, "*", "*")
            for resource in ("loadbalancer/*", "loadbalancer/net/*/*", "targetgroup/*/*")]


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
         "Resource": [_ec2("security-group", partition)], "Condition": _owned(cluster, "aws:RequestTag")},
        # (The group ARN is listed because CreateSecurityGroup needs it in every statement; a group being
        # created has no tags, so this statement never allows it: the one above does.)
        {"Sid": "SecurityGroupsInClusterVpc", "Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"],
         "Resource": [_ec2("security-group", partition), _ec2("vpc", partition)], "Condition": _used(cluster)},
        {"Sid": "TagSecurityGroupsOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": [_ec2("security-group", partition)],
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}},
        # readRepairClusterTags: other tags of its own groups (the guarded keys stay denied: GuardClusterTags*).
        {"Sid": "TagClusterSecurityGroups", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": [_ec2("security-group", partition)], "Condition": _owned(cluster)},
        # The nodes' groups (owned, or brought and tagged shared) get the load balancers' ingress rules.
        {"Sid": "ClusterSecurityGroupRules", "Effect": "Allow", "Resource": [_ec2("security-group", partition)],
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
         "Condition": _used(cluster)},
        {"Sid": "DeleteClusterSecurityGroups", "Effect": "Allow", "Action": ["ec2:DeleteSecurityGroup"],
         "Resource": [_ec2("security-group", partition)], "Condition": _owned(cluster)},
        {"Sid": "ClusterRoutes", "Effect": "Allow", "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
         "Resource": [_ec2("route-table", partition)], "Condition": _owned(cluster)},
        {"Sid": "ClusterInstances", "Effect": "Allow", "Action": ["ec2:ModifyInstanceAttribute"],
         "Resource": [_ec2("instance", partition)], "Condition": _owned(cluster)},
        {"Sid": "CreateLoadBalancers", "Effect": "Allow", "Resource": lbs,
         "Action": [f"{ELB}:CreateLoadBalancer", f"{ELB}:CreateTargetGroup"],
         "Condition": _owned(cluster, "aws:RequestTag")},
        # Tags in CreateLoadBalancer / CreateTargetGroup need AddTags too. Only when the request carries the
        # cluster tag, and GuardClusterTagsElb denies that on anything but a create.
        {"Sid": "TagLoadBalancersOnCreate", "Effect": "Allow", "Action": [f"{ELB}:AddTags"], "Resource": lbs,
         "Condition": _owned(cluster, "aws:RequestTag")},
        {"Sid": "ClusterLoadBalancers", "Effect": "Allow", "Resource": lbs, "Condition": _owned(cluster),
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


def ebs_csi_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The EBS CSI driver's documented policy (AmazonEBSCSIDriverPolicy), every write scoped to volumes,
    snapshots and instances tagged `kubernetes.io/cluster/<cluster>=owned` (the driver runs with
    `--k8s-tag-cluster-id=<cluster>`, so the volumes it creates carry that tag)."""
    volumes = [_ec2("volume", partition), _ec2("snapshot", partition)]
    return [
        {"Sid": "CreateClusterVolumes", "Effect": "Allow", "Action": ["ec2:CreateVolume"],
         "Resource": [_ec2("volume", partition)], "Condition": _owned(cluster, "aws:RequestTag")},
        # parliament: RESOURCE_MISMATCH (no volume ARN), allowed in tests/test_iam_parliament.py: listed here,
        # the request tag alone would let the role snapshot ANY volume (then restore it as a cluster volume);
        # the source volume is allowed by ClusterVolumes, only when tagged for the cluster.
        {"Sid": "CreateClusterSnapshots", "Effect": "Allow", "Action": ["ec2:CreateSnapshot"],
         "Resource": [_ec2("snapshot", partition)], "Condition": _owned(cluster, "aws:RequestTag")},
        # The source snapshot of a restored volume must be the cluster's. (The volume ARN is listed because
        # CreateVolume needs it in every statement; a volume being created has no tags, so this statement
        # never allows it: CreateClusterVolumes does.)
        {"Sid": "CreateVolumesFromClusterSnapshots", "Effect": "Allow", "Action": ["ec2:CreateVolume"],
         "Resource": volumes, "Condition": _owned(cluster)},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": volumes,
         "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}}},
        {"Sid": "ClusterVolumes", "Effect": "Allow", "Resource": volumes,
         "Action": ["ec2:ModifyVolume", "ec2:CreateSnapshot", "ec2:DeleteTags"], "Condition": _owned(cluster)},
        {"Sid": "DeleteDriverVolumes", "Effect": "Allow", "Action": ["ec2:DeleteVolume", "ec2:DeleteSnapshot"],
         "Resource": volumes, "Condition": {"StringEquals": {
             f"aws:ResourceTag/{k8s_cluster_tag(cluster)}": "owned",
             "aws:ResourceTag/ebs.csi.aws.com/cluster": "true"}}},
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


def cluster_autoscaler_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The cluster-autoscaler's permissions (its AWS documentation, the same as its EKS IRSA role): on a
    kubeadm cluster it runs on the control plane with that role."""
    return [{**statement, "Sid": f"ClusterAutoscaler{statement['Sid']}"}
            for statement in cluster_autoscaler_policy(cluster, partition)["Statement"]]


def bucket_arn(bucket: str, partition: str = "aws") -> str:
    return arn(partition, "s3", bucket)


def control_plane_policy(cluster: str, bucket: str, cluster_autoscaler: bool = False,
                         partition: str = "aws") -> dict[str, Any]:
    """Everything the control plane runs needs: cloud-provider-aws, the EBS CSI driver, its own volumes
    and ENI, its health report, read/write of the state bucket, and the cluster-autoscaler's permissions
    when that addon is on."""
    state = [
        {"Sid": "StateBucket", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": [bucket_arn(bucket, partition)]},
        # AbortMultipartUpload: a failed upload of a large etcd snapshot leaves no parts behind
        {"Sid": "StateObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": [f"{bucket_arn(bucket, partition)}/*"]},
    ]
    statements = [*cloud_provider_statements(cluster, partition), *ebs_csi_statements(cluster, partition),
                  *attach_statements(cluster, partition), *self_health_statements(cluster, CONTROL_PLANE, partition),
                  *state, *tag_guard_statements()]
    if cluster_autoscaler:
        statements += cluster_autoscaler_statements(cluster, partition)
    return {"Version": VERSION, "Statement": statements}


def node_policy(cluster: str, bucket: str, partition: str = "aws") -> dict[str, Any]:
    """Nodes: read the cluster info and the join token from the state bucket, describe instances, report
    their own failed bootstrap. Nothing else (ECR read comes from the AWS managed policy)."""
    return {"Version": VERSION, "Statement": [
        {"Sid": "ClusterInfo", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{bucket_arn(bucket, partition)}/cluster/*", f"{bucket_arn(bucket, partition)}/join/token"]},
        {"Sid": "Describe", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"},
        *self_health_statements(cluster, NODES, partition),
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
            args: dict[str, Any] = {"cluster": b.cluster, "bucket": bucket, "partition": partition}
            if logical == "control-plane":
                args["cluster_autoscaler"] = b.spec.spec.addons.cluster_autoscaler is not None
            policy = Computed(POLICIES[logical], args, f"{logical} policy")
            role = b.owned("IamRole", logical, {
                "name": name, "path": path, "assume_role_policy": trust_policy(partition),
                "inline_policies": {f"kubeaws-{logical}": policy},
                "managed_policy_arns": [managed_policy(partition, ECR_READ_ONLY_NAME)],
            })
        instance_profile(b, logical, role, brought[logical])
        arns[logical] = Ref(role.kind, role.name, "arn")
    return IamRefs(
        control_plane_profile=Ref("InstanceProfile", "control-plane", "name"),
        node_profile=Ref("InstanceProfile", "node", "name"),
        control_plane_role_arn=arns["control-plane"], node_role_arn=arns["node"])
