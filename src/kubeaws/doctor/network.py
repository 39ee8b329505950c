"""Doctor checks of the network: pod network reachability between roles (problems 1 and 2: every flow of
`model.flows.required_flows` allowed by the target role's security-group rules), the reachability matrix
shown by `kubeaws doctor`, exposure (sensitive ports open to the world, IMDSv1, unencrypted disks) and
address ranges that overlap.

Every check takes (spec, graph[, facts]) and returns findings; they read the SecurityGroupRules,
LaunchTemplate, Instance, Volume and EksCluster props of the graph `model.build` makes, so they also protect
against regressions in the generated resources. Security groups the user brings have no rules in the graph:
their ACTUAL ingress rules come from `facts` (doctor.brought, read-only describes); without facts their flows
are not checked (an info finding says so). Registered by doctor.static. Pure: no AWS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, NamedTuple

from kubeaws.doctor.brought import BroughtFacts, GroupFacts, check_brought_network, role_subnets
from kubeaws.doctor.findings import Finding
from kubeaws.model.flows import (
    BASTION,
    CONTROL_PLANE,
    LB,
    NODE_ROLES,
    Cidr,
    Flow,
    documentation_cidrs,
    documentation_range_message,
    required_flows,
)
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Computed, Ref
from kubeaws.spec.models import ClusterSpec

WORLD = ("0.0.0.0/0", "::/0")
#: (protocol, from, to, what) of the ports that must not be open to the world: admin access (SSH, the API),
#: etcd, the kubelet, and the NodePort range (every NodePort service of every node); 443 only on the control
#: plane (the EKS API through the cluster security group). Also read by doctor.live_resources.
SENSITIVE = (("tcp", 22, 22, "SSH"), ("tcp", 6443, 6443, "the Kubernetes API"), ("tcp", 2379, 2380, "etcd"),
             ("tcp", 10250, 10250, "the kubelet API"), ("tcp", 30000, 32767, "NodePort services"),
             ("udp", 30000, 32767, "NodePort services"))
EKS_API = ("tcp", 443, 443, "the Kubernetes API (EKS)")
#: Stands in for a source whose addresses could not be read (its subnets and the VPC are unreadable).
UNKNOWN_SOURCE = "(addresses of unreadable subnets)"


class MatrixRow(NamedTuple):
    """One role-to-role flow of the reachability matrix and whether the target's rules allow it."""

    source: str
    target: str
    purpose: str
    ok: bool


def vpc_cidr_of(spec: ClusterSpec) -> Cidr:
    """The VPC CIDR as the model uses it: the spec's for a new VPC, a Ref to the brought VPC's otherwise."""
    vpc = spec.spec.network.vpc
    return vpc.cidr if vpc.cidr and not vpc.id else Ref("Vpc", "main", "cidr")


def ingress(graph: Graph, role: str) -> list[dict[str, Any]] | None:
    """The ingress rules the graph gives a role's security group, or None when the graph has no such group or
    the group is brought (its rules are not in the graph: see `brought_group`)."""
    if f"SecurityGroup/{role}" not in graph or graph[f"SecurityGroup/{role}"].brought_id:
        return None
    key = f"SecurityGroupRules/{role}"
    return list(graph[key].props.get("ingress") or []) if key in graph else []


def _net(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def cidr_covers(outer: object, inner: object) -> bool:
    """Whether the range `outer` contains `inner` (equal Refs count: the brought VPC's CIDR)."""
    if isinstance(outer, Ref | Computed) or isinstance(inner, Ref | Computed):
        return outer == inner  # the same address of a resource (the brought VPC's CIDR, a NAT address)
    a, b = _net(outer), _net(inner)
    return a is not None and b is not None and a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]


def _ports_cover(rule: dict[str, Any], flow: Flow) -> bool:
    if rule["protocol"] == "-1":
        return True
    if rule["protocol"] != flow.protocol:
        return False
    if flow.protocol == "4" or rule["from_port"] == -1:
        return True
    if flow.from_port == -1:
        return False
    return bool(rule["from_port"] <= flow.from_port and rule["to_port"] >= flow.to_port)


def _source_matches(rule: dict[str, Any], source: str | Cidr, vpc_cidr: Cidr) -> bool:
    group = rule.get("source_group")
    cidr = rule.get("cidr")
    if source in (*NODE_ROLES, BASTION, LB):
        if isinstance(group, Ref) and group.kind == "SecurityGroup" and group.name == source:
            return True
        return cidr is not None and cidr_covers(cidr, vpc_cidr)  # every role lives in the VPC
    return cidr is not None and cidr_covers(cidr, source)


