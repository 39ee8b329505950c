"""Ownership tags: what every kubeaws resource carries, and how ownership is read back.

Called by model builders (to put the tags on desired resources) and by resource kinds (to find owned
resources and to refuse adopting resources owned by someone else).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CLUSTER_TAG = "kubeaws.io/cluster"
RESOURCE_TAG = "kubeaws.io/resource"


def k8s_cluster_tag(cluster: str) -> str:
    return f"kubernetes.io/cluster/{cluster}"


def owned_tags(cluster: str, kind: str, name: str, display_name: str,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags for a resource kubeaws creates and owns. `extra` (the spec's tags, role tags) never overrides
    the ownership tags."""
    tags = dict(extra or {})
    tags.update(
        {
            "Name": display_name,
            CLUSTER_TAG: cluster,
            RESOURCE_TAG: f"{kind}/{name}",
            k8s_cluster_tag(cluster): "owned",
        }
    )
    return tags


def shared_tags(cluster: str) -> dict[str, str]:
    """Tags added to a resource the user brings (existing VPC or subnet): marks it used, never owned."""
    return {k8s_cluster_tag(cluster): "shared"}


def tag_dict(tag_list: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    """AWS [{'Key': k, 'Value': v}] -> {k: v}."""
    return {t["Key"]: t.get("Value", "") for t in (tag_list or [])}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """{k: v} -> AWS [{'Key': k, 'Value': v}], sorted for stable requests."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def is_owned_by(tags: Mapping[str, str], cluster: str) -> bool:
    """True when the resource was created by kubeaws for this cluster."""
    return tags.get(CLUSTER_TAG) == cluster and tags.get(k8s_cluster_tag(cluster)) == "owned"


def owner_of(tags: Mapping[str, str]) -> str | None:
    """The kubeaws cluster that owns a resource, if any."""
    return tags.get(CLUSTER_TAG)
