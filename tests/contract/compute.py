"""Contract scenarios of the compute and load-balancing kinds: Instance, Volume, NetworkInterface, LaunchTemplate,
AutoScalingGroup, LoadBalancer, TargetGroup, Listener. Prerequisites (VPC, subnets, groups, an AMI, a raw
launch template, load balancer and target group) are made with plain calls, untagged.

moto: resources are ready at once (the state waits end on their first poll); Auto Scaling groups are made
with no instance (min 0), which is all a create, a plan and a delete need.

Used by tests/contract/scenarios.py.
"""

from __future__ import annotations

from kubeaws.aws.session import AwsContext
from kubeaws.resources.base import Desired
from kubeaws.resources.launch_template import HASH_TAG
from tests.contract.harness import Scenario, tags_for
from tests.contract.network import OTHER_SUBNET, OTHER_VPC, ami, group, subnets, vpc

HEALTH = {"protocol": "HTTPS", "path": "/readyz", "port": "6443"}
OTHER_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/other/0123456789abcdef"


def _instance(ctx: AwsContext) -> Desired:
    vpc_id = vpc(ctx)
    [subnet] = subnets(ctx, vpc_id, 1)
    props = {"image_id": ami(ctx), "instance_type": "t3.micro", "subnet_id": subnet,
             "security_group_ids": [group(ctx, vpc_id, "bastion")], "key_name": None, "iam_instance_profile": None,
             "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled",
                                  "http_put_response_hop_limit": 1},
             "root_volume": {"size": 8, "type": "gp3", "encrypted": True}, "user_data": "#!/bin/sh\ntrue\n"}
    return Desired("Instance", "bastion", props, tags=tags_for(ctx, "Instance", "bastion"))


def _volume(ctx: AwsContext) -> Desired:
    props = {"availability_zone": "us-east-1a", "size": 20, "volume_type": "gp3", "iops": None, "throughput": None,
             "encrypted": True}
    return Desired("Volume", "etcd-0", props, tags=tags_for(ctx, "Volume", "etcd-0"))


def _network_interface(ctx: AwsContext) -> Desired:
    vpc_id = vpc(ctx)
    [subnet] = subnets(ctx, vpc_id, 1)
    props = {"subnet_id": subnet, "security_group_ids": [group(ctx, vpc_id, "control-plane")],
             "description": "Kubernetes API"}
    return Desired("NetworkInterface", "api", props, tags=tags_for(ctx, "NetworkInterface", "api"))


def _launch_template(ctx: AwsContext) -> Desired:
    props = {"name": f"{ctx.cluster}-nodes", "image_id": ami(ctx), "instance_type": "t3.micro",
             "security_group_ids": [group(ctx, vpc(ctx), "nodes")], "key_name": None, "iam_instance_profile": None,
             "metadata_options": {"http_tokens": "required", "http_put_response_hop_limit": 2},
             "block_devices": [{"device_name": None, "size": 20, "volume_type": "gp3", "encrypted": True}],
             "instance_tags": {"team": "contract"}, "volume_tags": {"team": "contract"},
             "user_data": "#!/bin/sh\ntrue\n"}
    return Desired("LaunchTemplate", "nodes", props, tags=tags_for(ctx, "LaunchTemplate", "nodes"))


def _auto_scaling_group(ctx: AwsContext) -> Desired:
    template = ctx.call("ec2", "create_launch_template", LaunchTemplateName=f"{ctx.cluster}-raw",
                        LaunchTemplateData={"ImageId": ami(ctx), "InstanceType": "t3.micro"})
    props = {"name": f"{ctx.cluster}-nodes", "launch_template_id": template["LaunchTemplate"]["LaunchTemplateId"],
             "launch_template_version": 1, "min_size": 0, "max_size": 2, "desired_capacity": 0,
             "subnet_ids": sorted(subnets(ctx, vpc(ctx))), "mixed_instances": None, "target_group_arns": [],
             "health_check_type": "EC2", "health_check_grace_period": 300, "capacity_rebalance": False}
    return Desired("AutoScalingGroup", "nodes", props, tags=tags_for(ctx, "AutoScalingGroup", "nodes"),
                   create_only=frozenset({"desired_capacity", "launch_template_version"}))


