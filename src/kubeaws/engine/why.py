"""Why a launch template or an Auto Scaling group changes, in words that name the spec fields, and what a spec
asks that `apply` deliberately leaves alone (plan notes).

Launch templates are diffed by a content hash only (resources.launch_template: re-plans stay one
DescribeLaunchTemplates). A hash says *that* the template changes, not why. So, for each template whose hash
differs, the plan reads the template's current default version (ONE DescribeLaunchTemplateVersions per
changed template, read-only, in parallel; none when no template changes) and compares its
LaunchTemplateData with the data `apply` would send (the LaunchTemplate kind's own `template_data`, the root
device name taken from the current version so that no DescribeImages is made): instance type, image, IAM
profile, key pair, security groups, network interfaces, metadata options, volumes device by device, the tags
new instances and volumes get, and the user data file by file (engine.why_userdata). Reading the version
instead of storing a copy of the props in tags keeps one source of truth: what AWS would launch now.
The hash stays in the diff as detail. moto adaptation: moto returns the template's own tags as a
`launch-template` entry of TagSpecifications; only the `instance` and `volume` entries are compared.

Auto Scaling group changes are said from the field diff (no AWS call): `nodeGroups[general].size.min 1 -> 2`.

Notes: `desired_capacity` of an existing group (the cluster-autoscaler and rollouts own it) and the
launch-template version a group is pinned to (only `kubeaws rollout` moves it) are never applied to an
existing group; a spec or a template that differs from them is said, not silently dropped. The same for an
EKS managed node group's desired size.

Called by engine.plan after the diff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import tag_dict
from kubeaws.engine.observe import parallel
from kubeaws.engine.types import Change, jsonable
from kubeaws.engine.why_userdata import decode, user_data_reasons
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Unknown
from kubeaws.resources.instance import DEFAULT_ROOT_DEVICE
from kubeaws.resources.launch_template import LaunchTemplate

#: LaunchTemplateData keys compared by their own rules below.
_SPECIAL = frozenset({"UserData", "BlockDeviceMappings", "TagSpecifications", "SecurityGroupIds",
                      "InstanceType", "ImageId", "KeyName", "IamInstanceProfile", "MetadataOptions"})


def owner(change: Change) -> str:
    """The spec path behind a change's resource (`Desired.spec_path`: `controlPlane`, `nodeGroups[general]`...),
    else its key."""
    desired = change.desired
    return desired.spec_path if desired is not None and desired.spec_path else change.key


# -- launch templates ------------------------------------------------------------------------------------
def read_default_data(ctx: AwsContext, template_id: str) -> dict[str, Any] | None:
    """LaunchTemplateData of the template's default version (None when it cannot be read)."""
    try:
        with ctx.sharing():
            found = ctx.call("ec2", "describe_launch_template_versions", LaunchTemplateId=template_id,
                             Versions=["$Default"]).get("LaunchTemplateVersions", [])
    except (ClientError, BotoCoreError):
        return None
    return dict(found[0].get("LaunchTemplateData") or {}) if found else None


def desired_data(ctx: AwsContext, desired: Desired, current: Mapping[str, Any]) -> dict[str, Any]:
    """The LaunchTemplateData `apply` would write for `desired` (resolved), values unknown until apply shown
    as their display text; the root volume's device name is the current version's (no DescribeImages)."""
    props = jsonable(dict(desired.props))
    named = {d.get("device_name") for d in props.get("block_devices") or [] if d.get("device_name")}
    have = [m.get("DeviceName") for m in current.get("BlockDeviceMappings") or []]
    root = next((d for d in have if d and d not in named), DEFAULT_ROOT_DEVICE)
    props["block_devices"] = [{**d, "device_name": d.get("device_name") or root}
                              for d in props.get("block_devices") or []]
    kind = registry.kinds()["LaunchTemplate"]
    assert isinstance(kind, LaunchTemplate)
    return kind.template_data(ctx, replace(desired, props=props))


def _set_change(what: str, old: list[str], new: list[str]) -> str:
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    return f"{what}: " + ", ".join([*(f"+ {v}" for v in added), *(f"- {v}" for v in removed)])


def _tags(data: Mapping[str, Any], rtype: str) -> dict[str, str]:
    for spec in data.get("TagSpecifications") or []:
        if spec.get("ResourceType") == rtype:
            return tag_dict(spec.get("Tags"))
    return {}


