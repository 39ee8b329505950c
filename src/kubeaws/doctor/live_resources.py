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


def _opens(perm: dict[str, Any], lo: int, hi: int) -> bool:
    proto = str(perm.get("IpProtocol"))
    if proto == "-1":
        return True
    if proto not in ("tcp", "6"):
        return False
    return int(perm.get("FromPort", 0)) <= hi and int(perm.get("ToPort", 65535)) >= lo


def check_live_exposure(spec: ClusterSpec, ctx: AwsContext, inv: Inventory) -> list[Finding]:
    """Running instances allowing IMDSv1, their unencrypted volumes, and the cluster's security groups
    opening SSH, the API, etcd or the kubelet to 0.0.0.0/0 (warning with access.allowWorldAccess)."""
    findings = []
    for iid, instance in sorted(inv.instances.items()):
        tokens = (instance.get("MetadataOptions") or {}).get("HttpTokens")
        if tokens != "required":
            findings.append(Finding(
                "error", "exposure.live-imdsv1", f"instance {iid} allows IMDSv1 (HttpTokens {tokens})",
                f"Instance/{iid}", f"aws ec2 modify-instance-metadata-options --instance-id {iid} --http-tokens "
                "required (and set it in the launch template)"))
    ids = sorted(inv.instances)
    volumes = []
    for start in range(0, len(ids), 100):
        volumes += ctx.paginate("ec2", "describe_volumes", "Volumes",
                                Filters=[{"Name": "attachment.instance-id", "Values": ids[start:start + 100]}])
    for volume in volumes:
        owner = next((a["InstanceId"] for a in volume.get("Attachments") or [] if a["InstanceId"] in inv.instances),
                     None)
        if owner and not volume.get("Encrypted"):
            findings.append(Finding(
                "error", "exposure.live-unencrypted", f"volume {volume['VolumeId']} of instance {owner} is not "
                "encrypted", f"Volume/{volume['VolumeId']}", "encrypt the launch template's block devices "
                "(or turn on EBS encryption by default: aws ec2 enable-ebs-encryption-by-default) and replace "
                "the instance"))
    severity = "warning" if spec.spec.access.allow_world_access else "error"
    for gid, group in sorted(inv.security_groups.items()):
        for perm in group.get("IpPermissions") or []:
            world = [r["CidrIp"] for r in perm.get("IpRanges") or [] if r.get("CidrIp") in WORLD]
            world += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges") or [] if r.get("CidrIpv6") in WORLD]
            for cidr in world:
                for lo, hi, what in SENSITIVE:
                    if _opens(perm, lo, hi):
                        ports = str(lo) if lo == hi else f"{lo}-{hi}"
                        findings.append(Finding(
                            severity, "exposure.live-world-open",  # type: ignore[arg-type]
                            f"security group {gid} ({group.get('GroupName')}) opens {what} (tcp {ports}) to {cidr}",
                            f"SecurityGroup/{gid}", f"aws ec2 revoke-security-group-ingress --group-id {gid} "
                            f"--ip-permissions '{_perm_json(perm, cidr)}' and allow your networks only"))
    return findings


def _perm_json(perm: dict[str, Any], cidr: str) -> str:
    out: dict[str, Any] = {"IpProtocol": perm.get("IpProtocol")}
    if "FromPort" in perm:
        out.update(FromPort=perm["FromPort"], ToPort=perm["ToPort"])
    out["IpRanges" if ":" not in cidr else "Ipv6Ranges"] = [{"CidrIp" if ":" not in cidr else "CidrIpv6": cidr}]
    return json.dumps([out], separators=(",", ":"))
