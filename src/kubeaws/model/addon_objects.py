"""The addons as Kubernetes objects (kind `KubernetesObject`), for both modes: every document of every addon
the spec turns on (its vendored upstream files, then its own manifest: kubeaws.addons.addon_documents),
labelled as kubeaws' own, one resource per object, applied by kubeaws through the API by server-side apply.
Adding, upgrading or removing an addon is then a change of objects: no launch template or instance changes
(the first control-plane member applies only the boot addons, from the state bucket, before kubeaws can
reach the API; kubeaws then keeps those objects too).

Order inside an addon, as `kubectl apply` of its files would need it, on the graph's edges: Namespaces and
CustomResourceDefinitions first (an object in a namespace that does not exist, or a custom resource whose
CRD is not Established, is refused by the API server); then everything else; then what acts on the rest
once it exists: custom resources, Jobs (e.g. a webhook's certificate job patches the webhook configuration),
webhook configurations and APIServices (which send requests to the addon's Service). Objects of different
addons do not wait for each other, except on `after` (kubeadm: the control plane's groups; the API cannot
answer before they exist).

Upgrades: the addons whose images follow the Kubernetes minor (`Addon.versioned`: cloud-provider-aws,
cluster-autoscaler) must not run a newer minor than the API servers (the version-skew policy). While they
still run the old minor, kubeaws.api builds the graph with `addons_minor` set to it (`Builder.addons_minor`),
so apply leaves those objects at the old images, and the rollout moves them once every API server runs the
new minor (kubeaws.rollout.upgrade, after the control plane).

Called by model.kubeadm (every enabled addon) and model.eks (the addons without an EKS managed add-on). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.addons import DESCRIPTORS, addon_documents, enabled
from kubeaws.addons.descriptor import Addon
from kubeaws.kube_types import type_of
from kubeaws.model.common import Builder
from kubeaws.resources.base import Computed, Ref
from kubeaws.resources.kubernetes_object import object_name, owned_manifest

__all__ = ["addon_objects", "at_minor", "declare_addon", "versioned_addons", "wave"]

FIRST = frozenset({"Namespace", "CustomResourceDefinition"})
LAST = frozenset({"Job", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService"})
BUILT_IN_GROUPS = ("", "apps", "batch", "policy", "rbac.authorization.k8s.io", "storage.k8s.io",
                   "networking.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
                   "admissionregistration.k8s.io")


def _group(manifest: Mapping[str, Any]) -> str:
    """The object's API group ("" for the core group)."""
    return str(manifest.get("apiVersion", "")).rpartition("/")[0]


def wave(manifest: Mapping[str, Any]) -> int:
    """0: Namespaces and CRDs; 2: custom resources, Jobs, webhook configurations, APIServices; 1: the rest."""
    kind = str(manifest.get("kind"))
    if kind in FIRST:
        return 0
    return 2 if kind in LAST or _group(manifest) not in BUILT_IN_GROUPS else 1


def crd_of(manifest: Mapping[str, Any]) -> str | None:
    """`<plural>.<group>`, the CustomResourceDefinition a custom resource needs (None for a built-in type)."""
    group = _group(manifest)
    if group in BUILT_IN_GROUPS:
        return None
    plural, _ = type_of(str(manifest.get("apiVersion", "")), str(manifest.get("kind")))
    return f"{plural}.{group}"


def addon_objects(spec: Any, addon: Addon, role_arn: str | None = None) -> list[dict[str, Any]]:
    """An addon's objects for this cluster, labelled as ours, without the `status` some upstream files carry
    (an API server keeps its own; applying one is ignored); on EKS its service account bound to its IRSA role
    (`role_arn`)."""
    docs = [{k: v for k, v in d.items() if k != "status"} for d in addon_documents(spec, addon)]
    if role_arn is not None and addon.irsa is not None:
        for i, doc in enumerate(docs):
            meta = doc["metadata"]
            if doc["kind"] == "ServiceAccount" and meta["name"] == addon.irsa.service_account:
                annotations = {**(meta.get("annotations") or {}), "eks.amazonaws.com/role-arn": role_arn}
                docs[i] = {**doc, "metadata": {**meta, "annotations": annotations}}
    return [owned_manifest(spec.metadata.name, d) for d in docs]


def at_minor(spec: Any, minor: str) -> Any:
    """The spec with another Kubernetes minor (for rendering an addon's images at it)."""
    return spec.model_copy(update={"spec": spec.spec.model_copy(update={"kubernetes_version": minor})})


def versioned_addons(spec: Any) -> list[Addon]:
    """The enabled addons whose images follow the Kubernetes minor (moved after the control plane in an
    upgrade: kubeaws.rollout.upgrade)."""
    return [addon for addon in enabled(spec) if addon.versioned]


def _irsa_object(spec: Any, addon: str, role_arn: str | None, index: int) -> dict[str, Any]:
    (found,) = [a for a in DESCRIPTORS if a.name == addon]
    return addon_objects(spec, found, role_arn)[index]


def declare_addon(b: Builder, cluster_name: str | Ref, addon: Addon, *, role_arn: Ref | None = None,
                  after: tuple[str, ...] = ()) -> list[str]:
    """Declare an addon's objects (in the addon's spec section); their keys. `role_arn` (EKS): the IRSA role
    the service account names, known after apply; `after`: keys every object waits for."""
    if not b.kubernetes_objects:
        return []
    spec = b.spec
    if b.addons_minor and addon.versioned and b.addons_minor != spec.spec.kubernetes_version:
        spec = at_minor(spec, b.addons_minor)
    objects = addon_objects(spec, addon, "<role>" if role_arn is not None else None)
    keys = [f"KubernetesObject/{object_name(manifest)}" for manifest in objects]
    waves = [wave(manifest) for manifest in objects]
    by_name = {(m["kind"], m["metadata"]["name"]): key for m, key in zip(objects, keys, strict=True)}
    before_last = {key for key, level in zip(keys, waves, strict=True) if level < 2}
    with b.section(addon.spec_path.removeprefix("spec.")):
        for index, (manifest, key, level) in enumerate(zip(objects, keys, waves, strict=True)):
            needs = set(after)
            namespace = by_name.get(("Namespace", manifest["metadata"].get("namespace")))
            if namespace is not None:
                needs.add(namespace)
            if level == 2:
                needs |= before_last
                crd = by_name.get(("CustomResourceDefinition", crd_of(manifest)))
                if crd is not None:
                    needs.add(crd)
            value: Any = manifest
            if role_arn is not None:
                value = Computed(_irsa_object, {"spec": spec, "addon": addon.name, "role_arn": role_arn,
                                                "index": index}, f"{addon.name} {manifest['kind']}")
            b.owned("KubernetesObject", key.removeprefix("KubernetesObject/"),
                    {"cluster_name": cluster_name, "manifest": value}, depends_on=tuple(sorted(needs - {key})))
    return keys
