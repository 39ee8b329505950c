"""Kubernetes upgrades of a kubeadm cluster (issue #9): the cluster-wide kubeadm state that follows a
`spec.kubernetesVersion` move while the rollout replaces the machines, the way Cluster API's
KubeadmControlPlane does it for immutable machines (controlplane/kubeadm/internal/controllers/upgrade.go and
controller.go in kubernetes-sigs/cluster-api):

- BEFORE the first control-plane member is replaced (KCP's `upgradeControlPlane`, before it scales up):
  the `kube-system/kubeadm-config` ConfigMap's ClusterConfiguration gets the new `kubernetesVersion` (and
  the image repository our renderer sets). A replacement member runs kubeadm's JOIN phases
  (`control-plane-prepare`, `control-plane-join`), which render its static pods from the cluster's
  ClusterConfiguration, not from a local file: left at the old version, a new member would come up with
  the OLD API server under a NEW kubelet. The single-member restore runs init phases with the new
  config, then `upload-config` writes the same document. `kubelet-config` (kubeadm's `upload-config
  kubelet`) is brought to our renderer's KubeletConfiguration at the same time; since 1.24 its name carries
  no version, so nothing else changes there per version.
- AFTER every member runs the new version (KCP calls `UpdateKubeProxyImageInfo` and `UpdateCoreDNS` only
  once no machine needs a rollout; `kubeadm upgrade apply` runs its `addon/kube-proxy` and `addon/coredns`
  phases after the control plane): the kube-proxy DaemonSet's image (kube-proxy must never be newer than
  any API server) and the CoreDNS Deployment's image (the tag kubeadm of the new minor deploys); then the
  objects of kubeaws' addons whose images follow the minor (cloud-provider-aws, cluster-autoscaler: a
  cloud-controller-manager must not be newer than the API servers either), server-side applied at the new
  minor. Until then kubeaws.api renders them at the API servers' minor (`api_server_minor`), so apply
  leaves them as they are (model.addon_objects).

What kubeadm itself checks, from its source (cmd/kubeadm/app/preflight/checks.go): `KubeletVersionCheck`
with the control plane's version runs only in `kubeadm init`'s preflight (a kubelet newer than the
config's `kubernetesVersion` is an error there); `JoinNodeChecks` pass an empty version (only kubeadm's
minimum kubelet is checked) and a joining control-plane member skips the common checks. So kubeadm does not
stop a new member from coming up at the old version: updating kubeadm-config first is on us.

The functions computing the changes are pure (tested without a server); `KubeadmUpgrade` applies them
through `kube_client.KubeClient` (`get`, `patch`), each one only when the object differs, so a rollout
killed anywhere and run again writes each change once. `after_control_plane` first checks the
kube-apiserver mirror pods: while one still runs another version (a rollout limited to node groups, a
member not replaced yet) it changes nothing and says why.

Skew policy held by the order: API servers within one minor of each other (members replaced one at a
time, a skip refused at plan time by `resources.state_object`), kubelets never newer than any API server
(the runner replaces node groups only after the control plane), kube-proxy after the last API server.

No kube-apiserver or kubeadm binary exists here: the tests check our side of that contract (which objects,
which fields, in which order against the member replacements) on the fake API server, and the bootstrap
sandbox shows a replaced member coming up at the new version (tests/test_upgrade_sandbox.py).

Called by the rollout operation: `hooks = upgrade_hooks(spec, cluster_version(kube))`, then
`Runner(..., hooks=hooks.bind(kube))`; `downtime_note(spec)` is for the plan's text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from kubeaws.addons import versions
from kubeaws.bootstrap.kubeadm import kubelet_configuration
from kubeaws.kube_client import KubeClient, object_path
from kubeaws.model.addon_objects import addon_objects, versioned_addons
from kubeaws.resources.kubernetes_object import contains, normalized
from kubeaws.resources.state_object import check_version_move, minor_of
from kubeaws.spec.models import ClusterSpec

KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
KUBELET_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
KUBE_PROXY = "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy"
COREDNS = "/apis/apps/v1/namespaces/kube-system/deployments/coredns"
PODS = "/api/v1/namespaces/kube-system/pods"
API_SERVER_SELECTOR = "component=kube-apiserver,tier=control-plane"  # kubeadm's static pod labels
DEFAULT_REPOSITORY = "registry.k8s.io"
#: The CoreDNS tag kubeadm of each minor deploys (cmd/kubeadm/app/constants: CoreDNSVersion). A later minor
#: takes the newest entry until it is added here.
COREDNS_TAGS: dict[str, str] = {"1.30": "v1.11.1", "1.31": "v1.11.3", "1.32": "v1.11.3", "1.33": "v1.12.0",
                                "1.34": "v1.12.1"}


# -- what the cluster should hold (pure) ------------------------------------------------------------------
def target_version(spec: ClusterSpec) -> str:
    """`v1.32.9`: the pinned patch of the spec's minor, as kubeadm writes it."""
    return "v" + versions.kubernetes_patch(spec.spec.kubernetes_version)


