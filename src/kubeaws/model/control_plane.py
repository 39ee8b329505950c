"""Control-plane builder (docs/kubeadm.md): `controlPlane.count` members (1/3/5), member i pinned to AZ
`azs[i % len(azs)]`. Per member an encrypted etcd data Volume `etcd-<i>` and an Auto Scaling group
`control-plane-<i>` (named `<cluster>-control-plane-<i>`, size 1, that AZ's private subnet, tag
`kubeaws.io/control-plane-member=<i>` propagated to the instance, registered in the API target group); all
members share one LaunchTemplate `control-plane` (IMDSv2 with hop limit 2 for containers, encrypted root
volume, the control-plane instance profile and user data given by the caller), each member's group pinned to
its own version of it (so that members move to a new configuration one at a time, by `kubeaws rollout`).

Also holds `add_launch_template` / `volume_device`, shared with model.nodegroups. Called by `model.build`.
Pure: spec in, desired resources out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeaws.aws.tags import k8s_cluster_tag
from kubeaws.model.common import Builder
from kubeaws.model.endpoint import EndpointRefs
from kubeaws.model.flows import CONTROL_PLANE
from kubeaws.model.images import image
from kubeaws.model.network import NetworkRefs
from kubeaws.resources.base import Computed, Lookup, Ref
from kubeaws.spec.models import VolumeSpec

MEMBER_TAG = "kubeaws.io/control-plane-member"
ETCD_MEMBER_TAG = "kubeaws.io/etcd-member"
ROLE_TAG = "kubeaws.io/role"
#: Health checks of Auto Scaling groups: EC2 status, with time for kubeadm to bring a member up.
HEALTH_CHECK = {"health_check_type": "EC2", "health_check_grace_period": 300}


@dataclass
class ControlPlaneRefs:
    """The control plane's resources, by member index."""

    launch_template: Ref
    auto_scaling_groups: list[Ref] = field(default_factory=list)
    etcd_volumes: list[Ref] = field(default_factory=list)
    azs: list[str | Ref] = field(default_factory=list)


def volume_device(volume: VolumeSpec, device_name: str | None) -> dict[str, Any]:
    """A launch-template block device (device_name None = the AMI's root device), always encrypted."""
    return {"device_name": device_name, "size": volume.size, "volume_type": volume.type, "iops": volume.iops,
            "throughput": volume.throughput, "encrypted": True, "delete_on_termination": True}


#: IMDSv2 hop limit of control-plane members: 2, for the addons that call AWS with the instance role (see
#: `build_control_plane`); every other launch template (nodes, bastion, EKS groups) has 1.
CONTROL_PLANE_HOP_LIMIT = 2


def metadata_options(hop_limit: int) -> dict[str, Any]:
    """IMDSv2 only; hop limit 2 lets containers reach IMDS, 1 keeps them out."""
    return {"http_tokens": "required", "http_endpoint": "enabled", "http_put_response_hop_limit": hop_limit}


def add_launch_template(b: Builder, name: str, props: dict[str, Any], launch_tags: dict[str, str],
                        role: str, aws_name: str | None = None) -> Ref:
    """Add LaunchTemplate `name` (AWS name `aws_name`, default `<cluster>-<name>`); return a Ref to it. Its
    Auto Scaling groups are created on its default version (`launch_template_version`, a Ref to it) and stay
    there until `kubeaws rollout` moves them. The template and its instances and volumes are tagged with
    `launch_tags` (+ Name = the AWS name and the Kubernetes cluster tag; never the kubeaws identity tags on
    instances and volumes). A Lookup AMI is create_only: a moving SSM parameter must not churn."""
    display = aws_name or b.display(name)
    tags = {**b.spec.spec.tags, **launch_tags, ROLE_TAG: role, "Name": display, k8s_cluster_tag(b.cluster): "owned"}
    full = {"name": display, **props, "instance_tags": tags, "volume_tags": dict(tags)}
    create_only = frozenset({"image_id"}) if isinstance(full["image_id"], Lookup) else frozenset()
    return b.owned("LaunchTemplate", name, full, extra_tags={**launch_tags, ROLE_TAG: role},
                   create_only=create_only, display=display)


def template_version(template: Ref) -> Ref:
    """The launch template's default version: what a new group launches (create_only on the group)."""
    return Ref(template.kind, template.name, "default_version")


def member_placement(net: NetworkRefs, i: int) -> tuple[str | Ref, Ref]:
    """(AZ, private subnet) of member i: AZ `azs[i % len(azs)]`. With brought subnets whose AZs the spec
    does not pair with them, the AZ is read from the subnet (Ref to its `az`)."""
    subnet = net.private_subnets[i % len(net.private_subnets)]
    if len(net.azs) == len(net.private_subnets):
        return net.azs[i % len(net.azs)], subnet
    return Ref(subnet.kind, subnet.name, "az"), subnet


def build_control_plane(b: Builder, net: NetworkRefs, groups: dict[str, Ref], endpoint: EndpointRefs, *,
                        instance_profile: str | Ref, user_data: str | Computed) -> ControlPlaneRefs:
    """Add the control plane: one launch template, and per member an etcd volume and an Auto Scaling group."""
    cp = b.spec.spec.control_plane
    template = add_launch_template(b, "control-plane", {
        "image_id": image(cp.os, cp.instance_type, cp.ami),
        "instance_type": cp.instance_type,
        "key_name": b.spec.spec.access.ssh_key_name,
        "iam_instance_profile": instance_profile,
        "security_group_ids": [groups[CONTROL_PLANE]],
        # Hop limit 2: the EBS CSI controller and the cluster-autoscaler run here as ordinary (not host-network)
        # pods and take the control-plane role's credentials from IMDS, one hop further than the host.
        "metadata_options": metadata_options(CONTROL_PLANE_HOP_LIMIT),
        "block_devices": [volume_device(cp.root_volume, None)],
        "user_data": user_data,
    }, {}, CONTROL_PLANE)
    refs = ControlPlaneRefs(launch_template=template)
    for i in range(cp.count):
        az, subnet = member_placement(net, i)
        etcd = cp.etcd_volume
        volume = b.owned("Volume", f"etcd-{i}", {
            "availability_zone": az, "size": etcd.size, "volume_type": etcd.type, "iops": etcd.iops,
            "throughput": etcd.throughput, "encrypted": True,
        }, extra_tags={ETCD_MEMBER_TAG: str(i), ROLE_TAG: "etcd"})
        depends = (volume.key,) + ((endpoint.network_interface.key,) if endpoint.network_interface else ())
        group = b.owned("AutoScalingGroup", f"control-plane-{i}", {
            "name": b.display(f"control-plane-{i}"), "launch_template_id": template,
            "launch_template_version": template_version(template), "min_size": 1, "max_size": 1,
            "desired_capacity": 1,
            "subnet_ids": [subnet], "mixed_instances": None,
            "target_group_arns": sorted(endpoint.target_group_arns, key=str), **HEALTH_CHECK,
            "capacity_rebalance": False,
        }, extra_tags={MEMBER_TAG: str(i), ROLE_TAG: CONTROL_PLANE},
            create_only=frozenset({"desired_capacity", "launch_template_version"}), depends_on=depends)
        refs.auto_scaling_groups.append(group)
        refs.etcd_volumes.append(volume)
        refs.azs.append(az)
    return refs
