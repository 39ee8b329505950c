"""Kubernetes API endpoint builder (docs/kubeadm.md): a network load balancer (`LoadBalancer/api`,
`TargetGroup/api`, `Listener/api`) when the control plane has several members or the endpoint is public;
otherwise one `NetworkInterface/api` in the first private subnet, whose stable private address member 0
attaches as a secondary interface (tagged `node.k8s.amazonaws.com/no_manage=true` with the Amazon VPC CNI, which
otherwise takes every ENI of the instance for pod addresses).

Called by `model.build` before the control plane (whose Auto Scaling groups register in the target group).
Pure: spec in, desired resources out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeaws.addons.descriptors.aws_vpc_cni import NO_MANAGE_TAG
from kubeaws.model.common import Builder
from kubeaws.model.flows import CONTROL_PLANE, LB
from kubeaws.model.network import NetworkRefs
from kubeaws.resources.base import Ref

API_PORT = 6443
#: HTTPS /readyz on the API port: a member counts only once its API server is ready; every 10 s, two checks to
#: change state, so that a dead member leaves the endpoint in about 20 s (AWS's default is 30 s x 3).
HEALTH_CHECK = {"protocol": "HTTPS", "path": "/readyz", "port": str(API_PORT), "interval": 10,
                "healthy_threshold": 2, "unhealthy_threshold": 2}
#: Cross-zone load balancing: each of the load balancer's zonal addresses reaches every member (by default a
#: zonal address only reaches the members of its AZ, and a client holding the address of an AZ whose member is
#: down fails until DNS moves it).
LOAD_BALANCER_ATTRIBUTES = {"load_balancing.cross_zone.enabled": "true"}
#: Without client IP preservation a member reaching the API through the NLB may land on itself (hairpin).
TARGET_ATTRIBUTES = {"preserve_client_ip.enabled": "false", "deregistration_delay.timeout_seconds": "30"}


@dataclass
class EndpointRefs:
    """What the control plane and the state object need from the endpoint."""

    #: Ref to the load balancer's DNS name or the interface's private IP address.
    host: Ref
    #: Target groups the control-plane Auto Scaling groups register in ([] without a load balancer).
    target_group_arns: list[Ref] = field(default_factory=list)
    #: The API interface member 0 attaches (None with a load balancer).
    network_interface: Ref | None = None


def uses_load_balancer(b: Builder) -> bool:
    spec = b.spec.spec
    return spec.control_plane.count > 1 or spec.access.api_endpoint == "public"


def build_endpoint(b: Builder, net: NetworkRefs, groups: dict[str, Ref]) -> EndpointRefs:
    """Add the API endpoint's resources; return how to reach it."""
    if not uses_load_balancer(b):
        eni = b.owned("NetworkInterface", "api", {
            "subnet_id": net.private_subnets[0],
            "security_group_ids": [groups[CONTROL_PLANE]],
            "description": f"{b.cluster} Kubernetes API (control-plane member 0)",
        }, extra_tags={"kubeaws.io/role": "api-endpoint",
                       **({NO_MANAGE_TAG: "true"} if b.spec.spec.cni == "aws-vpc-cni" else {})})
        return EndpointRefs(host=Ref("NetworkInterface", "api", "private_ip"), network_interface=eni)

    public = b.spec.spec.access.api_endpoint == "public"
    subnets = net.public_subnets if public else net.private_subnets
    lb = b.owned("LoadBalancer", "api", {
        "name": b.display("api"),
        "scheme": "internet-facing" if public else "internal",
        "subnet_ids": sorted(subnets, key=str),
        "security_group_ids": [groups[LB]],
        "type": "network",
        "attributes": dict(LOAD_BALANCER_ATTRIBUTES),
    }, extra_tags={"kubeaws.io/role": "api-endpoint"})
    tg = b.owned("TargetGroup", "api", {
        "name": b.display("api"), "port": API_PORT, "protocol": "TCP", "vpc_id": net.vpc,
        "health_check": dict(HEALTH_CHECK), "target_type": "instance", "attributes": dict(TARGET_ATTRIBUTES),
    }, extra_tags={"kubeaws.io/role": "api-endpoint"})
    b.owned("Listener", "api", {
        "load_balancer_arn": Ref(lb.kind, lb.name, "arn"), "port": API_PORT, "protocol": "TCP",
        "target_group_arn": Ref(tg.kind, tg.name, "arn"),
    }, extra_tags={"kubeaws.io/role": "api-endpoint"})
    return EndpointRefs(host=Ref(lb.kind, lb.name, "dns_name"), target_group_arns=[Ref(tg.kind, tg.name, "arn")])
