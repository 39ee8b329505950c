"""The network flows a cluster needs between node roles: the Kubernetes ports table, the CNI's pod traffic,
DNS, SSH through the bastion and admin access, and what the spec's addons need (their descriptors' flows).
Security-group rules are derived from these flows (model.security) and the doctor checks brought security
groups against the same table.

Called by model.security, doctor and kubeaws.api (the plan's warnings). Pure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from itertools import product

from kubeaws.addons import enabled
from kubeaws.resources.base import Computed, Ref
from kubeaws.spec.models import ClusterSpec

CONTROL_PLANE = "control-plane"
NODES = "nodes"
BASTION = "bastion"
LB = "lb"
NODE_ROLES = (CONTROL_PLANE, NODES)

Cidr = str | Ref | Computed


@dataclass(frozen=True)
class Flow:
    """Traffic `source` -> `target` on protocol/ports. `source` is a role, or "cidr" with `cidrs` set."""

    source: str
    target: str
    protocol: str  # "tcp" | "udp" | "icmp" | "4" (IP-in-IP) | "-1" (all)
    from_port: int
    to_port: int
    purpose: str
    cidrs: tuple[Cidr, ...] = ()

    def ports(self) -> str:
        if self.protocol in ("-1", "4") or self.from_port == -1:
            return "all"
        return str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"


def cni_flows(cni: str, calico_encapsulation: str = "ipip") -> list[tuple[str, int, int, str]]:
    """(protocol, from, to, purpose) of the pod traffic each CNI sends between nodes."""
    if cni == "flannel":
        return [("udp", 8472, 8472, "flannel VXLAN")]
    if cni == "calico":
        flows = [("tcp", 179, 179, "calico BGP"), ("tcp", 5473, 5473, "calico Typha")]
        if calico_encapsulation == "vxlan":
            flows.append(("udp", 4789, 4789, "calico VXLAN"))
        else:
            flows.append(("4", -1, -1, "calico IP-in-IP"))
        return flows
    if cni == "cilium":
        return [("udp", 8472, 8472, "cilium VXLAN"), ("tcp", 4240, 4240, "cilium health"),
                ("icmp", -1, -1, "cilium health ICMP")]
    if cni == "aws-vpc-cni":
        return [("-1", -1, -1, "pod traffic (VPC CNI, pods use VPC addresses)")]
    raise ValueError(f"unknown CNI {cni!r}")


#: Address ranges reserved for documentation (RFC 5737, RFC 3849): no real network is in them.
DOCUMENTATION_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")


def documentation_cidrs(spec: ClusterSpec) -> list[tuple[str, str]]:
    """(field path, CIDR) of the admin and NodePort ranges that lie in a documentation range, such as the
    203.0.113.0/24 placeholder `kubeaws init` writes: the flows "from admin networks" then admit nobody.
    Read by the doctor (`access.documentation-range`) and the plan's warnings (kubeaws.api)."""
    docs = [ipaddress.ip_network(r) for r in DOCUMENTATION_RANGES]
    named = [("spec.access.adminCIDRs", c) for c in spec.spec.access.admin_cidrs]
    named += [("spec.network.nodePortCIDRs", c) for c in spec.spec.network.node_port_cidrs or []]
    out = []
    for i, (path, cidr) in enumerate(named):
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue  # refused when the spec is loaded
        if any(net.version == d.version and net.subnet_of(d) for d in docs):  # type: ignore[arg-type]
            index = i if path.endswith("adminCIDRs") else i - len(spec.spec.access.admin_cidrs)
            out.append((f"{path}[{index}]", cidr))
    return out


def documentation_range_message(path: str, cidr: str) -> str:
    """The warning for an admin or NodePort range inside a documentation range (doctor and plan)."""
    admits = "the NodePorts" if "nodePortCIDRs" in path else "SSH through the bastion and the public API"
    return (f"{path} {cidr} is a documentation range (RFC 5737/3849), like the placeholder `kubeaws init` "
            f"writes: no real network is in it, so {admits} admit nobody; put your office/VPN range there")


def host_cidr(ip: str) -> str:
    return f"{ip}/32"


def nat_egress(spec: ClusterSpec) -> tuple[Cidr, ...]:
    """The public addresses (as /32) the cluster's private subnets reach the internet from: its NAT gateways'
    Elastic IPs, for a VPC kubeaws creates (a brought VPC's NAT is not known)."""
    net = spec.spec.network
    if net.vpc.id or not net.vpc.cidr:
        return ()
    azs = list(net.availability_zones)
    nat_azs = {"none": [], "single": azs[:1], "perAZ": azs}[net.nat_mode]
    return tuple(Computed(host_cidr, {"ip": Ref("ElasticIp", f"nat-{az}", "public_ip")}, f"NAT {az} address")
                 for az in nat_azs)


