"""Instance types of a loaded spec against the facts that say they exist: an unknown type is a spec problem
(exit 2, field path, line, did-you-mean) before anything reads its limits, in every mode and for every machine
kubeaws launches (the bastion when enabled, the kubeadm control plane, every node group's types).

`spec.load` checks only the form of a type (`family.size`); a type is known when the bundled table has it
(`spec.instance_types`) or when ec2:DescribeInstanceTypes answered for it. The caller brings the facts
(`InstanceTypes`): `kubeaws.api` builds them from the table plus one DescribeInstanceTypes call for the names
the table lacks (`unresolved`); `render`, the model built without them, and doctor use the table alone
(`BUNDLED`), and then a type newer than the table is refused with a hint that `plan` / `apply` ask AWS.

`resolve` returns the spec carrying the facts (`ClusterSpec.with_instance_types`), so that every reader of a
group's limits (max pods, the instance-spec label, the `{spec}` name placeholder) reads the same ones; the
rules that read them (max pods, rendered node-group names) run again with them. Pure: no AWS call here.
"""

from __future__ import annotations

from kubeaws.errors import FieldProblem
from kubeaws.spec.instance_types import BUNDLED, InstanceTypes, family, table
from kubeaws.spec.maxpods import check_max_pods
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.nodegroups import check_node_groups
from kubeaws.spec.paths import PathPart, format_path, located


def instance_type_fields(spec: ClusterSpec) -> list[tuple[list[PathPart], str]]:
    """(field path, instance type) of every machine kubeaws launches for the spec."""
    body = spec.spec
    fields: list[tuple[list[PathPart], str]] = []
    if body.access.bastion.enabled:
        fields.append((["spec", "access", "bastion", "instanceType"], body.access.bastion.instance_type))
    if body.mode == "kubeadm":
        fields.append((["spec", "controlPlane", "instanceType"], body.control_plane.instance_type))
    for i, group in enumerate(body.node_groups):
        fields.extend((["spec", "nodeGroups", i, "instanceTypes", j], t) for j, t in enumerate(group.instance_types))
    return fields


def unresolved(spec: ClusterSpec, types: InstanceTypes = BUNDLED) -> list[str]:
    """The spec's instance types that `types` does not know (sorted, once each): what to ask AWS about."""
    return sorted({t for _, t in instance_type_fields(spec) if t not in types})


def _unknown(path: list[PathPart], name: str, types: InstanceTypes, region: str) -> FieldProblem:
    known_family = types.asked_aws or any(family(t) == family(name) for t in table())
    close = types.suggestions(name) if known_family else []  # offline, another family is no better a guess
    mean = f"did you mean {', '.join(f'`{c}`' for c in close)}? " if close else ""
    if types.asked_aws:
        return FieldProblem(format_path(path), f"`{name}` is not an EC2 instance type AWS offers in {region} "
                            "(ec2:DescribeInstanceTypes does not know it)",
                            f"{mean}see `aws ec2 describe-instance-types --region {region}` for the types there")
    what = "" if known_family else f" (it has no {family(name)} types)"
    return FieldProblem(format_path(path), f"`{name}` is not in kubeaws' bundled instance-type table{what}, and "
                        "this command does not ask AWS", f"{mean}a real type newer than the table is accepted by "
                        "`kubeaws plan` and `kubeaws apply`, which ask ec2:DescribeInstanceTypes for it")


def instance_type_problems(spec: ClusterSpec, types: InstanceTypes) -> list[FieldProblem]:
    """Every instance type `types` does not know, and, with the facts of those it knows, the problems of the
    rules that read them (max pods, node-group names with `{spec}`)."""
    return _checked(spec, types)[1]


def _checked(spec: ClusterSpec, types: InstanceTypes) -> tuple[ClusterSpec, list[FieldProblem]]:
    region = spec.spec.region
    problems = [_unknown(path, name, types, region) for path, name in instance_type_fields(spec)
                if name not in types]
    with_facts = spec.with_instance_types(types)
    return with_facts, problems + check_max_pods(with_facts) + check_node_groups(with_facts)


def resolve(spec: ClusterSpec, types: InstanceTypes = BUNDLED) -> ClusterSpec:
    """The spec carrying `types` as its instance-type facts; a SpecError (every problem, each with the line of
    its field) when a type is unknown there or a rule reading the facts fails."""
    with_facts, problems = _checked(spec, types)
    if problems:
        raise located(spec, problems)
    return with_facts
