"""EBS volumes and snapshots the cluster's EBS CSI driver made (PersistentVolumeClaims, VolumeSnapshots): found by
tag so that `kubeaws delete` removes them with the cluster. The rules of what counts and why these kinds live
outside the registry are in resources/controller_made.py; they are registered there (`kinds()`), and called
by the engine (observe, destroy, status) only.

Each is found with ONE describe filtered on `kubernetes.io/cluster/<cluster>=owned` (the driver's
`--k8s-tag-cluster-id`), then kept when the driver's `ebs.csi.aws.com/cluster=true` or kubeaws' extra tag
`kubeaws.io/cluster=<cluster>` says it made it (`aws.tags.is_controller_made` rules out kubeaws' own etcd
volumes, which carry `kubeaws.io/resource`, and anything of another cluster or `shared`). The root and extra
volumes of kubeaws' nodes carry the cluster tag but neither of those, and go with their instances anyway.

Rank 5, after every instance and the network: a volume is attached to a node while the cluster lives, and its
delete waits until it is `available` (its node terminated) exactly as the etcd volumes' delete does; volumes
and snapshots block nothing else, so one that cannot go only fails itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, EBS_CSI_TAG, is_controller_made, k8s_cluster_tag, tag_dict
from kubeaws.resources._ec2 import ignoring, while_in_use
from kubeaws.resources.base import Observed
from kubeaws.resources.controller_made import ControllerKind, register
from kubeaws.resources.registry import get as registry_kind

#: Tags the EBS CSI driver puts on what it makes: the PersistentVolume's and the VolumeSnapshotContent's name.
VOLUME_NAME_TAG = "CSIVolumeName"
SNAPSHOT_NAME_TAG = "CSIVolumeSnapshotName"
#: The claim a volume was made for (the external provisioner's `--extra-create-metadata`).
CLAIM_TAGS = ("kubernetes.io/created-for/pvc/namespace", "kubernetes.io/created-for/pvc/name")


def made_by_the_csi_driver(tags: Mapping[str, str], cluster: str) -> bool:
    """Made by the cluster's EBS CSI driver for this cluster."""
    return is_controller_made(tags, cluster) and (tags.get(EBS_CSI_TAG) == "true" or tags.get(CLUSTER_TAG) == cluster)


def owned_filter(cluster: str) -> list[dict[str, object]]:
    return [{"Name": f"tag:{k8s_cluster_tag(cluster)}", "Values": ["owned"]}]


@register
class CsiVolume(ControllerKind):
    """An EBS volume the EBS CSI driver made for a PersistentVolumeClaim (attrs: `claim`, `attached_instance`)."""

    kind = "CsiVolume"
    service = "ec2"
    rank = 5
    noun = "volume"
    in_vpc = False

    def find(self, ctx: AwsContext) -> list[Observed]:
        found: list[Observed] = []
        for item in ctx.paginate("ec2", "describe_volumes", "Volumes", Filters=owned_filter(ctx.cluster)):
            tags, state = tag_dict(item.get("Tags")), str(item.get("State", ""))
            if state in ("deleting", "deleted") or not made_by_the_csi_driver(tags, ctx.cluster):
                continue
            attached = [a["InstanceId"] for a in item.get("Attachments", []) if a.get("State") != "detached"]
            claim = "/".join(tags[t] for t in CLAIM_TAGS if t in tags) or None
            found.append(Observed(self.kind, item["VolumeId"], {}, tags, state,
                                  {"name": tags.get(VOLUME_NAME_TAG) or item["VolumeId"], "claim": claim,
                                   "size": item.get("Size"), "az": item.get("AvailabilityZone"),
                                   "attached_instance": attached[0] if attached else None}))
        return found

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Wait until it is detached (its node terminated), then delete it: the etcd volumes' delete."""
        registry_kind("Volume").delete(ctx, actual)


@register
class CsiSnapshot(ControllerKind):
    """An EBS snapshot the EBS CSI driver made for a VolumeSnapshot."""

    kind = "CsiSnapshot"
    service = "ec2"
    rank = 5
    noun = "snapshot"
    in_vpc = False
    NOT_FOUND = ("InvalidSnapshot.NotFound",)

    def find(self, ctx: AwsContext) -> list[Observed]:
        items = ctx.paginate("ec2", "describe_snapshots", "Snapshots", OwnerIds=["self"],
                             Filters=owned_filter(ctx.cluster))
        return [Observed(self.kind, s["SnapshotId"], {}, tag_dict(s.get("Tags")), str(s.get("State", "")),
                         {"name": tag_dict(s.get("Tags")).get(SNAPSHOT_NAME_TAG) or s["SnapshotId"],
                          "volume_id": s.get("VolumeId"), "size": s.get("VolumeSize")})
                for s in items if made_by_the_csi_driver(tag_dict(s.get("Tags")), ctx.cluster)]

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """DeleteSnapshot, retried while something still uses it (InvalidSnapshot.InUse); gone counts."""
        ignoring(lambda: while_in_use(ctx, lambda: ctx.call("ec2", "delete_snapshot", SnapshotId=actual.id),
                                      f"snapshot {actual.id} to be unused", ("InvalidSnapshot.InUse",)),
                 self.NOT_FOUND)
