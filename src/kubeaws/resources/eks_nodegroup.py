"""EKS managed node groups (kind `EksNodegroup`, docs/eks.md) on a kubeaws launch template (which carries the
instance tags, IMDSv2 and EBS encryption). id = `<cluster>/<node group>`.

- `list_owned`: ListNodegroups on the cluster + one DescribeNodegroup per group (EKS has no batch
  describe); `list_reads` is sized for a cluster with a handful of groups. No cluster = nothing.
- create: CreateNodegroup with tags and a clientRequestToken, then wait ACTIVE (bounded by
  `NODEGROUP_WAIT`); CREATE_FAILED / DEGRADED raise with the group's health issues.
- `scaling.desired` is used on create and never diffed: the cluster-autoscaler owns it.
- update: labels, taints and min/max through one UpdateNodegroupConfig; a new launch template version
  through UpdateNodegroupVersion (EKS rolls the nodes; `force` when the context says so: `kubeaws apply
  --force-eks-update`); each update is waited for. An update EKS stopped because a PodDisruptionBudget
  refused an eviction (PodEvictionFailure) is reported naming the node group, the budget's way out and the
  flag. A new name (a changed
  `nodeGroupNamePattern`) replaces the group: the new one is created (with its new launch template) before
  the old one is deleted (EKS drains its nodes). The role, subnets, capacity type, instance types and, under
  the same name, the launch template ID cannot change (refused).
- delete: DeleteNodegroup, then wait until gone (before the cluster, whose rank is lower).

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code, is_in_use
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by
from kubeaws.errors import KubeawsError, OwnershipError
from kubeaws.resources._autoscaling import retry_matching
from kubeaws.resources._eks import (
    NODEGROUP_WAIT,
    UPDATE_WAIT,
    ClusterChildKind,
    health_issues,
    mutate,
    wait_status,
    wait_update,
)
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

FAILED = frozenset({"CREATE_FAILED", "DELETE_FAILED", "DEGRADED"})
WAITING = frozenset({"CREATING", "UPDATING"})
CONFIG_FIELDS = frozenset({"labels", "taints", "scaling", "update_config"})


def update_config(value: int | str | None) -> dict[str, int] | None:
    """EKS's updateConfig for a node group's `rollout.maxUnavailable` (a count, or a percentage: EKS
    rolls that many nodes at once); None leaves EKS's default (1)."""
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        return {"maxUnavailablePercentage": max(1, int(value[:-1]))}
    return {"maxUnavailable": max(1, int(value))}


FORCE_FLAG = "--force-eks-update"


def blocked_hint(group: str, message: str) -> str:
    """What to do when EKS could not drain a node of `group` (PodEvictionFailure: a PodDisruptionBudget
    refused an eviction)."""
    return (f"{message}. EKS node group {group} was not updated: a PodDisruptionBudget refused the eviction of "
            "a pod on one of its nodes (the nodes not replaced yet keep running the old version). Either let the "
            "budget allow a disruption (scale the workload up, or relax the budget) and apply again, or apply "
            f"again with `kubeaws apply {FORCE_FLAG}`: EKS then replaces the nodes even when a budget refuses, "
            "and the pods it protects are stopped with their node")


def taint_key(t: Mapping[str, Any]) -> tuple[str, str]:
    return str(t.get("key")), str(t.get("effect"))


def norm_taints(taints: Any) -> list[dict[str, Any]]:
    """Taints as sorted {key, value, effect} dicts (EKS effects: NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE)."""
    out = [{"key": t["key"], "value": t.get("value"), "effect": t["effect"]} for t in taints or []]
    return sorted(out, key=lambda t: (taint_key(t), str(t.get("value"))))


def template_of(value: Any) -> dict[str, Any] | None:
    """{id, version} with the version as a string (EKS answers "3"; the model may give 3)."""
    if not value:
        return None
    return {"id": value.get("id"), "version": None if value.get("version") is None else str(value["version"])}


