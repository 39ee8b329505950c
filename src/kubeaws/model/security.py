"""Security-group builder: one group per role (bastion, control plane, nodes, API load balancer) and their
ingress rule sets, derived from the required flows (model.flows). Egress keeps AWS's default.

A role whose group the user brings (`network.securityGroups`) gets a brought SecurityGroup (tagged `shared`
only) and NO rule set: its rules are the user's (`kubeaws doctor` checks them). Rules of kubeaws' own groups
still name the brought group as a source (the Ref resolves to its ID).

Called by `model.build`. Pure.
"""

from __future__ import annotations

from typing import Any

from kubeaws.model.common import Builder
from kubeaws.model.flows import BASTION, CONTROL_PLANE, LB, NODES, Flow, required_flows
from kubeaws.model.network import NetworkRefs
from kubeaws.resources.base import Ref
from kubeaws.spec.models import ClusterSpec

DESCRIPTIONS = {
    BASTION: "kubeaws bastion: SSH from admin networks",
    CONTROL_PLANE: "kubeaws control plane",
    NODES: "kubeaws nodes",
    LB: "kubeaws Kubernetes API load balancer",
}


def roles(b: Builder) -> list[str]:
    return roles_of(b.spec)


def brought_groups(spec: ClusterSpec) -> dict[str, str]:
    """role -> ID of the security groups the spec brings (`network.securityGroups`), for the roles the cluster
    has. Also read by the doctor."""
    given = spec.spec.network.security_groups
    if given is None:
        return {}
    by_role = {CONTROL_PLANE: given.control_plane, NODES: given.nodes, BASTION: given.bastion,
               LB: given.load_balancer}
    has = set(roles_of(spec))
    return {role: sg for role, sg in by_role.items() if sg and role in has}


def roles_of(spec: ClusterSpec) -> list[str]:
    """The roles that have a security group in this cluster."""
    out = [CONTROL_PLANE, NODES] if spec.spec.mode == "eks" else [CONTROL_PLANE, NODES, LB]
    if spec.spec.access.bastion.enabled:
        out.insert(0, BASTION)
    return out


def build_security(b: Builder, net: NetworkRefs) -> dict[str, Ref]:
    """Add the security groups and their rules; return role -> Ref(SecurityGroup)."""
    groups: dict[str, Ref] = {}
    brought = brought_groups(b.spec)
    for role in roles(b):
        if role in brought:
            groups[role] = b.brought("SecurityGroup", role, brought[role])
            continue
        groups[role] = b.owned("SecurityGroup", role, {
            "vpc_id": net.vpc,
            "group_name": b.display(role),
            "description": DESCRIPTIONS[role],
        }, extra_tags={"kubeaws.io/role": role})
    flows = required_flows(b.spec, net.vpc_cidr)
    for role, group in groups.items():
        if role in brought:
            continue  # the user's rules: never managed by kubeaws
        rules = _rules_for(role, flows, groups)
        b.owned("SecurityGroupRules", role, {"group_id": group, "ingress": rules})
    return groups


def _rules_for(target: str, flows: list[Flow], groups: dict[str, Ref]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    seen: set[tuple[object, ...]] = set()
    for f in flows:
        if f.target != target:
            continue
        if f.source == "cidr":
            sources: list[tuple[Any, Any]] = [(cidr, None) for cidr in f.cidrs]
        elif f.source in groups:
            sources = [(None, groups[f.source])]
        else:
            continue
        for cidr, group in sources:
            identity = (f.protocol, f.from_port, f.to_port, str(cidr), str(group))
            if identity in seen:
                continue
            seen.add(identity)
            rules.append({"protocol": f.protocol, "from_port": f.from_port, "to_port": f.to_port,
                          "cidr": cidr, "source_group": group, "description": f.purpose})
    return sorted(rules, key=lambda r: (r["protocol"], r["from_port"], r["to_port"], str(r["cidr"]),
                                        str(r["source_group"])))
