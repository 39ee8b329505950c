"""Checks of `kubeaws doctor --live` on the cluster's live AWS resources, over the `Inventory` doctor.live
gathers:

- `discovery.live-missing-tag` (problem 6): launch templates, Auto Scaling groups and their instances without
  `kubernetes.io/cluster/<name>`, node-group Auto Scaling groups without the cluster-autoscaler discovery
  tags (with the clusterAutoscaler addon), instances without the spec's tags (team/cost: warning);
- `exposure.live-imdsv1`, `exposure.live-unencrypted`, `exposure.live-world-open`: running instances allowing
  IMDSv1, their unencrypted volumes, and the cluster's security groups opening SSH, the API, etcd or the
  kubelet (doctor.network.SENSITIVE) to the world.

Each hint is the AWS CLI command that fixes the live resource. Called by doctor.live.check_live.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import k8s_cluster_tag, tag_dict
from kubeaws.doctor.findings import Finding
from kubeaws.doctor.network import SENSITIVE, WORLD
from kubeaws.model.nodegroups import CA
from kubeaws.spec.models import ClusterSpec

if TYPE_CHECKING:
    from kubeaws.doctor.live import Inventory


def check_live_tags(spec: ClusterSpec, inv: Inventory) -> list[Finding]:
    """Problem 6 on live resources: launch templates, Auto Scaling groups and their instances carry
    `kubernetes.io/cluster/<name>`; node-group ASGs the cluster-autoscaler discovery tags when the addon is
    on; instances the spec's tags (team/cost: warning)."""
    name = inv.cluster
    tag = k8s_cluster_tag(name)
    findings: list[Finding] = []

    def missing(what: str, resource: str, keys: list[str], hint: str, severity: str = "error") -> None:
        findings.append(Finding(severity, "discovery.live-missing-tag",  # type: ignore[arg-type]
                                f"{what} misses the tag(s) {', '.join(keys)}", resource, hint))

    for lt_name, lt in sorted(inv.launch_templates.items()):
        if tag not in tag_dict(lt.get("Tags")):
            missing(f"launch template {lt_name}", f"LaunchTemplate/{lt_name}", [tag],
                    f"aws ec2 create-tags --resources {lt['LaunchTemplateId']} --tags Key={tag},Value=owned "
                    "(or `kubeaws apply`, which tags what it creates)")
    autoscaler = spec.spec.addons.cluster_autoscaler is not None
    for asg in inv.asgs:
        asg_name = asg["AutoScalingGroupName"]
        tags = tag_dict(asg.get("Tags"))
        wanted = [tag]
        if autoscaler and not inv.is_control_plane(asg):
            wanted += [f"{CA}/enabled", f"{CA}/{name}"]
        absent = [k for k in wanted if k not in tags]
        if absent:
            sets = " ".join(f"ResourceId={asg_name},ResourceType=auto-scaling-group,Key={k},"
                            f"Value={'true' if k.endswith('/enabled') else 'owned'},PropagateAtLaunch=true"
                            for k in absent)
            missing(f"Auto Scaling group {asg_name}", f"AutoScalingGroup/{asg_name}", absent,
                    f"aws autoscaling create-or-update-tags --tags {sets}")
    spec_tags = dict(spec.spec.tags)
    for asg, instance in inv.asg_instances():
        tags = tag_dict(instance.get("Tags"))
        iid = instance["InstanceId"]
        if tag not in tags:
            missing(f"instance {iid} ({asg['AutoScalingGroupName']})", f"Instance/{iid}", [tag],
                    f"tag the launch template's instances {tag}=owned; now: aws ec2 create-tags --resources {iid} "
                    f"--tags Key={tag},Value=owned")
        absent = sorted(k for k in spec_tags if k not in tags)
        if absent:
            missing(f"instance {iid} ({asg['AutoScalingGroupName']})", f"Instance/{iid}", absent,
                    "put spec.tags on the launch template's instance tags (`kubeaws apply`); now: aws ec2 "
                    f"create-tags --resources {iid} --tags "
                    + " ".join(f"Key={k},Value={spec_tags[k]}" for k in absent), "warning")
    return findings


#: IpProtocol numbers AWS may return instead of the names.
PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp"}


