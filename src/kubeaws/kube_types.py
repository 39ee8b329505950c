"""The Kubernetes types kubeaws manages and their API paths: `TYPES` ((apiVersion, kind) -> plural and
whether namespaced), `type_of`, `collection_path`, `object_path`. kubeaws does no API discovery: a type is
known here or refused with the list of the known ones. Every type an addon's manifests carry is here, so that
each of their objects can be a `KubernetesObject`.

A leaf (standard library and kubeaws.errors only): the client (kubeaws.kube_client, which re-exports these),
the KubernetesObject kind and the model's addon objects read it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from kubeaws.errors import KubeawsError

__all__ = ["TYPES", "collection_path", "object_path", "type_of"]

#: (apiVersion, kind) -> (plural resource name, namespaced)
TYPES: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Service"): ("services", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    # The addons' manifests (kubeaws.addons): every type they hold, so that they are applied as objects.
    ("v1", "Namespace"): ("namespaces", False),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("storage.k8s.io/v1", "StorageClass"): ("storageclasses", False),
    ("storage.k8s.io/v1", "CSIDriver"): ("csidrivers", False),
    ("networking.k8s.io/v1", "IngressClass"): ("ingressclasses", False),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("apiregistration.k8s.io/v1", "APIService"): ("apiservices", False),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): ("mutatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): ("validatingwebhookconfigurations",
                                                                            False),
    ("operator.tigera.io/v1", "Installation"): ("installations", False),
    ("operator.tigera.io/v1", "APIServer"): ("apiservers", False),
    ("ceph.rook.io/v1", "CephCluster"): ("cephclusters", True),
    ("ceph.rook.io/v1", "CephBlockPool"): ("cephblockpools", True),
}

def type_of(api_version: str, kind: str) -> tuple[str, bool]:
    """(plural, namespaced) of a supported type; KubeawsError naming the supported ones otherwise."""
    try:
        return TYPES[(api_version, kind)]
    except KeyError:
        known = ", ".join(f"{v} {k}" for v, k in TYPES)
        raise KubeawsError(f"kubeaws cannot manage {api_version} {kind} objects (supported: {known})") from None


def collection_path(api_version: str, kind: str, namespace: str | None = None) -> str:
    """The collection of a type: in one namespace, or across all namespaces (and for cluster-scoped types)
    when `namespace` is None."""
    plural, namespaced = type_of(api_version, kind)
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        return f"{base}/namespaces/{urllib.parse.quote(namespace, safe='')}/{plural}"
    return f"{base}/{plural}"


def object_path(obj: Mapping[str, Any]) -> str:
    """The API path of one object, from its apiVersion, kind, metadata.namespace (default "default" for a
    namespaced type) and metadata.name."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise KubeawsError(f"{api_version} {kind} object has no metadata.name")
    _, namespaced = type_of(api_version, kind)
    namespace = (meta.get("namespace") or "default") if namespaced else None
    return f"{collection_path(api_version, kind, namespace)}/{urllib.parse.quote(str(name), safe='')}"
