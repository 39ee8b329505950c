"""The roll a plan implies: which control-plane members and node groups `kubeaws rollout` replaces after
this apply, how many instances, in which order, with which surge (kubeaws.rollout.planner's order and
batches, the spec's `nodeGroups[].rollout` settings).

A group's instances are outdated when they booted from another launch-template version than the template's
default (rollout.inventory). After apply, a template whose content changes in this plan has a new default
version (its latest + 1: CreateLaunchTemplateVersion numbers it so), so every live instance of the groups
launching it will be outdated; instances outdated already (a roll not run, or interrupted) roll too. Groups
created or replaced in this plan roll nothing (their instances boot the new configuration).

AWS calls: none when no template changes and every existing group is pinned to its template's default
version (both read from the plan's observation). Otherwise one `rollout.inventory.read_groups` over the
cluster's existing groups (DescribeAutoScalingGroups, DescribeLaunchTemplates, DescribeInstances). A roll
interrupted inside a group that was already moved to the new version (its pin equals the default, some
instances still old) is not seen without those reads when nothing else changes: `kubeaws rollout --dry-run`
shows it.

EKS managed node groups are rolled by EKS during apply (UpdateNodegroupVersion, with the group's updateConfig
from `rollout.maxUnavailable`, else EKS' default of 1), listed as such after the kubeaws rollout entries.

Called by engine.plan when the plan is made for a spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.engine.types import Change
from kubeaws.model.common import node_group_of
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Observed, Ref
from kubeaws.rollout.inventory import read_groups
from kubeaws.rollout.planner import plan_rollout
from kubeaws.spec.models import ClusterSpec

#: How the kubeaws entries are rolled; EKS managed groups are rolled by EKS.
BY_KUBEAWS = "kubeaws rollout"
BY_EKS = "EKS"


def surge_settings(spec: ClusterSpec | None, graph: Graph, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """AWS Auto Scaling group name -> {"maxSurge", "maxUnavailable"} of each node group (`names`: graph key ->
    the group's AWS name)."""
    if spec is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    by_group = {node_group_of(d.spec_path): d.key for d in graph.of_kind("AutoScalingGroup")}
    for ng in spec.spec.node_groups:
        name = names.get(by_group.get(ng.name, ""))
        if name is not None:
            out[name] = {"maxSurge": ng.rollout.max_surge, "maxUnavailable": ng.rollout.max_unavailable}
    return out


def _template_key(props: Mapping[str, Any]) -> str | None:
    ref = props.get("launch_template_id")
    return ref.key if isinstance(ref, Ref) else None


def preview(ctx: AwsContext, graph: Graph, changes: list[Change], matched: Mapping[str, Observed | None],
            spec: ClusterSpec | None = None) -> list[dict[str, Any]]:
    """The rollout entries of the plan document (see module doc), in the order they run."""
    by_key = {c.key: c for c in changes}
    new_version: dict[str, int] = {}  # template key -> the default version apply makes
    for change in changes:
        if change.kind == "LaunchTemplate" and change.action == "update" and "content_hash" in change.diff \
                and change.actual is not None:
            new_version[change.key] = int(change.actual.attrs.get("latest_version") or 0) + 1
    groups: dict[str, str] = {}  # AWS group name -> its template's key
    lagging = False
    for desired in graph.of_kind("AutoScalingGroup"):
        found_change, actual = by_key.get(desired.key), matched.get(desired.key)
        template = _template_key(desired.props)
        if found_change is None or found_change.action not in ("update", "noop") or actual is None \
                or template is None:
            continue
        groups[actual.id] = template
        found = matched.get(template)
        default = found.attrs.get("default_version") if found is not None else None
        lagging = lagging or str(actual.fields.get("launch_template_version")) != str(default)
    entries: list[dict[str, Any]] = []
    if groups and (lagging or any(t in new_version for t in groups.values())):
        states = []
        for state in read_groups(ctx, list(groups)):
            target = new_version.get(groups[state.name])
            states.append(replace(state, target=target) if target is not None else state)
        names = {d.key: actual.id for d in graph.of_kind("AutoScalingGroup")
                 if (actual := matched.get(d.key)) is not None}
        rollout = plan_rollout(states, surge_settings(spec, graph, names))
        for entry, line, group in zip(rollout.to_list(), rollout.lines(), rollout.groups, strict=True):
            if groups[group.group.name] in new_version:
                entry["reason"] = f"its launch template changes in this plan: {entry['reason']}"
                line = line.replace(f"({group.reason})", f"(launch template changes: {group.reason})")
            entries.append({**entry, "by": BY_KUBEAWS, "summary": line.split(f"{group.group.name}: ", 1)[1]})
    return entries + _eks_entries(changes)


def _eks_entries(changes: list[Change]) -> list[dict[str, Any]]:
    """Managed node groups whose launch template version moves in this apply: EKS rolls them."""
    out: list[dict[str, Any]] = []
    for change in changes:
        if change.kind != "EksNodegroup" or change.action != "update" or "launch_template" not in change.diff:
            continue
        actual = change.actual
        name = str(actual.fields.get("nodegroup_name")) if actual is not None else change.name
        count = ((actual.fields.get("scaling") or {}).get("desired") if actual is not None else None) or 0
        config = (change.desired.props.get("update_config") if change.desired is not None else None) or {}
        if "maxUnavailablePercentage" in config:
            unavailable = f"maxUnavailable {config['maxUnavailablePercentage']}%"
        else:
            unavailable = (f"maxUnavailable {config['maxUnavailable']}" if "maxUnavailable" in config
                           else "maxUnavailable 1, EKS' default")
        out.append({"group": name, "role": "nodes", "instances": count, "order": None, "by": BY_EKS,
                    "reason": "its launch template changes in this plan",
                    "summary": f"rolled by EKS during apply (UpdateNodegroupVersion: {count} instance(s), "
                               f"{unavailable})",
                    "batches": []})
    return out
