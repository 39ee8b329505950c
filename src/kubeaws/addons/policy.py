"""Building blocks of the addons' IAM policies (kubeadm instance-role statements and EKS IRSA policies): the
cluster-tag conditions that scope every write to the cluster, and ARN patterns in the cluster's partition.

Pure. Called by the addon descriptors (kubeaws.addons.descriptors) and by kubeaws.model.iam for the roles'
own statements.
"""

from __future__ import annotations

from typing import Any

from kubeaws.partition import arn

VERSION = "2012-10-17"
K8S_CLUSTER_PREFIX = "kubernetes.io/cluster/"
ELB = "elasticloadbalancing"


def cluster_tag(cluster: str) -> str:
    """`kubernetes.io/cluster/<cluster>` (kubeaws.aws.tags.k8s_cluster_tag, which addons may not import)."""
    return f"{K8S_CLUSTER_PREFIX}{cluster}"


def owned(cluster: str, key: str = "aws:ResourceTag") -> dict[str, Any]:
    """Scope to resources tagged `kubernetes.io/cluster/<cluster>=owned`: the tag every kubeaws resource
    carries, that Auto Scaling propagates to instances, that cloud-provider-aws puts on the security groups,
    load balancers and target groups it creates, and that the EBS CSI driver puts on its volumes and snapshots
    (`--k8s-tag-cluster-id`). (`kubeaws.io/cluster` is NOT on ASG instances: it would make them look like
    kubeaws-managed instances.)"""
    return {"StringEquals": {f"{key}/{cluster_tag(cluster)}": "owned"}}


def used(cluster: str) -> dict[str, Any]:
    """Resources of the cluster, owned or brought (`kubernetes.io/cluster/<cluster>=owned|shared`)."""
    return {"StringLike": {f"aws:ResourceTag/{cluster_tag(cluster)}": ["owned", "shared"]}}


def ec2(kind: str, partition: str) -> str:
    """Every EC2 resource of a kind (`security-group`, `volume`...) in the partition."""
    return arn(partition, "ec2", f"{kind}/*", "*", "*")


def load_balancers(partition: str) -> list[str]:
    """Classic ELB, NLB / ALB and target group ARNs (cloud-provider-aws makes classic ELBs and NLBs)."""
    return [arn(partition, ELB, resource, "*", "*")
            for resource in ("loadbalancer/*", "loadbalancer/net/*/*", "targetgroup/*/*")]
