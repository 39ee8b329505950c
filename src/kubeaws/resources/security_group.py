"""EC2 security groups (the group itself; its ingress rules are the separate `SecurityGroupRules` kind).

A group is identified by (VPC, group name), so a group of the same name that another cluster or a person
created blocks ours: `find_conflict` reports it at plan time and `create` refuses it with a fix. The
default egress rule AWS adds is kept. A group may also be brought by the user (`network.securityGroups`,
looked up by ID with `get`): it is then only tagged `shared`, its rules are never touched, and delete only
removes that tag. Called by the engine through the registry.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import DEPENDENCY_CODES, error_code, is_already_exists
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, is_owned_by, k8s_cluster_tag, owner_of, tag_dict
from kubeaws.errors import OwnershipError
from kubeaws.resources._ec2 import describe_ids
from kubeaws.resources.base import Desired, Kind, Observed
from kubeaws.resources.registry import register

GROUP_NOT_FOUND = "InvalidGroup.NotFound"


def describe_groups(ctx: AwsContext, **params: Any) -> list[dict[str, Any]]:
    """DescribeSecurityGroups (paginated); a missing group ID yields [] instead of an error."""
    try:
        groups: list[dict[str, Any]] = ctx.paginate("ec2", "describe_security_groups", "SecurityGroups",
                                                    **params)
    except ClientError as exc:
        if error_code(exc) == GROUP_NOT_FOUND:
            return []
        raise
    return groups


def conflict_message(group: Observed, cluster: str) -> str:
    """Why a group of the same name blocks this cluster, and the three ways out."""
    name = group.fields["group_name"]
    owner = owner_of(group.tags)
    who = f"owned by kubeaws cluster {owner!r}" if owner and owner != cluster else "not created by kubeaws"
    return (
        f"security group {name!r} ({group.id}) already exists in VPC {group.fields['vpc_id']} and is {who}. "
        f"Fix: delete it, rename it, or, if this cluster should adopt it, tag it "
        f"{CLUSTER_TAG}={cluster} and {k8s_cluster_tag(cluster)}=owned."
    )


def sweep_leaked_interfaces(ctx: AwsContext, group_id: str) -> list[str]:
    """Delete the network interfaces left `available` (attached to nothing) in the group: the VPC CNI and
    load balancers leak them, and they keep the group and its subnets from being deleted. In-use interfaces
    are left alone (they go with their instance or load balancer). Returns the deleted IDs."""
    leaked = ctx.paginate("ec2", "describe_network_interfaces", "NetworkInterfaces",
                          Filters=[{"Name": "group-id", "Values": [group_id]},
                                   {"Name": "status", "Values": ["available"]}])
    deleted: list[str] = []
    for eni in leaked:
        try:
            ctx.call("ec2", "delete_network_interface", NetworkInterfaceId=eni["NetworkInterfaceId"])
            deleted.append(eni["NetworkInterfaceId"])
        except ClientError as exc:
            if error_code(exc) not in ("InvalidNetworkInterfaceID.NotFound", "InvalidNetworkInterface.InUse"):
                raise
    return deleted


@register
class SecurityGroup(Kind):
    """A VPC security group, unique by (VPC, name); its rules are the SecurityGroupRules kind."""

    kind = "SecurityGroup"
    rank = 30
    immutable = frozenset({"vpc_id", "group_name", "description"})
    supports_brought = True

    @staticmethod
    def observe(group: dict[str, Any]) -> Observed:
        return Observed(
            kind="SecurityGroup",
            id=group["GroupId"],
            fields={"vpc_id": group.get("VpcId"), "group_name": group["GroupName"],
                    "description": group.get("Description", "")},
            tags=tag_dict(group.get("Tags")),
            attrs={"arn": group.get("SecurityGroupArn"), "owner_id": group.get("OwnerId")},
        )

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        return [self.observe(g) for g in describe_groups(ctx, Filters=self.owned_filter(ctx))]

    def get(self, ctx: AwsContext, ids: list[str]) -> list[Observed]:
        """Brought groups by ID (missing ones absent). Only tags are compared for them: a brought Desired has
        no props, and its rules are not a SecurityGroupRules resource."""
        return [self.observe(g) for g in describe_ids(ctx, "describe_security_groups", "SecurityGroups",
                                                      "GroupIds", list(dict.fromkeys(ids)), [GROUP_NOT_FOUND])]

    def _by_name(self, ctx: AwsContext, vpc_id: str, name: str) -> Observed | None:
        groups = describe_groups(ctx, Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                               {"Name": "group-name", "Values": [name]}])
        return self.observe(groups[0]) if groups else None

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        vpc_id, name = desired.props.get("vpc_id"), desired.props.get("group_name")
        if not isinstance(vpc_id, str) or not isinstance(name, str):
            return None  # the VPC does not exist yet (unknown ID): nothing can clash
        found = self._by_name(ctx, vpc_id, name)
        if found is None or is_owned_by(found.tags, ctx.cluster):
            return None
        return found

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        props = desired.props
        try:
            # The VPC may have been created a moment ago.
            created = retry_on_codes(
                lambda: ctx.call("ec2", "create_security_group", GroupName=props["group_name"],
                                 Description=props["description"], VpcId=props["vpc_id"],
                                 TagSpecifications=self.ec2_tag_spec("security-group", desired)),
                {"InvalidVpcID.NotFound"}, timeout=ctx.policy.consistency_timeout,
                what=f"VPC {props['vpc_id']} to be visible", policy=ctx.policy)
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            existing = self._by_name(ctx, props["vpc_id"], props["group_name"])
            if existing is None:
                raise
            if not is_owned_by(existing.tags, ctx.cluster):
                raise OwnershipError(conflict_message(existing, ctx.cluster)) from exc
            return existing  # ours already (an earlier create whose answer was lost): adopt it
        return Observed(kind=self.kind, id=created["GroupId"], fields=dict(props), tags=dict(desired.tags),
                        attrs={"arn": created.get("SecurityGroupArn")})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        def attempt() -> Any:
            sweep_leaked_interfaces(ctx, actual.id)
            return ctx.call("ec2", "delete_security_group", GroupId=actual.id)

        try:
            # ENIs of terminated instances and load balancers keep the group in use for a while.
            retry_on_codes(attempt, DEPENDENCY_CODES, timeout=ctx.policy.dependency_timeout,
                           what=f"security group {actual.id} to be unused", policy=ctx.policy)
        except ClientError as exc:
            if error_code(exc) != GROUP_NOT_FOUND:
                raise
