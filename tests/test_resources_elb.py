"""ELBv2 kinds against the moto server: the API endpoint chain LoadBalancer -> TargetGroup -> Listener.

create -> tags -> list_owned (two reads: describe + DescribeTags; the listener three) diffs clean -> update ->
delete -> gone -> delete again is a no-op. moto adaptation: load balancers are `active` at once.
"""

from __future__ import annotations

from typing import Any

import pytest

import kubeaws.resources.listener
import kubeaws.resources.load_balancer
import kubeaws.resources.target_group  # noqa: F401  (registers the kinds until registry.MODULES lists them)
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import owned_tags, tag_dict
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from tests.helpers import make_network

LB = registry.get("LoadBalancer")
TG = registry.get("TargetGroup")
LISTENER = registry.get("Listener")
HEALTH = {"protocol": "HTTPS", "path": "/readyz", "port": "6443", "interval": 10, "healthy_threshold": 2,
          "unhealthy_threshold": 2}
CROSS_ZONE = {"load_balancing.cross_zone.enabled": "true"}


@pytest.fixture
def net(ctx: AwsContext) -> dict[str, Any]:
    return make_network(ctx, ("dev-lb", "dev-extra"))


def tags_for(kind: str) -> dict[str, str]:
    return owned_tags("dev", kind, "api", "dev-api", {"team": "infra"})


def balancer(net: dict[str, Any], **overrides: Any) -> Desired:
    props = {"name": "dev-api", "scheme": "internal", "subnet_ids": list(net["subnets"]),
             "security_group_ids": [net["groups"][0]], "type": "network", "attributes": CROSS_ZONE, **overrides}
    return Desired("LoadBalancer", "api", props, tags=tags_for("LoadBalancer"))


def target_group(net: dict[str, Any], **overrides: Any) -> Desired:
    props = {"name": "dev-api", "port": 6443, "protocol": "TCP", "vpc_id": net["vpc"], "health_check": HEALTH,
             "target_type": "instance", "attributes": {"preserve_client_ip.enabled": "false"}, **overrides}
    return Desired("TargetGroup", "api", props, tags=tags_for("TargetGroup"))


def listener(lb: str, tg: str, **overrides: Any) -> Desired:
    props = {"load_balancer_arn": lb, "port": 6443, "protocol": "TCP", "target_group_arn": tg, **overrides}
    return Desired("Listener", "api", props, tags=tags_for("Listener"))


def listed(ctx: AwsContext, kind: Any, reads: dict[tuple[str, str], int]) -> Observed:
    with ctx.counting() as log:
        found: list[Observed] = kind.list_owned(ctx)
    assert dict(log.snapshot()) == reads
    [only] = found
    return only


def arn_tags(ctx: AwsContext, arn: str) -> dict[str, str]:
    return tag_dict(ctx.call("elbv2", "describe_tags", ResourceArns=[arn])["TagDescriptions"][0]["Tags"])


def test_api_endpoint_chain(ctx: AwsContext, net: dict[str, Any]) -> None:
    # Someone else's load balancer in the region: never described further (not named dev-...).
    ctx.call("elbv2", "create_load_balancer", Name="other-api", Subnets=net["subnets"], Type="network")

    want_lb = balancer(net)
    lb = LB.create(ctx, want_lb)
    assert lb.state == "active" and lb.attrs["dns_name"] and lb.attrs["arn"] == lb.id
    assert arn_tags(ctx, lb.id) == want_lb.tags
    want_tg = target_group(net)
    tg = TG.create(ctx, want_tg)
    attributes = ctx.call("elbv2", "describe_target_group_attributes", TargetGroupArn=tg.id)["Attributes"]
    assert {"Key": "preserve_client_ip.enabled", "Value": "false"} in attributes
    want_listener = listener(lb.id, tg.id)
    ln = LISTENER.create(ctx, want_listener)
    assert arn_tags(ctx, ln.id) == want_listener.tags

    reads = {("elbv2", "DescribeLoadBalancers"): 1, ("elbv2", "DescribeTags"): 1}
    lb_reads = {**reads, ("elbv2", "DescribeLoadBalancerAttributes"): 1}
    found_lb = listed(ctx, LB, lb_reads)
    assert found_lb.fields["attributes"] == CROSS_ZONE
    assert found_lb.id == lb.id and LB.diff(found_lb, want_lb) == {}
    found_tg = listed(ctx, TG, {("elbv2", "DescribeTargetGroups"): 1, ("elbv2", "DescribeTags"): 1})
    assert found_tg.id == tg.id and TG.diff(found_tg, want_tg) == {}
    found_ln = listed(ctx, LISTENER, {**reads, ("elbv2", "DescribeListeners"): 1})
    assert found_ln.id == ln.id and LISTENER.diff(found_ln, want_listener) == {}

    # Updates in place: security groups, health check, listener port; name/scheme need a replacement.
    moved = balancer(net, security_group_ids=net["groups"])
    LB.update(ctx, found_lb, moved, LB.diff(found_lb, moved))
    current = listed(ctx, LB, lb_reads)
    assert LB.diff(current, moved) == {}
    single_zone = balancer(net, security_group_ids=net["groups"],
                           attributes={"load_balancing.cross_zone.enabled": "false"})
    assert set(LB.diff(current, single_zone)) == {"attributes"}
    LB.update(ctx, current, single_zone, LB.diff(current, single_zone))
    assert LB.diff(listed(ctx, LB, lb_reads), single_zone) == {}
    assert set(LB.diff(found_lb, balancer(net, scheme="internet-facing"))) <= LB.immutable
    assert found_tg.fields["health_check"] == HEALTH
    healthier = target_group(net, health_check={**HEALTH, "path": "/livez", "interval": 30})
    assert set(TG.diff(found_tg, healthier)) == {"health_check"}
    TG.update(ctx, found_tg, healthier, TG.diff(found_tg, healthier))
    assert TG.diff(TG.list_owned(ctx)[0], healthier) == {}
    other_port = listener(lb.id, tg.id, port=443)
    LISTENER.update(ctx, found_ln, other_port, LISTENER.diff(found_ln, other_port))
    assert LISTENER.diff(LISTENER.list_owned(ctx)[0], other_port) == {}

    # Delete in reverse order, twice each.
    for kind, found in ((LISTENER, found_ln), (TG, found_tg), (LB, found_lb)):
        kind.delete(ctx, found)
        assert kind.list_owned(ctx) == []
        kind.delete(ctx, found)


def test_name_conflicts(ctx: AwsContext, net: dict[str, Any]) -> None:
    ctx.call("elbv2", "create_load_balancer", Name="dev-api", Subnets=net["subnets"], Type="network")
    ctx.call("elbv2", "create_target_group", Name="dev-api", Protocol="TCP", Port=6443, VpcId=net["vpc"])
    assert LB.find_conflict(ctx, balancer(net)) is not None
    assert TG.find_conflict(ctx, target_group(net)) is not None
    assert LB.list_owned(ctx) == [] and TG.list_owned(ctx) == []
