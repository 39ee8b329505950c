"""What the doctor knows about the resources a spec brings (VPC, subnets, security groups): `BroughtFacts`, a
small pure data structure, and `brought_facts(spec, ctx)`, the one place that reads it from AWS with
read-only describes (DescribeVpcs, DescribeSubnets, DescribeSecurityGroups). A describe that fails (not found,
access denied, no credentials) becomes an `Unreadable` entry naming the ID, never a traceback.

The checks stay pure functions over (spec, graph, facts): doctor.network reads the brought groups' actual
ingress rules, doctor.capacity the subnets' free addresses, and `check_brought_network` here the VPC / subnet
placement and ranges. Tests build facts by hand (`GroupFacts.from_aws` takes the AWS IpPermissions shape).

Called by the CLI (`kubeaws doctor`, plan/apply preflight) and tests. Nothing here imports boto3/botocore
unless something is brought and a describe is actually made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeaws.doctor.findings import Finding
from kubeaws.errors import AwsCallError
from kubeaws.model.flows import BASTION, CONTROL_PLANE, LB, NODES
from kubeaws.model.security import brought_groups
from kubeaws.resources.security_group_rules import flatten
from kubeaws.spec.models import ClusterSpec

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext

Rule = dict[str, Any]
#: Error codes meaning "this ID does not exist" for each describe.
NOT_FOUND = {"SecurityGroup": ("InvalidGroup.NotFound", "InvalidGroupId.NotFound", "InvalidGroupId.Malformed"),
             "Subnet": ("InvalidSubnetID.NotFound", "InvalidSubnetId.Malformed"),
             "Vpc": ("InvalidVpcID.NotFound", "InvalidVpcId.Malformed")}


@dataclass(frozen=True)
class GroupFacts:
    """A brought security group as AWS has it now: its VPC and its ingress rules, flattened to one rule per
    source (`{"protocol", "from_port", "to_port", "cidr", "source_group", "description"}`, the shape of
    resources.security_group_rules)."""

    id: str
    vpc_id: str
    name: str = ""
    ingress: tuple[Rule, ...] = ()

    @classmethod
    def from_aws(cls, group_id: str, vpc_id: str, permissions: Iterable[Mapping[str, Any]],
                 name: str = "") -> GroupFacts:
        """From DescribeSecurityGroups' `IpPermissions` (IpProtocol, FromPort/ToPort, IpRanges, Ipv6Ranges,
        UserIdGroupPairs)."""
        return cls(group_id, vpc_id, name, tuple(flatten(permissions)))


@dataclass(frozen=True)
class SubnetFacts:
    """A brought subnet: VPC, AZ, CIDR and free addresses (AvailableIpAddressCount)."""

    id: str
    vpc_id: str
    az: str
    cidr: str
    available_ips: int


@dataclass(frozen=True)
class VpcFacts:
    """The brought VPC: its primary CIDR first, then the associated secondary CIDRs."""

    id: str
    cidrs: tuple[str, ...]


@dataclass(frozen=True)
class Unreadable:
    """A brought resource a describe could not read: `kind` (SecurityGroup / Subnet / Vpc), its ID, and why."""

    kind: str
    id: str
    reason: str


@dataclass
class BroughtFacts:
    """Everything the doctor read about the brought resources. `owned_groups` maps a role to the ID of
    kubeaws' own group when it exists already (after an apply), so brought groups' rules that name it count."""

    region: str = ""
    vpc: VpcFacts | None = None
    subnets: dict[str, SubnetFacts] = field(default_factory=dict)
    groups: dict[str, GroupFacts] = field(default_factory=dict)
    owned_groups: dict[str, str] = field(default_factory=dict)
    unreadable: list[Unreadable] = field(default_factory=list)

    def unreadable_ids(self, kind: str) -> set[str]:
        return {u.id for u in self.unreadable if u.kind == kind}


def brought_ids(spec: ClusterSpec) -> tuple[str | None, list[str], dict[str, str]]:
    """(VPC ID, subnet IDs, role -> security group ID) the spec brings."""
    net = spec.spec.network
    subnets = [*(net.subnets.public if net.subnets else []), *(net.subnets.private if net.subnets else [])]
    return net.vpc.id, list(dict.fromkeys(subnets)), brought_groups(spec)


def needs_facts(spec: ClusterSpec) -> bool:
    """Whether the spec brings anything the doctor should read from AWS."""
    vpc, subnets, groups = brought_ids(spec)
    return bool(vpc or subnets or groups)


def brought_facts(spec: ClusterSpec, ctx: AwsContext | Callable[[], AwsContext]) -> BroughtFacts | None:
    """Read the brought resources (read-only describes); None when the spec brings nothing (then no AWS
    client is made and nothing AWS-related is imported). `ctx` may be a factory, called only when needed."""
    if not needs_facts(spec):
        return None
    from botocore.exceptions import BotoCoreError

    from kubeaws.aws.session import AwsContext
    from kubeaws.errors import KubeawsError

    vpc_id, subnet_ids, groups = brought_ids(spec)
    try:
        context = ctx if isinstance(ctx, AwsContext) else ctx()
    except (KubeawsError, BotoCoreError) as exc:  # e.g. no credentials, the local emulator not running
        reason = f"no AWS access: {exc}"
        wanted = [("Vpc", vpc_id)] if vpc_id else []
        wanted += [("Subnet", s) for s in subnet_ids]
        wanted += [("SecurityGroup", g) for g in dict.fromkeys(groups.values())]
        return BroughtFacts(region=spec.spec.region,
                            unreadable=[Unreadable(kind, rid, reason) for kind, rid in wanted])
    facts = BroughtFacts(region=context.region)
    if vpc_id:
        for item in _describe(context, facts, "Vpc", "describe_vpcs", "Vpcs", "VpcIds", [vpc_id]):
            secondary = [a["CidrBlock"] for a in item.get("CidrBlockAssociationSet", [])
                         if a.get("CidrBlock") != item["CidrBlock"]
                         and (a.get("CidrBlockState") or {}).get("State", "associated") == "associated"]
            facts.vpc = VpcFacts(item["VpcId"], (item["CidrBlock"], *secondary))
    for item in _describe(context, facts, "Subnet", "describe_subnets", "Subnets", "SubnetIds", subnet_ids):
        facts.subnets[item["SubnetId"]] = SubnetFacts(item["SubnetId"], item["VpcId"], item["AvailabilityZone"],
                                                      item["CidrBlock"], int(item.get("AvailableIpAddressCount", 0)))
    group_ids = list(dict.fromkeys(groups.values()))
    for item in _describe(context, facts, "SecurityGroup", "describe_security_groups", "SecurityGroups",
                          "GroupIds", group_ids):
        facts.groups[item["GroupId"]] = GroupFacts.from_aws(item["GroupId"], item.get("VpcId", ""),
                                                            item.get("IpPermissions", []), item.get("GroupName", ""))
    if groups:
        _owned_groups(context, spec, facts)
    return facts


def _reason(exc: Exception) -> tuple[str, str]:
    """(error code, readable reason) of a failed describe."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        return code, f"{code}: {err.get('Message', '')}".strip(": ")
    if isinstance(exc, AwsCallError):
        return exc.code, str(exc)
    return "", f"{type(exc).__name__}: {exc}"


