"""The Amazon EBS CSI driver (+ a `gp3` StorageClass, the default unless rook-ceph provides one). kubeadm: the
manifests, its permissions on the control-plane instance role (the controller runs there); EKS: the
`aws-ebs-csi-driver` managed add-on with an IRSA role holding AWS' managed policy. Read by
kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons.descriptor import Addon, Irsa
from kubeaws.addons.policy import cluster_tag, ec2, owned

#: The EBS CSI driver's AWS managed policy (EKS IRSA role).
POLICY_NAME = "service-role/AmazonEBSCSIDriverPolicy"
SIDECARS = {
    "csi-provisioner": "registry.k8s.io/sig-storage/csi-provisioner:v5.1.0",
    "csi-attacher": "registry.k8s.io/sig-storage/csi-attacher:v4.7.0",
    "csi-resizer": "registry.k8s.io/sig-storage/csi-resizer:v1.12.0",
    "csi-snapshotter": "registry.k8s.io/sig-storage/csi-snapshotter:v8.1.0",
    "livenessprobe": "registry.k8s.io/sig-storage/livenessprobe:v2.14.0",
    "csi-node-driver-registrar": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.12.0",
}


def ebs_csi_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The EBS CSI driver's documented policy (AmazonEBSCSIDriverPolicy), every write scoped to volumes,
    snapshots and instances tagged `kubernetes.io/cluster/<cluster>=owned` (the driver runs with
    `--k8s-tag-cluster-id=<cluster>`, so the volumes it creates carry that tag)."""
    volumes = [ec2("volume", partition), ec2("snapshot", partition)]
    return [
        {"Sid": "CreateClusterVolumes", "Effect": "Allow", "Action": ["ec2:CreateVolume"],
         "Resource": [ec2("volume", partition)], "Condition": owned(cluster, "aws:RequestTag")},
        # parliament: RESOURCE_MISMATCH (no volume ARN), allowed in tests/test_iam_parliament.py: listed here,
        # the request tag alone would let the role snapshot ANY volume (then restore it as a cluster volume);
        # the source volume is allowed by ClusterVolumes, only when tagged for the cluster.
        {"Sid": "CreateClusterSnapshots", "Effect": "Allow", "Action": ["ec2:CreateSnapshot"],
         "Resource": [ec2("snapshot", partition)], "Condition": owned(cluster, "aws:RequestTag")},
        # The source snapshot of a restored volume must be the cluster's. (The volume ARN is listed because
        # CreateVolume needs it in every statement; a volume being created has no tags, so this statement
        # never allows it: CreateClusterVolumes does.)
        {"Sid": "CreateVolumesFromClusterSnapshots", "Effect": "Allow", "Action": ["ec2:CreateVolume"],
         "Resource": volumes, "Condition": owned(cluster)},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": volumes,
         "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}}},
        {"Sid": "ClusterVolumes", "Effect": "Allow", "Resource": volumes,
         "Action": ["ec2:ModifyVolume", "ec2:CreateSnapshot", "ec2:DeleteTags"], "Condition": owned(cluster)},
        {"Sid": "DeleteDriverVolumes", "Effect": "Allow", "Action": ["ec2:DeleteVolume", "ec2:DeleteSnapshot"],
         "Resource": volumes, "Condition": {"StringEquals": {
             f"aws:ResourceTag/{cluster_tag(cluster)}": "owned",
             "aws:ResourceTag/ebs.csi.aws.com/cluster": "true"}}},
    ]


ADDON = Addon(
    name="ebs-csi", option="ebs_csi", order=30, template="ebs-csi.yaml.j2", modes=frozenset({"kubeadm", "eks"}),
    images={"ebs-csi-driver": "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.35.0", **SIDECARS},
    control_plane_statements=ebs_csi_statements,
    irsa=Irsa("kube-system", "ebs-csi-controller-sa", managed=(POLICY_NAME,)),
    eks_addon="aws-ebs-csi-driver",
)
