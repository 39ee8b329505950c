"""Route tables (kind `RouteTable`): one public table (default route to the internet gateway) and one per
private subnet group (default route to a NAT gateway). Routes and subnet associations are reconciled as
sets; a subnet associated with another table is moved with ReplaceRouteTableAssociation. The VPC's `local`
route and propagated routes are not ours and are ignored.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import already_done
from kubeaws.aws.session import AwsContext
from kubeaws.resources._ec2 import (
    Ec2Kind,
    after_create,
    delete_when_free,
    describe_ids,
    ignoring,
    with_tags,
)
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

NOT_FOUND = "InvalidRouteTableID.NotFound"
ASSOCIATION_GONE = ("InvalidAssociationID.NotFound",)
LIVE = ("associated", "associating")
DEST = "destination_cidr_block"
#: Route target fields (Desired/Observed key, API name), in the order a described route is read.
TARGETS = (("gateway_id", "GatewayId"), ("nat_gateway_id", "NatGatewayId"),
           ("transit_gateway_id", "TransitGatewayId"), ("vpc_peering_connection_id", "VpcPeeringConnectionId"),
           ("instance_id", "InstanceId"), ("network_interface_id", "NetworkInterfaceId"))
#: A route's table or target may be too new to be visible yet.
TARGET_NOT_FOUND = (NOT_FOUND, "InvalidGatewayID.NotFound", "InvalidInternetGatewayID.NotFound",
                    "InvalidNatGatewayID.NotFound", "NatGatewayNotFound")

Route = dict[str, str]


def _route(item: Mapping[str, Any]) -> Route | None:
    """A described route as {destination_cidr_block, <target>_id}; None for routes that are not ours."""
    dest = item.get("DestinationCidrBlock")
    if not dest or item.get("GatewayId") == "local" or item.get("Origin") in ("CreateRouteTable",
                                                                              "EnableVgwRoutePropagation"):
        return None
    for key, api in TARGETS:
        if item.get(api):
            return {DEST: dest, key: item[api]}
    return {DEST: dest}


def _target(route: Mapping[str, Any]) -> dict[str, Any]:
    """API parameters naming a route's target."""
    return {api: route[key] for key, api in TARGETS if route.get(key)}


def _live_associations(item: Mapping[str, Any]) -> dict[str, str]:
    """{subnet_id: association_id} of the table's live subnet associations (the main one has no subnet)."""
    return {a["SubnetId"]: a["RouteTableAssociationId"] for a in item.get("Associations") or []
            if a.get("SubnetId") and not a.get("Main")
            and (a.get("AssociationState") or {}).get("State", "associated") in LIVE}


def _put_route(ctx: AwsContext, table_id: str, dest: str, target: dict[str, Any], replace: bool) -> None:
    """create_route, or replace_route when the destination has a route already (also when `actual` was
    stale and create_route finds one)."""
    params = {"RouteTableId": table_id, "DestinationCidrBlock": dest, **target}
    if not replace:
        try:
            ctx.call("ec2", "create_route", **params)
            return
        except ClientError as exc:
            if not already_done(exc, "CreateRoute"):
                raise
    ctx.call("ec2", "replace_route", **params)


