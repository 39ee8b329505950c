"""Pinned versions of everything kubeaws installs on a self-managed (kubeadm) cluster: Kubernetes patch
releases, the pause image, and the versions of the upstream manifests shipped in the package
(kubeaws.addons.vendored: CALICO_VERSION, CILIUM_VERSION, ROOK_VERSION name the vendored versions,
tests/test_vendored.py); the addons' own images and versions are in their descriptors
(kubeaws.addons.descriptors).

One table, so that a version bump is a one-line change reviewed in one place. Read by `kubeaws.addons`
(manifest rendering) and `kubeaws.bootstrap` (kubeadm configs, containerd sandbox image). `mirror_image` is
kubeaws.addons.images' (the one image rewrite for mirrors), kept here for its callers.
"""

from __future__ import annotations

from kubeaws.addons.images import mirror_image as mirror_image  # the one rewrite, re-exported for its callers

# Kubernetes minor -> pinned patch release (kubeadm/kubelet/kubectl packages and control-plane images).
KUBERNETES_PATCH: dict[str, str] = {
    "1.30": "1.30.14",
    "1.31": "1.31.13",
    "1.32": "1.32.9",
    "1.33": "1.33.5",
    "1.34": "1.34.1",
    "1.35": "1.35.0",
    "1.36": "1.36.0",
    "1.37": "1.37.0",
}

# Kubernetes minor -> pause (sandbox) image tag that kubeadm of that minor expects.
PAUSE_TAG: dict[str, str] = {"1.30": "3.9"}
PAUSE_DEFAULT = "3.10"

IMAGES: dict[str, str] = {
    "pause": "registry.k8s.io/pause",
}
# The addons' own images and versions: their descriptors (kubeaws.addons.descriptors).

CALICO_VERSION = "v3.28.2"
CILIUM_VERSION = "1.16.3"
ROOK_VERSION = "v1.15.4"


def kubernetes_patch(minor: str) -> str:
    """The pinned patch release of a Kubernetes minor ("1.31" -> "1.31.13")."""
    return KUBERNETES_PATCH.get(minor, f"{minor}.0")


def pause_image(minor: str) -> str:
    return f"{IMAGES['pause']}:{PAUSE_TAG.get(minor, PAUSE_DEFAULT)}"
