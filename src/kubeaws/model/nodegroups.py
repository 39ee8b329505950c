"""Node-group builder (docs/kubeadm.md): per self-managed `nodeGroups[]` entry a LaunchTemplate `ng-<name>`
and an Auto Scaling group `ng-<name>` across every private subnet, their AWS names from `spec.nodegroups`
(`<cluster>-ng-<name>` and `<cluster>-<name>`, or the group's name pattern). Several
instance types or spot capacity give a mixed instances policy (spot: no on-demand base, 0% on-demand above
it, price-capacity-optimized, capacity rebalancing); extraVolumes become raw, never formatted, encrypted
block devices /dev/sdf../dev/sdo. The group's tags carry the cluster-autoscaler discovery and node-template
tags (labels, taints), so it can scale from zero; the labels are `spec.nodegroups.node_labels`, the very ones
the bootstrap registers nodes with (`kubeaws.io/node-group`, `kubeaws.io/capacity`, `kubeaws.io/team`,
`kubeaws.io/instance-spec` and the group's own). The launch template tags instances and volumes with the
spec and group tags, the node group, team and instance spec.

`managed` groups (EKS) are skipped. Called by `model.build`. Pure: spec in, desired resources out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeaws.errors import FieldProblem, SpecError
from kubeaws.model.common import Builder, node_group_path
from kubeaws.model.control_plane import (
    HEALTH_CHECK,
    add_launch_template,
    metadata_options,
    template_version,
    volume_device,
)
from kubeaws.model.flows import NODES
from kubeaws.model.images import image
from kubeaws.model.network import NetworkRefs
from kubeaws.resources.base import Computed, Lookup, Ref
from kubeaws.spec.models import NodeGroupSpec
from kubeaws.spec.nodegroups import (
    group_name,
    kubeaws_labels,
    launch_tags,
    launch_template_name,
    node_labels,
)

#: Device names of extra volumes: /dev/sdf ... /dev/sdo.
EXTRA_DEVICES = [f"/dev/sd{c}" for c in "fghijklmno"]
CA = "k8s.io/cluster-autoscaler"
#: IMDSv2 hop limit of nodes: 1 keeps pods (other than host-network ones) away from the node role's
#: credentials; addons that need AWS credentials run on the control plane (hop limit 2).
NODE_HOP_LIMIT = 1


@dataclass
class NodeGroupRefs:
    launch_template: Ref
    auto_scaling_group: Ref


def autoscaler_tags(cluster: str, ng: NodeGroupSpec) -> dict[str, str]:
    """cluster-autoscaler auto-discovery and scale-from-zero node-template tags for one group, plus kubeaws'
    node labels as plain tags (node group, capacity, team, instance spec)."""
    tags = {f"{CA}/enabled": "true", f"{CA}/{cluster}": "owned", **kubeaws_labels(ng)}
    tags.update({f"{CA}/node-template/label/{k}": v for k, v in node_labels(ng).items()})
    tags.update({f"{CA}/node-template/taint/{t.key}": f"{t.value}:{t.effect}" for t in ng.taints})
    return tags


def mixed_policy(ng: NodeGroupSpec) -> dict[str, Any] | None:
    """The mixed instances policy of a group with several types or spot capacity, else None."""
    spot = ng.capacity == "spot"
    if not spot and len(ng.instance_types) == 1:
        return None
    return {"instance_types": list(ng.instance_types), "on_demand_base_capacity": 0,
            "on_demand_percentage_above_base": 0 if spot else 100,
            "spot_allocation_strategy": "price-capacity-optimized"}


def extra_devices(ng: NodeGroupSpec, index: int) -> list[dict[str, Any]]:
    if len(ng.extra_volumes) > len(EXTRA_DEVICES):
        raise SpecError([FieldProblem(f"spec.nodeGroups[{index}].extraVolumes",
                                      f"{len(ng.extra_volumes)} extra volumes, at most {len(EXTRA_DEVICES)}",
                                      "merge volumes or split the node group")])
    return [volume_device(v, dev) for v, dev in zip(ng.extra_volumes, EXTRA_DEVICES, strict=False)]


def build_node_groups(b: Builder, net: NetworkRefs, groups: dict[str, Ref], *, instance_profile: str | Ref,
                      user_data_for: Callable[[str], str | Computed],
                      image_for: Callable[[NodeGroupSpec], str | Lookup] | None = None) -> dict[str, NodeGroupRefs]:
    """Add a launch template and an Auto Scaling group per self-managed node group; return them by name.
    `image_for` picks each group's AMI (default: the group's OS image; EKS passes its optimized AMI)."""
    out: dict[str, NodeGroupRefs] = {}
    for index, ng in enumerate(b.spec.spec.node_groups):
        if ng.type != "self-managed":
            continue
        with b.section(node_group_path(ng.name)):
            mixed = mixed_policy(ng)
            template = add_launch_template(b, f"ng-{ng.name}", {
                "image_id": image_for(ng) if image_for else image(ng.os, ng.instance_types[0], ng.ami),
                # Also set with a mixed instances policy: its overrides take precedence on AWS, and the first type
                # is what a launch without the policy (the local emulator) uses.
                "instance_type": ng.instance_types[0],
                "key_name": b.spec.spec.access.ssh_key_name,
                "iam_instance_profile": instance_profile,
                "security_group_ids": [groups[NODES]],
                "metadata_options": metadata_options(NODE_HOP_LIMIT),
                "block_devices": [volume_device(ng.root_volume, None), *extra_devices(ng, index)],
                "user_data": user_data_for(ng.name),
            }, {**ng.tags, **launch_tags(ng)}, NODES, aws_name=launch_template_name(b.spec, ng))
            # The ASG's Name tag is the launch template's: propagated at launch, it would win on the instances.
            group = b.owned("AutoScalingGroup", f"ng-{ng.name}", {
                "name": group_name(b.spec, ng), "launch_template_id": template,
                "launch_template_version": template_version(template),
                "min_size": ng.size.min, "max_size": ng.size.max, "desired_capacity": ng.size.desired,
                "subnet_ids": sorted(net.private_subnets, key=str), "mixed_instances": mixed,
                "target_group_arns": [], **HEALTH_CHECK, "capacity_rebalance": ng.capacity == "spot",
            }, extra_tags={**ng.tags, **autoscaler_tags(b.cluster, ng), "kubeaws.io/role": NODES},
                create_only=frozenset({"desired_capacity", "launch_template_version"}),
                display=launch_template_name(b.spec, ng))
        out[ng.name] = NodeGroupRefs(launch_template=template, auto_scaling_group=group)
    return out