def _describe(ctx: AwsContext, facts: BroughtFacts, kind: str, operation: str, key: str, ids_param: str,
              ids: list[str]) -> list[dict[str, Any]]:
    """Describe `ids` in one call; when that fails because an ID does not exist, one call per ID so every
    missing one is named. Failures become `facts.unreadable` entries."""
    from botocore.exceptions import BotoCoreError, ClientError

    failures = (ClientError, BotoCoreError, AwsCallError)
    if not ids:
        return []
    try:
        items: list[dict[str, Any]] = ctx.call("ec2", operation, **{ids_param: ids})[key]
        return items
    except failures as exc:
        code, reason = _reason(exc)
        if code not in NOT_FOUND[kind] or len(ids) == 1:
            facts.unreadable.extend(Unreadable(kind, i, reason) for i in ids)
            return []
    found: list[dict[str, Any]] = []
    for one in ids:
        try:
            found += ctx.call("ec2", operation, **{ids_param: [one]})[key]
        except failures as exc:
            facts.unreadable.append(Unreadable(kind, one, _reason(exc)[1]))
    return found


def _owned_groups(ctx: AwsContext, spec: ClusterSpec, facts: BroughtFacts) -> None:
    """Role -> ID of the cluster's own security groups that exist already (tag kubeaws.io/role)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from kubeaws.aws.tags import CLUSTER_TAG, is_owned_by, tag_dict

    try:
        found = ctx.paginate("ec2", "describe_security_groups", "SecurityGroups",
                             Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [spec.metadata.name]}])
    except (ClientError, BotoCoreError, AwsCallError) as exc:
        facts.unreadable.append(Unreadable("SecurityGroup", f"(the groups of cluster {spec.metadata.name})",
                                           _reason(exc)[1]))
        return
    for group in found:
        tags = tag_dict(group.get("Tags"))
        role = tags.get("kubeaws.io/role")
        if role and is_owned_by(tags, spec.metadata.name) and group.get("VpcId") == spec.spec.network.vpc.id:
            facts.owned_groups[role] = group["GroupId"]


# -- pure checks of the brought network (registered through doctor.network.check_addressing) ----------------
def role_subnets(spec: ClusterSpec, role: str) -> list[str]:
    """The brought subnet IDs a role's machines (or load balancer) live in."""
    net = spec.spec.network
    public, private = (net.subnets.public, net.subnets.private) if net.subnets else ([], [])
    if role == BASTION:
        return list(public)
    if role == LB:
        return list(public if spec.spec.access.api_endpoint == "public" else private)
    if role in (CONTROL_PLANE, NODES):
        return list(private)
    return []