@register
class EksNodegroup(ClusterChildKind):
    """A managed node group; config and launch-template version updated in place."""

    kind = "EksNodegroup"
    rank = 72
    modes = frozenset({"eks"})
    immutable = frozenset({"nodegroup_name"})
    name_field = "nodegroup_name"
    refuse_change = frozenset({"cluster_name", "node_role_arn", "subnet_ids", "capacity_type", "instance_types",
                               "launch_template_id"})
    set_fields = frozenset({"subnet_ids"})
    gone_states = frozenset({"DELETING"})
    #: ListNodegroups + one DescribeNodegroup per group (+ a DescribeCluster on a local emulator), for up
    #: to 8 groups.
    list_reads = 10
    list_operation, list_key = "list_nodegroups", "nodegroups"
    describe_operation, describe_key, name_param = "describe_nodegroup", "nodegroup", "nodegroupName"
    object_field, what = "nodegroup_name", "EKS node group"
    delete_operation, delete_wait = "delete_nodegroup", NODEGROUP_WAIT

    def observe(self, ng: Mapping[str, Any]) -> Observed:
        scaling = ng.get("scalingConfig") or {}
        fields = {"cluster_name": ng["clusterName"], "nodegroup_name": ng["nodegroupName"],
                  "node_role_arn": ng.get("nodeRole"), "subnet_ids": sorted(ng.get("subnets") or []),
                  "launch_template": template_of(ng.get("launchTemplate")),
                  "scaling": {"min": scaling.get("minSize"), "max": scaling.get("maxSize"),
                              "desired": scaling.get("desiredSize")},
                  "labels": dict(ng.get("labels") or {}), "taints": norm_taints(ng.get("taints")),
                  "capacity_type": ng.get("capacityType"), "instance_types": list(ng.get("instanceTypes") or []),
                  "update_config": dict(ng.get("updateConfig") or {}) or None}
        attrs = {"arn": ng.get("nodegroupArn"), "state": ng.get("status"), "health": health_issues(ng),
                 "auto_scaling_groups": [g["name"] for g in (ng.get("resources") or {}).get("autoScalingGroups")
                                         or []], "release_version": ng.get("releaseVersion")}
        return Observed(self.kind, f"{ng['clusterName']}/{ng['nodegroupName']}", fields, dict(ng.get("tags") or {}),
                        str(ng.get("status", "")), attrs)

    # -- compare -------------------------------------------------------------------------------------
    def canonical(self, key: str, value: Any) -> Any:
        if key == "taints":
            value = norm_taints(value)
        elif key == "labels":
            value = dict(value or {})
        elif key == "launch_template":
            value = template_of(value)
        elif key == "scaling" and isinstance(value, Mapping):
            value = {"min": value.get("min"), "max": value.get("max")}  # desired: the autoscaler's
        return super().canonical(key, value)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """The base diff; a launch template ID change is `launch_template_id` (refused) unless the name changes
        too (a replacement: the new group gets the new template), a version change `launch_template`; a failed
        group stops the plan; one still changing shows as `state`."""
        if actual.state in {"CREATE_FAILED", "DELETE_FAILED"}:
            raise KubeawsError(f"EKS node group {actual.id} is {actual.state}: {actual.attrs.get('health')}. Delete "
                               "it (aws eks delete-nodegroup, or remove it from the spec and apply) and apply again")
        changes = super().diff(actual, desired)
        if "launch_template" in changes:
            have, want = changes["launch_template"]
            renamed = "nodegroup_name" in changes
            if isinstance(want, Mapping) and (have or {}).get("id") != want.get("id") and not renamed:
                changes["launch_template_id"] = changes.pop("launch_template")
        if actual.state in WAITING:
            changes["state"] = (actual.state, "ACTIVE")
        return changes

    # -- change --------------------------------------------------------------------------------------
    def _wait_active(self, ctx: AwsContext, cluster: str, name: str) -> Observed:
        item = wait_status(ctx, lambda: self._describe(ctx, cluster, name), {"ACTIVE"}, FAILED, NODEGROUP_WAIT,
                           f"EKS node group {cluster}/{name} to become ACTIVE", "CreateNodegroup")
        return self.observe(item)

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        from botocore.exceptions import ClientError
        p = desired.props
        cluster, name = p["cluster_name"], p["nodegroup_name"]
        scaling = p["scaling"]
        params: dict[str, Any] = {
            "clusterName": cluster, "nodegroupName": name, "nodeRole": p["node_role_arn"],
            "subnets": sorted(p["subnet_ids"]), "tags": dict(desired.tags),
            "scalingConfig": {"minSize": scaling["min"], "maxSize": scaling["max"],
                              "desiredSize": scaling["min"] if scaling.get("desired") is None else scaling["desired"]},
            "capacityType": p.get("capacity_type") or "ON_DEMAND",
            "clientRequestToken": ctx.client_token(desired.key)}
        template = template_of(p.get("launch_template"))
        if template:
            params["launchTemplate"] = {k: v for k, v in template.items() if v is not None}
        if p.get("instance_types"):
            params["instanceTypes"] = list(p["instance_types"])
        if p.get("labels"):
            params["labels"] = dict(p["labels"])
        if p.get("taints"):
            params["taints"] = [{k: v for k, v in t.items() if v is not None} for t in norm_taints(p["taints"])]
        if p.get("update_config"):
            params["updateConfig"] = dict(p["update_config"])
        try:
            retry_matching(ctx, lambda: ctx.call("eks", "create_nodegroup", **params), is_not_visible_yet,
                           f"the launch template and node role of {cluster}/{name} to be visible to EKS")
        except ClientError as exc:
            if not is_in_use(exc):
                raise
            found = self._describe(ctx, cluster, name)
            if found is None or not is_owned_by(found.get("tags") or {}, ctx.cluster):
                raise OwnershipError(f"EKS node group {cluster}/{name} already exists and is not owned by kubeaws "
                                     f"cluster {ctx.cluster!r}: delete it or rename the node group") from exc
            if found.get("status") == "DELETING":
                self._wait_gone(ctx, cluster, name)
                return self.create(ctx, desired)
        return self._wait_active(ctx, cluster, name)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - CONFIG_FIELDS - {"tags", "state", "launch_template"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p = desired.props
        cluster, name = str(actual.fields["cluster_name"]), str(actual.fields["nodegroup_name"])
        what = f"EKS node group {cluster}/{name}"
        current = self._wait_active(ctx, cluster, name) if "state" in diff else actual
        config: dict[str, Any] = {}
        if "labels" in diff:
            have, want = dict(current.fields.get("labels") or {}), dict(p.get("labels") or {})
            changed = {k: v for k, v in want.items() if have.get(k) != v}
            config["labels"] = {k: v for k, v in (("addOrUpdateLabels", changed),
                                                  ("removeLabels", sorted(set(have) - set(want)))) if v}
        if "taints" in diff:
            have_t, want_t = norm_taints(current.fields.get("taints")), norm_taints(p.get("taints"))
            wanted = {taint_key(t) for t in want_t}
            add = [{k: v for k, v in t.items() if v is not None} for t in want_t if t not in have_t]
            remove = [{"key": t["key"], "effect": t["effect"]} for t in have_t if taint_key(t) not in wanted]
            config["taints"] = {k: v for k, v in (("addOrUpdateTaints", add), ("removeTaints", remove)) if v}
        if "scaling" in diff:
            lo, hi = p["scaling"]["min"], p["scaling"]["max"]
            now = (current.fields.get("scaling") or {}).get("desired")
            config["scalingConfig"] = {"minSize": lo, "maxSize": hi,
                                       "desiredSize": min(max(now if now is not None else lo, lo), hi)}
        if "update_config" in diff and p.get("update_config"):
            config["updateConfig"] = dict(p["update_config"])
        if config:
            answer = mutate(ctx, "update_nodegroup_config", f"{what} to accept a config update", clusterName=cluster,
                            nodegroupName=name, **config)
            wait_update(ctx, answer.get("update"), cluster, f"{what} config update", nodegroupName=name)
        if "launch_template" in diff:
            template = template_of(p["launch_template"]) or {}
            force = ctx.force_eks_update
            token = ctx.client_token(f"{desired.key}/lt-{template.get('version')}{'/force' if force else ''}")
            answer = mutate(ctx, "update_nodegroup_version", f"{what} to accept a version update",
                            clusterName=cluster, nodegroupName=name, launchTemplate=template,
                            clientRequestToken=token, **({"force": True} if force else {}))
            try:
                wait_update(ctx, answer.get("update"), cluster, f"{what} rolling onto launch template version "
                            f"{template.get('version')}", UPDATE_WAIT, nodegroupName=name)
            except KubeawsError as exc:
                if "PodEvictionFailure" not in str(exc):
                    raise
                raise KubeawsError(blocked_hint(f"{cluster}/{name}", str(exc))) from exc
        if "tags" in diff:
            self.set_tags(ctx, str(current.attrs["arn"]), diff["tags"][1])
        fields = {**current.fields, **{k: p[k] for k in diff if k in p}}
        if "scaling" in diff:
            fields["scaling"] = {**p["scaling"], "desired": config["scalingConfig"]["desiredSize"]}
        return replace(current, fields=fields, tags={**current.tags, **desired.tags}, state="ACTIVE")


def is_not_visible_yet(exc: ClientError) -> bool:
    """CreateNodegroup's answer while a new launch template or IAM role has not propagated yet."""
    text = str(exc).lower()
    return error_code(exc) == "InvalidParameterException" and (
        ("launch template" in text and ("not found" in text or "does not exist" in text))
        or ("role" in text and ("not found" in text or "does not exist" in text or "assume" in text)))
