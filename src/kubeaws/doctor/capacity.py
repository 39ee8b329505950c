"""Doctor checks of capacity: pod IP capacity with the AWS VPC CNI (problem 5: maxPods above what the
instance type's ENIs allow, instance types kubeaws cannot size, private subnets too small for the node groups
at their maximum size), storage for Rook/Ceph (problem 3: raw extra EBS disks on enough hosts), and the AWS
quotas a large spec runs into (Auto Scaling groups per region, EKS managed node groups,
security-group rules, an overlay CNI's per-node pod ranges), said before apply instead of by a failed create.

Every check takes (spec, graph[, facts]) and returns findings. Registered by doctor.static. Pure: reads the
spec, the subnet layout (spec.layout), the bundled ENI table (model.maxpods) and, for brought subnets, their
real free addresses from `facts` (doctor.brought; no AWS call here).
"""

from __future__ import annotations

import ipaddress
import math

from kubeaws.doctor.brought import BroughtFacts
from kubeaws.doctor.findings import Finding
from kubeaws.model.graph import Graph
from kubeaws.model.maxpods import PREFIX_SIZE, UnknownInstanceType, max_pods
from kubeaws.resources.base import Ref
from kubeaws.spec.layout import LayoutError, subnet_layout
from kubeaws.spec.models import ClusterSpec

#: Addresses AWS reserves in every subnet (network, router, DNS, future use, broadcast).
AWS_RESERVED = 5
#: Object storage daemons hosts Ceph wants for its default 3-way replication.
CEPH_HOSTS = 3


def check_ip_capacity(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None = None) -> list[Finding]:
    """With the AWS VPC CNI: maxPods within each instance type's ENI limit (error), types outside the bundled
    table (warning), and generated private subnets large enough for every group at its max size, each node
    taking max pods + 1 addresses (prefix delegation: whole /28 prefixes), spread over the AZs (error).
    Brought private subnets are checked with their real free addresses when `facts` has them (with any CNI:
    an overlay CNI's nodes take one address each)."""
    body = spec.spec
    if body.cni != "aws-vpc-cni":
        if facts is None or not body.network.vpc.id:
            return []
        nodes = sum(ng.size.max for ng in body.node_groups) + (body.control_plane.count
                                                                 if body.mode == "kubeadm" else 0)
        return _brought_room(spec, facts, nodes, True, "nodes")
    pd = body.eks.prefix_delegation
    findings: list[Finding] = []
    demand = 0
    sized_all = True
    for i, ng in enumerate(body.node_groups):
        path = f"spec.nodeGroups[{i}]"
        known: list[int] = []
        for instance_type in ng.instance_types:
            try:
                limit = max_pods(instance_type, prefix_delegation=pd, types=ng.instance_type_facts)
            except UnknownInstanceType as exc:
                findings.append(Finding(
                    "warning", "ip-capacity.unknown-instance-type", f"node group {ng.name}: {exc}", path,
                    "its ENI limits cannot be checked here (check them live with `aws ec2 "
                    "describe-instance-types`); set maxPods explicitly or use a type of the bundled table"))
                continue
            known.append(limit)
            if ng.max_pods is not None and ng.max_pods > limit:
                findings.append(Finding(
                    "error", "ip-capacity.max-pods",
                    f"node group {ng.name}: maxPods {ng.max_pods} exceeds what {instance_type} allows with the "
                    f"AWS VPC CNI{' with prefix delegation' if pd else ''} ({limit}): pods beyond it stay in "
                    "ContainerCreating", f"{path}.maxPods",
                    f"set maxPods to at most {limit}, pick a larger instance type"
                    + ("" if pd else ", or enable eks.prefixDelegation")))
        pods = ng.max_pods if ng.max_pods is not None else (min(known) if known else None)
        if pods is None:
            sized_all = False
            continue
        demand += ng.size.max * addresses_per_node(pods, pd)
    if facts is not None and body.network.vpc.id:
        findings += _brought_room(spec, facts, demand, sized_all, "pod and node")
    else:
        findings += _subnet_room(spec, demand, sized_all)
    return findings


def _brought_room(spec: ClusterSpec, facts: BroughtFacts, demand: int, sized_all: bool,
                  what: str) -> list[Finding]:
    """Brought private subnets: the node groups at their max size, spread evenly over the subnets (as Auto
    Scaling groups balance AZs), against each subnet's AvailableIpAddressCount."""
    net = spec.spec.network
    private = net.subnets.private if net.subnets else []
    known = [facts.subnets[s] for s in private if s in facts.subnets]
    if not known or demand == 0:
        return []  # unreadable subnets are reported by the addressing check
    per_subnet = math.ceil(demand / len(private))
    tightest = min(known, key=lambda s: s.available_ips)
    if per_subnet <= tightest.available_ips:
        return []
    note = "" if sized_all else " (groups with instance types outside the table not counted)"
    return [Finding(
        "error", "ip-capacity.subnet-too-small",
        f"node groups at their max size need about {per_subnet} {what} addresses in each of the {len(private)} "
        f"private subnet(s){note}, but subnet {tightest.id} ({tightest.cidr}, {tightest.az}) has only "
        f"{tightest.available_ips} free", f"Subnet/{tightest.id}",
        "list more or larger private subnets under network.subnets.private, lower the node groups' size.max"
        + (", or fewer pods per node (maxPods)" if spec.spec.cni == "aws-vpc-cni" else ""))]


