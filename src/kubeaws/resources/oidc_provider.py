"""The IAM OIDC identity provider of the EKS cluster's issuer (kind `OidcProvider`, docs/eks.md): what lets
pods assume IAM roles through their service accounts (IRSA). id = the provider's ARN.

- `list_owned`: DescribeCluster of `ctx.cluster` (its OIDC issuer names the provider), then
  ListOpenIDConnectProviders (ARNs only) and GetOpenIDConnectProvider of the one matching the issuer
  (tags, client IDs, thumbprints): 3 reads; no cluster = nothing, after 1 read. IAM has no tag filter for
  providers, and reading every provider of the account would cost one call each.
- create: CreateOpenIDConnectProvider with tags (IAM has no client token: an "already exists" answer
  adopts the provider when it is ours). Thumbprints come from the model: EKS issuers are signed by a
  well-known root CA (`EKS_ROOT_CA_THUMBPRINT`), and IAM no longer checks the thumbprint for them.
- update: thumbprints (UpdateOpenIDConnectProviderThumbprint), client IDs (add / remove), tags.
  A new URL is a new provider (`url` is immutable: replaced).
- delete: DeleteOpenIDConnectProvider, retried while another change to the provider is in flight.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubeaws import partition
from kubeaws.aws.errors import is_already_exists
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by, owner_of, tag_dict, tag_list
from kubeaws.errors import OwnershipError
from kubeaws.resources._eks import describe
from kubeaws.resources._iam import ignoring_missing
from kubeaws.resources.base import Desired, Diff, Kind, Observed
from kubeaws.resources.registry import register

EKS_ROOT_CA_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
STS_AUDIENCE = partition.STS_AUDIENCE
#: DeleteOpenIDConnectProvider's in-use answer: another change to the provider in flight.
IN_USE = ("ConcurrentModification",)


def host_path(url: str) -> str:
    """`https://oidc.eks.us-east-1.amazonaws.com/id/ABC` -> `oidc.eks.us-east-1.amazonaws.com/id/ABC`
    (how IAM names the provider in its ARN and answers its Url)."""
    return url.split("://", 1)[-1].rstrip("/")


@register
class OidcProvider(Kind):
    """An IAM OIDC provider for the EKS cluster's service-account issuer."""

    kind = "OidcProvider"
    service = "iam"
    rank = 46
    modes = frozenset({"eks"})
    immutable = frozenset({"url"})
    set_fields = frozenset({"client_ids", "thumbprints"})
    list_reads = 3  # DescribeCluster + ListOpenIDConnectProviders + GetOpenIDConnectProvider

    def observe(self, arn: str, p: Mapping[str, Any]) -> Observed:
        fields = {"url": "https://" + host_path(str(p.get("Url", ""))),
                  "client_ids": sorted(p.get("ClientIDList") or []),
                  "thumbprints": sorted(t.lower() for t in p.get("ThumbprintList") or [])}
        return Observed(self.kind, arn, fields, tag_dict(p.get("Tags")), "", {"arn": arn})

    def _get(self, ctx: AwsContext, arn: str) -> dict[str, Any] | None:
        return ignoring_missing(lambda: ctx.call("iam", "get_open_id_connect_provider",
                                                 OpenIDConnectProviderArn=arn))

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        cluster = describe(ctx, "describe_cluster", "cluster", name=ctx.cluster)
        issuer = ((cluster or {}).get("identity") or {}).get("oidc", {}).get("issuer")
        if not issuer:
            return []
        listed = ctx.call("iam", "list_open_id_connect_providers").get("OpenIDConnectProviderList") or []
        suffix = ":oidc-provider/" + host_path(issuer)
        found = []
        for arn in (str(p["Arn"]) for p in listed if str(p["Arn"]).endswith(suffix)):
            provider = self._get(ctx, arn)
            if provider is not None:
                found.append(self.observe(arn, provider))
        return self.owned_only(ctx, found)

    def canonical(self, key: str, value: Any) -> Any:
        if key == "thumbprints" and isinstance(value, list):
            value = [str(t).lower() for t in value]
        if key == "url" and isinstance(value, str):
            value = "https://" + host_path(value)
        return super().canonical(key, value)

    # -- change --------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        from botocore.exceptions import ClientError
        p = desired.props
        url = "https://" + host_path(p["url"])
        thumbprints = sorted(str(t).lower() for t in p.get("thumbprints") or [EKS_ROOT_CA_THUMBPRINT])
        try:
            arn = str(ctx.call("iam", "create_open_id_connect_provider", Url=url,
                               ClientIDList=sorted(p.get("client_ids") or [STS_AUDIENCE]),
                               ThumbprintList=thumbprints, Tags=tag_list(desired.tags))["OpenIDConnectProviderArn"])
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            arn = partition.arn(partition.partition_of(ctx.region), "iam", f"oidc-provider/{host_path(url)}",
                                account=ctx.account_id())
            found = self._get(ctx, arn)
            tags = tag_dict((found or {}).get("Tags"))
            if found is None or not is_owned_by(tags, ctx.cluster):
                who = f"kubeaws cluster {owner_of(tags)!r}" if owner_of(tags) else "someone else"
                raise OwnershipError(f"IAM OIDC provider {url} already exists and belongs to {who}") from exc
            current = self.observe(arn, found)
            return self.update(ctx, current, desired, self.diff(current, desired))
        return Observed(self.kind, arn, {"url": url, "client_ids": sorted(p.get("client_ids") or [STS_AUDIENCE]),
                                         "thumbprints": thumbprints}, dict(desired.tags), "", {"arn": arn})

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "client_ids", "thumbprints"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p, arn = desired.props, actual.id
        if "thumbprints" in diff:
            ctx.call("iam", "update_open_id_connect_provider_thumbprint", OpenIDConnectProviderArn=arn,
                     ThumbprintList=sorted(str(t).lower() for t in p["thumbprints"]))
        if "client_ids" in diff:
            have, want = set(actual.fields.get("client_ids") or []), set(p.get("client_ids") or [])
            for client in sorted(want - have):
                ctx.call("iam", "add_client_id_to_open_id_connect_provider", OpenIDConnectProviderArn=arn,
                         ClientID=client)
            for client in sorted(have - want):
                ctx.call("iam", "remove_client_id_from_open_id_connect_provider", OpenIDConnectProviderArn=arn,
                         ClientID=client)
        if "tags" in diff:
            self.set_tags(ctx, arn, diff["tags"][1])
        fields = {**actual.fields, **{k: p[k] for k in diff if k in p}}
        return replace(actual, fields=fields, tags={**actual.tags, **desired.tags})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete the provider; refuses one this cluster does not own."""
        if not is_owned_by(actual.tags, ctx.cluster):
            raise OwnershipError(f"refusing to delete IAM OIDC provider {actual.id}: not owned by {ctx.cluster!r}")
        ignoring_missing(lambda: retry_on_codes(
            lambda: ctx.call("iam", "delete_open_id_connect_provider", OpenIDConnectProviderArn=actual.id),
            IN_USE, timeout=ctx.policy.consistency_timeout, what=f"IAM OIDC provider {actual.id} to be free",
            policy=ctx.policy))

    # -- tags (IAM) ----------------------------------------------------------------------------------
    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            ctx.call("iam", "tag_open_id_connect_provider", OpenIDConnectProviderArn=resource_id, Tags=tag_list(tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        if keys:
            ignoring_missing(lambda: ctx.call("iam", "untag_open_id_connect_provider",
                                              OpenIDConnectProviderArn=resource_id, TagKeys=list(keys)))
