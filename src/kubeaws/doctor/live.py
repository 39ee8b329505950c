"""`kubeaws doctor --live`: read-only inspection of a deployed cluster. `check_live(spec, graph, ctx)` gathers
what AWS has for the cluster (`gather`: its VPC, Auto Scaling groups, including those of EKS managed node
groups, their instances, security groups, private subnets and launch templates) and checks it:

- `live.not-deployed` nothing found (one error, nothing else runs); `live.group-missing` a group of the
  graph without its Auto Scaling group;
- `ip-capacity.leaked-eni` available ENIs of the cluster; `ip-capacity.subnet-free-ips` private subnets whose
  free addresses cannot hold the groups at their max size; `ip-capacity.type-not-offered` instance types not
  offered in the AZs of the cluster's subnets (DescribeInstanceTypeOfferings: --live only, as the static
  doctor makes no AWS call of its own beyond describing brought resources);
- `addressing.peered-cidr-overlap` peered VPC CIDRs overlapping the pod or service CIDR;
- tags and exposure of the live resources (`discovery.live-missing-tag`, `exposure.live-*`) in
  doctor.live_resources;
- the Kubernetes side (nodes registered and Ready, kube-system pods running) in doctor.live_k8s;
- the age of the newest etcd snapshot (kubeadm) in doctor.live_etcd;
- with `probe` (the CLI's `doctor --live`), etcd's health and the certificates' expiry of a kubeadm control
  plane in doctor.live_control_plane (short-lived Jobs on the control-plane nodes: kubeaws.member_probe).

Every AWS call is a Describe/List/Get. Called by the CLI (`kubeaws doctor --live`, kubeaws.cli.doctor) and
tests (tests/test_doctor_live.py, against the moto server).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, k8s_cluster_tag, tag_dict
from kubeaws.doctor.capacity import addresses_per_node
from kubeaws.doctor.findings import Finding
from kubeaws.kube_client import KubeClient
from kubeaws.model.flows import CONTROL_PLANE
from kubeaws.model.graph import Graph
from kubeaws.model.maxpods import UnknownInstanceType, effective_max_pods
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec
from kubeaws.spec.nodegroups import NODE_GROUP_LABEL

#: Lifecycle states of ASG instances that should be (or become) nodes.
LIVE_STATES = ("InService", "Pending", "Pending:Wait", "Pending:Proceed")
#: Tags the AWS VPC CNI puts on the ENIs it creates.
CNI_CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"
CNI_INSTANCE_TAG = "node.k8s.amazonaws.com/instance_id"
ROLE_TAG = "kubeaws.io/role"


@dataclass
class Inventory:
    """What AWS has for one cluster, as the describe calls return it."""

    cluster: str
    vpc: dict[str, Any] | None = None
    eks: dict[str, Any] | None = None
    asgs: list[dict[str, Any]] = field(default_factory=list)
    managed: dict[str, str] = field(default_factory=dict)  # ASG name -> EKS managed node group name
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)  # running/pending, by ID
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)  # private + the groups' subnets
    launch_templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    #: ASG name -> the launch template version it launches (DescribeLaunchTemplateVersions: LaunchTemplateName,
    #: VersionNumber, LaunchTemplateData); not for EKS managed groups
    template_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    group_names: dict[str, str] = field(default_factory=dict)  # EKS node group name -> spec node group name

    @property
    def deployed(self) -> bool:
        return bool(self.vpc or self.asgs or self.eks)

    def asg_instances(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(ASG, instance) for every instance of the cluster's groups that should be a node."""
        return [(asg, self.instances[i["InstanceId"]]) for asg in self.asgs for i in asg.get("Instances") or []
                if i.get("LifecycleState") in LIVE_STATES and i["InstanceId"] in self.instances]

    def is_control_plane(self, asg: dict[str, Any]) -> bool:
        return tag_dict(asg.get("Tags")).get(ROLE_TAG) == CONTROL_PLANE

    def group_of(self, spec: ClusterSpec, asg: dict[str, Any]) -> NodeGroupSpec | None:
        """The spec's node group an ASG belongs to (by the node-group tag, or the managed node group)."""
        managed = self.managed.get(asg["AutoScalingGroupName"])
        name = self.group_names.get(managed, managed) if managed else tag_dict(asg.get("Tags")).get(NODE_GROUP_LABEL)
        return next((ng for ng in spec.spec.node_groups if ng.name == name), None)


