"""Pure tests of the compute builders: API endpoint (NLB vs ENI), control plane (member -> AZ pinning, etcd
volumes, shared launch template) and node groups (cluster-autoscaler tags, spot mixed policy, extra raw
volumes), with IMDSv2 and encryption everywhere. No AWS."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.errors import SpecError
from kubeaws.model.common import Builder
from kubeaws.model.control_plane import build_control_plane
from kubeaws.model.endpoint import build_endpoint
from kubeaws.model.graph import Graph
from kubeaws.model.network import build_network
from kubeaws.model.nodegroups import build_node_groups
from kubeaws.model.security import build_security
from kubeaws.resources.base import Desired, Lookup, Ref
from kubeaws.resources.launch_template import check
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

AZS = ["us-east-1a", "us-east-1b", "us-east-1c"]


def build(spec: ClusterSpec) -> Graph:
    b = Builder(spec=spec, graph=Graph(spec.metadata.name))
    net = build_network(b)
    groups = build_security(b, net)
    endpoint = build_endpoint(b, net, groups)
    b.owned("InstanceProfile", "control-plane", {"name": "dev-control-plane"})  # stands for the IAM builder
    build_control_plane(b, net, groups, endpoint, instance_profile=Ref("InstanceProfile", "control-plane", "name"),
                        user_data="#cloud-config\n")
    build_node_groups(b, net, groups, instance_profile="dev-nodes", user_data_for=lambda name: f"#node {name}\n")
    b.graph.validate()
    return b.graph


def spec(count: int = 1, endpoint: str = "private", node_groups: list[dict[str, Any]] | None = None) -> ClusterSpec:
    overrides: dict[str, Any] = {"network": {"availabilityZones": AZS}, "controlPlane": {"count": count},
                                 "access": {"apiEndpoint": endpoint}, "tags": {"team": "infra"}}
    if node_groups is not None:
        overrides["nodeGroups"] = node_groups
    return make_spec(**overrides)


def test_single_private_member_uses_an_interface() -> None:
    graph = build(spec())
    assert not graph.of_kind("LoadBalancer") and not graph.of_kind("TargetGroup")
    eni = graph["NetworkInterface/api"]
    assert eni.props["subnet_id"] == Ref("Subnet", "private-us-east-1a")
    assert eni.props["security_group_ids"] == [Ref("SecurityGroup", "control-plane")]
    asg = graph["AutoScalingGroup/control-plane-0"]
    assert asg.props["target_group_arns"] == [] and "NetworkInterface/api" in asg.refs()


@pytest.mark.parametrize(("count", "endpoint", "scheme", "subnet_role"), [
    (3, "private", "internal", "private"), (1, "public", "internet-facing", "public")])
def test_load_balancer_when_ha_or_public(count: int, endpoint: str, scheme: str, subnet_role: str) -> None:
    graph = build(spec(count, endpoint))
    assert not graph.of_kind("NetworkInterface")
    lb = graph["LoadBalancer/api"].props
    assert lb["scheme"] == scheme and lb["name"] == "dev-api" and lb["type"] == "network"
    assert lb["subnet_ids"] == sorted((Ref("Subnet", f"{subnet_role}-{az}") for az in AZS), key=str)
    assert lb["security_group_ids"] == [Ref("SecurityGroup", "lb")]
    tg = graph["TargetGroup/api"].props
    assert (tg["port"], tg["protocol"]) == (6443, "TCP")
    assert tg["health_check"] == {"protocol": "HTTPS", "path": "/readyz", "port": "6443", "interval": 10,
                                  "healthy_threshold": 2, "unhealthy_threshold": 2}
    assert lb["attributes"] == {"load_balancing.cross_zone.enabled": "true"}
    listener = graph["Listener/api"].props
    assert listener["load_balancer_arn"] == Ref("LoadBalancer", "api", "arn")
    assert listener["target_group_arn"] == Ref("TargetGroup", "api", "arn")
    for i in range(count):
        asg = graph[f"AutoScalingGroup/control-plane-{i}"].props
        assert asg["target_group_arns"] == [Ref("TargetGroup", "api", "arn")]


def test_members_pinned_to_azs_with_their_etcd_volume() -> None:
    graph = build(spec(5))
    for i in range(5):
        az = AZS[i % 3]
        volume = graph[f"Volume/etcd-{i}"]
        assert volume.props["availability_zone"] == az and volume.props["encrypted"] is True
        assert volume.props["size"] == 20 and volume.props["volume_type"] == "gp3"
        assert volume.tags["kubeaws.io/etcd-member"] == str(i)
        asg = graph[f"AutoScalingGroup/control-plane-{i}"]
        assert asg.props["subnet_ids"] == [Ref("Subnet", f"private-{az}")]
        assert asg.props["name"] == f"dev-control-plane-{i}"
        assert (asg.props["min_size"], asg.props["max_size"], asg.props["desired_capacity"]) == (1, 1, 1)
        assert asg.tags["kubeaws.io/control-plane-member"] == str(i)
        assert asg.create_only == {"desired_capacity", "launch_template_version"}
        assert asg.props["launch_template_id"] == Ref("LaunchTemplate", "control-plane")
        # each member pinned to the template's version of the day: only a rollout moves it
        assert asg.props["launch_template_version"] == Ref("LaunchTemplate", "control-plane", "default_version")
        assert f"Volume/etcd-{i}" in asg.refs()
    assert len(graph.of_kind("LaunchTemplate")) == 1 + 1  # control plane + the default node group


def test_control_plane_launch_template() -> None:
    lt = build(spec())["LaunchTemplate/control-plane"]
    p = lt.props
    check(lt)  # IMDSv2 + encryption: what the kind enforces
    assert p["metadata_options"]["http_tokens"] == "required"
    assert p["metadata_options"]["http_put_response_hop_limit"] == 2
    assert p["block_devices"] == [{"device_name": None, "size": 50, "volume_type": "gp3", "iops": None,
                                   "throughput": None, "encrypted": True, "delete_on_termination": True}]
    assert p["iam_instance_profile"] == Ref("InstanceProfile", "control-plane", "name")
    assert isinstance(p["image_id"], Lookup) and lt.create_only == {"image_id"}
    assert p["instance_tags"]["team"] == "infra" and p["volume_tags"]["kubernetes.io/cluster/dev"] == "owned"
    assert CLUSTER_TAG not in p["instance_tags"] and RESOURCE_TAG not in p["volume_tags"]


def test_node_groups_tags_spot_and_extra_volumes() -> None:
    groups: list[dict[str, Any]] = [
        {"name": "general", "instanceTypes": ["m5.large"], "size": {"min": 0, "desired": 2, "max": 5}},
        {"name": "spot", "instanceTypes": ["m5.large", "m5a.large"], "capacity": "spot",
         "labels": {"workload": "batch"}, "tags": {"cost-center": "42"},
         "taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}],
         "extraVolumes": [{"size": 100}, {"size": 200, "type": "io2", "iops": 1000}]},
        {"name": "eks", "type": "managed"},
    ]
    graph = build(spec(node_groups=groups))
    assert "AutoScalingGroup/ng-eks" not in graph and "LaunchTemplate/ng-eks" not in graph

    general = graph["AutoScalingGroup/ng-general"]
    assert general.props["name"] == "dev-general" and general.props["mixed_instances"] is None
    assert (general.props["min_size"], general.props["desired_capacity"], general.props["max_size"]) == (0, 2, 5)
    assert general.props["subnet_ids"] == sorted((Ref("Subnet", f"private-{az}") for az in AZS), key=str)
    assert graph["LaunchTemplate/ng-general"].props["instance_type"] == "m5.large"

    spot = graph["AutoScalingGroup/ng-spot"]
    assert spot.props["mixed_instances"] == {
        "instance_types": ["m5.large", "m5a.large"], "on_demand_base_capacity": 0,
        "on_demand_percentage_above_base": 0, "spot_allocation_strategy": "price-capacity-optimized"}
    assert spot.props["capacity_rebalance"] is True
    t = spot.tags
    assert t["k8s.io/cluster-autoscaler/enabled"] == "true" and t["k8s.io/cluster-autoscaler/dev"] == "owned"
    assert t["kubernetes.io/cluster/dev"] == "owned" and t["team"] == "infra" and t["cost-center"] == "42"
    assert t["k8s.io/cluster-autoscaler/node-template/label/workload"] == "batch"
    assert t["k8s.io/cluster-autoscaler/node-template/label/kubeaws.io/node-group"] == "spot"
    assert t["k8s.io/cluster-autoscaler/node-template/label/kubeaws.io/capacity"] == "spot"
    assert t["k8s.io/cluster-autoscaler/node-template/taint/dedicated"] == "batch:NoSchedule"
    assert t["kubeaws.io/node-group"] == "spot" and t["kubeaws.io/capacity"] == "spot"

    lt = graph["LaunchTemplate/ng-spot"]
    check(lt)
    assert lt.props["instance_type"] == "m5.large"  # overrides choose on AWS; the first type is the fallback
    assert lt.props["metadata_options"]["http_tokens"] == "required"
    assert lt.props["user_data"] == "#node spot\n" and lt.props["iam_instance_profile"] == "dev-nodes"
    root, first, second = lt.props["block_devices"]
    assert root["device_name"] is None and root["size"] == 50
    assert (first["device_name"], first["size"]) == ("/dev/sdf", 100)
    assert (second["device_name"], second["volume_type"], second["iops"]) == ("/dev/sdg", "io2", 1000)
    assert all(d["encrypted"] and d["delete_on_termination"] for d in lt.props["block_devices"])
    assert lt.props["instance_tags"]["cost-center"] == "42"


def test_too_many_extra_volumes_is_a_spec_error() -> None:
    groups: list[dict[str, Any]] = [{"name": "disks", "extraVolumes": [{"size": 10}] * 11}]
    with pytest.raises(SpecError, match="extraVolumes"):
        build(spec(node_groups=groups))


def every_launch_template_is_secure(graph: Graph) -> list[Desired]:
    templates = graph.of_kind("LaunchTemplate")
    for lt in templates:
        check(lt)
    return templates


def test_imdsv2_and_encryption_everywhere() -> None:
    graph = build(spec(3, node_groups=[{"name": "a"}, {"name": "b", "capacity": "spot"}]))
    assert len(every_launch_template_is_secure(graph)) == 3
    assert all(v.props["encrypted"] is True for v in graph.of_kind("Volume"))