def _load_balancer(ctx: AwsContext) -> Desired:
    vpc_id = vpc(ctx)
    props = {"name": f"{ctx.cluster}-api", "scheme": "internal", "subnet_ids": sorted(subnets(ctx, vpc_id)),
             "security_group_ids": [group(ctx, vpc_id, "api")], "type": "network"}
    return Desired("LoadBalancer", "api", props, tags=tags_for(ctx, "LoadBalancer", "api"))


def _target_group(ctx: AwsContext) -> Desired:
    props = {"name": f"{ctx.cluster}-api", "port": 6443, "protocol": "TCP", "vpc_id": vpc(ctx),
             "health_check": HEALTH, "target_type": "instance", "attributes": {"preserve_client_ip.enabled": "false"}}
    return Desired("TargetGroup", "api", props, tags=tags_for(ctx, "TargetGroup", "api"))


def _listener(ctx: AwsContext) -> Desired:
    vpc_id = vpc(ctx)
    lb = ctx.call("elbv2", "create_load_balancer", Name=f"{ctx.cluster}-api", Type="network", Scheme="internal",
                  Subnets=subnets(ctx, vpc_id))["LoadBalancers"][0]["LoadBalancerArn"]
    tg = ctx.call("elbv2", "create_target_group", Name=f"{ctx.cluster}-api", Protocol="TCP", Port=6443,
                  VpcId=vpc_id)["TargetGroups"][0]["TargetGroupArn"]
    props = {"load_balancer_arn": lb, "port": 6443, "protocol": "TCP", "target_group_arn": tg}
    return Desired("Listener", "api", props, tags=tags_for(ctx, "Listener", "api"))


COMPUTE = [
    Scenario("Instance", _instance,
             changes={"image_id": {"image_id": "ami-0fffffffffffffff0"}, "instance_type": {"instance_type": "t3.small"},
                      "subnet_id": {"subnet_id": OTHER_SUBNET}, "key_name": {"key_name": "other"},
                      "iam_instance_profile": {"iam_instance_profile": "other"}},
             delete_calls=(("ec2", "TerminateInstances"),), create_call=("ec2", "RunInstances"),
             tag_types=("instance", "volume", "network-interface")),
    Scenario("Volume", _volume,
             changes={"availability_zone": {"availability_zone": "us-east-1b"}, "encrypted": {"encrypted": False}},
             delete_calls=(("ec2", "DeleteVolume"),), create_call=("ec2", "CreateVolume")),
    Scenario("NetworkInterface", _network_interface, changes={"subnet_id": {"subnet_id": OTHER_SUBNET}},
             delete_calls=(("ec2", "DeleteNetworkInterface"),), create_call=("ec2", "CreateNetworkInterface")),
    Scenario("LaunchTemplate", _launch_template, changes={"name": {"name": "other"}},
             delete_calls=(("ec2", "DeleteLaunchTemplate"),), create_call=("ec2", "CreateLaunchTemplate"),
             create_extra=frozenset({HASH_TAG})),
    Scenario("AutoScalingGroup", _auto_scaling_group, changes={"name": {"name": "other"}},
             delete_calls=(("autoscaling", "DeleteAutoScalingGroup"),),
             create_call=("autoscaling", "CreateAutoScalingGroup")),
    Scenario("LoadBalancer", _load_balancer,
             changes={"name": {"name": "other"}, "scheme": {"scheme": "internet-facing"},
                      "type": {"type": "application"}},
             delete_calls=(("elbv2", "DeleteLoadBalancer"),), create_call=("elbv2", "CreateLoadBalancer")),
    Scenario("TargetGroup", _target_group,
             changes={"name": {"name": "other"}, "port": {"port": 443}, "protocol": {"protocol": "TLS"},
                      "vpc_id": {"vpc_id": OTHER_VPC}, "target_type": {"target_type": "ip"}},
             delete_calls=(("elbv2", "DeleteTargetGroup"),), create_call=("elbv2", "CreateTargetGroup")),
    Scenario("Listener", _listener, changes={"load_balancer_arn": {"load_balancer_arn": OTHER_ARN}},
             delete_calls=(("elbv2", "DeleteListener"),), create_call=("elbv2", "CreateListener")),
]
