"""Rook and Ceph: the rook operator (its upstream CRDs, common resources and operator manifests) and the
`CephCluster`, `CephBlockPool` and default `StorageClass` rendered here, on the raw disks (extraVolumes) of
the self-managed groups the spec chooses. kubeadm only. Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons import versions
from kubeaws.addons.descriptor import Addon
from kubeaws.spec.models import ClusterSpec

VERSION = versions.ROOK_VERSION


def storage_groups(spec: ClusterSpec) -> list[str]:
    """The self-managed groups with extra volumes (Ceph's disks)."""
    return [g.name for g in spec.spec.node_groups if g.extra_volumes and g.type == "self-managed"]


def placement(spec: ClusterSpec) -> dict[str, Any]:
    """Monitors and pool replicas (3 with at least 3 storage nodes, else 1) and the nodes Ceph runs on."""
    opts = spec.spec.addons.rook_ceph
    groups = storage_groups(spec)
    nodes = sum(g.size.min for g in spec.spec.node_groups if g.name in groups)
    selector = opts.node_selector if opts is not None else None
    if selector:
        key, value = next(iter(selector.items()))
        selector_key, selector_values = key, [value]
    else:
        selector_key, selector_values = "kubeaws.io/node-group", groups or ["storage"]
    return {"mons": 3 if nodes >= 3 else 1, "replicas": 3 if nodes >= 3 else 1,
            "selector_key": selector_key, "selector_values": selector_values}


ADDON = Addon(
    name="rook-ceph", option="rook_ceph", order=60, template="rook-ceph.yaml.j2",
    images={"ceph": "quay.io/ceph/ceph:v18.2.4"},
    context=placement, cr_kinds=frozenset({"CephCluster", "CephBlockPool"}), version=VERSION,
)
