"""The one place where images are rewritten for `mirrors.imageRepository`: one rule for an image reference
(`mirror_image`), and one pass over a manifest document that applies it to everything in it that names an
image (`rewrite_document`), so that a cluster with a mirror pulls nothing from a public registry.

What a document can name an image with, and what the pass rewrites:
- every string under a key `image` (containers, init and ephemeral containers, CephCluster's cephVersion…);
- container env vars and ConfigMap keys named `*_IMAGE` (operators that start other images: Rook's
  `ROOK_CSI_*_IMAGE`), including the defaults an operator compiles in (`configmap_defaults`), which are set
  explicitly when a mirror is set;
- the tigera-operator's `Installation.spec.registry` (Calico's images: `<registry>calico/node:<version>`…).
CustomResourceDefinitions are schemas, not images: left alone.

Called by kubeaws.addons (every addon manifest), kubeaws.addons.upstream (the vendored ones) and
kubeaws.bootstrap (the pause image; kubeadm's control-plane images follow `imageRepository` by kubeadm's own
rule, docs/kubeadm.md "Mirrors").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubeaws.addons import vendored

__all__ = ["PUBLIC_REGISTRIES", "mirror_image", "rewrite_document", "rewrite_manifest"]

#: Registries images come from when no mirror is set (a rendered artifact names none of them with a mirror).
PUBLIC_REGISTRIES = ("docker.io", "quay.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "ghcr.io", "public.ecr.aws",
                     "registry-1.docker.io", "mcr.microsoft.com")

_MAY_NAME_IMAGES = re.compile(r"image|^kind:\s*(?:ConfigMap|Installation)\b", re.M | re.I)
_CRD = re.compile(r"^kind:\s*CustomResourceDefinition\s*$", re.M)


def mirror_image(image: str, repository: str | None) -> str:
    """Rewrite an image to the mirror: the registry host is replaced by `repository`
    ("registry.k8s.io/metrics-server/metrics-server:v0.7.2" -> "<repo>/metrics-server/metrics-server:v0.7.2",
    "rook/ceph:v1.15.4" (Docker Hub) -> "<repo>/rook/ceph:v1.15.4"); tag and digest are kept. An image already
    under `repository` is left as it is. The same rule kubeadm applies with `imageRepository` to its images
    (but for CoreDNS, docs/kubeadm.md "Mirrors")."""
    if not repository:
        return image
    repo = repository.rstrip("/")
    if image.startswith(repo + "/"):
        return image
    first, _, rest = image.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
    return f"{repo}/{path}"


def _rewrite_images(node: Any, repository: str) -> bool:
    changed = False
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                new = mirror_image(value, repository)
                changed |= new != value
                node[key] = new
            elif key == "env" and isinstance(value, list):
                for var in value:
                    if isinstance(var, dict) and str(var.get("name", "")).endswith("_IMAGE") \
                            and isinstance(var.get("value"), str) and var["value"]:
                        new = mirror_image(var["value"], repository)
                        changed |= new != var["value"]
                        var["value"] = new
                changed |= _rewrite_images(value, repository)
            else:
                changed |= _rewrite_images(value, repository)
    elif isinstance(node, list):
        for item in node:
            changed |= _rewrite_images(item, repository)
    return changed


def rewrite_document(doc: dict[str, Any], repository: str | None,
                     configmap_defaults: Mapping[str, Mapping[str, str]] | None = None) -> bool:
    """Rewrite, in place, every image `doc` names (module docstring); return whether anything changed.
    `configmap_defaults`: ConfigMap name -> image settings (key -> upstream default) that the ConfigMap gets
    set to their mirrored image when it does not set them itself."""
    if not repository or doc.get("kind") == "CustomResourceDefinition":
        return False
    kind = doc.get("kind")
    if kind == "ConfigMap":
        data = doc.setdefault("data", {}) if configmap_defaults else doc.get("data") or {}
        before = dict(data)
        defaults = (configmap_defaults or {}).get(str(doc.get("metadata", {}).get("name")), {})
        for key, image in defaults.items():
            data.setdefault(key, image)
        for key, value in data.items():
            if key.endswith("_IMAGE") and isinstance(value, str) and value:
                data[key] = mirror_image(value, repository)
        return data != before
    if kind == "Installation" and str(doc.get("apiVersion", "")).startswith("operator.tigera.io/"):
        spec = doc.setdefault("spec", {})
        registry = repository.rstrip("/") + "/"  # the operator requires the trailing slash
        changed = spec.get("registry") != registry
        spec["registry"] = registry
        return _rewrite_images(doc, repository) or changed
    return _rewrite_images(doc, repository)


def rewrite_manifest(text: str, repository: str | None,
                     configmap_defaults: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A multi-document manifest with `rewrite_document` applied to each document; the documents it does
    not change stay verbatim (kubeaws.addons.vendored.transform_documents). No mirror: `text` as it is."""
    if not repository:
        return text
    return vendored.transform_documents(text, lambda doc: rewrite_document(doc, repository, configmap_defaults),
                                        wanted=_may_name_images)


def _may_name_images(piece: str) -> bool:
    """A document worth parsing: it may name an image and is no CRD (kubeaws.addons.vendored.transform_documents)."""
    return _MAY_NAME_IMAGES.search(piece) is not None and _CRD.search(piece) is None
