"""Ownership tags: what every kubeaws resource carries, and how ownership is read back; and the tags by which
the cluster's own controllers (cloud-provider-aws, the EBS CSI driver) mark what they create.

Called by model builders (to put the tags on desired resources) and by resource kinds (to find owned
resources, to refuse adopting resources owned by someone else, and to tell apart what the cluster's
controllers made: resources/controller_made.py, resources/security_group_rules.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CLUSTER_TAG = "kubeaws.io/cluster"
RESOURCE_TAG = "kubeaws.io/resource"
K8S_CLUSTER_PREFIX = "kubernetes.io/cluster/"
#: cloud-provider-aws: on each load balancer and target group it makes for a `type: LoadBalancer` Service.
SERVICE_NAME_TAG = "kubernetes.io/service-name"
#: The EBS CSI driver: on every volume and snapshot it makes.
EBS_CSI_TAG = "ebs.csi.aws.com/cluster"
#: Cluster tags of other Kubernetes components (the in-tree provider's legacy tag, the EBS CSI driver's
#: cluster-scoped tag): a value naming another cluster makes a resource that cluster's.
OTHER_CLUSTER_TAGS = ("KubernetesCluster", "ebs.csi.aws.com/cluster-name")
#: Descriptions of the ingress rules cloud-provider-aws adds to the nodes' security group for an NLB
#: (`kubernetes.io/rule/nlb/health=<lb>`, `.../client=<lb>`, `.../mtu=<lb>`).
NLB_RULE_PREFIX = "kubernetes.io/rule/nlb/"


def k8s_cluster_tag(cluster: str) -> str:
    return f"{K8S_CLUSTER_PREFIX}{cluster}"


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


def is_controller_made(tags: Mapping[str, str], cluster: str) -> bool:
    """True when one of the cluster's own controllers made the resource for this cluster: it is tagged
    `kubernetes.io/cluster/<cluster>=owned`, carries no kubeaws identity (`kubeaws.io/resource`: kubeaws'
    own resources always do), names no other cluster in any cluster tag, and is not AWS-managed (`aws:*`
    tags, e.g. the cluster security group EKS creates and deletes itself). `shared` is never owned. What
    kind of controller made it is for the caller to check (a Service's tag, the EBS CSI driver's tag)."""
    ours = k8s_cluster_tag(cluster)
    if tags.get(ours) != "owned" or RESOURCE_TAG in tags or tags.get(CLUSTER_TAG, cluster) != cluster:
        return False
    if any(key.startswith(K8S_CLUSTER_PREFIX) and key != ours for key in tags):
        return False
    if any(tags.get(key, cluster) != cluster for key in OTHER_CLUSTER_TAGS):
        return False
    return not any(key.startswith("aws:") for key in tags)