def allowed(rules: Iterable[dict[str, Any]], flow: Flow, vpc_cidr: Cidr) -> bool:
    """Whether `rules` (ingress of the flow's target) let the flow in; a CIDR flow needs every CIDR."""
    rules = [r for r in rules if _ports_cover(r, flow)]
    sources: tuple[str | Cidr, ...] = flow.cidrs if flow.source == "cidr" else (flow.source,)
    return all(any(_source_matches(r, s, vpc_cidr) for r in rules) for s in sources)


# -- brought groups: their actual rules, from the facts -------------------------------------------------------
def brought_group(graph: Graph, facts: BroughtFacts | None, role: str) -> GroupFacts | None:
    """The facts of a role's brought group, when the role's group is brought and could be read."""
    key = f"SecurityGroup/{role}"
    if facts is None or key not in graph:
        return None
    brought_id = graph[key].brought_id
    return facts.groups.get(brought_id) if brought_id else None


def source_group_id(graph: Graph, facts: BroughtFacts, role: str) -> str | None:
    """The ID of a source role's group: the brought one, or kubeaws' own once it exists."""
    key = f"SecurityGroup/{role}"
    if key in graph and graph[key].brought_id:
        return graph[key].brought_id
    return facts.owned_groups.get(role)


def source_cidrs(spec: ClusterSpec, facts: BroughtFacts, role: str) -> list[str]:
    """The address ranges a role's traffic comes from: its subnets' CIDRs when they were read, else the VPC's
    CIDRs (a rule must contain all of them to let the whole role in)."""
    subnets = [facts.subnets[s].cidr for s in role_subnets(spec, role) if s in facts.subnets]
    if subnets and len(subnets) == len(role_subnets(spec, role)):
        return subnets
    return list(facts.vpc.cidrs[:1]) if facts.vpc else []


def _concrete(cidr: Cidr, facts: BroughtFacts) -> str | None:
    """A flow CIDR with the brought VPC's CIDR Ref resolved from the facts."""
    if isinstance(cidr, Ref):
        return facts.vpc.cidrs[0] if facts.vpc else None
    if isinstance(cidr, Computed):
        return None  # known after apply (a NAT gateway's address)
    return cidr


def missing_sources(spec: ClusterSpec, graph: Graph, facts: BroughtFacts, group: GroupFacts,
                    flow: Flow) -> list[str]:
    """The sources of `flow` that no ingress rule of the brought `group` lets in ([] = allowed): a source
    group ID, or CIDRs. A rule allows when its protocol is -1 or equal with the ports inside its range, and
    its source is the source role's group (a self-reference when both are the same group) or a CIDR holding
    every address the source sends from."""
    rules = [r for r in group.ingress if _ports_cover(r, flow)]
    if flow.source == "cidr":
        wanted = [c for c in (_concrete(c, facts) for c in flow.cidrs) if c is not None]
        return [c for c in wanted if not any(r.get("cidr") and cidr_covers(r["cidr"], c) for r in rules)]
    sg = source_group_id(graph, facts, flow.source)
    if sg is not None and any(r.get("source_group") == sg for r in rules):
        return []
    cidrs = source_cidrs(spec, facts, flow.source)
    if cidrs and all(any(r.get("cidr") and cidr_covers(r["cidr"], c) for r in rules) for c in cidrs):
        return []
    return [sg] if sg is not None else (cidrs or [UNKNOWN_SOURCE])


def present_roles(graph: Graph) -> set[str]:
    """The roles whose component exists in the graph: a role with a security group, except the API load
    balancer's when the graph has no load balancer (one private control-plane member is reached on its own
    network interface: nothing sends from, or listens on, the load balancer's group)."""
    roles = {d.name for d in graph.of_kind("SecurityGroup")}
    if not graph.of_kind("LoadBalancer"):
        roles.discard(LB)
    return roles


def existing_flows(spec: ClusterSpec, graph: Graph) -> list[Flow]:
    """The required flows (model.flows) between components that exist: a flow from or to a role without a
    component is never sent, so it is not required (its rule in kubeaws' own groups is harmless)."""
    present = present_roles(graph)
    return [f for f in required_flows(spec, vpc_cidr_of(spec))
            if f.target in present and (f.source == "cidr" or f.source in present)]


