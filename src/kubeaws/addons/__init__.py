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

Every image is rewritten to `mirrors.imageRepository` when set (`versions.mirror_image`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
import yaml

from kubeaws.addons import versions
from kubeaws.addons.templating import environment
from kubeaws.spec.models import ClusterSpec

__all__ = ["CR_KINDS", "addon_files", "remote_manifests", "render_helm_values", "render_manifests"]

# Custom-resource kinds rendered here (their CRDs come from the upstream operator manifests).
CR_KINDS = frozenset({"Installation", "APIServer", "CephCluster", "CephBlockPool"})


@cache
def _env() -> jinja2.Environment:
    return environment("kubeaws.addons", "templates")


def _images(spec: ClusterSpec) -> dict[str, str]:
    body = spec.spec
    minor = body.kubernetes_version
    images = dict(versions.IMAGES)
    images["cloud-controller-manager"] = versions.versioned_image("cloud-controller-manager", minor)
    images["cluster-autoscaler"] = versions.versioned_image("cluster-autoscaler", minor)
    return {k: versions.mirror_image(v, body.mirrors.image_repository) for k, v in images.items()}


def _storage_groups(spec: ClusterSpec) -> list[str]:
    return [g.name for g in spec.spec.node_groups if g.extra_volumes and g.type == "self-managed"]


def _rook_context(spec: ClusterSpec) -> dict[str, Any]:
    opts = spec.spec.addons.rook_ceph
    groups = _storage_groups(spec)
    nodes = sum(g.size.min for g in spec.spec.node_groups if g.name in groups)
    selector = opts.node_selector if opts is not None else None
    if selector:
        key, value = next(iter(selector.items()))
        selector_key, selector_values = key, [value]
    else:
        selector_key, selector_values = "kubeaws.io/node-group", groups or ["storage"]
    return {"mons": 3 if nodes >= 3 else 1, "replicas": 3 if nodes >= 3 else 1,
            "selector_key": selector_key, "selector_values": selector_values}


def render_manifests(spec: ClusterSpec) -> dict[str, str]:
    """File name -> multi-document YAML of every Kubernetes manifest kubeaws renders for this cluster, in
    the order they are applied (CNI first)."""
    body = spec.spec
    ctx: dict[str, Any] = {
        "images": _images(spec), "cluster": spec.name, "region": body.region,
        "pod_cidr": body.network.pod_cidr, "registry": body.mirrors.image_repository,
        "encapsulation": body.network.calico.encapsulation,
        "rook_default": body.addons.rook_ceph is not None,
    }
    out: dict[str, str] = {}
    cni = body.cni
    if cni in ("calico", "flannel"):
        out[f"cni-{cni}.yaml"] = _env().get_template(f"{cni}.yaml.j2").render(ctx)
    addons = body.addons
    present = [("cloud-provider-aws", addons.cloud_provider_aws), ("ebs-csi", addons.ebs_csi),
               ("metrics-server", addons.metrics_server), ("cluster-autoscaler", addons.cluster_autoscaler)]
    for name, options in present:
        if options is not None:
            out[f"{name}.yaml"] = _env().get_template(f"{name}.yaml.j2").render(ctx)
    if addons.rook_ceph is not None:
        out["rook-ceph.yaml"] = _env().get_template("rook-ceph.yaml.j2").render({**ctx, **_rook_context(spec)})
    return out


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
    header = f"# Helm values of the cilium chart {versions.CILIUM_VERSION} (installed at boot).\n"
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
