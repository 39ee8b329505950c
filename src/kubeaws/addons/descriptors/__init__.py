"""The addon descriptors, one module per addon (kubeaws.addons.descriptor says what a descriptor holds).

`DESCRIPTORS` is the registry every layer reads, in apply order: the CNIs first, then the addons. Adding an
addon: its module here, its entry below, its template under addons/templates (docs/addons.md).
"""

from __future__ import annotations

from kubeaws.addons.descriptor import Addon
from kubeaws.addons.descriptors import cloud_provider_aws, cluster_autoscaler, cni, ebs_csi, metrics_server, rook_ceph

DESCRIPTORS: tuple[Addon, ...] = (
    cni.CALICO, cni.FLANNEL, cni.CILIUM,
    cloud_provider_aws.ADDON, ebs_csi.ADDON, metrics_server.ADDON, cluster_autoscaler.ADDON, rook_ceph.ADDON,
)
