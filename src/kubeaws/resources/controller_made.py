"""What the cluster's own controllers create in AWS, found by their tags so that `kubeaws delete` removes it too.

cloud-provider-aws makes, for each `type: LoadBalancer` Service, a classic load balancer with its security group
(or an NLB with target groups), tagged `kubernetes.io/cluster/<cluster>=owned` and
`kubernetes.io/service-name=<namespace>/<name>`, and opens the nodes' group to them; the EBS CSI driver makes
a volume per PersistentVolumeClaim and a snapshot per VolumeSnapshot, tagged `ebs.csi.aws.com/cluster=true`, the
cluster's tag (`--k8s-tag-cluster-id`) and, from kubeaws' manifest, `kubeaws.io/cluster=<cluster>`
(`--extra-tags`). None of them carries `kubeaws.io/resource`, so no kind of the registry sees them; left behind,
the load balancers and their groups keep kubeaws' subnets, groups and VPC from being deleted.

One class per AWS kind, shaped like the registry's kinds (`find` by tag, `delete`, a `rank` in the same delete
order), but kept OUT of the registry on purpose: every plan, apply and registry-wide contract walks the
registry, and these are never desired, never created nor changed by kubeaws, and belong to the cluster's
workloads while it lives. Only `engine.observe` (for `engine.destroy` and `engine.status`) asks for them, so an
`apply` cannot delete what it never sees. Dependencies stay one-directional: the engine calls this module, this
module calls `aws` and reuses the registry kinds' deletes for the same AWS types (the waits and in-use retries
they already have); nothing here knows about the engine.

What counts (`aws.tags.is_controller_made` + the controller's own tag): `kubernetes.io/cluster/<cluster>=owned`,
no `kubeaws.io/resource` (kubeaws' own resources never go through here), no other cluster's tag, not `shared`,
not AWS-managed; load balancers and target groups also need `kubernetes.io/service-name`; volumes and snapshots
`ebs.csi.aws.com/cluster=true` or `kubeaws.io/cluster=<cluster>`. Load balancers, target groups and groups
count only in the cluster's VPCs (`select`).

Delete order (ranks among the registry's: 45 EKS control plane, 50 instances, 70/72 node groups; 40 rule sets,
30 groups, 20 subnets, 10 VPC): every instance and control plane is gone first (no controller is left to make a
load balancer again), then load balancers (44, waited until gone), their target groups (43), the groups
cloud-provider-aws made (42: first the rules in kubeaws' own groups that reference them are revoked, then the
delete retries DependencyViolation while the load balancers' ENIs drain), all before kubeaws' rule sets, groups,
subnets and VPC. Volumes and snapshots block nothing and go last (5): a volume still attached to a terminating
node is waited for, and one that cannot go never keeps the network from being deleted.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import SERVICE_NAME_TAG, is_controller_made, is_owned_by, k8s_cluster_tag, tag_dict
from kubeaws.resources._ec2 import LONG_WAIT, ignoring
from kubeaws.resources.base import Observed
from kubeaws.resources.registry import get as registry_kind
from kubeaws.resources.security_group import describe_groups
from kubeaws.resources.security_group_rules import flatten, revoke

_KINDS: dict[str, ControllerKind] = {}
K = TypeVar("K", bound="type[ControllerKind]")
#: Modules defining controller-made kinds (imported on first use).
MODULES = ("kubeaws.resources.controller_made", "kubeaws.resources.controller_volumes")
#: DescribeTags accepts at most 20 load balancer names (classic) or ARNs (v2) per call.
TAGS_BATCH = 20


class ControllerKind(ABC):
    """One AWS kind the cluster's controllers create: found by tag, deleted with the cluster, never applied."""

    kind: ClassVar[str]
    service: ClassVar[str]
    #: Place in the registry's delete order (highest first).
    rank: ClassVar[int]
    #: What one of them is called in the delete preview ("load balancer").
    noun: ClassVar[str]
    #: Whether it lives in a VPC: then only those in the cluster's VPCs are the cluster's.
    in_vpc: ClassVar[bool] = True

    @abstractmethod
    def find(self, ctx: AwsContext) -> list[Observed]:
        """Every live resource of this kind the cluster's controllers made (attrs: `name`, `vpc_id`...)."""

    @abstractmethod
    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete it and wait until what it blocked can go; already gone counts as deleted."""


def register(cls: K) -> K:
    """Class decorator: register one instance of a ControllerKind under `cls.kind`."""
    _KINDS[cls.kind] = cls()
    return cls


def kinds() -> dict[str, ControllerKind]:
    """Every controller-made kind by name."""
    for module in MODULES:
        importlib.import_module(module)
    return dict(_KINDS)


def select(found: Mapping[str, list[Observed]], vpc_ids: Iterable[str]) -> dict[str, list[Observed]]:
    """The found resources that are the cluster's: those of VPC kinds only in the cluster's VPCs."""
    vpcs, known = set(vpc_ids), kinds()
    return {name: [o for o in items if not known[name].in_vpc or o.attrs.get("vpc_id") in vpcs]
            for name, items in found.items()}


def name_of(obs: Observed) -> str:
    """How the delete preview and the progress name it (its AWS name, else its ID)."""
    return str(obs.attrs.get("name") or obs.id)


def tags_in_batches(fetch: Callable[[list[str]], dict[str, dict[str, str]]], ids: list[str],
                    not_found: Iterable[str]) -> dict[str, dict[str, str]]:
    """Tags of each ID, TAGS_BATCH per call; a batch naming one that just went is asked again one by one."""
    out: dict[str, dict[str, str]] = {}
    missing = frozenset(not_found)
    for start in range(0, len(ids), TAGS_BATCH):
        batches = [ids[start:start + TAGS_BATCH]]
        while batches:
            batch = batches.pop()
            try:
                out.update(fetch(batch))
            except ClientError as exc:
                if error_code(exc) not in missing:
                    raise
                if len(batch) > 1:
                    batches.extend([one] for one in batch)
    return out


def made_for_a_service(tags: Mapping[str, str], cluster: str) -> bool:
    """Made by cloud-provider-aws for one of the cluster's Services."""
    return is_controller_made(tags, cluster) and bool(tags.get(SERVICE_NAME_TAG))