def _repository(spec: ClusterSpec) -> str:
    return spec.spec.mirrors.image_repository or DEFAULT_REPOSITORY


def kube_proxy_image(spec: ClusterSpec) -> str:
    return f"{_repository(spec)}/kube-proxy:{target_version(spec)}"


def coredns_image(spec: ClusterSpec) -> str:
    """kubeadm's CoreDNS image: `registry.k8s.io/coredns/coredns:<tag>`, or `<mirror>/coredns:<tag>`."""
    minor = spec.spec.kubernetes_version
    tag = COREDNS_TAGS.get(minor) or COREDNS_TAGS[max(COREDNS_TAGS, key=minor_of)]
    repo = spec.spec.mirrors.image_repository
    return f"{repo}/coredns:{tag}" if repo else f"{DEFAULT_REPOSITORY}/coredns/coredns:{tag}"


def _load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text or "") or {}
    if not isinstance(doc, dict):
        raise ValueError("not a YAML mapping")
    return doc


def _dump(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False)


def cluster_configuration_update(current: str, spec: ClusterSpec) -> str | None:
    """The kubeadm-config ClusterConfiguration document with the spec's version (and image repository, set
    or removed as our renderer does), or None when it holds them already. Everything else kubeadm stored
    (the endpoint, certificate SANs, extra args...) is kept as it is."""
    doc = _load(current)
    new = dict(doc, kubernetesVersion=target_version(spec))
    repo = spec.spec.mirrors.image_repository
    if repo:
        new["imageRepository"] = repo
    elif doc.get("imageRepository") not in (None, "", DEFAULT_REPOSITORY):
        new["imageRepository"] = DEFAULT_REPOSITORY  # kubeadm's default, as an unset field reads
    return None if new == doc else _dump(new)


def _overlay(have: Any, want: Any) -> Any:
    if isinstance(have, dict) and isinstance(want, dict):
        out = dict(have)
        for key, value in want.items():
            out[key] = _overlay(have.get(key), value)
        return out
    return copy.deepcopy(want)


def kubelet_config_update(current: str, spec: ClusterSpec) -> str | None:
    """The kubelet-config ConfigMap's KubeletConfiguration with our renderer's settings laid over what
    kubeadm stored (its defaults kept), or None when nothing differs."""
    doc = _load(current)
    new = _overlay(doc, kubelet_configuration(spec))
    return None if new == doc else _dump(new)