def _opens(perm: dict[str, Any], protocol: str, lo: int, hi: int) -> bool:
    proto = str(perm.get("IpProtocol"))
    if proto == "-1":
        return True
    if PROTOCOL_NUMBERS.get(proto, proto) != protocol:
        return False
    return int(perm.get("FromPort", 0)) <= hi and int(perm.get("ToPort", 65535)) >= lo


def _template_findings(ctx: AwsContext, inv: Inventory) -> list[Finding]:
    """The launch template versions the groups launch: IMDSv1 allowed, block devices not encrypted (unless EBS
    encryption by default is on in the region). Checked even for a group at size 0, whose next instance
    would carry them."""
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    by_default: bool | None = None
    for _, version in sorted(inv.template_data.items()):
        name, number = str(version.get("LaunchTemplateName")), str(version.get("VersionNumber"))
        if (name, number) in seen:
            continue
        seen.add((name, number))
        data = version.get("LaunchTemplateData") or {}
        where = f"launch template {name} version {number}"
        tokens = (data.get("MetadataOptions") or {}).get("HttpTokens")
        if tokens != "required":
            findings.append(Finding(
                "error", "exposure.live-imdsv1", f"{where} allows IMDSv1 (HttpTokens {tokens or 'unset'})",
                f"LaunchTemplate/{name}", "`kubeaws apply` (its launch templates require IMDSv2), or a new version "
                "with --launch-template-data '{\"MetadataOptions\":{\"HttpTokens\":\"required\"}}'"))
        plain = [m.get("DeviceName", "?") for m in data.get("BlockDeviceMappings") or []
                 if "Ebs" in m and not (m.get("Ebs") or {}).get("Encrypted")]
        if plain and by_default is None:
            by_default = _encrypted_by_default(ctx)
        if plain and not by_default:
            findings.append(Finding(
                "error", "exposure.live-unencrypted", f"{where} does not encrypt {', '.join(plain)} (and EBS "
                "encryption by default is off)", f"LaunchTemplate/{name}", "`kubeaws apply` (its launch templates "
                "encrypt every volume), or turn on aws ec2 enable-ebs-encryption-by-default"))
    return findings


def _encrypted_by_default(ctx: AwsContext) -> bool:
    from botocore.exceptions import ClientError

    try:
        return bool(ctx.call("ec2", "get_ebs_encryption_by_default").get("EbsEncryptionByDefault"))
    except ClientError:
        return False


def check_live_exposure(spec: ClusterSpec, ctx: AwsContext, inv: Inventory) -> list[Finding]:
    """The launch templates the groups launch and the running instances: IMDSv1 allowed, unencrypted
    volumes; the cluster's security groups opening SSH, the API, etcd, the kubelet or the NodePorts to
    0.0.0.0/0 or ::/0 (warning with access.allowWorldAccess); a public EKS endpoint open to the world.

    Where the endpoint does not apply it (`applies_launch_template_metadata`: the local emulator), Auto
    Scaling instances do not get their launch template's
    metadata options and carry an extra unencrypted default root volume: those instances are judged by their
    launch template version (checked anyway) and one info finding says so; AWS is checked instance by
    instance."""
    findings = _template_findings(ctx, inv)
    launched = {i["InstanceId"]: a["AutoScalingGroupName"] for a in inv.asgs for i in a.get("Instances") or []
                if a["AutoScalingGroupName"] in inv.template_data}
    emulated = set(launched) & set(inv.instances) if not ctx.capabilities.applies_launch_template_metadata else set()
    for iid, instance in sorted(inv.instances.items()):
        tokens = (instance.get("MetadataOptions") or {}).get("HttpTokens")
        if tokens != "required" and iid not in emulated:
            findings.append(Finding(
                "error", "exposure.live-imdsv1", f"instance {iid} allows IMDSv1 (HttpTokens {tokens})",
                f"Instance/{iid}", f"aws ec2 modify-instance-metadata-options --instance-id {iid} --http-tokens "
                "required (and set it in the launch template)"))
    ids = sorted(inv.instances)
    volumes = []
    for start in range(0, len(ids), 100):
        volumes += ctx.paginate("ec2", "describe_volumes", "Volumes",
                                Filters=[{"Name": "attachment.instance-id", "Values": ids[start:start + 100]}])
    ignored = 0
    for volume in volumes:
        owner, device = next(((a["InstanceId"], a.get("Device")) for a in volume.get("Attachments") or []
                              if a["InstanceId"] in inv.instances), (None, None))
        if not owner or volume.get("Encrypted"):
            continue
        if owner in emulated and _emulator_root(inv, owner, launched[owner], device):
            ignored += 1
            continue
        findings.append(Finding(
            "error", "exposure.live-unencrypted", f"volume {volume['VolumeId']} of instance {owner} is not "
            "encrypted", f"Volume/{volume['VolumeId']}", "encrypt the launch template's block devices "
            "(or turn on EBS encryption by default: aws ec2 enable-ebs-encryption-by-default) and replace "
            "the instance"))
    if emulated:
        findings.append(Finding(
            "info", "exposure.live-emulated", f"the local emulator does not apply launch templates' metadata "
            f"options and volume encryption to Auto Scaling instances: {len(emulated)} instance(s) judged by "
            f"their launch template versions instead" + (f", {ignored} default root volume(s) the emulator adds "
                                                         "ignored" if ignored else ""),
            f"cluster {inv.cluster}", "nothing to fix: on AWS every instance is checked itself"))
    findings += _world_open_groups(spec, inv)
    findings += _world_open_eks(spec, inv)
    return findings