def addresses_per_node(max_pods: int, prefix_delegation: bool) -> int:
    """VPC addresses one node takes with the AWS VPC CNI: its own plus one per pod (prefix delegation:
    whole /28 prefixes). Also used by the live subnet check (doctor.live)."""
    return (math.ceil(max_pods / PREFIX_SIZE) * PREFIX_SIZE if prefix_delegation else max_pods) + 1


def _subnet_room(spec: ClusterSpec, demand: int, sized_all: bool) -> list[Finding]:
    net = spec.spec.network
    if net.vpc.id or not net.vpc.cidr:
        return [Finding("info", "ip-capacity.brought-subnets",
                        "free addresses of brought subnets not checked (they could not be read)",
                        "spec.network.subnets",
                        "make sure the private subnets have room for max nodes x (max pods + 1) addresses")]
    try:
        layout = subnet_layout(net.vpc.cidr, list(net.availability_zones), net.private_subnet_prefix,
                               net.public_subnet_prefix)
    except LayoutError:
        return []  # reported when the spec is loaded
    if not layout.private:
        return []
    sizes = {az: ipaddress.ip_network(cidr).num_addresses - AWS_RESERVED for az, cidr in layout.private.items()}
    smallest_az = min(sizes, key=lambda az: sizes[az])
    room = sizes[smallest_az]
    per_az = math.ceil(demand / len(sizes))
    note = "" if sized_all else " (groups with instance types outside the table not counted)"
    if per_az <= room:
        return []
    prefix = ipaddress.ip_network(layout.private[smallest_az]).prefixlen
    return [Finding(
        "error", "ip-capacity.subnet-too-small",
        f"node groups at their max size need about {per_az} pod and node addresses per AZ{note}, but the "
        f"private subnet {layout.private[smallest_az]} ({smallest_az}) has {room} usable",
        "spec.network", f"use a bigger VPC (vpc.cidr), larger private subnets (privateSubnetPrefix below "
        f"/{prefix}), fewer pods per node (maxPods) or smaller max sizes"
        + ("" if spec.spec.eks.prefix_delegation else ", or eks.prefixDelegation with larger instance types"))]