def container_image_patch(obj: Mapping[str, Any], container: str, image: str) -> dict[str, Any] | None:
    """A JSON merge patch giving `container` of a workload's pod template `image` (the whole containers
    list, as a merge patch replaces lists), or None when it has that image already or no such container."""
    containers = copy.deepcopy(((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
                               or [])
    found = [c for c in containers if c.get("name") == container]
    if not found or all(c.get("image") == image for c in found):
        return None
    for c in found:
        c["image"] = image
    return {"spec": {"template": {"spec": {"containers": containers}}}}


def image_tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else ""


def downtime_note(spec: ClusterSpec) -> str | None:
    """What the plan says of a one-member control plane: replacing its only member (an upgrade or any
    launch-template change) stops the Kubernetes API until the replacement restored it. None otherwise."""
    if spec.spec.mode != "kubeadm" or spec.spec.control_plane.count != 1:
        return None
    return ("the control plane has one member: replacing it (a Kubernetes upgrade or any change of its launch "
            "template) stops the Kubernetes API until the new instance has booted and restored the control "
            "plane from the etcd volume (typically 5-10 minutes); workloads keep running but nothing can be "
            "scheduled or changed meanwhile. Use controlPlane.count: 3 to upgrade without API downtime.")


# -- applying them ----------------------------------------------------------------------------------------
def _holds(kube: KubeClient, obj: Mapping[str, Any]) -> bool:
    """The object is on the server as `obj` asks (kubeaws' containment check)."""
    found = kube.get(object_path(obj))
    return found is not None and contains(normalized(found), obj)


def api_server_images(kube: KubeClient) -> dict[str, list[str]]:
    """The cluster's kube-apiserver pods (kubeadm's static pods, by their labels): name -> container images."""
    listing = kube.get(PODS, {"labelSelector": API_SERVER_SELECTOR}) or {}
    return {pod["metadata"]["name"]: [str(c.get("image", "")) for c in (pod.get("spec") or {}).get("containers")
                                      or []] for pod in listing.get("items") or []}


def api_server_minor(kube: KubeClient) -> str | None:
    """The lowest Kubernetes minor the cluster's kube-apiserver pods run (`1.31`), None when none is found."""
    minors = []
    for images in api_server_images(kube).values():
        for image in images:
            parts = image_tag(image).lstrip("v").split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():  # not a digest, not `latest`
                minors.append(f"{parts[0]}.{parts[1]}")
    return min(minors, key=minor_of) if minors else None


def cluster_version(kube: KubeClient) -> str | None:
    """The `kubernetesVersion` of the cluster's kubeadm-config (what its members were set up with)."""
    cm = kube.get(KUBEADM_CONFIG)
    text = ((cm or {}).get("data") or {}).get("ClusterConfiguration")
    if not text:
        return None
    version = _load(text).get("kubernetesVersion")
    return str(version) if version else None


@dataclass
class KubeadmUpgrade:
    """The hooks of a kubeadm cluster's rollout; each call returns what it changed (or why not)."""

    spec: ClusterSpec
    say: Callable[[str], None] = lambda _: None

    def before_control_plane(self, kube: KubeClient) -> list[str]:
        done = []
        cm = kube.get(KUBEADM_CONFIG)
        if cm is None:
            raise ValueError("kube-system/kubeadm-config does not exist: is this a kubeadm cluster?")
        text = (cm.get("data") or {}).get("ClusterConfiguration", "")
        new = cluster_configuration_update(text, self.spec)
        if new is not None:
            kube.patch(KUBEADM_CONFIG, {"data": {"ClusterConfiguration": new}})
            done.append(f"kubeadm-config: kubernetesVersion {target_version(self.spec)}")
        kubelet = kube.get(KUBELET_CONFIG)
        if kubelet is not None:
            new = kubelet_config_update((kubelet.get("data") or {}).get("kubelet", ""), self.spec)
            if new is not None:
                kube.patch(KUBELET_CONFIG, {"data": {"kubelet": new}})
                done.append("kubelet-config: kubeaws' KubeletConfiguration")
        for line in done:
            self.say(line)
        return done

    def lagging_api_servers(self, kube: KubeClient) -> list[str]:
        """kube-apiserver pods not at the target version, or members without one ("member missing")."""
        pods = api_server_images(kube)
        want = target_version(self.spec)
        lagging = []
        for name, images in pods.items():
            if not images or any(image_tag(i) != want for i in images):
                lagging.append(f"{name} ({', '.join(image_tag(i) for i in images)})")
        missing = self.spec.spec.control_plane.count - len(pods)
        lagging += [f"{missing} member(s) without an API server pod"] if missing > 0 else []
        return lagging

    def after_control_plane(self, kube: KubeClient) -> list[str]:
        lagging = self.lagging_api_servers(kube)
        if lagging:
            line = (f"kube-proxy, CoreDNS and the addons that follow the minor left as they are: not every API "
                    f"server runs {target_version(self.spec)} yet ({'; '.join(lagging)})")
            self.say(line)
            return [line]
        done = []
        for path, container, image in ((KUBE_PROXY, "kube-proxy", kube_proxy_image(self.spec)),
                                       (COREDNS, "coredns", coredns_image(self.spec))):
            obj = kube.get(path)
            patch = container_image_patch(obj, container, image) if obj is not None else None
            if patch is not None:
                kube.patch(path, patch)
                done.append(f"{container}: {image}")
        for addon in versioned_addons(self.spec):
            changed = [o for o in addon_objects(self.spec, addon) if not _holds(kube, o)]
            for obj in changed:
                kube.apply(obj)
            if changed:
                done.append(f"{addon.name}: {len(changed)} object(s) at {self.spec.spec.kubernetes_version}")
        for line in done:
            self.say(line)
        return done

    def bind(self, kube: KubeClient) -> BoundHooks:
        """The hooks `rollout.runner.Runner` calls (no arguments), on this API client."""
        return BoundHooks(self, kube)


@dataclass
class BoundHooks:
    upgrade: KubeadmUpgrade
    kube: KubeClient

    def before_control_plane(self) -> None:
        self.upgrade.before_control_plane(self.kube)

    def after_control_plane(self) -> None:
        self.upgrade.after_control_plane(self.kube)


def upgrade_hooks(spec: ClusterSpec, old_version: str | None,
                  say: Callable[[str], None] | None = None) -> KubeadmUpgrade | None:
    """The upgrade hooks of a rollout of `spec`'s cluster, whose members run `old_version` (e.g.
    `cluster_version(kube)`; None when unknown). None for an EKS cluster (EKS upgrades its own control plane
    and add-ons). A skip or a downgrade raises the plan's refusal (`state_object.KubernetesVersionError`).
    An equal version still gets the hooks: kubeadm-config may be at the target already while kube-proxy and
    CoreDNS are not (a rollout killed between the two, or a single member's restore that ran
    `upload-config`); they compare with the cluster and write only what differs."""
    if spec.spec.mode != "kubeadm":
        return None
    if old_version:
        check_version_move(old_version, spec.spec.kubernetes_version)
    return KubeadmUpgrade(spec, say or (lambda _: None))
