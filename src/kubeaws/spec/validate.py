"""Semantic checks of a parsed spec: the rules that span several fields or need outside data (AWS regions,
CIDR arithmetic, Kubernetes label syntax). Pure: no AWS calls.

Called by `spec.load` after the pydantic models accepted the document; `doctor` may call it on its own.
The field-path helpers (`format_path` / `parse_path`) live in `spec.paths` and are re-exported here.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path

from kubeaws.errors import FieldProblem
from kubeaws.spec import grammar
from kubeaws.spec.layout import LayoutError, subnet_fix, subnet_layout
from kubeaws.spec.maxpods import check_max_pods
from kubeaws.spec.models import SUPPORTED_KUBERNETES_VERSIONS, ClusterSpec, NodeGroupSpec, VolumeSpec
from kubeaws.spec.nodegroups import check_node_groups
from kubeaws.spec.paths import PathPart, format_path, parse_path

__all__ = ["PathPart", "format_path", "known_regions", "parse_path", "validate"]

MAX_CLUSTER_NAME = 28  # `<name>-api` must fit the 32-character load balancer name limit
MAX_NODE_GROUP_NAME = 40
MAX_USER_TAGS = 40  # AWS allows 50 per resource; kubeaws adds its own
MAX_EXTRA_VOLUMES = 10
RESERVED_TAG_PREFIXES = ("aws:", "kubeaws.io/", "kubernetes.io/cluster/")
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9-]+$")
AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]+$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]+$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")

# Labels kubelet may set on its own node in the kubernetes.io / k8s.io namespaces (NodeRestriction).
KUBELET_LABELS = frozenset({
    "kubernetes.io/arch", "kubernetes.io/hostname", "kubernetes.io/os", "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type", "beta.kubernetes.io/os", "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
})
KUBELET_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


@functools.lru_cache(maxsize=1)
def known_regions() -> tuple[str, ...]:
    """Regions of the commercial, China and GovCloud partitions, from botocore's bundled partitions.json
    (7 KB; the full endpoints.json would cost ~150 ms on every command). The file is found without importing
    botocore (`kubeaws render` makes no AWS SDK import)."""
    import importlib.util

    found = importlib.util.find_spec("botocore")
    assert found is not None and found.origin is not None, "botocore is a dependency of kubeaws"
    data = json.loads((Path(found.origin).parent / "data" / "partitions.json").read_text())
    regions: set[str] = set()
    for partition in data["partitions"]:
        if partition["id"] in ("aws", "aws-cn", "aws-us-gov"):
            regions.update(r for r in partition["regions"] if not r.endswith("-global"))
    return tuple(sorted(regions))


class _Checker:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.body = spec.spec
        self.problems: list[FieldProblem] = []

    def add(self, path: Sequence[PathPart], message: str, hint: str = "") -> None:
        self.problems.append(FieldProblem(format_path(path), message, hint))

    def net(self, value: str, path: Sequence[PathPart]) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """Parse a CIDR strictly; report it (with the corrected network for host bits) and return None."""
        if not grammar.CIDR_TEXT.fullmatch(value):
            self.add(path, f"`{value}` is not a CIDR block", "write it as address/prefix, e.g. 10.0.0.0/16")
            return None
        try:
            return ipaddress.ip_network(value, strict=True)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            self.add(path, f"`{value}` is not a CIDR block", "write it as address/prefix, e.g. 10.0.0.0/16")
            return None
        self.add(path, f"`{value}` has host bits set", f"use the network address: `{loose}`")
        return None

    def net4(self, value: str, path: Sequence[PathPart]) -> ipaddress.IPv4Network | None:
        """Like `net`, IPv4 only."""
        net = self.net(value, path)
        if isinstance(net, ipaddress.IPv6Network):
            self.add(path, f"`{value}` is IPv6; kubeaws uses IPv4 here", "use an IPv4 CIDR, e.g. 10.0.0.0/16")
            return None
        return net


def validate(spec: ClusterSpec) -> list[FieldProblem]:
    """Every semantic problem of `spec` (empty list when it is usable)."""
    c = _Checker(spec)
    _check_names(c)
    _check_region_and_azs(c)
    _check_versions(c)
    _check_network(c)
    _check_access(c)
    _check_machines(c)
    _check_tags(c)
    _check_misc(c)
    _check_addons(c)
    _check_public_endpoint(c)
    c.problems.extend(check_node_groups(spec))  # team and name patterns
    c.problems.extend(check_max_pods(spec))  # with the spec's instance-type facts (types they know)
    return c.problems


def _check_names(c: _Checker) -> None:
    name = c.spec.metadata.name
    if not DNS_LABEL.fullmatch(name) or len(name) > MAX_CLUSTER_NAME:
        c.add(["metadata", "name"], f"`{name}` is not a valid cluster name",
              f"use 1-{MAX_CLUSTER_NAME} lowercase letters, digits and '-', starting and ending with a letter or "
              f"digit (the API load balancer `<name>-api` must fit AWS's 32-character limit)")
    for key, value in c.spec.metadata.labels.items():
        _check_label(c, ["metadata", "labels", key], key, value, node=False)
    seen: dict[str, int] = {}
    for i, group in enumerate(c.body.node_groups):
        path: list[PathPart] = ["spec", "nodeGroups", i, "name"]
        if not DNS_LABEL.fullmatch(group.name) or len(group.name) > MAX_NODE_GROUP_NAME:
            c.add(path, f"`{group.name}` is not a valid node group name",
                  f"use 1-{MAX_NODE_GROUP_NAME} lowercase letters, digits and '-', starting and ending with a "
                  "letter or digit")
        if group.name in seen:
            c.add(path, f"node group name `{group.name}` is already used by nodeGroups[{seen[group.name]}]",
                  "give every node group a unique name")
        seen.setdefault(group.name, i)


def _check_region_and_azs(c: _Checker) -> None:
    region = c.body.region
    regions = known_regions()
    if region not in regions:
        close = difflib.get_close_matches(region, regions, n=3)
        c.add(["spec", "region"], f"`{region}` is not a known AWS region",
              f"did you mean {', '.join(f'`{r}`' for r in close)}?" if close else "use a region such as us-east-1")
    net = c.body.network
    azs = net.availability_zones
    path: list[PathPart] = ["spec", "network", "availabilityZones"]
    new_vpc = net.vpc.id is None
    region_known = region in regions
    for i, az in enumerate(azs):
        if region_known and not re.fullmatch(rf"{re.escape(region)}[a-z]", az):
            c.add([*path, i], f"`{az}` is not an availability zone of {region}",
                  f"use `<region><letter>`, e.g. {region}a")
        elif not region_known and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+[a-z]", az):
            c.add([*path, i], f"`{az}` is not an availability zone name", "use `<region><letter>`, e.g. us-east-1a")
        if az in azs[:i]:
            c.add([*path, i], f"`{az}` is listed twice", "list each availability zone once")
    minimum = 2 if c.body.mode == "eks" else 1
    if new_vpc and len(azs) < minimum:
        reason = "EKS needs subnets in at least two AZs" if minimum == 2 else "kubeaws creates subnets per AZ"
        c.add(path, f"needs at least {minimum} availability zone(s) ({reason})",
              f"list them, e.g. [{region}a, {region}b, {region}c] (check which your account has)")


def _check_versions(c: _Checker) -> None:
    version = c.body.kubernetes_version
    if version not in SUPPORTED_KUBERNETES_VERSIONS:
        c.add(["spec", "kubernetesVersion"], f"Kubernetes version `{version}` is not supported",
              f"use one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)} (quoted, e.g. \"1.31\")")
    count = c.body.control_plane.count
    if count not in (1, 3, 5):
        c.add(["spec", "controlPlane", "count"], f"control plane count {count} is not 1, 3 or 5",
              "etcd needs a majority (quorum): use 1, 3 or 5; an even count adds no fault tolerance")


def _check_network(c: _Checker) -> None:
    body, net = c.body, c.body.network
    base: list[PathPart] = ["spec", "network"]
    eks = body.mode == "eks"
    if eks and body.cni != "aws-vpc-cni":
        c.add([*base, "cni"], f"cni `{body.cni}` is not supported in eks mode",
              "use `cni: aws-vpc-cni` (or leave cni out) with mode: eks")
    pods_in_vpc = body.cni == "aws-vpc-cni"
    pod = None if pods_in_vpc else c.net4(net.pod_cidr, [*base, "podCIDR"])
    svc = c.net4(net.service_cidr, [*base, "serviceCIDR"])
    if pod is not None and pod.prefixlen > 24:
        c.add([*base, "podCIDR"], f"podCIDR /{pod.prefixlen} is smaller than one node's /24 pod range",
              "use a /16 (or at least a /24 per node)")
    if svc is not None:
        if eks and (not any(svc.subnet_of(r) for r in PRIVATE_RANGES)
                    or not 12 <= svc.prefixlen <= 24):
            c.add([*base, "serviceCIDR"], f"EKS does not accept serviceCIDR {svc}",
                  "use a /12../24 inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. 172.20.0.0/16")
        elif svc.prefixlen < 12:
            c.add([*base, "serviceCIDR"], f"serviceCIDR {svc} is larger than kube-apiserver accepts (/12)",
                  "use a /12 or smaller range, e.g. 10.96.0.0/12")
    vpc: ipaddress.IPv4Network | None = None
    if net.vpc.cidr is not None and net.vpc.id is None:
        vpc = c.net4(net.vpc.cidr, [*base, "vpc", "cidr"])
        if vpc is not None and not 16 <= vpc.prefixlen <= 24:
            c.add([*base, "vpc", "cidr"], f"VPC CIDR {vpc} must be between /16 and /24",
                  "use e.g. 10.0.0.0/16 (AWS allows /16../28; kubeaws needs room for subnets)")
            vpc = None
    named = [("vpc.cidr", vpc), ("podCIDR", pod), ("serviceCIDR", svc)]
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if a is not None and b is not None and a.overlaps(b):
                c.add([*base, *name_b.split(".")], f"{name_b} {b} overlaps {name_a} {a}",
                      "pick ranges that do not overlap, e.g. VPC 10.0.0.0/16, pods 192.168.0.0/16, "
                      "services 10.96.0.0/12")
    for i, cidr in enumerate(net.node_port_cidrs or []):
        c.net(cidr, [*base, "nodePortCIDRs", i])
    if net.vpc.id is not None:
        _check_brought_vpc(c)
    else:
        _check_new_vpc(c, vpc)
    _check_security_groups(c)


def _check_security_groups(c: _Checker) -> None:
    """Brought security groups: well-formed IDs, a brought VPC, and roles that exist in the cluster."""
    groups = c.body.network.security_groups
    if groups is None:
        return
    base: list[PathPart] = ["spec", "network", "securityGroups"]
    given = {field: value for field, value in (("controlPlane", groups.control_plane), ("nodes", groups.nodes),
                                               ("bastion", groups.bastion), ("loadBalancer", groups.load_balancer))
             if value is not None}
    for field, value in given.items():
        if not SECURITY_GROUP_ID.fullmatch(value):
            c.add([*base, field], f"`{value}` is not a security group ID",
                  "use the ID shown by AWS (sg- followed by hex digits, e.g. sg-0abc1234), not the group's name")
    if given and c.body.network.vpc.id is None:
        c.add(base, "brought security groups need a brought VPC: a group belongs to one VPC, and the VPC kubeaws "
              "would create does not exist yet", "set network.vpc.id (with network.subnets) to the VPC of these "
              "groups, or remove network.securityGroups to let kubeaws create the groups")
    if "loadBalancer" in given and c.body.mode == "eks":
        c.add([*base, "loadBalancer"], "eks mode has no kubeaws API load balancer (EKS runs the endpoint)",
              "remove securityGroups.loadBalancer; use securityGroups.controlPlane for the cluster's additional "
              "security group")
    if "bastion" in given and not c.body.access.bastion.enabled:
        c.add([*base, "bastion"], "a bastion security group is given but access.bastion.enabled is false",
              "remove securityGroups.bastion, or enable the bastion")


def _check_new_vpc(c: _Checker, vpc: ipaddress.IPv4Network | None) -> None:
    net, base = c.body.network, ["spec", "network"]
    if net.subnets is not None:
        c.add([*base, "subnets"], "subnets are only for a brought VPC (vpc.id)",
              "remove network.subnets (kubeaws lays out subnets in its VPC), or set vpc.id to use your own VPC")
    if net.nat_mode == "none" and not (c.body.mirrors.image_repository and c.body.mirrors.packages):
        c.add([*base, "natGateway"], "natGateway none gives the nodes no outbound internet access",
              "use natGateway: single, or set mirrors.imageRepository and mirrors.packages to sources "
              "reachable from the VPC")
    azs = net.availability_zones
    az_ok = azs and not any(p.path.startswith("spec.network.availabilityZones") for p in c.problems)
    if vpc is None or not az_ok:
        return
    try:
        subnet_layout(str(vpc), azs, net.private_subnet_prefix, net.public_subnet_prefix)
    except LayoutError as exc:
        field, message, hint = subnet_fix(vpc, azs, net.private_subnet_prefix, net.public_subnet_prefix,
                                          2 if c.body.mode == "eks" else 1)
        c.add([*base, *field.split(".")], f"the subnets do not fit: {exc}{message}", hint)


def _check_brought_vpc(c: _Checker) -> None:
    net, base = c.body.network, ["spec", "network"]
    vpc_id = net.vpc.id or ""
    if not VPC_ID.fullmatch(vpc_id):
        c.add([*base, "vpc", "id"], f"`{vpc_id}` is not a VPC ID", "use the ID shown by AWS, e.g. vpc-0abc1234")
    subnets = net.subnets
    if subnets is None or not subnets.private:
        c.add([*base, "subnets", "private"], "a brought VPC needs its private subnets listed",
              "list the private subnet IDs under network.subnets.private, one per AZ")
    elif c.body.mode == "eks" and len(set(subnets.private)) < 2:
        c.add([*base, "subnets", "private"], "EKS needs subnets in at least two AZs",
              "list private subnets of two or more AZs")
    public = subnets.public if subnets else []
    if not public and c.body.access.bastion.enabled:
        c.add([*base, "subnets", "public"], "the bastion needs a public subnet",
              "list public subnet IDs under network.subnets.public, or set access.bastion.enabled: false")
    elif not public and c.body.mode == "kubeadm" and c.body.access.api_endpoint == "public":
        c.add([*base, "subnets", "public"], "a public API endpoint needs public subnets for its load balancer",
              "list public subnet IDs under network.subnets.public, or use apiEndpoint: private")
    seen: set[str] = set()
    for kind, ids in (("private", subnets.private if subnets else []), ("public", public)):
        for i, sid in enumerate(ids):
            if not SUBNET_ID.fullmatch(sid):
                c.add([*base, "subnets", kind, i], f"`{sid}` is not a subnet ID", "use e.g. subnet-0abc1234")
            elif sid in seen:
                c.add([*base, "subnets", kind, i], f"subnet `{sid}` is listed twice", "list each subnet once")
            seen.add(sid)
    if net.nat_gateway not in (None, "none"):
        c.add([*base, "natGateway"], "kubeaws does not manage the routing of a brought VPC",
              "remove natGateway (or set it to none) and route the private subnets through your own NAT")


def _check_access(c: _Checker) -> None:
    access, base = c.body.access, ["spec", "access"]
    for i, cidr in enumerate(access.admin_cidrs):
        net = c.net(cidr, [*base, "adminCIDRs", i])
        if net is not None and net.prefixlen == 0 and not access.allow_world_access:
            c.add([*base, "adminCIDRs", i], f"`{cidr}` opens SSH and the API to the whole internet",
                  "narrow it to your office/VPN range, or set access.allowWorldAccess: true deliberately")
    if access.api_endpoint == "public" and not access.admin_cidrs:
        c.add([*base, "adminCIDRs"], "a public API endpoint with no adminCIDRs cannot be reached by anyone",
              "list the CIDRs allowed to reach the API (e.g. your office/VPN range), or use apiEndpoint: private")
    bastion = access.bastion
    _check_instance_type(c, [*base, "bastion", "instanceType"], bastion.instance_type)
    _check_ami(c, [*base, "bastion", "ami"], bastion.ami)


def _check_machines(c: _Checker) -> None:
    body = c.body
    cp, cp_path = body.control_plane, ["spec", "controlPlane"]
    _check_instance_type(c, [*cp_path, "instanceType"], cp.instance_type)
    _check_ami(c, [*cp_path, "ami"], cp.ami)
    _check_volume(c, [*cp_path, "rootVolume"], cp.root_volume)
    _check_volume(c, [*cp_path, "etcdVolume"], cp.etcd_volume)
    for i, group in enumerate(body.node_groups):
        _check_node_group(c, ["spec", "nodeGroups", i], group)


def _check_node_group(c: _Checker, path: list[PathPart], group: NodeGroupSpec) -> None:
    if group.type == "managed" and c.body.mode != "eks":
        c.add([*path, "type"], "managed node groups exist only in eks mode",
              "use type: self-managed (or mode: eks)")
    for j, itype in enumerate(group.instance_types):
        _check_instance_type(c, [*path, "instanceTypes", j], itype)
        if itype in group.instance_types[:j]:
            c.add([*path, "instanceTypes", j], f"`{itype}` is listed twice", "list each instance type once")
    _check_ami(c, [*path, "ami"], group.ami)
    for key, value in group.labels.items():
        _check_label(c, [*path, "labels", key], key, value, node=True)
    for j, taint in enumerate(group.taints):
        if not _label_key_ok(taint.key):
            c.add([*path, "taints", j, "key"], f"`{taint.key}` is not a valid taint key",
                  "use `[prefix/]name`: name of 1-63 letters, digits, '-', '_', '.'; prefix a DNS subdomain")
        if taint.value and not _label_value_ok(taint.value):
            c.add([*path, "taints", j, "value"], f"`{taint.value}` is not a valid taint value",
                  "use at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit")
    if len(group.extra_volumes) > MAX_EXTRA_VOLUMES:
        c.add([*path, "extraVolumes"], f"{len(group.extra_volumes)} extra volumes (at most {MAX_EXTRA_VOLUMES})",
              f"use at most {MAX_EXTRA_VOLUMES} extra volumes, or larger ones")
    _check_volume(c, [*path, "rootVolume"], group.root_volume)
    for j, vol in enumerate(group.extra_volumes):
        _check_volume(c, [*path, "extraVolumes", j], vol)


def _check_instance_type(c: _Checker, path: list[PathPart], value: str) -> None:
    if not INSTANCE_TYPE.fullmatch(value):
        c.add(path, f"`{value}` is not an EC2 instance type", "use `family.size`, e.g. m5.large or t3.micro")


def _check_ami(c: _Checker, path: list[PathPart], value: str | None) -> None:
    if value is not None and not AMI_ID.fullmatch(value):
        c.add(path, f"`{value}` is not an AMI ID", "use ami- followed by 8 or 17 hex digits, or leave it out "
              "to use the OS's default image")


def _check_volume(c: _Checker, path: list[PathPart], vol: VolumeSpec) -> None:
    if vol.iops is not None and vol.type not in ("gp3", "io1", "io2"):
        c.add([*path, "iops"], f"iops cannot be set on {vol.type} volumes", "remove iops, or use gp3/io1/io2")
    if vol.iops is None and vol.type in ("io1", "io2"):
        c.add([*path, "iops"], f"{vol.type} volumes need iops", "set iops, e.g. 3000")
    if vol.throughput is not None and vol.type != "gp3":
        c.add([*path, "throughput"], f"throughput can only be set on gp3 volumes (not {vol.type})",
              "remove throughput, or use type: gp3")


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(LABEL_NAME.fullmatch(name))


def _label_value_ok(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(LABEL_NAME.fullmatch(value)))


def _check_label(c: _Checker, path: list[PathPart], key: str, value: str, *, node: bool) -> None:
    if not _label_key_ok(key):
        c.add(path, f"`{key}` is not a valid label key",
              "use `[prefix/]name`: name of 1-63 letters, digits, '-', '_', '.'; prefix a DNS subdomain")
    elif node and _kubelet_forbidden(key):
        c.add(path, f"kubelet may not set the label `{key}` on its own node (NodeRestriction)",
              "use your own prefix (e.g. example.com/role) or one under node.kubernetes.io/")
    if not _label_value_ok(value):
        c.add(path, f"`{value}` is not a valid label value",
              "use at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit")


def _kubelet_forbidden(key: str) -> bool:
    prefix = key.rpartition("/")[0]
    in_k8s = any(prefix == ns or prefix.endswith("." + ns) for ns in ("kubernetes.io", "k8s.io"))
    allowed = key in KUBELET_LABELS or any(prefix == ns or prefix.endswith("." + ns) for ns in KUBELET_NAMESPACES)
    return in_k8s and not allowed


def _check_tags(c: _Checker) -> None:
    body = c.body
    _check_tag_map(c, ["spec", "tags"], body.tags)
    for i, group in enumerate(body.node_groups):
        path: list[PathPart] = ["spec", "nodeGroups", i, "tags"]
        if _check_tag_map(c, path, group.tags) and len(body.tags | group.tags) > MAX_USER_TAGS:
            c.add(path, f"spec.tags and this group's tags add up to {len(body.tags | group.tags)} tags "
                  f"(at most {MAX_USER_TAGS})", "remove some tags (AWS allows 50 per resource; kubeaws adds its own)")


def _check_tag_map(c: _Checker, path: list[PathPart], tags: dict[str, str]) -> bool:
    ok = True
    if len(tags) > MAX_USER_TAGS:
        c.add(path, f"{len(tags)} tags (at most {MAX_USER_TAGS})",
              "remove some tags (AWS allows 50 per resource; kubeaws adds its own)")
        ok = False
    for key, value in tags.items():
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            c.add([*path, key], f"tag key `{key}` is reserved",
                  f"do not use keys starting with {', '.join(RESERVED_TAG_PREFIXES)} (kubeaws and AWS set them)")
        if not 1 <= len(key) <= 128 or len(value) > 256:
            c.add([*path, key], "tag key must be 1-128 characters and the value at most 256",
                  "shorten the tag")
        grammar.check_tag_text([*path, key], key, value, c.add)
    return ok


def _check_public_endpoint(c: _Checker) -> None:
    net = c.body.network
    if (c.body.mode == "kubeadm" and c.body.access.api_endpoint == "public" and not net.vpc.id
            and net.nat_mode == "none"):
        c.add(["spec", "network", "natGateway"], "a public API endpoint needs a NAT gateway: nodes in the private "
              "subnets reach the endpoint's public addresses through it",
              "set natGateway: single (or perAZ), or use access.apiEndpoint: private")


def _check_addons(c: _Checker) -> None:
    """Addon combinations that cannot work on a self-managed cluster."""
    addons = c.body.addons
    if c.body.mode == "kubeadm" and addons.ebs_csi is not None and addons.cloud_provider_aws is None:
        # The driver's node plugin cannot reach IMDS from a pod on a worker (hop limit 1): it then reads the
        # instance from the Node's providerID, which only the AWS cloud controller manager sets.
        c.add(["spec", "addons", "ebsCSI"], "the EBS CSI driver needs the AWS cloud provider on a kubeadm cluster "
              "(its node plugin finds its instance through the Node's providerID, which only "
              "cloud-provider-aws sets)", "add `cloudProviderAWS: {}` under spec.addons, or remove ebsCSI")


def _check_misc(c: _Checker) -> None:
    grammar.check_strings(c.spec, c.add)
    rook = c.body.addons.rook_ceph
    for key, value in (rook.node_selector or {}).items() if rook is not None else ():
        _check_label(c, ["spec", "addons", "rookCeph", "nodeSelector", key], key, value, node=False)