def checked_flows(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None = None) -> list[tuple[Flow, bool]]:
    """Every required flow between existing components whose target group's rules are known (generated in
    the graph, or read from a brought group), with whether those rules allow it."""
    vpc_cidr = vpc_cidr_of(spec)
    out: list[tuple[Flow, bool]] = []
    for flow in existing_flows(spec, graph):
        rules = ingress(graph, flow.target)
        if rules is not None:
            out.append((flow, allowed(rules, flow, vpc_cidr)))
            continue
        group = brought_group(graph, facts, flow.target)
        if group is not None and facts is not None:
            out.append((flow, not missing_sources(spec, graph, facts, group, flow)))
    return out


def matrix(spec: ClusterSpec, graph: Graph | None = None, facts: BroughtFacts | None = None) -> list[MatrixRow]:
    """The role-to-role part of the required flows (source role, target role, purpose with protocol and
    ports, allowed?), for the text output of `kubeaws doctor`. Flows into brought groups appear only with
    `facts` (their rules read from AWS)."""
    if graph is None:
        from kubeaws.model import build

        graph = build(spec)
    return [MatrixRow(f.source, f.target, f"{f.purpose} ({describe(f)})", ok)
            for f, ok in checked_flows(spec, graph, facts) if f.source != "cidr"]


def _proto(flow: Flow) -> str:
    return {"-1": "all", "4": "ip-in-ip"}.get(flow.protocol, flow.protocol)


def describe(flow: Flow) -> str:
    """"tcp 179", "udp 53", "all traffic", "ip-in-ip", "icmp"."""
    if flow.protocol == "-1":
        return "all traffic"
    if flow.protocol == "4" or flow.from_port == -1:
        return _proto(flow)
    return f"{flow.protocol} {flow.ports()}"


def check_pod_network(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None = None) -> list[Finding]:
    """Problem 1/2: a required flow that no rule of the target group allows. For a brought group, the rule
    missing from its actual rules is named with the exact `aws ec2 authorize-security-group-ingress` command;
    a brought group that cannot be read or sits in another VPC is an error; without facts, an info."""
    findings: list[Finding] = []
    findings += _brought_group_problems(spec, graph, facts)
    for flow, ok in checked_flows(spec, graph, facts):
        if ok:
            continue
        group = None if ingress(graph, flow.target) is not None else brought_group(graph, facts, flow.target)
        if group is not None and facts is not None:
            findings.append(_brought_missing(spec, graph, facts, group, flow))
            continue
        source = (", ".join(str(c) for c in flow.cidrs) if flow.source == "cidr"
                  else f"security group {flow.source}")
        pod = flow.source in NODE_ROLES and flow.target in NODE_ROLES
        findings.append(Finding(
            "error", "pod-network.missing-flow" if pod else "network.missing-flow",
            f"{flow.purpose}: {flow.source} -> {flow.target} ({describe(flow)}) is not allowed",
            f"SecurityGroup/{flow.target}",
            f"add an ingress rule to security group {flow.target}: protocol {_proto(flow)}, ports "
            f"{flow.ports()}, from {source}"))
    return findings


def _world_rules(graph: Graph, facts: BroughtFacts | None) -> Iterable[tuple[str, dict[str, Any]]]:
    """(role, rule) of every ingress rule open to the world: generated ones, and brought groups' actual ones."""
    sources = [(rules.name, list(rules.props.get("ingress") or [])) for rules in graph.of_kind("SecurityGroupRules")]
    sources += [(d.name, list(group.ingress)) for d in graph.of_kind("SecurityGroup")
                if (group := brought_group(graph, facts, d.name)) is not None]
    for role, rules in sources:
        for rule in rules:
            net = _net(rule.get("cidr"))
            if net is not None and net.prefixlen == 0:
                yield role, rule


def _opens(rule: dict[str, Any], protocol: str, lo: int, hi: int) -> bool:
    if rule["protocol"] == "-1":
        return True
    if rule["protocol"] != protocol:
        return False
    return bool(rule["from_port"] == -1 or (rule["from_port"] <= hi and rule["to_port"] >= lo))


def _world_fix(what: str) -> str:
    if what == "NodePort services":
        return ("list the networks that use the NodePorts in network.nodePortCIDRs (default: the VPC), or put "
                "the services behind a load balancer; set access.allowWorldAccess if the world is meant")
    return "restrict access.adminCIDRs to your networks, or reach the cluster through the bastion"


