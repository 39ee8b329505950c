"""What kubeaws knows about one addon, in one place: the `Addon` descriptor.

A descriptor names the spec field that turns the addon on, the modes it runs in, its manifests (a template of
`addons/templates`, rendered with its own images pinned per Kubernetes minor), the images (for mirrors), the
AWS permissions it needs (kubeadm: statements of the control-plane or node instance role; EKS: an IRSA role),
the EKS managed add-on that replaces the manifests on EKS, and the network flows it needs between node roles.
Every layer reads descriptors instead of naming addons: the manifests (`kubeaws.addons`), the IAM and IRSA
builders and the EKS model (`kubeaws.model.iam`, `model.irsa`, `model.eks`), the flows behind the security
groups (`model.flows`), `kubeaws render` (`kubeaws.access`). The registry is `kubeaws.addons.DESCRIPTORS`, one
module per addon under `kubeaws.addons.descriptors`.

Pure data and renderers (no AWS call). The spec stays the lowest layer: a descriptor names its spec field
(`option`, an attribute of `spec.models.AddonsSpec`); the spec never imports addons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2
import yaml

from kubeaws.addons import images, vendored
from kubeaws.addons.templating import environment
from kubeaws.addons.versions import mirror_image
from kubeaws.spec.models import AddonsSpec, ClusterSpec

#: Node roles a flow goes between (the names of kubeaws.model.flows).
CONTROL_PLANE = "control-plane"
NODES = "nodes"
#: (cluster, partition) -> IAM policy statements, or a whole policy document.
Statements = Callable[[str, str], list[dict[str, Any]]]
PolicyDocument = Callable[[str, str], dict[str, Any]]


@dataclass(frozen=True)
class AddonFlow:
    """Traffic the addon needs from `source` to `target` (node roles), as model.flows.Flow without CIDRs."""

    source: str
    target: str
    protocol: str
    from_port: int
    to_port: int
    purpose: str
    modes: frozenset[str] = frozenset({"kubeadm", "eks"})


@dataclass(frozen=True)
class Irsa:
    """The addon's IAM role for its service account on EKS: an inline policy and/or AWS managed policies."""

    namespace: str
    service_account: str
    policy: PolicyDocument | None = None
    managed: tuple[str, ...] = ()  # AWS managed policy names (partition.managed_policy)


@dataclass(frozen=True)
class Versioned:
    """An image whose tag follows the Kubernetes minor: repository and minor -> tag (the newest entry for a
    later minor)."""

    repository: str
    tags: Mapping[str, str]

    def image(self, minor: str) -> str:
        tag = self.tags.get(minor) or self.tags[max(self.tags, key=lambda v: tuple(int(p) for p in v.split(".")))]
        return f"{self.repository}:{tag}"


