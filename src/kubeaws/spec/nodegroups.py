"""What a node group is called and how its nodes are labelled and tagged, in one place for the model (launch
templates, Auto Scaling groups, managed node groups, cluster-autoscaler node-template tags) and the node
bootstrap (the labels kubelet registers with), so both always agree (docs/kubeadm.md, "Node groups").

- Labels: the group's own `labels`, then kubeaws' `kubeaws.io/node-group`, `kubeaws.io/capacity`
  (on-demand | spot), `kubeaws.io/team` (when `team` is set) and `kubeaws.io/instance-spec`
  (`<vcpus>cpu-<memory>gib` of the FIRST instance type, e.g. m5.large -> 2cpu-8gib: what the scale-from-zero
  node template describes; from the group's instance-type facts: the bundled table, or AWS's answer for a
  newer type once the spec was resolved, `spec.resolve`).
- Tags of the launch template, its instances and volumes: `kubeaws.io/node-group`, and team and
  instance spec as above (the Auto Scaling group adds the capacity and propagates its tags at launch).
- Names: `nodeGroups[].namePattern`, else `spec.nodeGroupNamePattern`, with placeholders {cluster}, {name},
  {team}, {spec}, {shape} (the compact form teams use in group names: `8c64g` for 8 vCPUs and 64 GiB,
  `shape_of`), {capacity}, renders the AWS name of the group's Auto Scaling group (or managed node group),
  its launch template and the instances' Name tag. Without a pattern the names are those kubeaws always
  used: `<cluster>-<name>` for the group, `<cluster>-ng-<name>` (`<cluster>-mng-<name>` for a managed
  group) for the launch template and the instances' Name tag; so are they with a pattern that renders
  `<cluster>-<name>`.

`check_node_groups` holds the validation of `team` and of the patterns (called by `spec.validate`). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kubeaws.errors import FieldProblem
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec

NODE_GROUP_LABEL = "kubeaws.io/node-group"
CAPACITY_LABEL = "kubeaws.io/capacity"
TEAM_LABEL = "kubeaws.io/team"
INSTANCE_SPEC_LABEL = "kubeaws.io/instance-spec"
PLACEHOLDERS = ("cluster", "name", "team", "spec", "shape", "capacity")
DEFAULT_NAME_PATTERN = "{cluster}-{name}"
MAX_TEAM = 63
#: AWS name limits of what a pattern names (the characters allowed everywhere are those of EKS, the strictest).
ASG_NAME_MAX = 255
LAUNCH_TEMPLATE_NAME = (3, 128)
NODEGROUP_NAME_MAX = 63
AWS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
TEAM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def group_instance_spec(ng: NodeGroupSpec) -> str | None:
    """The instance spec of the group's first instance type (`2cpu-8gib`), None when the group's facts do not
    know it (a spec with such a type is refused by `spec.resolve`)."""
    return ng.instance_type_facts.instance_spec(ng.instance_types[0])


def shape_of(vcpus: int, memory_mib: int) -> str:
    """The compact shape teams put in group names: `<vcpus>c<memory>g` (8, 65536 -> `8c64g`); memory that is
    not a whole number of GiB in MiB (2, 15616 -> `2c15616m`), so that it stays a valid AWS name."""
    if memory_mib % 1024 == 0:
        return f"{vcpus}c{memory_mib // 1024}g"
    return f"{vcpus}c{memory_mib}m"


def group_instance_shape(ng: NodeGroupSpec) -> str | None:
    """The shape of the group's first instance type (`8c64g`), None when the group's facts do not know it."""
    found = ng.instance_type_facts.get(ng.instance_types[0])
    return shape_of(found.vcpus, found.memory_mib) if found else None


def kubeaws_labels(ng: NodeGroupSpec) -> dict[str, str]:
    """kubeaws' own labels of the group's nodes (also tags of its Auto Scaling group / managed node group)."""
    labels = {NODE_GROUP_LABEL: ng.name, CAPACITY_LABEL: ng.capacity}
    if ng.team:
        labels[TEAM_LABEL] = ng.team
    spec = group_instance_spec(ng)
    if spec:
        labels[INSTANCE_SPEC_LABEL] = spec
    return labels


def node_labels(ng: NodeGroupSpec) -> dict[str, str]:
    """Every label a node of the group registers with: the group's labels, then kubeaws' (which win)."""
    return {**ng.labels, **kubeaws_labels(ng)}


def launch_tags(ng: NodeGroupSpec) -> dict[str, str]:
    """kubeaws' tags of the group's launch template, instances and volumes (besides the spec/group tags)."""
    return {k: v for k, v in kubeaws_labels(ng).items() if k != CAPACITY_LABEL}


def name_pattern(spec: ClusterSpec, ng: NodeGroupSpec) -> str | None:
    """The pattern naming the group: its own `namePattern`, else `spec.nodeGroupNamePattern`, else None."""
    return ng.name_pattern or spec.spec.node_group_name_pattern


def placeholders(pattern: str) -> list[str]:
    """The placeholder names of a pattern, in order (`{team}-{spec}` -> ['team', 'spec'])."""
    return _PLACEHOLDER.findall(pattern)


def render_pattern(pattern: str, values: Mapping[str, str | None]) -> str:
    """The pattern with each `{placeholder}` replaced by its value (KeyError/ValueError when it has none)."""
    def value(m: re.Match[str]) -> str:
        found = values[m[1]]
        if found is None:
            raise ValueError(f"no value for {{{m[1]}}}")
        return found

    return _PLACEHOLDER.sub(value, pattern)


def placeholder_value(spec: ClusterSpec, ng: NodeGroupSpec, placeholder: str) -> str | None:
    """What `{placeholder}` stands for in the group's names (None: no value, e.g. no team); KeyError if unknown.
    `{spec}` and `{shape}` alone read the instance-type facts, so a spec whose patterns use neither never loads
    the table."""
    if placeholder == "spec":
        return group_instance_spec(ng)
    if placeholder == "shape":
        return group_instance_shape(ng)
    return {"cluster": spec.name, "name": ng.name, "team": ng.team, "capacity": ng.capacity}[placeholder]


def group_name(spec: ClusterSpec, ng: NodeGroupSpec) -> str:
    """AWS name of the group's Auto Scaling group (self-managed) or managed node group, and of its instances'
    Name tag when a pattern is set."""
    pattern = name_pattern(spec, ng) or DEFAULT_NAME_PATTERN
    return render_pattern(pattern, {p: placeholder_value(spec, ng, p) for p in placeholders(pattern)})


def renamed(spec: ClusterSpec, ng: NodeGroupSpec) -> bool:
    """True when a pattern gives the group a name other than the default `<cluster>-<name>`. A pattern that
    renders the default changes nothing, launch template included: an EKS managed node group cannot move to
    another launch template under the same name."""
    return group_name(spec, ng) != render_pattern(DEFAULT_NAME_PATTERN, {"cluster": spec.name, "name": ng.name})


def launch_template_name(spec: ClusterSpec, ng: NodeGroupSpec) -> str:
    """AWS name of the group's launch template (and of its instances' Name tag): the pattern's name, else
    `<cluster>-ng-<name>` / `<cluster>-mng-<name>` (managed)."""
    if renamed(spec, ng):
        return group_name(spec, ng)
    return f"{spec.name}-{'mng' if ng.type == 'managed' else 'ng'}-{ng.name}"


def check_node_groups(spec: ClusterSpec) -> list[FieldProblem]:
    """Problems of `nodeGroups[].team`, the name patterns and the names they render."""
    problems: list[FieldProblem] = []
    for i, ng in enumerate(spec.spec.node_groups):
        if ng.team is not None and (not TEAM.fullmatch(ng.team) or len(ng.team) > MAX_TEAM):
            problems.append(FieldProblem(
                f"spec.nodeGroups[{i}].team", f"`{ng.team}` is not a valid team",
                f"use 1-{MAX_TEAM} lowercase letters, digits and '-', starting and ending with a letter or digit "
                "(it becomes the value of the label and tag kubeaws.io/team)"))
    bad_patterns = _check_patterns(spec, problems)
    if bad_patterns or problems:
        return problems  # names rendered from a broken pattern or team would only repeat the problem
    _check_names(spec, problems)
    return problems


def _pattern_path(spec: ClusterSpec, i: int) -> str:
    if spec.spec.node_groups[i].name_pattern:
        return f"spec.nodeGroups[{i}].namePattern"
    return "spec.nodeGroupNamePattern" if spec.spec.node_group_name_pattern else f"spec.nodeGroups[{i}].name"


def _check_patterns(spec: ClusterSpec, problems: list[FieldProblem]) -> bool:
    """Report unknown placeholders, stray braces, and {team}/{spec} a group cannot fill; True if any."""
    before = len(problems)
    patterns = [("spec.nodeGroupNamePattern", spec.spec.node_group_name_pattern)]
    patterns += [(f"spec.nodeGroups[{i}].namePattern", ng.name_pattern) for i, ng in enumerate(spec.spec.node_groups)]
    known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    for path, pattern in patterns:
        if pattern is None:
            continue
        for name in placeholders(pattern):
            if name not in PLACEHOLDERS:
                problems.append(FieldProblem(path, f"unknown placeholder {{{name}}} in `{pattern}`",
                                             f"use only {known}, e.g. {{team}}-{{spec}}-{{cluster}}"))
        if "{" in _PLACEHOLDER.sub("", pattern) or "}" in _PLACEHOLDER.sub("", pattern):
            problems.append(FieldProblem(path, f"unbalanced brace in `{pattern}`",
                                         f"write placeholders as {{name}}: {known}"))
        if not _PLACEHOLDER.sub("", pattern) and not placeholders(pattern):
            problems.append(FieldProblem(path, "the name pattern is empty",
                                         f"remove it (default {DEFAULT_NAME_PATTERN}) or use placeholders {known}"))
    if len(problems) > before:
        return True
    for i, ng in enumerate(spec.spec.node_groups):
        pattern = name_pattern(spec, ng)
        used = set(placeholders(pattern or ""))
        where = _pattern_path(spec, i)
        if "team" in used and not ng.team:
            problems.append(FieldProblem(
                f"spec.nodeGroups[{i}].team",
                f"node group `{ng.name}` has no team, but its name pattern `{pattern}` ({where}) uses {{team}}",
                f"set nodeGroups[{i}].team, or give the group a namePattern without {{team}}"))
    return len(problems) > before


def _check_names(spec: ClusterSpec, problems: list[FieldProblem]) -> None:
    """Rendered names: characters and length per AWS kind, and unique per kind (control plane included)."""
    owners: dict[tuple[str, str], str] = {}
    if spec.spec.mode == "kubeadm":  # the names model.control_plane gives the control plane's resources
        owners[("launch template", f"{spec.name}-control-plane")] = "the control plane"
        for m in range(spec.spec.control_plane.count):
            owners[("Auto Scaling group", f"{spec.name}-control-plane-{m}")] = "the control plane"
    seen: set[str] = set()
    for i, ng in enumerate(spec.spec.node_groups):
        if ng.name in seen:
            continue  # a duplicated group name is reported by spec.validate
        seen.add(ng.name)
        if {"spec", "shape"} & set(placeholders(name_pattern(spec, ng) or "")) and group_instance_spec(ng) is None:
            continue  # {spec}/{shape} of a type the facts do not know yet: checked once spec.resolve knows it
        path, patterned = _pattern_path(spec, i), name_pattern(spec, ng) is not None
        group_kind, limit = (("EKS node group", NODEGROUP_NAME_MAX) if ng.type == "managed"
                             else ("Auto Scaling group", ASG_NAME_MAX))
        fix = ("shorten the pattern's fixed text or drop a placeholder" if patterned
               else "shorten the group or cluster name, or set a shorter spec.nodeGroupNamePattern")
        for kind, name, (low, high) in ((group_kind, group_name(spec, ng), (1, limit)),
                                        ("launch template", launch_template_name(spec, ng), LAUNCH_TEMPLATE_NAME)):
            if patterned and not AWS_NAME.fullmatch(name):
                problems.append(FieldProblem(path, f"renders the {kind} name `{name}` for node group `{ng.name}`, "
                                             "which AWS does not accept",
                                             "use only letters, digits, '-' and '_' around the placeholders, "
                                             "starting with a letter or digit"))
            elif not low <= len(name) <= high:
                problems.append(FieldProblem(path, f"the {kind} name `{name}` of node group `{ng.name}` has "
                                             f"{len(name)} characters (AWS allows {low}-{high})", fix))
            other = owners.setdefault((kind, name), f"nodeGroups[{i}] (`{ng.name}`)")
            if other != f"nodeGroups[{i}] (`{ng.name}`)":
                problems.append(FieldProblem(path, f"node group `{ng.name}` gets the {kind} name `{name}`, "
                                             f"already the name of {other}",
                                             "add {name} (or another placeholder that differs) to the pattern so "
                                             "every group gets its own name"))