def check_exposure(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None = None) -> list[Finding]:
    """Sensitive ports (SENSITIVE: SSH, the API, etcd, the kubelet, NodePorts) open to 0.0.0.0/0 or ::/0
    (brought groups' actual rules too, with facts), a public EKS endpoint open to the world, IMDSv1 allowed,
    unencrypted block devices and volumes. With `access.allowWorldAccess` world-open ports are warnings."""
    findings: list[Finding] = []
    acknowledged = spec.spec.access.allow_world_access
    for role, rule in _world_rules(graph, facts):
        ports = [*SENSITIVE, *((EKS_API,) if role == CONTROL_PLANE else ())]
        for protocol, lo, hi, what in ports:
            if _opens(rule, protocol, lo, hi):
                findings.append(Finding(
                    "warning" if acknowledged else "error", "exposure.world-open",
                    f"{what} ({protocol} {lo if lo == hi else f'{lo}-{hi}'}) of {role} is open to {rule['cidr']}"
                    + (" (access.allowWorldAccess is set)" if acknowledged else ""),
                    f"SecurityGroup/{role}", _world_fix(what)))
    findings += _world_spec_ranges(spec, graph)
    for cluster in graph.of_kind("EksCluster"):
        cidrs = cluster.props.get("public_access_cidrs") or []
        if cluster.props.get("endpoint_public") and (not cidrs or any(c in WORLD for c in cidrs)):
            findings.append(Finding(
                "warning" if acknowledged else "error", "exposure.world-open",
                "the public EKS API endpoint accepts the whole internet", cluster.key,
                "list your networks in access.adminCIDRs (public access CIDRs), or use apiEndpoint: private"))
    for d in [*graph.of_kind("LaunchTemplate"), *graph.of_kind("Instance")]:
        tokens = (d.props.get("metadata_options") or {}).get("http_tokens")
        if tokens != "required":
            findings.append(Finding(
                "error", "exposure.imdsv1", f"{d.key} allows IMDSv1 (http_tokens {tokens or 'unset'})", d.key,
                "set metadata_options http_tokens: required (IMDSv2 only)"))
    for d in graph.of_kind("LaunchTemplate"):
        for dev in d.props.get("block_devices") or []:
            if not dev.get("encrypted"):
                findings.append(_unencrypted(d.key, f"block device {dev.get('device_name') or 'root'}"))
    for d in graph.of_kind("Instance"):
        if not (d.props.get("root_volume") or {}).get("encrypted"):
            findings.append(_unencrypted(d.key, "root volume"))
    for d in graph.of_kind("Volume"):
        if not d.props.get("encrypted"):
            findings.append(_unencrypted(d.key, "volume"))
    return findings