def required_flows(spec: ClusterSpec, vpc_cidr: Cidr) -> list[Flow]:
    """Every flow the cluster needs, deduplicated, in a stable order."""
    if spec.spec.mode == "eks":
        return eks_flows(spec, vpc_cidr)
    body = spec.spec
    access = body.access
    public_api = access.api_endpoint == "public"
    admin = tuple(access.admin_cidrs)
    bastion = access.bastion.enabled
    node_ports = tuple(body.network.node_port_cidrs or [vpc_cidr])
    flows: list[Flow] = []

    def add(source: str, target: str, protocol: str, lo: int, hi: int, purpose: str,
            cidrs: tuple[Cidr, ...] = ()) -> None:
        flows.append(Flow(source, target, protocol, lo, hi, purpose, cidrs))

    # Kubernetes API (6443): to the control plane and to the API load balancer.
    for target in (CONTROL_PLANE, LB):
        for source in (NODES, CONTROL_PLANE, *((BASTION,) if bastion else ())):
            add(source, target, "tcp", 6443, 6443, "Kubernetes API")
        if public_api and admin:
            add("cidr", target, "tcp", 6443, 6443, "Kubernetes API from admin networks", admin)
    if public_api and nat_egress(spec):
        # The public endpoint's name resolves to public addresses: nodes and members reach it through the NAT
        # gateways, from their Elastic IPs (not from their security groups).
        add("cidr", LB, "tcp", 6443, 6443, "Kubernetes API from the cluster's own nodes through the NAT gateways",
            nat_egress(spec))
    add(LB, CONTROL_PLANE, "tcp", 6443, 6443, "Kubernetes API from the load balancer")
    # etcd, controller-manager, scheduler: control plane only.
    add(CONTROL_PLANE, CONTROL_PLANE, "tcp", 2379, 2380, "etcd")
    add(CONTROL_PLANE, CONTROL_PLANE, "tcp", 10257, 10257, "kube-controller-manager")
    add(CONTROL_PLANE, CONTROL_PLANE, "tcp", 10259, 10259, "kube-scheduler")
    # kubelet API from the control plane to every node; from nodes too when metrics-server scrapes it.
    for target in NODE_ROLES:
        add(CONTROL_PLANE, target, "tcp", 10250, 10250, "kubelet API")
        for protocol in ("tcp", "udp"):
            add("cidr", target, protocol, 30000, 32767, "NodePort services", node_ports)
        if bastion:
            add(BASTION, target, "tcp", 22, 22, "SSH from the bastion")
    if bastion and admin:
        add("cidr", BASTION, "tcp", 22, 22, "SSH from admin networks", admin)
    # Pod traffic of the CNI and DNS between ALL nodes, control plane included.
    for source, target in product(NODE_ROLES, NODE_ROLES):
        for protocol, lo, hi, purpose in cni_flows(body.cni, body.network.calico.encapsulation):
            add(source, target, protocol, lo, hi, purpose)
        add(source, target, "udp", 53, 53, "DNS (CoreDNS may run on any node)")
        add(source, target, "tcp", 53, 53, "DNS (CoreDNS may run on any node)")
    flows += addon_flows(spec)
    return _dedupe(flows)


def addon_flows(spec: ClusterSpec) -> list[Flow]:
    """The flows the spec's addons need (their descriptors' `flows`), in the registry's order."""
    return [Flow(f.source, f.target, f.protocol, f.from_port, f.to_port, f.purpose)
            for addon in enabled(spec) for f in addon.flows if spec.spec.mode in f.modes]


def _dedupe(flows: list[Flow]) -> list[Flow]:
    seen: set[tuple[object, ...]] = set()
    out: list[Flow] = []
    for f in flows:
        key = (f.source, f.target, f.protocol, f.from_port, f.to_port, tuple(str(c) for c in f.cidrs))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def eks_flows(spec: ClusterSpec, vpc_cidr: Cidr) -> list[Flow]:
    """EKS: `control-plane` is the cluster's additional security group (on the EKS-managed ENIs); the API
    endpoint's public side is governed by EKS' public access CIDRs, not by a security group."""
    body = spec.spec
    bastion = body.access.bastion.enabled
    admin = tuple(body.access.admin_cidrs)
    node_ports = tuple(body.network.node_port_cidrs or [vpc_cidr])
    flows: list[Flow] = []

    def add(source: str, target: str, protocol: str, lo: int, hi: int, purpose: str,
            cidrs: tuple[Cidr, ...] = ()) -> None:
        flows.append(Flow(source, target, protocol, lo, hi, purpose, cidrs))

    add(NODES, CONTROL_PLANE, "tcp", 443, 443, "Kubernetes API")
    if bastion:
        add(BASTION, CONTROL_PLANE, "tcp", 443, 443, "Kubernetes API from the bastion")
        add(BASTION, NODES, "tcp", 22, 22, "SSH from the bastion")
        if admin:
            add("cidr", BASTION, "tcp", 22, 22, "SSH from admin networks", admin)
    add(CONTROL_PLANE, NODES, "tcp", 10250, 10250, "kubelet API")
    add(CONTROL_PLANE, NODES, "tcp", 443, 443, "admission webhooks")
    add(CONTROL_PLANE, NODES, "tcp", 1025, 65535, "extension API servers and webhooks on high ports")
    for protocol, lo, hi, purpose in cni_flows(body.cni, body.network.calico.encapsulation):
        add(NODES, NODES, protocol, lo, hi, purpose)
    add(NODES, NODES, "udp", 53, 53, "DNS (CoreDNS may run on any node)")
    add(NODES, NODES, "tcp", 53, 53, "DNS (CoreDNS may run on any node)")
    for protocol in ("tcp", "udp"):
        add("cidr", NODES, protocol, 30000, 32767, "NodePort services", node_ports)
    flows += addon_flows(spec)
    return _dedupe(flows)
