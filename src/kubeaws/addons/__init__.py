"""Addon manifests of a self-managed (kubeadm) cluster: the CNI and the addons present under `spec.addons`.

Pure renderers (no AWS call, no I/O besides the package templates and the parse cache). Every addon is a set of
Kubernetes objects kubeaws applies through the API (`addon_documents`, read by kubeaws.model.addon_objects);
the boot addons (`Addon.boot`: the CNI and the cloud provider, which nodes need before kubeaws can reach the
API) are also files the first control-plane member applies at boot (`boot_files`, via kubeaws.bootstrap and
the state bucket). `kubeaws render -o DIR` writes them all (`addon_files`).

- Rendered here from templates (small enough): flannel, metrics-server, aws-cloud-controller-manager,
  the EBS CSI driver (+ a `gp3` StorageClass), cluster-autoscaler.
- Upstream manifests shipped in the package at a pinned version, sha256 checked (kubeaws.addons.vendored),
  their per-cluster values set by kubeaws.addons.upstream (`upstream.files`, separate files applied before the
  addon's own) or applied verbatim (`Addon.vendored`, inside the addon's file): calico = tigera-operator.yaml +
  the `Installation` CR rendered here; cilium = its chart rendered at build time (cni-cilium.yaml); rook-ceph
  = crds/common/operator manifests + the `CephCluster`, `CephBlockPool` and default `StorageClass` rendered
  here. Nothing is downloaded at boot.

Every image is rewritten to `mirrors.imageRepository` when set, in one place (kubeaws.addons.images). What each addon
is (spec field, manifests, images, permissions, EKS add-on, flows) is its descriptor: `DESCRIPTORS`
(kubeaws.addons.descriptors, one module per addon).
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons import parsed, upstream
from kubeaws.addons.descriptor import Addon
from kubeaws.addons.descriptors import DESCRIPTORS
from kubeaws.spec.models import ClusterSpec

__all__ = ["CR_KINDS", "DESCRIPTORS", "Addon", "addon_documents", "addon_files", "boot_files", "enabled",
           "render_manifests"]

# Custom-resource kinds rendered here (their CRDs come from the upstream operator manifests).
CR_KINDS = frozenset(kind for addon in DESCRIPTORS for kind in addon.cr_kinds)


def enabled(spec: ClusterSpec) -> list[Addon]:
    """The descriptors of the addons this spec turns on in its mode, in apply order."""
    return [addon for addon in DESCRIPTORS if addon.enabled(spec)]


def render_manifests(spec: ClusterSpec, boot_only: bool = False) -> dict[str, str]:
    """File name -> multi-document YAML of every Kubernetes manifest kubeaws renders for this cluster (of the
    boot addons only with `boot_only`), in the order they are applied (CNI first): per addon, its vendored
    upstream files (kubeaws.addons.upstream) then its own manifest."""
    out: dict[str, str] = {}
    for addon in enabled(spec):
        if boot_only and not addon.boot:
            continue
        out.update(upstream.files(addon.name, spec))
        if addon.template is not None or addon.vendored:
            out[f"{addon.name}.yaml"] = addon.render(spec)
    return out


def addon_files(spec: ClusterSpec) -> dict[str, str]:
    """Everything under `addons/` of `kubeaws render`: the manifests, vendored ones included, in apply order."""
    return render_manifests(spec)


def boot_files(spec: ClusterSpec) -> dict[str, str]:
    """The manifests of the boot addons (`Addon.boot`: the CNI, the cloud provider), which the first
    control-plane member applies from `cluster/addons/` of the state bucket before kubeaws can reach the API."""
    return render_manifests(spec, boot_only=True)


def addon_documents(spec: ClusterSpec, addon: Addon) -> list[dict[str, Any]]:
    """Every document an addon applies for this cluster, in order: its vendored upstream files, then its own
    manifest (new dicts, parsed once per text: kubeaws.addons.parsed)."""
    texts = [*upstream.files(addon.name, spec).values()]
    if addon.template is not None or addon.vendored:
        texts.append(addon.render(spec))
    return [doc for text in texts for doc in parsed.documents(text)]
