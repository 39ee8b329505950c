"""Doctor checks of the network: pod network reachability between roles (problems 1 and 2: every flow of
`model.flows.required_flows` allowed by the target role's security-group rules), the reachability matrix
shown by `kubeaws doctor`, exposure (sensitive ports open to the world, IMDSv1, unencrypted disks) and
address ranges that overlap.

Every check takes (spec, graph) and returns findings; they read the SecurityGroupRules, LaunchTemplate,
Instance, Volume and EksCluster props of the graph `model.build` makes, so they also protect against
regressions in the generated resources and, later, against brought ones. Registered by doctor.static.
Pure: no AWS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, NamedTuple

from kubeaws.doctor.findings import Finding
from kubeaws.model.flows import BASTION, CONTROL_PLANE, LB, NODE_ROLES, Cidr, Flow, required_flows
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Ref
from kubeaws.spec.models import ClusterSpec

WORLD = ("0.0.0.0/0", "::/0")
#: (from, to, what) of the TCP ports that must never be open to the world; 443 only on the control plane
#: (the EKS API through the cluster security group).
SENSITIVE = ((22, 22, "SSH"), (6443, 6443, "the Kubernetes API"), (2379, 2380, "etcd"),
             (10250, 10250, "the kubelet API"))
EKS_API = (443, 443, "the Kubernetes API (EKS)")


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
    """The ingress rules of a role's security group, or None when the graph has no such group."""
    if f"SecurityGroup/{role}" not in graph:
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
    if isinstance(outer, Ref) or isinstance(inner, Ref):
        return outer == inner
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


def checked_flows(spec: ClusterSpec, graph: Graph) -> list[tuple[Flow, bool]]:
    """Every required flow whose target group is in the graph, with whether its rules allow it."""
    vpc_cidr = vpc_cidr_of(spec)
    out: list[tuple[Flow, bool]] = []
    for flow in required_flows(spec, vpc_cidr):
        rules = ingress(graph, flow.target)
        if rules is not None:
            out.append((flow, allowed(rules, flow, vpc_cidr)))
    return out


def matrix(spec: ClusterSpec, graph: Graph | None = None) -> list[MatrixRow]:
    """The role-to-role part of the required flows (source role, target role, purpose with protocol and
    ports, allowed?), for the text output of `kubeaws doctor`."""
    if graph is None:
        from kubeaws.model import build

        graph = build(spec)
    return [MatrixRow(f.source, f.target, f"{f.purpose} ({describe(f)})", ok)
            for f, ok in checked_flows(spec, graph) if f.source != "cidr"]


def _proto(flow: Flow) -> str:
    return {"-1": "all", "4": "ip-in-ip"}.get(flow.protocol, flow.protocol)


def describe(flow: Flow) -> str:
    """"tcp 179", "udp 53", "all traffic", "ip-in-ip", "icmp"."""
    if flow.protocol == "-1":
        return "all traffic"
    if flow.protocol == "4" or flow.from_port == -1:
        return _proto(flow)
    return f"{flow.protocol} {flow.ports()}"


def check_pod_network(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Problem 1/2: a required flow that no rule of the target group allows."""
    findings: list[Finding] = []
    for flow, ok in checked_flows(spec, graph):
        if ok:
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


def _world_rules(graph: Graph) -> Iterable[tuple[str, dict[str, Any]]]:
    for rules in graph.of_kind("SecurityGroupRules"):
        for rule in rules.props.get("ingress") or []:
            net = _net(rule.get("cidr"))
            if net is not None and net.prefixlen == 0:
                yield rules.name, rule


def _opens(rule: dict[str, Any], lo: int, hi: int) -> bool:
    if rule["protocol"] == "-1":
        return True
    if rule["protocol"] != "tcp":
        return False
    return bool(rule["from_port"] == -1 or (rule["from_port"] <= hi and rule["to_port"] >= lo))


def check_exposure(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Sensitive ports open to 0.0.0.0/0 or ::/0, a public EKS endpoint open to the world, IMDSv1 allowed,
    unencrypted block devices and volumes. With `access.allowWorldAccess` world-open ports are warnings."""
    findings: list[Finding] = []
    acknowledged = spec.spec.access.allow_world_access
    for role, rule in _world_rules(graph):
        ports = [*SENSITIVE, *((EKS_API,) if role == CONTROL_PLANE else ())]
        for lo, hi, what in ports:
            if _opens(rule, lo, hi):
                findings.append(Finding(
                    "warning" if acknowledged else "error", "exposure.world-open",
                    f"{what} (tcp {lo if lo == hi else f'{lo}-{hi}'}) of {role} is open to {rule['cidr']}"
                    + (" (access.allowWorldAccess is set)" if acknowledged else ""),
                    f"SecurityGroup/{role}", "restrict access.adminCIDRs to your networks, or reach the "
                    "cluster through the bastion"))
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


def _unencrypted(key: str, what: str) -> Finding:
    return Finding("error", "exposure.unencrypted", f"{key}: {what} is not encrypted", key,
                   "set encrypted: true (EBS encryption with the account's default KMS key)")


def check_addressing(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """VPC, pod and service ranges that overlap (also refused when the spec is loaded; kept for specs built
    in code). The pod range does not apply with the AWS VPC CNI (pods take VPC addresses)."""
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
    return findings