# -- gathering ------------------------------------------------------------------------------------------
def _tagged(cluster: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]


def _ours(resource: dict[str, Any], cluster: str) -> bool:
    tags = tag_dict(resource.get("Tags") or resource.get("TagSet"))
    return tags.get(CLUSTER_TAG) == cluster or k8s_cluster_tag(cluster) in tags


def _not_found(exc: ClientError) -> bool:
    code = error_code(exc)
    return "NotFound" in code or code == "ValidationError"


def _eks(ctx: AwsContext, cluster: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = ctx.call("eks", "describe_cluster", name=cluster)["cluster"]
        return found
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise


def gather(spec: ClusterSpec, ctx: AwsContext, graph: Graph | None = None) -> Inventory:
    """Read the cluster's resources (read-only). Ownership is by `kubeaws.io/cluster=<name>` (or the
    `kubernetes.io/cluster/<name>` tag of brought resources); filters are also applied here, since some
    endpoints (emulators) ignore them. `graph` names the EKS managed node groups of the spec's groups."""
    name, net = spec.metadata.name, spec.spec.network
    inv = Inventory(name)
    if graph is not None:
        inv.group_names = {str(d.props["nodegroup_name"]): d.name for d in graph.of_kind("EksNodegroup")
                           if isinstance(d.props.get("nodegroup_name"), str)}
    if spec.spec.mode == "eks":
        inv.eks = _eks(ctx, name)
    vpcs = (ctx.paginate("ec2", "describe_vpcs", "Vpcs", Filters=[{"Name": "vpc-id", "Values": [net.vpc.id]}])
            if net.vpc.id else [v for v in ctx.paginate("ec2", "describe_vpcs", "Vpcs", Filters=_tagged(name))
                                if _ours(v, name)])
    if not vpcs and inv.eks and (inv.eks.get("resourcesVpcConfig") or {}).get("vpcId"):
        vpc_id = inv.eks["resourcesVpcConfig"]["vpcId"]
        vpcs = ctx.paginate("ec2", "describe_vpcs", "Vpcs", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    inv.vpc = vpcs[0] if vpcs else None
    asgs = [a for a in ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                                    Filters=_tagged(name)) if tag_dict(a.get("Tags")).get(CLUSTER_TAG) == name]
    if inv.eks:
        for ng_name in ctx.paginate("eks", "list_nodegroups", "nodegroups", clusterName=name):
            ng = ctx.call("eks", "describe_nodegroup", clusterName=name, nodegroupName=ng_name)["nodegroup"]
            for group in (ng.get("resources") or {}).get("autoScalingGroups") or []:
                inv.managed[group["name"]] = ng_name
        managed = sorted(inv.managed)
        for start in range(0, len(managed), 50):  # DescribeAutoScalingGroups takes at most 50 names
            asgs += ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                                 AutoScalingGroupNames=managed[start:start + 50])
    inv.asgs = sorted(asgs, key=lambda a: str(a["AutoScalingGroupName"]))
    _gather_instances(ctx, inv)
    if inv.vpc:
        _gather_network(spec, ctx, inv)
    _gather_launch_templates(ctx, inv)
    return inv