def check_access(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Admin and NodePort ranges inside a documentation range (the 203.0.113.0/24 `kubeaws init` writes): a
    warning, also shown by plan and apply (kubeaws.api)."""
    return [Finding("warning", "access.documentation-range", documentation_range_message(path, cidr), path,
                    "list your office/VPN range (or your address as /32) instead")
            for path, cidr in documentation_cidrs(spec)]


def _world_spec_ranges(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """World ranges the spec asks for (network.nodePortCIDRs, access.adminCIDRs) into a BROUGHT group: kubeaws
    makes no rule there (so the rule check above cannot see them), yet the spec asks the user to open it."""
    brought = {d.name for d in graph.of_kind("SecurityGroup") if d.brought_id}
    acknowledged = spec.spec.access.allow_world_access
    findings: list[Finding] = []
    for flow in existing_flows(spec, graph):
        world = [c for c in flow.cidrs if isinstance(c, str) and (n := _net(c)) is not None and n.prefixlen == 0]
        if flow.source != "cidr" or flow.target not in brought or not world:
            continue
        field = "network.nodePortCIDRs" if flow.purpose == "NodePort services" else "access.adminCIDRs"
        findings.append(Finding(
            "warning" if acknowledged else "error", "exposure.world-open",
            f"spec.{field} asks the brought {flow.target} group to open {flow.purpose} ({describe(flow)}) to "
            f"{', '.join(world)}" + (" (access.allowWorldAccess is set)" if acknowledged else ""),
            f"spec.{field}", _world_fix("NodePort services" if "nodePort" in field else flow.purpose)))
    return findings


def _unencrypted(key: str, what: str) -> Finding:
    return Finding("error", "exposure.unencrypted", f"{key}: {what} is not encrypted", key,
                   "set encrypted: true (EBS encryption with the account's default KMS key)")


def check_addressing(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None = None) -> list[Finding]:
    """VPC, pod and service ranges that overlap (also refused when the spec is loaded; kept for specs built
    in code). The pod range does not apply with the AWS VPC CNI (pods take VPC addresses). With facts, the
    brought VPC / subnets too (doctor.brought.check_brought_network)."""
    net = spec.spec.network
    named = [("network.vpc.cidr", net.vpc.cidr if not net.vpc.id else None),
             ("network.podCIDR", None if spec.spec.cni == "aws-vpc-cni" else net.pod_cidr),
             ("network.serviceCIDR", net.service_cidr)]
    parsed = [(name, _net(value)) for name, value in named]
    findings: list[Finding] = []
    for i, (name_a, a) in enumerate(parsed):
        for name_b, b in parsed[i + 1:]:
            if a is not None and b is not None and a.version == b.version and a.overlaps(b):
                findings.append(Finding(
                    "error", "addressing.overlap", f"{name_b} {b} overlaps {name_a} {a}", f"spec.{name_b}",
                    "pick ranges that do not overlap, e.g. VPC 10.0.0.0/16, pods 192.168.0.0/16, services "
                    "10.96.0.0/12"))
    return findings + check_brought_network(spec, facts)


# -- brought groups: findings -----------------------------------------------------------------------------
def _brought_group_problems(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None) -> list[Finding]:
    """Brought groups not checked (no facts), unreadable, or outside the brought VPC."""
    brought = {d.name: d.brought_id for d in graph.of_kind("SecurityGroup") if d.brought_id}
    if not brought:
        return []
    if facts is None:
        return [Finding("info", "pod-network.brought-unchecked", "the rules of the brought security group(s) "
                        + ", ".join(f"{role} {sg}" for role, sg in sorted(brought.items()))
                        + " are not checked without reading them from AWS", "spec.network.securityGroups",
                        "run `kubeaws doctor` with AWS access to the account (read-only describes)")]
    findings: list[Finding] = []
    unreadable = {u.id: u.reason for u in facts.unreadable if u.kind == "SecurityGroup"}
    vpc = spec.spec.network.vpc.id
    for role, sg in sorted(brought.items()):
        if sg in unreadable:
            findings.append(Finding(
                "error", "pod-network.brought-unreadable", f"{role} security group {sg} could not be read: "
                f"{unreadable[sg]}", f"SecurityGroup/{role}", f"check that {sg} exists in "
                f"{facts.region or 'the region'} and that the credentials may call ec2:DescribeSecurityGroups"))
        elif sg in facts.groups and vpc and facts.groups[sg].vpc_id != vpc:
            findings.append(Finding(
                "error", "pod-network.brought-wrong-vpc", f"{role} security group {sg} is in VPC "
                f"{facts.groups[sg].vpc_id}, not in the brought VPC {vpc}", f"SecurityGroup/{role}",
                f"use a security group of {vpc} for securityGroups (instances cannot use a group of another VPC)"))
    return findings


def _brought_missing(spec: ClusterSpec, graph: Graph, facts: BroughtFacts, group: GroupFacts,
                     flow: Flow) -> Finding:
    """`nodes SG sg-0abc lacks ingress udp 8472 from sg-0def (flannel VXLAN)`, with the command that adds it."""
    missing = missing_sources(spec, graph, facts, group, flow)
    pod = flow.source in NODE_ROLES and flow.target in NODE_ROLES
    note = ""
    if flow.source != "cidr" and source_group_id(graph, facts, flow.source) is None:
        note = (f" (kubeaws creates the {flow.source} group at apply: until then only a rule for its subnets' "
                "addresses can allow it)")
    if UNKNOWN_SOURCE in missing:
        hint = (f"add an ingress rule to {group.id}: protocol {_proto(flow)}, ports {flow.ports()}, from the "
                f"addresses of the {flow.source} subnets (they could not be read)")
    else:
        hint = " && ".join(authorize_command(group.id, flow, source, facts.region) for source in missing)
    return Finding(
        "error", "pod-network.missing-flow" if pod else "network.missing-flow",
        f"{flow.target} SG {group.id} lacks ingress {describe(flow)} from {', '.join(missing)} "
        f"({flow.purpose}){note}", f"SecurityGroup/{flow.target}", hint)


def authorize_command(group_id: str, flow: Flow, source: str, region: str = "") -> str:
    """The exact AWS CLI command adding the rule: `--source-group` for a group, `--cidr` for a range."""
    parts = ["aws ec2 authorize-security-group-ingress"]
    if region:
        parts.append(f"--region {region}")
    parts += [f"--group-id {group_id}", f"--protocol {flow.protocol}"]
    if flow.protocol in ("tcp", "udp", "icmp"):
        ports = str(flow.from_port) if flow.from_port == flow.to_port else f"{flow.from_port}-{flow.to_port}"
        parts.append(f"--port {ports}")
    parts.append(f"--source-group {source}" if source.startswith("sg-") else f"--cidr {source}")
    return " ".join(parts)