def check_storage(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Rook/Ceph enabled: some node group has raw extraVolumes (error otherwise), on at least 3 hosts
    (counted as the groups' min sizes: the nodes that always exist; warning otherwise)."""
    if spec.spec.addons.rook_ceph is None:
        return []
    disks = [(i, ng) for i, ng in enumerate(spec.spec.node_groups) if ng.extra_volumes]
    if not disks:
        return [Finding(
            "error", "storage.no-disks", "addons.rookCeph is enabled but no node group has extraVolumes: Ceph "
            "finds no raw disk and creates no OSD", "spec.addons.rookCeph",
            "add `extraVolumes: [{size: 100}]` to a storage node group (raw, unformatted EBS disks)")]
    hosts = sum(ng.size.min for _, ng in disks)
    if hosts >= CEPH_HOSTS:
        return []
    names = ", ".join(ng.name for _, ng in disks)
    return [Finding(
        "warning", "storage.few-hosts", f"only {hosts} node(s) with extraVolumes are guaranteed (size.min of "
        f"{names}); Ceph wants {CEPH_HOSTS} OSD hosts for its default 3-way replication",
        f"spec.nodeGroups[{disks[0][0]}].size", f"set size.min to at least {CEPH_HOSTS} on the storage group(s)")]


# -- AWS quotas (default values; most can be raised through Service Quotas) ---------------------------------
#: Auto Scaling groups per region (Amazon EC2 Auto Scaling). (EC2's 5,000 launch templates per region are out of
#: one spec's reach: at most MAX_NODE_GROUPS groups of one template each.)
AUTO_SCALING_GROUPS_PER_REGION = 500
#: Amazon EKS: managed node groups per cluster, nodes per managed node group.
MANAGED_GROUPS_PER_CLUSTER = 30
NODES_PER_MANAGED_GROUP = 450
#: Amazon VPC: inbound (or outbound) rules per security group, counted for IPv4 and IPv6 separately (a rule
#: naming a security group counts in both).
RULES_PER_GROUP = 60
#: Per-node pod ranges of the overlay CNIs as kubeaws configures them: Cilium's cluster-pool mask and the
#: node CIDRs kube-controller-manager hands out for Flannel (kubeadm's default --node-cidr-mask-size) are /24;
#: Calico's IPAM blocks are /26 (a node without a block of its own borrows addresses from other nodes' blocks).
NODE_POD_PREFIX = {"cilium": 24, "flannel": 24, "calico": 26}


def check_quotas(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """AWS quotas the spec alone reaches: an error when it needs more than the default quota, a warning when it
    takes half of a per-region quota or more (other clusters and stacks of the region count against it too)."""
    body = spec.spec
    findings: list[Finding] = []
    managed = [ng for ng in body.node_groups if ng.type == "managed"] if body.mode == "eks" else []
    groups = len(list(graph.of_kind("AutoScalingGroup"))) + len(list(graph.of_kind("EksNodegroup")))
    findings += _regional("quota.auto-scaling-groups", groups, AUTO_SCALING_GROUPS_PER_REGION,
                          "Auto Scaling groups (EKS managed node groups included: each runs one)",
                          "Amazon EC2 Auto Scaling 'Auto Scaling groups per region'")
    if len(managed) > MANAGED_GROUPS_PER_CLUSTER:
        findings.append(Finding(
            "error", "quota.managed-node-groups", f"{len(managed)} managed node groups, EKS allows "
            f"{MANAGED_GROUPS_PER_CLUSTER} per cluster by default: the creates past it fail", "spec.nodeGroups",
            "make some groups self-managed (type: self-managed), merge groups, or raise the Amazon EKS quota "
            "'Managed node groups per cluster' first"))
    for ng in managed:
        if ng.size.max > NODES_PER_MANAGED_GROUP:
            i = body.node_groups.index(ng)
            findings.append(Finding(
                "error", "quota.managed-node-groups", f"managed node group {ng.name}: size.max {ng.size.max} is "
                f"above EKS's {NODES_PER_MANAGED_GROUP} nodes per managed node group", f"spec.nodeGroups[{i}].size.max",
                f"split the group, lower size.max to {NODES_PER_MANAGED_GROUP}, or raise the quota 'Nodes per "
                "managed node group'"))
    findings += _rule_counts(graph)
    findings += _pod_ranges(spec)
    return findings


def _regional(check: str, count: int, quota: int, what: str, name: str) -> list[Finding]:
    if count > quota:
        return [Finding("error", check, f"the spec makes {count} {what}; the default quota is {quota} per region",
                        "spec.nodeGroups", f"raise the quota {name} before apply, or use fewer groups")]
    if count * 2 >= quota:
        return [Finding("warning", check, f"the spec makes {count} {what}, half or more of the default quota of "
                        f"{quota} per region, which every cluster and stack of the region shares",
                        "spec.nodeGroups", f"check the region's use and the quota {name} before apply")]
    return []


def _rule_counts(graph: Graph) -> list[Finding]:
    findings = []
    for rules in graph.of_kind("SecurityGroupRules"):
        v4 = v6 = 0
        for rule in rules.props.get("ingress") or []:
            cidr = rule.get("cidr")
            if isinstance(cidr, str) and ":" in cidr:
                v6 += 1
            elif isinstance(cidr, str):
                v4 += 1
            elif isinstance(rule.get("source_group"), (str, Ref)):
                v4, v6 = v4 + 1, v6 + 1
        worst = max(v4, v6)
        if worst > RULES_PER_GROUP:
            family = "IPv4" if v4 >= v6 else "IPv6"
            findings.append(Finding(
                "error", "quota.security-group-rules", f"security group {rules.name} needs {worst} inbound {family} "
                f"rules; a security group takes {RULES_PER_GROUP} by default: the apply fails with "
                "RulesPerSecurityGroupLimitExceeded", f"SecurityGroup/{rules.name}",
                "fewer or wider adminCIDRs / nodePortCIDRs (each range is one rule per port), or raise the "
                "Amazon VPC quota 'Inbound or outbound rules per security group' first"))
    return findings


def _pod_ranges(spec: ClusterSpec) -> list[Finding]:
    body = spec.spec
    per_node = NODE_POD_PREFIX.get(body.cni)
    try:
        pods = ipaddress.ip_network(body.network.pod_cidr)
    except ValueError:
        return []  # reported when the spec is loaded
    if per_node is None or pods.version != 4 or pods.prefixlen > per_node:
        return []
    ranges = 2 ** (per_node - pods.prefixlen)
    nodes = sum(ng.size.max for ng in body.node_groups) + (body.control_plane.count if body.mode == "kubeadm" else 0)
    if nodes <= ranges:
        return []
    if body.cni == "calico":
        return [Finding(
            "warning", "quota.pod-cidr-nodes", f"up to {nodes} nodes but podCIDR {pods} holds {ranges} Calico "
            f"blocks (/{per_node}): nodes without a block borrow addresses from others, one route per pod",
            "spec.network.podCIDR", f"a podCIDR of /{per_node - math.ceil(math.log2(nodes))} or wider, or "
            "smaller size.max")]
    return [Finding(
        "error", "quota.pod-cidr-nodes", f"up to {nodes} nodes but podCIDR {pods} holds {ranges} per-node /{per_node} "
        f"ranges of {body.cni}: the nodes past {ranges} get no pod range and stay NotReady", "spec.network.podCIDR",
        f"a podCIDR of /{per_node - math.ceil(math.log2(nodes))} or wider (it must not overlap the VPC or the "
        "service CIDR), or smaller size.max")]
