"""Shared plumbing for the Elastic Load Balancing v2 kinds (load_balancer, target_group, listener).

ELBv2 describe calls return no tags, so `list_owned` costs TWO reads per kind (documented exception to the
one-describe rule): the describe, then DescribeTags on the candidates (20 ARNs per call). Candidates are the
resources named `<cluster>-...` (kubeaws names every load balancer and target group that way), which keeps
DescribeTags to one call however many other load balancers the region holds; the tags then decide.

Used only by the modules of `kubeaws.resources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, tag_list
from kubeaws.resources.base import Kind

#: DescribeTags accepts at most 20 resource ARNs per call.
TAGS_BATCH = 20


def tags_by_arn(ctx: AwsContext, arns: list[str]) -> dict[str, dict[str, str]]:
    """Tags of each ARN (DescribeTags, 20 ARNs per call)."""
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAGS_BATCH):
        batch = arns[start:start + TAGS_BATCH]
        for desc in ctx.call("elbv2", "describe_tags", ResourceArns=batch).get("TagDescriptions", []):
            out[desc["ResourceArn"]] = {t["Key"]: t.get("Value", "") for t in desc.get("Tags", [])}
    return out


def owned_items(ctx: AwsContext, items: list[dict[str, Any]], arn_key: str, kind: str,
                name_key: str | None = None) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(item, tags) for the items tagged for the context's cluster as resources of `kind`. With `name_key`,
    only items named `<cluster>-...` are considered (saves DescribeTags calls)."""
    prefix = f"{ctx.cluster}-"
    candidates = [i for i in items if name_key is None or str(i.get(name_key, "")).startswith(prefix)]
    tags = tags_by_arn(ctx, [i[arn_key] for i in candidates]) if candidates else {}
    return [(i, tags.get(i[arn_key], {})) for i in candidates
            if tags.get(i[arn_key], {}).get(CLUSTER_TAG) == ctx.cluster
            and tags.get(i[arn_key], {}).get(RESOURCE_TAG, "").startswith(f"{kind}/")]


class Elbv2Kind(Kind):
    """An ELBv2 resource: id = ARN, tags through AddTags / RemoveTags."""

    service: ClassVar[str] = "elbv2"

    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            ctx.call("elbv2", "add_tags", ResourceArns=[resource_id], Tags=tag_list(tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        if keys:
            ctx.call("elbv2", "remove_tags", ResourceArns=[resource_id], TagKeys=keys)