@register
class ServiceLoadBalancer(ControllerKind):
    """A classic load balancer cloud-provider-aws made for a `type: LoadBalancer` Service (id = its name)."""

    kind = "ServiceLoadBalancer"
    service = "elb"
    rank = 44
    noun = "load balancer"
    NOT_FOUND = ("LoadBalancerNotFound",)

    def find(self, ctx: AwsContext) -> list[Observed]:
        items = ctx.paginate("elb", "describe_load_balancers", "LoadBalancerDescriptions")

        def fetch(names: list[str]) -> dict[str, dict[str, str]]:
            answer = ctx.call("elb", "describe_tags", LoadBalancerNames=names)
            return {d["LoadBalancerName"]: tag_dict(d.get("Tags")) for d in answer.get("TagDescriptions", [])}

        tags = tags_in_batches(fetch, [i["LoadBalancerName"] for i in items], self.NOT_FOUND)
        return [Observed(self.kind, i["LoadBalancerName"], {}, tags[i["LoadBalancerName"]], "",
                         {"name": i["LoadBalancerName"], "vpc_id": i.get("VPCId"),
                          "service": tags[i["LoadBalancerName"]][SERVICE_NAME_TAG],
                          "security_group_ids": sorted(i.get("SecurityGroups") or [])})
                for i in items if made_for_a_service(tags.get(i["LoadBalancerName"], {}), ctx.cluster)]

    def _exists(self, ctx: AwsContext, name: str) -> bool:
        answer = ignoring(lambda: ctx.call("elb", "describe_load_balancers", LoadBalancerNames=[name]),
                          self.NOT_FOUND)
        return bool((answer or {}).get("LoadBalancerDescriptions"))

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """DeleteLoadBalancer (succeeds when already gone), then wait until it no longer exists."""
        ctx.call("elb", "delete_load_balancer", LoadBalancerName=actual.id)
        wait_until(lambda: None if self._exists(ctx, actual.id) else True, LONG_WAIT,
                   f"load balancer {actual.id} to be deleted", ctx.policy)