def _tag_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    out = [f"{k} {old[k]} -> {new[k]}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
    out += [f"+ {k}={new[k]}" for k in sorted(new.keys() - old.keys())]
    out += [f"- {k}" for k in sorted(old.keys() - new.keys())]
    return out


def _volumes(old: list[dict[str, Any]], new: list[dict[str, Any]], who: str) -> list[str]:
    before = {m.get("DeviceName"): m.get("Ebs") or {} for m in old}
    after = {m.get("DeviceName"): m.get("Ebs") or {} for m in new}
    root = next(iter(after), None)  # the model puts the root volume first
    out = []
    for device in sorted(set(before) | set(after), key=str):
        field = f"{who}.rootVolume" if device == root else f"{who}.extraVolumes"
        if device not in before:
            ebs = after[device]
            out.append(f"{field}: volume {device} added ({ebs.get('VolumeSize')} GiB {ebs.get('VolumeType', '')})"
                       .replace(" )", ")"))
        elif device not in after:
            out.append(f"{field}: volume {device} removed")
        elif before[device] != after[device]:
            changes = [f"{k} {before[device].get(k)} -> {after[device].get(k)}"
                       for k in sorted(set(before[device]) | set(after[device]))
                       if before[device].get(k) != after[device].get(k)]
            out.append(f"{field}: volume {device} {', '.join(changes)}")
    return out


def compare(current: Mapping[str, Any], wanted: Mapping[str, Any], who: str,
            names: Mapping[str, str] | None = None) -> list[str]:
    """Reasons a template's content changes, from its current LaunchTemplateData to the wanted one."""
    names = names or {}
    out: list[str] = []
    old_type, new_type = current.get("InstanceType"), wanted.get("InstanceType")
    if old_type != new_type:
        field = "instanceType" if who.startswith("controlPlane") else "instanceTypes"
        out.append(f"{who}.{field} {old_type} -> {new_type}")
    out += user_data_reasons(decode(current.get("UserData")), decode(wanted.get("UserData")))
    if current.get("ImageId") != wanted.get("ImageId"):
        out.append(f"image {current.get('ImageId')} -> {wanted.get('ImageId')} ({who}.ami, its os, or a newer "
                   "release of the OS image)")
    if current.get("KeyName") != wanted.get("KeyName"):
        out.append(f"access.sshKeyName {current.get('KeyName')} -> {wanted.get('KeyName')}")
    old_profile = (current.get("IamInstanceProfile") or {}).get("Name") or (current.get("IamInstanceProfile")
                                                                           or {}).get("Arn")
    new_profile = (wanted.get("IamInstanceProfile") or {}).get("Name")
    if old_profile != new_profile:
        out.append(f"IAM instance profile {old_profile} -> {new_profile} (spec.iam)")
    old_groups = [str(g) for g in current.get("SecurityGroupIds") or []]
    new_groups = [str(g) for g in wanted.get("SecurityGroupIds") or []]
    if sorted(old_groups) != sorted(new_groups):
        out.append(_set_change("security groups", [names.get(g, g) for g in old_groups],
                               [names.get(g, g) for g in new_groups]))
    old_meta, new_meta = current.get("MetadataOptions") or {}, wanted.get("MetadataOptions") or {}
    meta = [f"{k} {old_meta.get(k)} -> {new_meta.get(k)}" for k in sorted(set(old_meta) | set(new_meta))
            if old_meta.get(k) != new_meta.get(k)]
    if meta:
        out.append("instance metadata options: " + ", ".join(meta))
    out += _volumes(current.get("BlockDeviceMappings") or [], wanted.get("BlockDeviceMappings") or [], who)
    instance = _tag_changes(_tags(current, "instance"), _tags(wanted, "instance"))
    volume = _tag_changes(_tags(current, "volume"), _tags(wanted, "volume"))
    if instance and instance == volume:
        out.append("tags of new instances and volumes (spec.tags, the group's tags and labels): "
                   + ", ".join(instance))
    else:
        out += [f"tags of new {what} (spec.tags, the group's tags and labels): " + ", ".join(changes)
                for what, changes in (("instances", instance), ("volumes", volume)) if changes]
    for key in sorted((set(current) | set(wanted)) - _SPECIAL):
        if current.get(key) != wanted.get(key):
            out.append(f"{key} changed" if key != "NetworkInterfaces" else "network interfaces changed")
    return out


def explain_templates(ctx: AwsContext, changes: list[Change], resolved: Mapping[str, Desired],
                      names: Mapping[str, str]) -> None:
    """Set `reasons` on every launch-template change whose content changes (one read per such template)."""
    todo = [c for c in changes if c.kind == "LaunchTemplate" and c.action == "update" and "content_hash" in c.diff
            and c.id and c.key in resolved]
    if not todo:
        return
    found = parallel({c.key: partial(read_default_data, ctx, str(c.id)) for c in todo})
    for change in todo:
        current = found[change.key]
        who = owner(change)
        if current is None:
            change.reasons = ["the current version could not be read: content hash only"]
            continue
        reasons = compare(current, desired_data(ctx, resolved[change.key], current), who, names)
        change.reasons = reasons or ["no difference with the current default version: apply writes the same "
                                     "content as a new version (a previous apply stopped before recording it)"]


# -- Auto Scaling groups ---------------------------------------------------------------------------------
def _mixed(value: Any) -> str:
    if not value:
        return "single type"
    spot = "spot" if value.get("on_demand_percentage_above_base") == 0 else "on-demand"
    return f"{'/'.join(value.get('instance_types') or [])} {spot}"


def group_reasons(change: Change) -> list[str]:
    """The spec fields behind an Auto Scaling group's field diff."""
    who = owner(change)
    out: list[str] = []
    for field, (old, new) in sorted(change.diff.items()):
        if field in ("min_size", "max_size"):
            out.append(f"{who}.size.{field.removesuffix('_size')} {old} -> {new}")
        elif field == "mixed_instances":
            out.append(f"{who}.instanceTypes / capacity: {_mixed(old)} -> {_mixed(new)} (for instances launched "
                       "from now on; running ones stay)")
        elif field == "subnet_ids":
            out.append("subnets the group launches in (network.availabilityZones or brought subnets)")
        elif field == "target_group_arns":
            out.append("API load balancer target groups (access.apiEndpoint)")
        elif field == "capacity_rebalance":
            out.append(f"{who}.capacity: capacity rebalancing {old} -> {new}")
        elif field == "launch_template_id":
            out.append("its launch template is replaced")
        elif field == "tags":
            out.append("tags (spec.tags, the group's tags, and its labels and taints as cluster-autoscaler tags)")
        elif field != "name":
            out.append(f"{field} {old} -> {new} (kubeaws defaults)")
    return out


# -- notes -----------------------------------------------------------------------------------------------
def _known(value: Any) -> bool:
    return value is not None and not isinstance(value, Unknown)


def ignored_notes(changes: list[Change], resolved: Mapping[str, Desired]) -> list[str]:
    """What the spec asks of existing groups that apply deliberately leaves alone."""
    notes: list[str] = []
    for change in changes:
        desired, actual = resolved.get(change.key), change.actual
        if desired is None or actual is None or change.action not in ("update", "noop"):
            continue
        who, props = owner(change), desired.props
        if change.kind == "AutoScalingGroup":
            notes += _group_notes(who, actual.id, props, actual.fields, change.diff)
        elif change.kind == "EksNodegroup":
            want = (props.get("scaling") or {}).get("desired")
            have = (actual.fields.get("scaling") or {}).get("desired")
            if _known(want) and _known(have) and want != have:
                name = actual.fields.get("nodegroup_name")
                notes.append(f"{who} ({name}): size.desired {have} -> {want} ignored on an existing group (the "
                             "cluster-autoscaler owns it); set size.min to raise the floor, or scale it now with "
                             f"{_scale_command(who, want)}")
    return notes


def _scale_command(who: str, desired: Any) -> str:
    """`kubeaws scale -f SPEC <group> --desired N` for `nodeGroups[<group>]` (it also offers to write the size
    into the spec)."""
    group = who.removeprefix("nodeGroups[").removesuffix("]")
    return f"`kubeaws scale -f SPEC {group} --desired {desired}`"


def _group_notes(who: str, name: str, props: Mapping[str, Any], fields: Mapping[str, Any],
                 diff: Mapping[str, tuple[Any, Any]]) -> list[str]:
    notes: list[str] = []
    want, have = props.get("desired_capacity"), fields.get("desired_capacity")
    if _known(want) and _known(have) and want != have and not who.startswith("controlPlane"):
        lo, hi = props.get("min_size"), props.get("max_size")
        moved = have
        if isinstance(lo, int) and isinstance(hi, int) and isinstance(have, int):
            moved = min(max(have, lo), hi)
        clamp = f"; apply moves it to {moved} to fit size.min/max" if moved != have else ""
        notes.append(f"{who} ({name}): size.desired {have} -> {want} ignored on an existing group (the "
                     f"cluster-autoscaler and rollouts own its capacity{clamp}); set size.min to raise the floor, "
                     f"or scale it now with {_scale_command(who, want)}")
    pinned, default = fields.get("launch_template_version"), props.get("launch_template_version")
    if _known(pinned) and _known(default) and str(pinned) != str(default) and "launch_template_id" not in diff:
        notes.append(f"{who} ({name}): launches launch template version {pinned}, the template's default is "
                     f"{default}; apply leaves the group there, `kubeaws rollout` moves it")
    return notes