@register
class RouteTable(Ec2Kind):
    """A route table with its non-local routes and subnet associations, both reconciled as sets."""

    kind = "RouteTable"
    rank = 40
    immutable = frozenset({"vpc_id"})
    updatable = frozenset({"routes", "subnet_ids"})
    set_fields = frozenset({"routes", "subnet_ids"})
    describe_op = "describe_route_tables"
    result_key = "RouteTables"

    def observe(self, item: Mapping[str, Any]) -> Observed:
        routes = [r for r in (_route(i) for i in item.get("Routes") or []) if r is not None]
        associations = _live_associations(item)
        fields = {"vpc_id": item["VpcId"], "routes": sorted(routes, key=lambda r: r[DEST]),
                  "subnet_ids": sorted(associations)}
        return Observed(self.kind, item["RouteTableId"], fields, self.tags_of(item), "available",
                        {"associations": associations, "vpc_id": item["VpcId"]})

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        table = after_create(
            ctx, lambda: ctx.call("ec2", "create_route_table", VpcId=desired.props["vpc_id"],
                                  ClientToken=ctx.client_token(desired.key),
                                  TagSpecifications=self.ec2_tag_spec("route-table", desired))["RouteTable"],
            ["InvalidVpcID.NotFound"], "VPC visible")
        obs = self.observe(with_tags({**table, "Associations": []}, desired))
        self._sync_routes(ctx, obs.id, obs.fields["routes"], desired.props.get("routes") or [])
        obs.attrs["associations"] = self._sync_subnets(ctx, obs.id, {}, desired.props.get("subnet_ids") or [])
        obs.fields.update(routes=sorted(desired.props.get("routes") or [], key=lambda r: r[DEST]),
                          subnet_ids=sorted(obs.attrs["associations"]))
        return obs

    def change(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> dict[str, Any]:
        if "routes" in diff:
            self._sync_routes(ctx, actual.id, actual.fields.get("routes") or [], desired.props["routes"] or [])
        if "subnet_ids" in diff:
            have = dict(actual.attrs.get("associations") or {})
            return {"associations": self._sync_subnets(ctx, actual.id, have, desired.props["subnet_ids"] or [])}
        return {}

    @staticmethod
    def _sync_routes(ctx: AwsContext, table_id: str, have: Iterable[Route], want: Iterable[Route]) -> None:
        """create_route / replace_route (target changed) / delete_route, by destination."""
        current = {r[DEST]: _target(r) for r in have}
        wanted = {r[DEST]: _target(r) for r in want}
        for dest in sorted(current.keys() - wanted.keys()):
            ignoring(partial(ctx.call, "ec2", "delete_route", RouteTableId=table_id, DestinationCidrBlock=dest),
                     ["InvalidRoute.NotFound"])
        for dest, target in sorted(wanted.items()):
            if current.get(dest) != target:
                after_create(ctx, partial(_put_route, ctx, table_id, dest, target, replace=dest in current),
                             TARGET_NOT_FOUND, f"route table {table_id} and target of {dest} visible")

    @staticmethod
    def _sync_subnets(ctx: AwsContext, table_id: str, have: dict[str, str], want: Iterable[str]) -> dict[str, str]:
        """Associate the wanted subnets (moving those associated with another table), disassociate the
        others; return the new {subnet_id: association_id}."""
        wanted = set(want)
        result = {s: a for s, a in have.items() if s in wanted}
        for subnet in sorted(have.keys() - wanted):
            ignoring(partial(ctx.call, "ec2", "disassociate_route_table", AssociationId=have[subnet]),
                     ASSOCIATION_GONE)
        add = sorted(wanted - have.keys())
        if not add:
            return result
        # Where are they now? One describe for all subnets to add (a subnet has at most one table).
        elsewhere: dict[str, str] = {}
        for item in ctx.paginate("ec2", "describe_route_tables", "RouteTables",
                                 Filters=[{"Name": "association.subnet-id", "Values": add}]):
            elsewhere.update({s: a for s, a in _live_associations(item).items() if s in add})
        for subnet in add:
            if subnet in elsewhere:
                reply = ctx.call("ec2", "replace_route_table_association", AssociationId=elsewhere[subnet],
                                 RouteTableId=table_id)
                result[subnet] = reply["NewAssociationId"]
            else:
                reply = after_create(ctx, partial(ctx.call, "ec2", "associate_route_table",
                                                  RouteTableId=table_id, SubnetId=subnet),
                                     [NOT_FOUND, "InvalidSubnetID.NotFound"],
                                     f"route table {table_id} and {subnet} visible")
                result[subnet] = reply["AssociationId"]
        return result

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        # Re-read the associations: one made after the plan would otherwise block the delete.
        items = describe_ids(ctx, "describe_route_tables", "RouteTables", "RouteTableIds", [actual.id],
                             [NOT_FOUND])
        if not items:
            return
        for association_id in _live_associations(items[0]).values():
            ignoring(partial(ctx.call, "ec2", "disassociate_route_table", AssociationId=association_id),
                     ASSOCIATION_GONE)
        delete_when_free(ctx, lambda: ctx.call("ec2", "delete_route_table", RouteTableId=actual.id),
                         [NOT_FOUND], f"route table {actual.id} without associations")
