"""Bastion builder: one EC2 instance in the first public subnet (IMDSv2 required, encrypted root volume),
and optionally an Elastic IP associated with it.

Called by `model.build`. Pure.
"""

from __future__ import annotations

from kubeaws.model.common import Builder
from kubeaws.model.flows import BASTION
from kubeaws.model.images import image
from kubeaws.model.network import NetworkRefs
from kubeaws.resources.base import Lookup, Ref


def build_bastion(b: Builder, net: NetworkRefs, groups: dict[str, Ref]) -> Ref | None:
    spec = b.spec.spec.access
    if not spec.bastion.enabled or not net.public_subnets:
        return None
    ami = image(spec.bastion.os, spec.bastion.instance_type, spec.bastion.ami)
    instance = b.owned("Instance", "bastion", {
        "image_id": ami,
        "instance_type": spec.bastion.instance_type,
        "subnet_id": net.public_subnets[0],
        "security_group_ids": [groups[BASTION]],
        "key_name": spec.ssh_key_name,
        "iam_instance_profile": None,
        "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled",
                             "http_put_response_hop_limit": 1},
        "root_volume": {"size": 16, "type": "gp3", "encrypted": True},
        "user_data": None,
    }, extra_tags={"kubeaws.io/role": BASTION},
        # An AMI from a moving SSM parameter must not replace the bastion each time AWS publishes one.
        create_only=frozenset({"image_id"}) if isinstance(ami, Lookup) else frozenset())
    if spec.bastion.elastic_ip:
        b.owned("ElasticIp", "bastion", {"domain": "vpc", "instance_id": instance})
    return instance
