"""Shared plumbing for the EKS kinds (eks_cluster, access_entry, eks_addon, eks_nodegroup): the error codes,
the bounded waits (a status, an update ID), health issues turned into readable errors, listings scoped to
one cluster, and EKS tagging (tags are a map, set by ARN).

Used only by the modules of `kubeaws.resources`; the engine reaches the kinds through the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.errors import AwsCallError
from kubeaws.resources._ec2 import ignoring, while_in_use
from kubeaws.resources.base import Kind, Observed

NOT_FOUND = ("ResourceNotFoundException", "NotFoundException")
IN_USE = ("ResourceInUseException",)
#: A local emulator answers an EKS API it lacks with a bare HTTP 404 (code "404").
EMULATOR_MISSING = "404"

#: Bounds of the waits (AWS: a cluster takes 10-15 minutes to create or delete, a node group 3-10, an
#: add-on 1-5; an update that rolls a node group's instances can take much longer).
CLUSTER_WAIT = 25 * 60.0
NODEGROUP_WAIT = 25 * 60.0
ADDON_WAIT = 15 * 60.0
UPDATE_WAIT = 60 * 60.0


def describe(ctx: AwsContext, operation: str, result_key: str, **params: Any) -> dict[str, Any] | None:
    """One EKS describe; None when the resource (or its cluster) does not exist."""
    found = ignoring(lambda: ctx.call("eks", operation, **params), NOT_FOUND)
    return None if found is None else dict(found[result_key])


def list_in_cluster(ctx: AwsContext, cluster: str, operation: str, result_key: str) -> list[Any]:
    """Every name a `list_*` call returns for `cluster` (paginated); [] when the cluster does not exist.

    On a local emulator, first check that the cluster exists (moto's ListNodegroups fails with HTTP 500 on
    an unknown cluster) and treat an API it lacks (HTTP 404: access entries, add-ons) as empty."""
    from botocore.exceptions import ClientError
    if not ctx.capabilities.complete_eks_lists and describe(ctx, "describe_cluster", "cluster", name=cluster) is None:
        return []
    try:
        return ctx.paginate("eks", operation, result_key, clusterName=cluster)
    except ClientError as exc:
        code = error_code(exc)
        if code in NOT_FOUND or (not ctx.capabilities.complete_eks_lists and code == EMULATOR_MISSING):
            return []
        raise


def health_issues(item: Mapping[str, Any]) -> str:
    """A node group's or add-on's `health.issues` (or an update's `errors`) as one readable line."""
    issues = (item.get("health") or {}).get("issues") or item.get("errors") or []
    parts = []
    for issue in issues:
        code = issue.get("code") or issue.get("errorCode") or "issue"
        message = issue.get("message") or issue.get("errorMessage") or ""
        ids = ", ".join(issue.get("resourceIds") or [])
        parts.append(f"{code}: {message}" + (f" ({ids})" if ids else ""))
    return "; ".join(parts) or "EKS reported no health issue"


def wait_status(ctx: AwsContext, read: Callable[[], dict[str, Any] | None], ready: Iterable[str],
                failed: Iterable[str], timeout: float, what: str, operation: str) -> dict[str, Any]:
    """Poll `read` until the item's `status` is in `ready` (return it); a status in `failed`, or the item
    vanishing, raises AwsCallError with EKS's health issues. Prints nothing: the engine reports progress."""
    ok, bad = frozenset(ready), frozenset(failed)

    def check() -> dict[str, Any] | None:
        item = read()
        if item is None:
            raise AwsCallError(operation, "ResourceNotFoundException", f"{what}: it disappeared while waiting")
        status = str(item.get("status", ""))
        if status in ok:
            return item
        if status in bad:
            raise AwsCallError(operation, status, f"{what}: status {status}: {health_issues(item)}")
        return None

    return wait_until(check, timeout, what, ctx.policy)


def wait_gone(ctx: AwsContext, read: Callable[[], dict[str, Any] | None], failed: Iterable[str],
              timeout: float, what: str, operation: str) -> None:
    """Poll `read` until it returns None (deleted); a status in `failed` raises with the health issues."""
    bad = frozenset(failed)

    def check() -> bool | None:
        item = read()
        if item is None:
            return True
        if item.get("status") in bad:
            raise AwsCallError(operation, str(item["status"]), f"{what}: {health_issues(item)}")
        return None

    wait_until(check, timeout, what, ctx.policy)


def wait_update(ctx: AwsContext, update: Mapping[str, Any] | None, cluster: str, what: str,
                timeout: float = UPDATE_WAIT, **scope: str) -> None:
    """Wait until an EKS update (cluster, node group or add-on: `scope` = nodegroupName= / addonName=)
    is Successful; Failed or Cancelled raise with its errors. EKS runs one update at a time per resource,
    so every change waits for the previous one. Nothing to wait for when the answer carries no update
    (a local emulator applies changes at once)."""
    if not update or not update.get("id") or update.get("status") == "Successful":
        return
    update_id = str(update["id"])

    def check() -> bool | None:
        current = ctx.call("eks", "describe_update", name=cluster, updateId=update_id, **scope)["update"]
        status = current.get("status")
        if status == "Successful":
            return True
        if status in ("Failed", "Cancelled"):
            raise AwsCallError("DescribeUpdate", str(status), f"{what} ({current.get('type')}, update "
                               f"{update_id}) {str(status).lower()}: {health_issues(current)}")
        return None

    wait_until(check, timeout, what, ctx.policy)


def mutate(ctx: AwsContext, operation: str, what: str, **params: Any) -> dict[str, Any]:
    """A change call retried while EKS refuses it because another update is in progress."""
    result: dict[str, Any] = while_in_use(ctx, lambda: ctx.call("eks", operation, **params), what, IN_USE)
    return result


def delete_call(ctx: AwsContext, operation: str, what: str, **params: Any) -> None:
    """An idempotent EKS delete: retried while in use (an update running, dependants draining); a missing
    resource counts as deleted."""
    ignoring(lambda: mutate(ctx, operation, what, **params), NOT_FOUND)


class EksKind(Kind):
    """A Kind in the EKS API: tags are a map in the create call and are changed by ARN."""

    service = "eks"

    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        """`resource_id` is the resource's ARN (kinds pass `attrs["arn"]`)."""
        if tags:
            ctx.call("eks", "tag_resource", resourceArn=resource_id, tags=dict(tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        if keys:
            ignoring(lambda: ctx.call("eks", "untag_resource", resourceArn=resource_id, tagKeys=list(keys)),
                     NOT_FOUND)


class ClusterChildKind(EksKind):
    """An EKS object inside the cluster (add-on, managed node group): `list_owned` lists the names in the
    cluster, then describes each one (several: in parallel, one round trip however many there are; one: in
    the calling thread) and keeps the owned ones; `delete` deletes it and waits until it is gone. Subclasses
    name the calls and turn a description into an Observed (`observe`)."""

    list_operation: str
    list_key: str
    describe_operation: str
    describe_key: str
    #: The describe parameter naming the object (e.g. "addonName").
    name_param: str
    #: The Observed field holding the object's name (e.g. "addon_name").
    object_field: str
    #: How messages name the object (e.g. "EKS add-on"), its delete call, and how long a delete may take.
    what: str
    delete_operation: str
    delete_wait: float

    def observe(self, item: Mapping[str, Any]) -> Observed:
        raise NotImplementedError

    def _describe(self, ctx: AwsContext, cluster: str, name: str) -> dict[str, Any] | None:
        return describe(ctx, self.describe_operation, self.describe_key, clusterName=cluster,
                        **{self.name_param: name})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        names = list_in_cluster(ctx, ctx.cluster, self.list_operation, self.list_key)

        def one(name: str) -> dict[str, Any] | None:
            with ctx.sharing():  # the pool's threads use the context's shared, thread-safe clients
                return self._describe(ctx, ctx.cluster, name)

        if len(names) <= 1:
            found = [self._describe(ctx, ctx.cluster, name) for name in names]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
                found = list(pool.map(one, names))
        return self.owned_only(ctx, [self.observe(item) for item in found if item is not None])

    def _wait_gone(self, ctx: AwsContext, cluster: str, name: str) -> None:
        api_name = "".join(part.title() for part in self.delete_operation.split("_"))  # delete_addon -> DeleteAddon
        wait_gone(ctx, lambda: self._describe(ctx, cluster, name), {"DELETE_FAILED"}, self.delete_wait,
                  f"{self.what} {cluster}/{name} to be deleted", api_name)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete the object (an add-on's Kubernetes objects, a node group's instances go with it) and wait
        until it is gone."""
        cluster, name = str(actual.fields["cluster_name"]), str(actual.fields[self.object_field])
        delete_call(ctx, self.delete_operation, f"{self.what} {actual.id} to be deletable", clusterName=cluster,
                    **{self.name_param: name})
        self._wait_gone(ctx, cluster, name)