def check_brought_network(spec: ClusterSpec, facts: BroughtFacts | None) -> list[Finding]:
    """Brought VPC / subnets that cannot be read, subnets outside the brought VPC or in an AZ the spec does not
    list, and pod / service ranges overlapping the VPC's CIDRs (secondary ones included)."""
    if facts is None:
        return []
    findings: list[Finding] = []
    for u in facts.unreadable:
        if u.kind in ("Vpc", "Subnet"):
            findings.append(Finding(
                "error", "addressing.brought-unreadable", f"{u.kind.lower()} {u.id} could not be read: {u.reason}",
                f"{u.kind}/{u.id}", f"check that {u.id} exists in {facts.region or 'the region'} and that the "
                f"credentials may call ec2:Describe{u.kind}s"))
    net = spec.spec.network
    vpc_id = net.vpc.id
    azs = set(net.availability_zones)
    for subnet in facts.subnets.values():
        if vpc_id and subnet.vpc_id != vpc_id:
            findings.append(Finding(
                "error", "addressing.brought-subnet-vpc", f"subnet {subnet.id} is in VPC {subnet.vpc_id}, not in "
                f"the brought VPC {vpc_id}", f"Subnet/{subnet.id}",
                f"list only subnets of {vpc_id} under network.subnets (aws ec2 describe-subnets --filters "
                f"Name=vpc-id,Values={vpc_id})"))
        if azs and subnet.az not in azs:
            findings.append(Finding(
                "error", "addressing.brought-subnet-az", f"subnet {subnet.id} is in {subnet.az}, which is not in "
                f"network.availabilityZones ({', '.join(sorted(azs))})", f"Subnet/{subnet.id}",
                f"add {subnet.az} to network.availabilityZones, or list a subnet of those AZs instead"))
    if facts.vpc is not None:
        ranges = [("network.serviceCIDR", net.service_cidr)]
        if spec.spec.cni != "aws-vpc-cni":
            ranges.append(("network.podCIDR", net.pod_cidr))
        for name, value in ranges:
            mine = _net(value)
            for cidr in facts.vpc.cidrs:
                theirs = _net(cidr)
                if mine is not None and theirs is not None and mine.version == theirs.version \
                        and mine.overlaps(theirs):
                    findings.append(Finding(
                        "error", "addressing.overlap", f"{name} {value} overlaps CIDR {cidr} of the brought VPC "
                        f"{facts.vpc.id}", f"spec.{name}", f"pick a {name.split('.')[1]} outside "
                        f"{', '.join(facts.vpc.cidrs)}"))
    return findings


def _net(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
