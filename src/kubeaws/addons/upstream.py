"""The vendored upstream manifests (kubeaws.addons.vendored) as kubeaws applies them to one cluster: the one
documented place where per-cluster values are set on them, each a change of a named document, every other
document verbatim:

- calico: `tigera-operator.yaml` as shipped (the pod CIDR and encapsulation are in the `Installation` kubeaws
  renders, templates/calico.yaml.j2);
- cilium: `cni-cilium.yaml`, the chart rendered at build time; per cluster, ConfigMap `cilium-config`
  `cluster-pool-ipv4-cidr` = `network.podCIDR`, Deployment `cilium-operator` `replicas` = 2 with more than one
  control-plane member, else 1;
- rookCeph: `rook-crds.yaml`, `rook-common.yaml`, `rook-operator.yaml` as shipped (the cluster itself is in
  templates/rook-ceph.yaml.j2);
- with `mirrors.imageRepository`, every image (kubeaws.addons.images), Rook's CSI images included.

Pure; results cached per distinct input. Called by kubeaws.addons.render_manifests (`files`, by the addon
descriptor's name).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from kubeaws.addons import images, vendored
from kubeaws.spec.models import ClusterSpec

__all__ = ["CALICO_FILES", "CILIUM_FILE", "ROOK_CSI_IMAGES", "ROOK_FILES", "UPSTREAM", "calico", "cilium", "files",
           "rook", "version"]

CALICO_FILES = ("tigera-operator.yaml",)
CILIUM_FILE = "cni-cilium.yaml"
#: Our file name -> the vendored file, in apply order.
ROOK_FILES = {"rook-crds.yaml": "crds.yaml", "rook-common.yaml": "common.yaml", "rook-operator.yaml": "operator.yaml"}
#: The ConfigMap of Rook's operator settings (ROOK_CSI_*_IMAGE: the CSI images it starts).
ROOK_OPERATOR_CONFIG = "rook-ceph-operator-config"
#: The images Rook's operator starts unless its ConfigMap names others: its compiled-in defaults
#: (pkg/operator/ceph/csi/spec.go of rook at the vendored commit; operator.yaml lists the same keys as
#: comments, cephcsi's tag there without its `v`). Set, mirrored, when a mirror is set.
ROOK_CSI_IMAGES = {
    "ROOK_CSI_CEPH_IMAGE": "quay.io/cephcsi/cephcsi:v3.12.2",
    "ROOK_CSI_REGISTRAR_IMAGE": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.11.1",
    "ROOK_CSI_RESIZER_IMAGE": "registry.k8s.io/sig-storage/csi-resizer:v1.11.1",
    "ROOK_CSI_PROVISIONER_IMAGE": "registry.k8s.io/sig-storage/csi-provisioner:v5.0.1",
    "ROOK_CSI_SNAPSHOTTER_IMAGE": "registry.k8s.io/sig-storage/csi-snapshotter:v8.0.1",
    "ROOK_CSI_ATTACHER_IMAGE": "registry.k8s.io/sig-storage/csi-attacher:v4.6.1",
    "ROOK_CSIADDONS_IMAGE": "quay.io/csiaddons/k8s-sidecar:v0.9.1",
}


@cache
def _calico(repository: str | None) -> dict[str, str]:
    return {name: images.rewrite_manifest(vendored.read("calico", name), repository) for name in CALICO_FILES}


def calico(spec: ClusterSpec) -> dict[str, str]:
    """File name -> manifest of the vendored Calico files (before kubeaws' own cni-calico.yaml)."""
    return _calico(spec.spec.mirrors.image_repository)


@cache
def _cilium(repository: str | None, pod_cidr: str, operator_replicas: int) -> str:
    def change(doc: dict[str, Any]) -> bool:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        changed = images.rewrite_document(doc, repository)
        if kind == "ConfigMap" and name == "cilium-config":
            changed |= doc["data"].get("cluster-pool-ipv4-cidr") != pod_cidr
            doc["data"]["cluster-pool-ipv4-cidr"] = pod_cidr
        elif kind == "Deployment" and name == "cilium-operator":
            changed |= doc["spec"].get("replicas") != operator_replicas
            doc["spec"]["replicas"] = operator_replicas
        return changed

    return vendored.transform_documents(vendored.read("cilium", "cilium.yaml"), change)


def cilium(spec: ClusterSpec) -> dict[str, str]:
    """File name -> manifest of Cilium for this cluster."""
    body = spec.spec
    replicas = 2 if body.control_plane.count > 1 else 1
    return {CILIUM_FILE: _cilium(body.mirrors.image_repository, body.network.pod_cidr, replicas)}


@cache
def _rook(repository: str | None) -> dict[str, str]:
    defaults = {ROOK_OPERATOR_CONFIG: ROOK_CSI_IMAGES}
    return {ours: images.rewrite_manifest(vendored.read("rook", theirs), repository, defaults)
            for ours, theirs in ROOK_FILES.items()}


def rook(spec: ClusterSpec) -> dict[str, str]:
    """File name -> manifest of the vendored Rook files, in apply order (before kubeaws' rook-ceph.yaml)."""
    return _rook(spec.spec.mirrors.image_repository)


#: Addon (descriptor) name -> its vendored files for a cluster, applied before the addon's own manifest.
UPSTREAM: dict[str, Callable[[ClusterSpec], dict[str, str]]] = {
    "cni-calico": calico, "cni-cilium": cilium, "rook-ceph": rook,
}


def files(addon: str, spec: ClusterSpec) -> dict[str, str]:
    """File name -> manifest of the vendored files of an addon (by its descriptor's name; none for most)."""
    render = UPSTREAM.get(addon)
    return render(spec) if render is not None else {}


def version(addon: str) -> str:
    """The version of an addon's vendored files ("calico" -> "v3.28.2")."""
    (found,) = {f.version for f in vendored.sources() if f.addon == addon}
    return found