#: Where the emulator (moto) attaches the default root volume it adds to every instance.
EMULATOR_ROOT_DEVICE = "/dev/sda1"


def _emulator_root(inv: Inventory, iid: str, asg: str, device: str | None) -> bool:
    """Whether a volume is the emulator's own default root volume of an Auto Scaling instance: at the
    emulator's root device (or the instance's), which the launch template does not map."""
    mapped = {m.get("DeviceName") for m in
              (inv.template_data[asg].get("LaunchTemplateData") or {}).get("BlockDeviceMappings") or []}
    roots = {EMULATOR_ROOT_DEVICE, inv.instances[iid].get("RootDeviceName")}
    return device is not None and device in roots and device not in mapped


def _world_open_groups(spec: ClusterSpec, inv: Inventory) -> list[Finding]:
    findings = []
    severity = "warning" if spec.spec.access.allow_world_access else "error"
    for gid, group in sorted(inv.security_groups.items()):
        for perm in group.get("IpPermissions") or []:
            world = [r["CidrIp"] for r in perm.get("IpRanges") or [] if r.get("CidrIp") in WORLD]
            world += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges") or [] if r.get("CidrIpv6") in WORLD]
            for cidr in world:
                for protocol, lo, hi, what in SENSITIVE:
                    if _opens(perm, protocol, lo, hi):
                        ports = str(lo) if lo == hi else f"{lo}-{hi}"
                        findings.append(Finding(
                            severity, "exposure.live-world-open",  # type: ignore[arg-type]
                            f"security group {gid} ({group.get('GroupName')}) opens {what} ({protocol} {ports}) "
                            f"to {cidr}",
                            f"SecurityGroup/{gid}", f"aws ec2 revoke-security-group-ingress --group-id {gid} "
                            f"--ip-permissions '{_perm_json(perm, cidr)}' and allow your networks only"))
    return findings


def _world_open_eks(spec: ClusterSpec, inv: Inventory) -> list[Finding]:
    """The live EKS cluster's public endpoint accepting the whole internet (changed by hand, or never narrowed)."""
    vpc = (inv.eks or {}).get("resourcesVpcConfig") or {}
    cidrs = vpc.get("publicAccessCidrs") or []
    if not vpc.get("endpointPublicAccess") or (cidrs and not any(c in WORLD for c in cidrs)):
        return []
    name = inv.cluster
    return [Finding(
        "warning" if spec.spec.access.allow_world_access else "error", "exposure.live-world-open",
        f"the public endpoint of EKS cluster {name} accepts {', '.join(cidrs) or 'the whole internet'}",
        f"EksCluster/{name}", f"aws eks update-cluster-config --name {name} --resources-vpc-config "
        "publicAccessCidrs=<your networks> (`kubeaws apply` sets access.adminCIDRs), or endpointPublicAccess=false")]


def _perm_json(perm: dict[str, Any], cidr: str) -> str:
    out: dict[str, Any] = {"IpProtocol": perm.get("IpProtocol")}
    if "FromPort" in perm:
        out.update(FromPort=perm["FromPort"], ToPort=perm["ToPort"])
    out["IpRanges" if ":" not in cidr else "Ipv6Ranges"] = [{"CidrIp" if ":" not in cidr else "CidrIpv6": cidr}]
    return json.dumps([out], separators=(",", ":"))
