"""Pinned versions of everything kubeaws installs on a self-managed (kubeadm) cluster: Kubernetes patch
releases, the pause image, CNI/operator manifests fetched at boot, and the image-mirror rewrite (the
addons' own images and versions are in their descriptors, kubeaws.addons.descriptors).

One table, so that a version bump is a one-line change reviewed in one place. Read by `kubeaws.addons`
(manifest rendering) and `kubeaws.bootstrap` (kubeadm configs, containerd sandbox image, boot-time downloads).

`RemoteManifest.sha256` is the digest the bootstrap checks after download (`sha256sum -c`). A digest of
`None` means "not pinned yet": the bootstrap then logs a WARNING line and applies the file unchecked. Fill
the digests (from a machine with access to the upstream URLs) before production use.
"""

from __future__ import annotations

from dataclasses import dataclass

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
HELM_VERSION = "v3.16.2"


@dataclass(frozen=True)
class RemoteManifest:
    """A file the bootstrap downloads at boot (too large to vendor): pinned URL and digest. `arch` (a Debian
    architecture, "amd64" or "arm64") marks a binary for one CPU architecture: the bootstrap fetches only the
    one matching the instance (`dpkg --print-architecture`)."""

    name: str
    url: str
    sha256: str | None = None
    arch: str | None = None


#: CPU architectures of the instance types kubeaws supports (Debian names).
ARCHITECTURES = ("amd64", "arm64")


REMOTE: dict[str, tuple[RemoteManifest, ...]] = {
    "calico": (
        RemoteManifest("tigera-operator.yaml",
                       f"https://raw.githubusercontent.com/projectcalico/calico/{CALICO_VERSION}/manifests/"
                       "tigera-operator.yaml"),
    ),
    "cilium": (
        *(RemoteManifest(f"helm-{arch}.tar.gz", f"https://get.helm.sh/helm-{HELM_VERSION}-linux-{arch}.tar.gz",
                         arch=arch) for arch in ARCHITECTURES),
        RemoteManifest("cilium.tgz", f"https://helm.cilium.io/cilium-{CILIUM_VERSION}.tgz"),
    ),
    "rookCeph": (
        RemoteManifest("rook-crds.yaml", f"https://raw.githubusercontent.com/rook/rook/{ROOK_VERSION}/deploy/"
                                         "examples/crds.yaml"),
        RemoteManifest("rook-common.yaml", f"https://raw.githubusercontent.com/rook/rook/{ROOK_VERSION}/deploy/"
                                           "examples/common.yaml"),
        RemoteManifest("rook-operator.yaml", f"https://raw.githubusercontent.com/rook/rook/{ROOK_VERSION}/deploy/"
                                             "examples/operator.yaml"),
    ),
}


def kubernetes_patch(minor: str) -> str:
    """The pinned patch release of a Kubernetes minor ("1.31" -> "1.31.13")."""
    return KUBERNETES_PATCH.get(minor, f"{minor}.0")


def pause_image(minor: str) -> str:
    return f"{IMAGES['pause']}:{PAUSE_TAG.get(minor, PAUSE_DEFAULT)}"