class _Elbv2Made(ControllerKind):
    """ELBv2 resources (id = ARN): one describe of the region's, DescribeTags on all of them (their names do
    not say whose they are), kept when cloud-provider-aws made them for one of the cluster's Services."""

    service = "elbv2"
    describe_op: ClassVar[str]
    result_key: ClassVar[str]
    arn_key: ClassVar[str]
    name_key: ClassVar[str]
    #: The registry kind whose delete (retries, waits) serves this one.
    deleted_like: ClassVar[str]

    def find(self, ctx: AwsContext) -> list[Observed]:
        items = ctx.paginate("elbv2", self.describe_op, self.result_key)

        def fetch(arns: list[str]) -> dict[str, dict[str, str]]:
            answer = ctx.call("elbv2", "describe_tags", ResourceArns=arns)
            return {d["ResourceArn"]: tag_dict(d.get("Tags")) for d in answer.get("TagDescriptions", [])}

        tags = tags_in_batches(fetch, [i[self.arn_key] for i in items],
                               ("LoadBalancerNotFound", "TargetGroupNotFound"))
        return [self.observe(i, tags[i[self.arn_key]]) for i in items
                if made_for_a_service(tags.get(i[self.arn_key], {}), ctx.cluster)]

    def observe(self, item: Mapping[str, Any], tags: dict[str, str]) -> Observed:
        state = str((item.get("State") or {}).get("Code", ""))
        return Observed(self.kind, item[self.arn_key], {}, tags, state,
                        {"name": item[self.name_key], "vpc_id": item.get("VpcId"),
                         "service": tags[SERVICE_NAME_TAG]})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        registry_kind(self.deleted_like).delete(ctx, actual)


@register
class ServiceNetworkLoadBalancer(_Elbv2Made):
    """An NLB cloud-provider-aws made for a Service annotated `aws-load-balancer-type: nlb` (its listeners go
    with it); deleted as kubeaws deletes its own API load balancer: waited for until gone."""

    kind = "ServiceNetworkLoadBalancer"
    rank = 44
    noun = "load balancer"
    describe_op = "describe_load_balancers"
    result_key = "LoadBalancers"
    arn_key = "LoadBalancerArn"
    name_key = "LoadBalancerName"
    deleted_like = "LoadBalancer"


@register
class ServiceTargetGroup(_Elbv2Made):
    """A target group of such an NLB; deleted once its load balancer is gone (ResourceInUse retried)."""

    kind = "ServiceTargetGroup"
    rank = 43
    noun = "target group"
    describe_op = "describe_target_groups"
    result_key = "TargetGroups"
    arn_key = "TargetGroupArn"
    name_key = "TargetGroupName"
    deleted_like = "TargetGroup"


@register
class ServiceSecurityGroup(ControllerKind):
    """A security group cloud-provider-aws made (`k8s-elb-<load balancer>`), tagged owned by the cluster and
    carrying no kubeaws identity."""

    kind = "ServiceSecurityGroup"
    service = "ec2"
    rank = 42
    noun = "security group"

    def find(self, ctx: AwsContext) -> list[Observed]:
        groups = describe_groups(ctx, Filters=[{"Name": f"tag:{k8s_cluster_tag(ctx.cluster)}",
                                                "Values": ["owned"]}])
        return [Observed(self.kind, g["GroupId"], {}, tag_dict(g.get("Tags")), "",
                         {"name": g["GroupName"], "vpc_id": g.get("VpcId")})
                for g in groups if is_controller_made(tag_dict(g.get("Tags")), ctx.cluster)]

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Revoke the rules of kubeaws' own groups that name this group as their source, then delete it as
        kubeaws deletes its own groups (leaked ENIs swept, DependencyViolation retried while the load
        balancer's ENIs drain)."""
        revoke_references(ctx, actual.id)
        registry_kind("SecurityGroup").delete(ctx, actual)


def revoke_references(ctx: AwsContext, group_id: str) -> list[str]:
    """Revoke, in kubeaws' own groups of the cluster only (never a brought one nor another cluster's), the
    ingress rules whose source is `group_id`. Returns the groups changed."""
    filters = [{"Name": "tag:kubeaws.io/cluster", "Values": [ctx.cluster]},
               {"Name": "ip-permission.group-id", "Values": [group_id]}]
    changed: list[str] = []
    for group in describe_groups(ctx, Filters=filters):
        if not is_owned_by(tag_dict(group.get("Tags")), ctx.cluster):
            continue
        rules = [r for r in flatten(group.get("IpPermissions", [])) if r["source_group"] == group_id]
        if rules:
            revoke(ctx, group["GroupId"], rules)
            changed.append(group["GroupId"])
    return changed