def _gather_instances(ctx: AwsContext, inv: Inventory) -> None:
    ids = sorted({i["InstanceId"] for a in inv.asgs for i in a.get("Instances") or []
                  if i.get("LifecycleState") in LIVE_STATES})
    live = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        # A filter, not InstanceIds: an instance terminated meanwhile is then absent instead of an error.
        found += [i for r in ctx.paginate("ec2", "describe_instances", "Reservations", Filters=[
            {"Name": "instance-id", "Values": ids[start:start + 100]}]) for i in r["Instances"]]
    found += [i for r in ctx.paginate("ec2", "describe_instances", "Reservations",
                                      Filters=[*_tagged(inv.cluster), *live]) for i in r["Instances"]]
    inv.instances = {i["InstanceId"]: i for i in found if i["State"]["Name"] in ("pending", "running")
                     and (i["InstanceId"] in ids or _ours(i, inv.cluster))}


def _gather_network(spec: ClusterSpec, ctx: AwsContext, inv: Inventory) -> None:
    assert inv.vpc is not None
    in_vpc = [{"Name": "vpc-id", "Values": [inv.vpc["VpcId"]]}]
    used = {g["GroupId"] for i in inv.instances.values() for g in i.get("SecurityGroups") or []}
    eks_vpc = (inv.eks or {}).get("resourcesVpcConfig") or {}
    used |= set(eks_vpc.get("securityGroupIds") or []) | {eks_vpc.get("clusterSecurityGroupId") or ""}
    groups = ctx.paginate("ec2", "describe_security_groups", "SecurityGroups", Filters=in_vpc)
    inv.security_groups = {g["GroupId"]: g for g in groups if g.get("VpcId") == inv.vpc["VpcId"]
                           and (g["GroupId"] in used or _ours(g, inv.cluster))}
    brought = list(spec.spec.network.subnets.private) if spec.spec.network.subnets else []
    asg_subnets = {s for a in inv.asgs for s in (a.get("VPCZoneIdentifier") or "").split(",") if s}
    subnets = ctx.paginate("ec2", "describe_subnets", "Subnets", Filters=in_vpc)
    inv.subnets = {s["SubnetId"]: s for s in subnets if s["SubnetId"] in asg_subnets or s["SubnetId"] in brought
                   or (_ours(s, inv.cluster) and tag_dict(s.get("Tags")).get("kubeaws.io/subnet-role") == "private")}


