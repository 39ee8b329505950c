"""Shared plumbing for the EC2 network kinds (vpc, subnet, internet_gateway, elastic_ip, nat_gateway,
route_table): the one-describe `list_owned`, describe-by-ID for brought resources, and the retry wrappers
for eventual consistency (right after a create) and DependencyViolation (on delete).

Used only by the modules of `kubeaws.resources`; the engine reaches the kinds through the registry.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar, TypeVar

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, tag_dict, tag_list
from kubeaws.resources.base import Desired, Diff, Kind, Observed

T = TypeVar("T")

#: Waits for states that real AWS takes minutes to reach (NAT gateway available / deleted).
LONG_WAIT = 900.0


def ignoring(fn: Callable[[], T], codes: Iterable[str]) -> T | None:
    """Run `fn`; None when it fails with one of `codes` (typically "already gone")."""
    from botocore.exceptions import ClientError
    try:
        return fn()
    except ClientError as exc:
        if error_code(exc) in frozenset(codes):
            return None
        raise


def after_create(ctx: AwsContext, fn: Callable[[], T], codes: Iterable[str], what: str) -> T:
    """A follow-up call on IDs that were just created: retry their NotFound for the consistency window."""
    return retry_on_codes(fn, codes, timeout=ctx.policy.consistency_timeout, what=what, policy=ctx.policy)


def while_in_use(ctx: AwsContext, fn: Callable[[], T], what: str,
                 codes: Iterable[str] = ("DependencyViolation",)) -> T:
    """A delete/detach that fails while dependants drain (ENIs of NAT gateways, load balancers...)."""
    return retry_on_codes(fn, codes, timeout=ctx.policy.dependency_timeout, what=what, policy=ctx.policy)


def delete_when_free(ctx: AwsContext, fn: Callable[[], Any], not_found: Iterable[str], what: str) -> None:
    """An idempotent delete: retried while dependants drain, and `not_found` means already gone."""
    ignoring(lambda: while_in_use(ctx, fn, what), not_found)


def describe_ids(ctx: AwsContext, operation: str, result_key: str, ids_param: str, ids: list[str],
                 not_found: Iterable[str]) -> list[dict[str, Any]]:
    """Describe by IDs, dropping missing ones. EC2 fails the whole request when one ID is unknown, so on
    `not_found` fall back to one request per ID."""
    from botocore.exceptions import ClientError
    if not ids:
        return []
    missing = frozenset(not_found)
    try:
        items: list[dict[str, Any]] = ctx.call("ec2", operation, **{ids_param: list(ids)})[result_key]
        return items
    except ClientError as exc:
        if error_code(exc) not in missing:
            raise
    if len(ids) == 1:
        return []
    found: list[dict[str, Any]] = []
    for one in ids:
        page = ignoring(partial(ctx.call, "ec2", operation, **{ids_param: [one]}), missing)
        found.extend(page[result_key] if page else [])
    return found


def with_tags(item: Mapping[str, Any], desired: Desired) -> dict[str, Any]:
    """A create call's response item carrying the desired tags (create responses often omit them)."""
    return {**item, "Tags": tag_list(desired.tags)}


class Ec2Kind(Kind):
    """A Kind listed with one EC2 describe call filtered on the cluster tag (plus a state filter).

    Subclasses set the describe operation and turn one described item into an Observed (or None to drop
    it, e.g. a deleted NAT gateway)."""

    describe_op: ClassVar[str]
    result_key: ClassVar[str]
    #: Name of the filter parameter ("Filter" for DescribeNatGateways, "Filters" elsewhere).
    filter_param: ClassVar[str] = "Filters"
    #: Values of the "state" filter, when the API has one.
    states: ClassVar[tuple[str, ...]] = ()
    #: False for describes without pagination (DescribeAddresses).
    paginated: ClassVar[bool] = True

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        filters = self.owned_filter(ctx)
        if self.states:
            filters.append({"Name": "state", "Values": list(self.states)})
        params = {self.filter_param: filters}
        if self.paginated:
            items: list[dict[str, Any]] = ctx.paginate("ec2", self.describe_op, self.result_key, **params)
        else:
            items = ctx.call("ec2", self.describe_op, **params).get(self.result_key, [])
        # The server filters already; checking again costs nothing and guards against emulators that
        # ignore tag filters (moto's DescribeNatGateways).
        found = (self.observe(i) for i in items if tag_dict(i.get("Tags")).get(CLUSTER_TAG) == ctx.cluster)
        return [o for o in found if o is not None]

    @abstractmethod
    def observe(self, item: Mapping[str, Any]) -> Observed | None:
        """One described item as an Observed; None to leave it out."""

    # -- update template -----------------------------------------------------------------------------
    #: Props `update` can change in place (tags always can).
    updatable: ClassVar[frozenset[str]] = frozenset()

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        """Apply the prop changes with `change`, then the tags; return `actual` with the new values."""
        rest = set(diff) - {"tags"} - self.updatable
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        attrs = self.change(ctx, actual, desired, diff) if set(diff) - {"tags"} else {}
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
        fields = {**actual.fields, **{k: desired.props[k] for k in diff if k in desired.props}}
        return replace(actual, fields=fields, tags={**actual.tags, **desired.tags}, attrs={**actual.attrs, **attrs})

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        """Apply the `updatable` props in `diff`; return attrs that changed (e.g. an association ID)."""
        raise NotImplementedError(f"{self.kind} has no updatable props")
