"""EKS managed add-ons (kind `EksAddon`, docs/eks.md): vpc-cni, kube-proxy, coredns, and the addons' own
(`Addon.eks_addon` of a descriptor, e.g. aws-ebs-csi-driver). id = `<cluster>/<add-on>`. The model sets no
version: EKS installs its default for the cluster's Kubernetes version when the add-on is created.

- `list_owned`: ListAddons on the cluster + one DescribeAddon per add-on (the only call that returns its
  tags); `list_reads` is sized for the usual handful. No cluster = nothing.
- create: CreateAddon with tags, a clientRequestToken and resolveConflicts=OVERWRITE (EKS installs
  self-managed vpc-cni / kube-proxy / coredns with the cluster: the managed add-on takes them over), then
  wait until it leaves CREATING: ACTIVE, or DEGRADED (coredns has no node to run on before the node groups
  exist; it heals once they join). CREATE_FAILED raises with the health issues.
- update: UpdateAddon (version, service-account role), waited for through DescribeUpdate.
- delete: DeleteAddon, then wait until gone.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import is_in_use
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by
from kubeaws.errors import KubeawsError, OwnershipError
from kubeaws.resources._eks import (
    ADDON_WAIT,
    ClusterChildKind,
    health_issues,
    mutate,
    wait_status,
    wait_update,
)
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

#: Statuses in which an add-on is usable by what depends on it (DEGRADED: see the module docstring).
SETTLED = frozenset({"ACTIVE", "DEGRADED"})
FAILED = frozenset({"CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"})
WAITING = frozenset({"CREATING", "UPDATING"})


@register
class EksAddon(ClusterChildKind):
    """A managed add-on of the EKS cluster; version and service-account role updated in place."""

    kind = "EksAddon"
    rank = 48
    modes = frozenset({"eks"})
    refuse_change = frozenset({"cluster_name", "addon_name"})
    gone_states = frozenset({"DELETING"})
    #: ListAddons + one DescribeAddon per add-on (+ a DescribeCluster on a local emulator), for up to 6.
    list_reads = 8
    list_operation, list_key = "list_addons", "addons"
    describe_operation, describe_key, name_param = "describe_addon", "addon", "addonName"
    object_field, what = "addon_name", "EKS add-on"
    delete_operation, delete_wait = "delete_addon", ADDON_WAIT

    def observe(self, a: Mapping[str, Any]) -> Observed:
        fields = {"cluster_name": a["clusterName"], "addon_name": a["addonName"],
                  "addon_version": a.get("addonVersion"),
                  "service_account_role_arn": a.get("serviceAccountRoleArn")}
        attrs = {"arn": a.get("addonArn"), "state": a.get("status"), "health": health_issues(a)}
        return Observed(self.kind, f"{a['clusterName']}/{a['addonName']}", fields, dict(a.get("tags") or {}),
                        str(a.get("status", "")), attrs)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """The base diff; an add-on still changing shows as `state` (its update waits)."""
        changes = super().diff(actual, desired)
        if actual.state in WAITING:
            changes["state"] = (actual.state, "ACTIVE")
        return changes

    # -- change --------------------------------------------------------------------------------------
    def _wait_settled(self, ctx: AwsContext, cluster: str, name: str) -> Observed:
        item = wait_status(ctx, lambda: self._describe(ctx, cluster, name), SETTLED, FAILED, ADDON_WAIT,
                           f"EKS add-on {name} of {cluster} to become ACTIVE", "CreateAddon")
        return self.observe(item)

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        cluster, name = p["cluster_name"], p["addon_name"]
        params: dict[str, Any] = {"clusterName": cluster, "addonName": name, "resolveConflicts": "OVERWRITE",
                                  "tags": dict(desired.tags), "clientRequestToken": ctx.client_token(desired.key)}
        if p.get("addon_version"):
            params["addonVersion"] = p["addon_version"]
        if p.get("service_account_role_arn"):
            params["serviceAccountRoleArn"] = p["service_account_role_arn"]
        try:
            ctx.call("eks", "create_addon", **params)
        except ClientError as exc:
            if not is_in_use(exc):
                raise
            found = self._describe(ctx, cluster, name)
            if found is None or not is_owned_by(found.get("tags") or {}, ctx.cluster):
                raise OwnershipError(f"EKS add-on {name} of cluster {cluster} already exists and is not owned by "
                                     f"kubeaws cluster {ctx.cluster!r}: delete it (aws eks delete-addon "
                                     "--preserve keeps its workloads) and apply again") from exc
            if found.get("status") == "DELETING":
                self._wait_gone(ctx, cluster, name)
                return self.create(ctx, desired)
        return self._wait_settled(ctx, cluster, name)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "state", "addon_version", "service_account_role_arn"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p = desired.props
        cluster, name = str(actual.fields["cluster_name"]), str(actual.fields["addon_name"])
        current = self._wait_settled(ctx, cluster, name) if "state" in diff else actual
        if {"addon_version", "service_account_role_arn"} & set(diff):
            role = p.get("service_account_role_arn")
            if not role and current.fields.get("service_account_role_arn"):
                raise KubeawsError(f"EKS add-on {actual.id}: UpdateAddon cannot remove a service-account role; "
                                   "give it another role, or delete the add-on and apply again")
            token = ctx.client_token(f"{desired.key}/{p.get('addon_version')}/{role}")
            params: dict[str, Any] = {"clusterName": cluster, "addonName": name, "resolveConflicts": "OVERWRITE",
                                      "clientRequestToken": token}
            if role:
                params["serviceAccountRoleArn"] = role
            if p.get("addon_version"):
                params["addonVersion"] = p["addon_version"]
            answer = mutate(ctx, "update_addon", f"EKS add-on {name} to accept an update", **params)
            wait_update(ctx, answer.get("update"), cluster, f"EKS add-on {name} update", ADDON_WAIT, addonName=name)
        if "tags" in diff:
            self.set_tags(ctx, str(current.attrs["arn"]), diff["tags"][1])
        fields = {**current.fields, **{k: p[k] for k in diff if k in p}}
        return replace(current, fields=fields, tags={**current.tags, **desired.tags})