def _lt_spec(asg: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = asg.get("LaunchTemplate") or (
        (asg.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get("LaunchTemplateSpecification") or {}
    return spec


def _lt_name(asg: dict[str, Any]) -> str | None:
    name = _lt_spec(asg).get("LaunchTemplateName")
    return str(name) if name else None


def _gather_launch_templates(ctx: AwsContext, inv: Inventory) -> None:
    names = {n for a in inv.asgs if a["AutoScalingGroupName"] not in inv.managed and (n := _lt_name(a))}
    found = [t for t in ctx.paginate("ec2", "describe_launch_templates", "LaunchTemplates",
                                     Filters=_tagged(inv.cluster)) if _ours(t, inv.cluster)]
    for missing in sorted(names - {t["LaunchTemplateName"] for t in found}):  # referenced but not ours
        try:
            found += ctx.call("ec2", "describe_launch_templates", LaunchTemplateNames=[missing])["LaunchTemplates"]
        except ClientError as exc:
            if not _not_found(exc):
                raise
    inv.launch_templates = {t["LaunchTemplateName"]: t for t in found}
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    for asg in inv.asgs:
        name = _lt_name(asg)
        if asg["AutoScalingGroupName"] in inv.managed or name not in inv.launch_templates:
            continue
        version = str(_lt_spec(asg).get("Version") or "$Default")
        if (name, version) not in versions:
            try:
                found_versions = ctx.call("ec2", "describe_launch_template_versions", LaunchTemplateName=name,
                                          Versions=[version])["LaunchTemplateVersions"]
            except ClientError as exc:
                if not _not_found(exc):
                    raise
                found_versions = []
            versions[(name, version)] = found_versions[0] if found_versions else {}
        if versions[(name, version)]:
            inv.template_data[asg["AutoScalingGroupName"]] = versions[(name, version)]


# -- checks on AWS resources ------------------------------------------------------------------------------
def check_groups(spec: ClusterSpec, graph: Graph, inv: Inventory) -> list[Finding]:
    """Every Auto Scaling group and managed node group of the graph exists (an unfinished apply)."""
    names = {a["AutoScalingGroupName"] for a in inv.asgs}
    want = [d for d in graph.of_kind("AutoScalingGroup") if d.props.get("name") and d.props["name"] not in names]
    managed = set(inv.managed.values())
    if inv.eks is not None:  # managed groups are found through the EKS cluster
        want += [d for d in graph.of_kind("EksNodegroup") if d.props.get("nodegroup_name") not in managed]
    return [Finding("error", "live.group-missing", f"{d.key} ({d.props.get('name') or d.props.get('nodegroup_name')})"
                    " does not exist", d.key, "run `kubeaws apply` (it may have failed or not finished)")
            for d in want]


def check_leaked_enis(spec: ClusterSpec, ctx: AwsContext, inv: Inventory) -> list[Finding]:
    """Available (unattached) ENIs in the cluster's VPC that belong to it: in its security groups or tagged
    by the AWS VPC CNI for it. Each holds addresses the subnets need (problem 5). ENIs kubeaws itself manages
    (tagged kubeaws.io/resource, e.g. the control plane's stable ENI waiting for its member) are no leak."""
    if inv.vpc is None:
        return []
    enis = ctx.paginate("ec2", "describe_network_interfaces", "NetworkInterfaces",
                        Filters=[{"Name": "vpc-id", "Values": [inv.vpc["VpcId"]]},
                                 {"Name": "status", "Values": ["available"]}])
    findings = []
    for eni in enis:
        tags = tag_dict(eni.get("TagSet"))
        groups = {g["GroupId"] for g in eni.get("Groups") or []}
        ours = (groups & set(inv.security_groups) or tags.get(CNI_CLUSTER_TAG) == inv.cluster
                or CNI_INSTANCE_TAG in tags)
        if eni.get("Status") != "available" or eni.get("VpcId") != inv.vpc["VpcId"] or not ours:
            continue
        if RESOURCE_TAG in tags:  # one kubeaws manages (e.g. the control plane's stable ENI): not leaked
            continue
        eni_id = eni["NetworkInterfaceId"]
        addresses = len(eni.get("PrivateIpAddresses") or []) or 1
        findings.append(Finding(
            "warning", "ip-capacity.leaked-eni", f"ENI {eni_id} in subnet {eni.get('SubnetId')} is not attached "
            f"to anything and holds {addresses} address(es) (left behind by the VPC CNI or a deleted node)",
            f"NetworkInterface/{eni_id}", f"aws ec2 delete-network-interface --network-interface-id {eni_id} "
            f"--region {ctx.region}"))
    return findings


def _per_node(spec: ClusterSpec, ng: NodeGroupSpec | None) -> int | None:
    """Addresses one node of the group takes: max pods + 1 with the AWS VPC CNI, 1 with an overlay CNI."""
    if spec.spec.cni != "aws-vpc-cni":
        return 1
    if ng is None:
        return None
    try:
        pods = effective_max_pods(spec, ng.name)
    except UnknownInstanceType:
        return None
    return addresses_per_node(pods, spec.spec.eks.prefix_delegation)


def check_subnet_room(spec: ClusterSpec, inv: Inventory) -> list[Finding]:
    """Each private subnet's free addresses (AvailableIpAddressCount) against what the groups launching into
    it still need to reach their max size: ceil(max / subnets) - instances there now, times the addresses
    a node takes (nodes already running hold theirs)."""
    need: dict[str, int] = {}
    for asg in inv.asgs:
        group = inv.group_of(spec, asg)
        per_node = 1 if inv.is_control_plane(asg) else _per_node(spec, group)
        subnets = [s for s in (asg.get("VPCZoneIdentifier") or "").split(",") if s in inv.subnets]
        if per_node is None or not subnets:
            continue
        share = math.ceil(int(asg["MaxSize"]) / len(subnets))
        for subnet in subnets:
            az = inv.subnets[subnet]["AvailabilityZone"]
            here = sum(1 for i in asg.get("Instances") or [] if i.get("AvailabilityZone") == az)
            need[subnet] = need.get(subnet, 0) + max(share - here, 0) * per_node
    findings = []
    for subnet_id, needed in sorted(need.items()):
        subnet = inv.subnets[subnet_id]
        free = int(subnet.get("AvailableIpAddressCount", 0))
        if needed > free:
            findings.append(Finding(
                "error", "ip-capacity.subnet-free-ips", f"subnet {subnet_id} ({subnet.get('CidrBlock')}, "
                f"{subnet['AvailabilityZone']}) has {free} free addresses, but the groups launching into it need "
                f"{needed} more to reach their max size", f"Subnet/{subnet_id}",
                "lower size.max or maxPods, delete leaked ENIs, or add larger private subnets"
                + ("" if spec.spec.eks.prefix_delegation or spec.spec.cni != "aws-vpc-cni"
                   else " (or enable eks.prefixDelegation)")))
    return findings


def check_type_offerings(spec: ClusterSpec, ctx: AwsContext, inv: Inventory) -> list[Finding]:
    """The node groups' and control plane's instance types are offered in the AZs of the cluster's private
    subnets (the spec's AZs before the subnets exist): error when offered in none, warning for some."""
    azs = sorted({s["AvailabilityZone"] for s in inv.subnets.values()}) or sorted(spec.spec.network.availability_zones)
    wanted: dict[str, str] = {}
    if spec.spec.mode == "kubeadm":
        wanted[spec.spec.control_plane.instance_type] = "spec.controlPlane.instanceType"
    for i, ng in enumerate(spec.spec.node_groups):
        for t in ng.instance_types:
            wanted.setdefault(t, f"spec.nodeGroups[{i}].instanceTypes")
    if not azs or not wanted:
        return []
    offers = ctx.paginate("ec2", "describe_instance_type_offerings", "InstanceTypeOfferings",
                          LocationType="availability-zone",
                          Filters=[{"Name": "instance-type", "Values": sorted(wanted)},
                                   {"Name": "location", "Values": azs}])
    offered: dict[str, set[str]] = {}
    for o in offers:
        offered.setdefault(o["InstanceType"], set()).add(o["Location"])
    findings = []
    for instance_type, path in sorted(wanted.items()):
        missing = [az for az in azs if az not in offered.get(instance_type, set())]
        if not missing:
            continue
        everywhere = len(missing) == len(azs)
        findings.append(Finding(
            "error" if everywhere else "warning", "ip-capacity.type-not-offered",
            f"{instance_type} is not offered in {', '.join(missing)}"
            + (" (none of the cluster's AZs): no instance can launch" if everywhere
               else ": the Auto Scaling groups cannot launch it there"), path,
            f"pick a type offered there (aws ec2 describe-instance-type-offerings --location-type "
            f"availability-zone --filters Name=instance-type,Values={instance_type} --region {ctx.region}), "
            "add another type to the group, or use other AZs"))
    return findings


def _nets(cidrs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            continue
    return out


def check_peering(spec: ClusterSpec, ctx: AwsContext, inv: Inventory) -> list[Finding]:
    """Active peering connections of the cluster's VPC: the peer VPC's CIDRs must not overlap the pod CIDR
    (overlay CNIs) or the service CIDR, or traffic to those peers is routed into the cluster."""
    if inv.vpc is None:
        return []
    vpc_id = inv.vpc["VpcId"]
    ranges = {"serviceCIDR": spec.spec.network.service_cidr}
    if spec.spec.cni != "aws-vpc-cni":
        ranges["podCIDR"] = spec.spec.network.pod_cidr
    findings = []
    seen: set[str] = set()
    for side, other in (("requester", "AccepterVpcInfo"), ("accepter", "RequesterVpcInfo")):
        for pcx in ctx.paginate("ec2", "describe_vpc_peering_connections", "VpcPeeringConnections",
                                Filters=[{"Name": f"{side}-vpc-info.vpc-id", "Values": [vpc_id]},
                                         {"Name": "status-code", "Values": ["active"]}]):
            mine = pcx.get("RequesterVpcInfo" if side == "requester" else "AccepterVpcInfo") or {}
            pcx_id = pcx["VpcPeeringConnectionId"]
            if pcx_id in seen or mine.get("VpcId") != vpc_id or (pcx.get("Status") or {}).get("Code") != "active":
                continue
            seen.add(pcx_id)
            info = pcx.get(other) or {}
            peer = [info.get("CidrBlock") or "", *(c.get("CidrBlock", "") for c in info.get("CidrBlockSet") or [])]
            for label, cidr in ranges.items():
                for net in {n for n in _nets(peer) for mine_net in _nets([cidr]) if n.overlaps(mine_net)}:
                    findings.append(Finding(
                        "error", "addressing.peered-cidr-overlap", f"peered VPC {info.get('VpcId')} "
                        f"({pcx_id}) uses {net}, which overlaps the cluster's {label} {cidr}: traffic to it "
                        "goes to pods/services instead", f"spec.network.{label}",
                        f"choose a {label} that overlaps none of the peered networks (a new cluster is needed to "
                        "change it) or remove the route to the peer"))
    return findings


# -- entry point ------------------------------------------------------------------------------------------
def check_live(spec: ClusterSpec, graph: Graph, ctx: AwsContext, *, kube: KubeClient | None = None,
               now: float | None = None, tunnel: bool = False, ssh_key: Path | None = None,
               probe: bool = False) -> list[Finding]:
    """Every live check. `kube`: a Kubernetes client to use instead of the one built from the cluster's
    credentials (tests); `now`: the epoch time instance ages are measured against (default: now); `tunnel`:
    reach a private API through the bastion (with `ssh_key`, or the SSH agent's keys); `probe`: also run the
    control-plane probe (it creates Jobs in kube-system for a few seconds)."""
    from kubeaws.doctor import live_control_plane, live_etcd, live_k8s, live_resources

    inv = gather(spec, ctx, graph)
    if not inv.deployed:
        return [Finding("error", "live.not-deployed", f"cluster {spec.metadata.name} has no VPC, Auto Scaling "
                        f"group or EKS cluster in {ctx.region}: nothing is deployed (or the credentials/region "
                        "point elsewhere)", f"cluster {spec.metadata.name}",
                        "run `kubeaws apply`, or check --profile/--region")]
    findings = check_groups(spec, graph, inv)
    findings += check_leaked_enis(spec, ctx, inv)
    findings += check_subnet_room(spec, inv)
    findings += check_type_offerings(spec, ctx, inv)
    findings += check_peering(spec, ctx, inv)
    findings += live_resources.check_live_tags(spec, inv)
    findings += live_resources.check_live_exposure(spec, ctx, inv)
    findings += live_k8s.check_kubernetes(spec, ctx, inv, kube=kube, now=now, tunnel=tunnel,
                                          ssh_key=ssh_key)
    findings += live_etcd.check_snapshots(spec, ctx, now=now)
    if probe and not any(f.check == "live.api-unreachable" for f in findings):
        findings += live_control_plane.check_control_plane(spec, ctx, kube=kube, now=now, tunnel=tunnel,
                                                           ssh_key=ssh_key)
    return findings


#: Static findings that a live run measures better: the static count of brought subnets' free addresses
#: asks for every node at max size on top of the addresses the running nodes already hold.
SUPERSEDED_BY_LIVE = frozenset({"ip-capacity.subnet-too-small"})


def combine(static: list[Finding], live: list[Finding]) -> list[Finding]:
    """The findings of a `--live` run: the static ones, minus those the live checks supersede when the cluster
    is deployed (so a subnet is reported once, by the check that counts the running nodes), plus the live
    ones."""
    if any(f.check == "live.not-deployed" for f in live):
        return [*static, *live]
    return [f for f in static if f.check not in SUPERSEDED_BY_LIVE] + live
