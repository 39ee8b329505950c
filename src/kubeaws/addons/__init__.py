"""Addon manifests of a self-managed (kubeadm) cluster: the CNI and the addons present under `spec.addons`.

Pure renderers (no AWS call, no I/O besides the package templates). Called by `kubeaws.bootstrap` (the
control-plane user data carries these files and the first member applies them with kubectl), and through
`bootstrap.artifacts` by `kubeaws render -o DIR`.

- Vendored and fully rendered here (small enough): flannel, metrics-server, aws-cloud-controller-manager,
  the EBS CSI driver (+ a `gp3` StorageClass), cluster-autoscaler.
- Too large to vendor (CRD-heavy operators): the bootstrap downloads the upstream file from its pinned URL
  (`versions.REMOTE`, digest checked at boot, URL base replaceable by `mirrors.packages`) and kubeaws renders
  only the small parts: calico = tigera-operator manifest + the `Installation` CR rendered here; cilium =
  the Helm chart + the values rendered by `render_helm_values`; rook-ceph = crds/common/operator manifests +
  the `CephCluster`, `CephBlockPool` and default `StorageClass` rendered here.

Every image is rewritten to `mirrors.imageRepository` when set (`versions.mirror_image`). What each addon
is (spec field, manifests, images, permissions, EKS add-on, flows) is its descriptor: `DESCRIPTORS`
(kubeaws.addons.descriptors, one module per addon).
"""

from __future__ import annotations

from typing import Any

import yaml

from kubeaws.addons import versions
from kubeaws.addons.descriptor import Addon
from kubeaws.addons.descriptors import DESCRIPTORS
from kubeaws.addons.descriptors.cni import CILIUM_VERSION
from kubeaws.spec.models import ClusterSpec

__all__ = ["CR_KINDS", "DESCRIPTORS", "Addon", "addon_files", "enabled", "remote_manifests", "render_helm_values",
           "render_manifests"]

# Custom-resource kinds rendered here (their CRDs come from the upstream operator manifests).
CR_KINDS = frozenset(kind for addon in DESCRIPTORS for kind in addon.cr_kinds)


def enabled(spec: ClusterSpec) -> list[Addon]:
    """The descriptors of the addons this spec turns on in its mode, in apply order."""
    return [addon for addon in DESCRIPTORS if addon.enabled(spec)]


def render_manifests(spec: ClusterSpec) -> dict[str, str]:
    """File name -> multi-document YAML of every Kubernetes manifest kubeaws renders for this cluster, in
    the order they are applied (CNI first)."""
    return {f"{addon.name}.yaml": addon.render(spec) for addon in enabled(spec)
            if addon.template is not None or addon.vendored}


def render_helm_values(spec: ClusterSpec) -> dict[str, str]:
    """File name -> Helm values for the charts installed at boot (cilium only)."""
    body = spec.spec
    if body.cni != "cilium":
        return {}
    registry = body.mirrors.image_repository
    operator: dict[str, Any] = {"replicas": 2 if body.control_plane.count > 1 else 1}
    values: dict[str, Any] = {
        "kubeProxyReplacement": False,
        "routingMode": "tunnel",
        "tunnelProtocol": "vxlan",
        "ipam": {"mode": "cluster-pool",
                 "operator": {"clusterPoolIPv4PodCIDRList": [body.network.pod_cidr],
                              "clusterPoolIPv4MaskSize": 24}},
        "operator": operator,
    }
    if registry:
        values["image"] = {"repository": f"{registry}/cilium/cilium", "useDigest": False}
        values["envoy"] = {"image": {"repository": f"{registry}/cilium/cilium-envoy", "useDigest": False}}
        operator["image"] = {"repository": f"{registry}/cilium/operator", "useDigest": False}
    header = f"# Helm values of the cilium chart {CILIUM_VERSION} (installed at boot).\n"
    return {"cilium-values.yaml": header + yaml.safe_dump(values, sort_keys=True)}


def remote_manifests(spec: ClusterSpec) -> list[versions.RemoteManifest]:
    """The upstream files the bootstrap downloads (pinned URL + digest), in apply order."""
    body = spec.spec
    out: list[versions.RemoteManifest] = list(versions.REMOTE.get(body.cni, ()))
    if body.addons.rook_ceph is not None:
        out.extend(versions.REMOTE["rookCeph"])
    return out


def addon_files(spec: ClusterSpec) -> dict[str, str]:
    """Everything under `addons/` of `kubeaws render`: manifests and Helm values."""
    return {**render_manifests(spec), **render_helm_values(spec)}