@dataclass(frozen=True)
class Addon:
    """One addon. `name` names its manifest file (`<name>.yaml`) and its IRSA role (`<cluster>-<name>`)."""

    name: str
    #: The `spec.addons` attribute that enables it (None for a CNI: `cni` then says which `network.cni`).
    option: str | None
    template: str | None = None
    #: Apply order among the addons (then by name): CNIs 10-19, the rest after.
    order: int = 50
    modes: frozenset[str] = frozenset({"kubeadm"})
    cni: str | None = None
    #: Applied by the first control-plane member at boot (nodes need it before kubeaws can reach the API);
    #: every other addon is applied by kubeaws through the API (KubernetesObject).
    boot: bool = False
    images: Mapping[str, str] = field(default_factory=dict)
    versioned: Mapping[str, Versioned] = field(default_factory=dict)
    #: Extra template context from the spec (rook-ceph: its placement).
    context: Callable[[ClusterSpec], dict[str, Any]] | None = None
    #: Custom-resource kinds the manifests carry (no schema to validate them against).
    cr_kinds: frozenset[str] = frozenset()
    #: kubeadm: statements for the control-plane / node instance role.
    control_plane_statements: Statements | None = None
    node_statements: Statements | None = None
    #: kubeadm: AWS managed policies (names, kubeaws.partition.managed_policy) attached to the control-plane
    #: role, for an addon whose statements have no room under IAM's inline limit there (docs/addons.md).
    control_plane_managed: tuple[str, ...] = ()
    #: EKS: the service account's IAM role, and the EKS managed add-on installed instead of the manifests.
    irsa: Irsa | None = None
    eks_addon: str | None = None
    flows: tuple[AddonFlow, ...] = ()
    #: The addon's own pinned version, for `kubeaws version` (its images otherwise).
    version: str | None = None
    #: Upstream files vendored into the package (relative to kubeaws/addons/vendor), applied before the
    #: rendered manifest (an addon may be its vendored files alone: no template).
    vendored: tuple[str, ...] = ()
    #: Per-cluster values set on the vendored documents: (spec, document) -> whether it changed the document
    #: in place; the documents it leaves alone stay verbatim (kubeaws.addons.vendored.transform_documents).
    patch: Callable[[ClusterSpec, dict[str, Any]], bool] | None = None

    @property
    def spec_path(self) -> str:
        """The spec field that enables it: `spec.addons.metricsServer`, `spec.network.cni`."""
        if self.option is None:
            return "spec.network.cni"
        alias = AddonsSpec.model_fields[self.option].alias or _camel(self.option)
        return f"spec.addons.{alias}"

    def options(self, spec: ClusterSpec) -> Any:
        """The addon's options in the spec (None when it is off)."""
        if self.option is None:
            return {} if spec.spec.cni == self.cni else None
        return getattr(spec.spec.addons, self.option)

    def enabled(self, spec: ClusterSpec) -> bool:
        """On in this spec and in its mode."""
        return spec.spec.mode in self.modes and self.options(spec) is not None

    def images_for(self, minor: str, repository: str | None = None) -> dict[str, str]:
        """Component -> image for a Kubernetes minor, rewritten to the mirror `repository` when set."""
        out = {**self.images, **{k: v.image(minor) for k, v in self.versioned.items()}}
        return {k: mirror_image(v, repository) for k, v in out.items()}

    def render(self, spec: ClusterSpec) -> str:
        """The addon's manifest (multi-document YAML) for this spec: its vendored files (verbatim but for
        what `patch` sets), then its template rendered; every image rewritten for the mirror in one place
        (kubeaws.addons.images: the untouched documents stay verbatim)."""
        if self.template is None and not self.vendored:
            return ""
        body = spec.spec
        ctx: dict[str, Any] = {
            "images": self.images_for(body.kubernetes_version, body.mirrors.image_repository),
            "cluster": spec.name, "region": body.region, "mode": body.mode, "pod_cidr": body.network.pod_cidr,
            "registry": body.mirrors.image_repository, "encapsulation": body.network.calico.encapsulation,
            "rook_default": body.addons.rook_ceph is not None, "version": self.version,
        }
        if self.context is not None:
            ctx.update(self.context(spec))
        repository = body.mirrors.image_repository
        files = [images.rewrite_manifest(self._patched(_vendored(path), spec), repository) for path in self.vendored]
        if self.template is None:
            return "".join(text if text.endswith("\n") else text + "\n" for text in files)
        rendered = images.rewrite_manifest(_env().get_template(self.template).render(ctx), repository)
        return "".join(text if text.endswith("\n") else text + "\n" for text in files) + \
            ("---\n" if files else "") + rendered

    def _patched(self, text: str, spec: ClusterSpec) -> str:
        patch = self.patch
        if patch is None:
            return text
        return vendored.transform_documents(text, lambda doc: patch(spec, doc))

    def documents(self, spec: ClusterSpec) -> list[dict[str, Any]]:
        """The rendered manifest's documents."""
        return [d for d in yaml.safe_load_all(self.render(spec)) if d]


def _vendored(path: str) -> str:
    """A vendored file by its path under addons/vendor, its digest checked (kubeaws.addons.vendored)."""
    (entry,) = [f for f in vendored.sources() if f.path == path]
    return vendored.read(entry.addon, entry.name, entry.version)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


@cache
def _env() -> jinja2.Environment:
    return environment("kubeaws.addons", "templates")
