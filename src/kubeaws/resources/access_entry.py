"""EKS access entries (kind `AccessEntry`, docs/eks.md): which IAM principals may use the cluster, when its
authentication mode is API or API_AND_CONFIG_MAP. `EC2_LINUX` for self-managed node roles; `STANDARD` with
access-policy associations (`policy_arns`, cluster-wide scope) for administrators. id =
`<cluster>/<principal ARN>`.

- `list_owned`: ListAccessEntries on the cluster, then one DescribeAccessEntry per entry (only it returns
  the tags: EKS itself creates untagged entries, for the cluster creator and for managed node group roles,
  which kubeaws must never take for leftovers and delete), then ListAssociatedAccessPolicies per owned
  STANDARD entry. No cluster = nothing.
- create: CreateAccessEntry with tags and a clientRequestToken, then AssociateAccessPolicy per policy.
- update: kubernetes groups (UpdateAccessEntry), policies (associate / disassociate), tags.
- delete: DeleteAccessEntry (its policy associations go with it).

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code, is_in_use
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by
from kubeaws.errors import OwnershipError
from kubeaws.resources._autoscaling import retry_matching
from kubeaws.resources._ec2 import ignoring
from kubeaws.resources._eks import NOT_FOUND, EksKind, delete_call, describe, list_in_cluster
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

CLUSTER_SCOPE = {"type": "cluster"}


def is_principal_not_visible(exc: ClientError) -> bool:
    """CreateAccessEntry's answer while a new IAM role has not propagated yet."""
    text = str(exc).lower()
    return error_code(exc) == "InvalidParameterException" and "principal" in text and (
        "not found" in text or "does not exist" in text or "not valid" in text)


@register
class AccessEntry(EksKind):
    """An EKS access entry for one IAM principal, with its cluster-wide access policies."""

    kind = "AccessEntry"
    rank = 47
    modes = frozenset({"eks"})
    refuse_change = frozenset({"cluster_name", "principal_arn", "type"})
    set_fields = frozenset({"kubernetes_groups", "policy_arns"})
    #: ListAccessEntries + DescribeAccessEntry per entry + ListAssociatedAccessPolicies per owned STANDARD
    #: entry (+ a DescribeCluster on a local emulator): sized for about five entries.
    list_reads = 12

    def observe(self, e: Mapping[str, Any], policies: list[str]) -> Observed:
        fields = {"cluster_name": e["clusterName"], "principal_arn": e["principalArn"], "type": e.get("type"),
                  "kubernetes_groups": sorted(e.get("kubernetesGroups") or []), "policy_arns": sorted(policies)}
        attrs = {"arn": e.get("accessEntryArn"), "username": e.get("username")}
        return Observed(self.kind, f"{e['clusterName']}/{e['principalArn']}", fields, dict(e.get("tags") or {}),
                        "", attrs)

    def _describe(self, ctx: AwsContext, cluster: str, principal: str) -> dict[str, Any] | None:
        return describe(ctx, "describe_access_entry", "accessEntry", clusterName=cluster, principalArn=principal)

    def _policies(self, ctx: AwsContext, cluster: str, principal: str) -> list[str]:
        found = ignoring(lambda: ctx.paginate("eks", "list_associated_access_policies", "associatedAccessPolicies",
                                              clusterName=cluster, principalArn=principal), NOT_FOUND) or []
        return [p["policyArn"] for p in found if (p.get("accessScope") or {}).get("type") == "cluster"]

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        found = []
        for principal in list_in_cluster(ctx, ctx.cluster, "list_access_entries", "accessEntries"):
            entry = self._describe(ctx, ctx.cluster, principal)
            if entry is None or not is_owned_by(entry.get("tags") or {}, ctx.cluster):
                continue
            policies = self._policies(ctx, ctx.cluster, principal) if entry.get("type") == "STANDARD" else []
            found.append(self.observe(entry, policies))
        return found

    def canonical(self, key: str, value: Any) -> Any:
        if key in ("kubernetes_groups", "policy_arns") and value is None:
            value = []
        if key == "type" and not value:
            value = "STANDARD"  # CreateAccessEntry's default
        return super().canonical(key, value)

    # -- change --------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        cluster, principal = p["cluster_name"], p["principal_arn"]
        params: dict[str, Any] = {"clusterName": cluster, "principalArn": principal,
                                  "type": p.get("type") or "STANDARD", "tags": dict(desired.tags),
                                  "clientRequestToken": ctx.client_token(desired.key)}
        if p.get("kubernetes_groups"):
            params["kubernetesGroups"] = sorted(p["kubernetes_groups"])
        try:
            entry = retry_matching(ctx, lambda: ctx.call("eks", "create_access_entry", **params)["accessEntry"],
                                   is_principal_not_visible, f"IAM principal {principal} to be visible to EKS")
        except ClientError as exc:
            if not is_in_use(exc):
                raise
            found = self._describe(ctx, cluster, principal)
            if found is None or not is_owned_by(found.get("tags") or {}, ctx.cluster):
                raise OwnershipError(f"EKS cluster {cluster} already has an access entry for {principal} that "
                                     f"kubeaws cluster {ctx.cluster!r} does not own (EKS creates one for the "
                                     "cluster creator and for managed node group roles): delete it or leave "
                                     "this principal out of the spec") from exc
            entry = found
        have = self._policies(ctx, cluster, principal) if entry.get("type") == "STANDARD" else []
        empty = self.observe({**entry, "tags": dict(desired.tags)}, have)
        diff = {k: v for k, v in self.diff(empty, desired).items() if k == "policy_arns"}
        return self.update(ctx, empty, desired, diff) if diff else empty

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "kubernetes_groups", "policy_arns"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p = desired.props
        cluster, principal = str(actual.fields["cluster_name"]), str(actual.fields["principal_arn"])
        if "kubernetes_groups" in diff:
            groups = sorted(p.get("kubernetes_groups") or [])
            ctx.call("eks", "update_access_entry", clusterName=cluster, principalArn=principal,
                     kubernetesGroups=groups, clientRequestToken=ctx.client_token(f"{desired.key}/groups/{groups}"))
        if "policy_arns" in diff:
            have, want = set(actual.fields.get("policy_arns") or []), set(p.get("policy_arns") or [])
            for arn in sorted(want - have):
                ctx.call("eks", "associate_access_policy", clusterName=cluster, principalArn=principal,
                         policyArn=arn, accessScope=CLUSTER_SCOPE)
            for arn in sorted(have - want):
                ignoring(partial(ctx.call, "eks", "disassociate_access_policy", clusterName=cluster,
                                 principalArn=principal, policyArn=arn), NOT_FOUND)
        if "tags" in diff:
            self.set_tags(ctx, str(actual.attrs["arn"]), diff["tags"][1])
        fields = {**actual.fields, **{k: p[k] for k in diff if k in p}}
        return replace(actual, fields=fields, tags={**actual.tags, **desired.tags})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete the entry (synchronous; a missing entry or cluster counts as deleted)."""
        delete_call(ctx, "delete_access_entry", f"access entry {actual.id} to be deletable",
                    clusterName=str(actual.fields["cluster_name"]), principalArn=str(actual.fields["principal_arn"]))
