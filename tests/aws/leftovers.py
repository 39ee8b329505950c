"""What a cluster left in the account after `kubeaws delete`: every resource tagged `kubeaws.io/cluster=<name>`
(what kubeaws creates) or carrying `kubernetes.io/cluster/<name>` (also what the cluster's own controllers
create: load balancers and their security groups, EBS CSI volumes, Auto Scaling instances), found by explicit
describes per kind, by the IAM path /kubeaws/<name>/, by the state bucket's name, and by the Resource Groups
Tagging API for any other tagged kind.

`format_leftovers`, `cleanup_commands` and `arn_kind` are pure (unit-tested in test_helpers.py);
`find_leftovers` reads AWS (read-only).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLUSTER_TAG = "kubeaws.io/cluster"

#: (service, resource type) of ARNs the explicit describes below already cover.
EXPLICIT_EC2 = frozenset({"instance", "volume", "network-interface", "security-group", "natgateway", "elastic-ip",
                          "vpc", "subnet", "route-table", "internet-gateway", "launch-template"})
EXPLICIT_SERVICES = frozenset({"elasticloadbalancing", "autoscaling", "iam"})


def k8s_tag(cluster: str) -> str:
    return f"kubernetes.io/cluster/{cluster}"


@dataclass(frozen=True, order=True)
class Leftover:
    kind: str
    id: str
    detail: str = ""


def cleanup_commands(cluster: str, region: str, spec_path: Path | str) -> list[str]:
    """The commands that finish a cleanup by hand (printed whenever the suite could not delete a cluster)."""
    return [
        f"kubeaws delete -f {shlex.quote(str(spec_path))} --yes",
        f"aws resourcegroupstaggingapi get-resources --region {region} --tag-filters "
        f"Key={CLUSTER_TAG},Values={cluster}",
        f"aws resourcegroupstaggingapi get-resources --region {region} --tag-filters Key={k8s_tag(cluster)}",
        f"aws iam list-roles --path-prefix /kubeaws/{cluster}/",
    ]


def format_leftovers(cluster: str, region: str, spec_path: Path | str, leftovers: Sequence[Leftover],
                     unchecked: Sequence[str] = ()) -> str:
    """'' when nothing is left and everything could be checked; else the report a failing test shows."""
    if not leftovers and not unchecked:
        return ""
    lines: list[str] = []
    unique = sorted(set(leftovers))
    if unique:
        lines.append(f"{len(unique)} resource(s) of cluster {cluster} remain in {region} after `kubeaws delete`:")
        width = max(len(item.kind) for item in unique)
        for item in unique:
            detail = f"  ({item.detail})" if item.detail else ""
            lines.append(f"  {item.kind.ljust(width)}  {item.id}{detail}")
    if unchecked:
        lines.append(f"could not check {len(unchecked)} kind(s) (so nothing proves they are gone):")
        lines.extend(f"  {reason}" for reason in unchecked)
    lines.append("clean up by hand (and see tests/aws/README.md):")
    lines.extend(f"  {command}" for command in cleanup_commands(cluster, region, spec_path))
    return "\n".join(lines)


def arn_kind(arn: str) -> tuple[str, str]:
    """(service, resource type) of an ARN: `arn:aws:ec2:r:a:volume/vol-1` -> ("ec2", "volume");
    `arn:aws:s3:::bucket` -> ("s3", "bucket"); `...:autoScalingGroup:uuid:autoScalingGroupName/x` ->
    ("autoscaling", "autoScalingGroup")."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return ("?", arn)
    service, resource = parts[2], parts[5]
    if service == "s3" and "/" not in resource:
        return ("s3", "bucket")
    return (service, re.split(r"[/:]", resource, maxsplit=1)[0])


def _name(tags: Iterable[dict[str, str]] | None) -> str:
    return next((t.get("Value", "") for t in tags or [] if t.get("Key") == "Name"), "")


class _Finder:
    """The describes, collecting leftovers and the kinds that could not be checked (e.g. AccessDenied)."""

    def __init__(self, session: Any, region: str, cluster: str, client_config: Any) -> None:
        self.session = session
        self.region = region
        self.cluster = cluster
        self.config = client_config
        self.found: list[Leftover] = []
        self.unchecked: list[str] = []

    def client(self, service: str) -> Any:
        region = None if service == "iam" else self.region
        return self.session.client(service, region_name=region, config=self.config)

    def guard(self, what: str, fn: Callable[[], None]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            fn()
        except (ClientError, BotoCoreError) as exc:
            self.unchecked.append(f"{what}: {exc}")

    def pages(self, service: str, op: str, key: str, **kwargs: Any) -> Iterator[Any]:
        client = self.client(service)
        if client.can_paginate(op):
            for page in client.get_paginator(op).paginate(**kwargs):
                yield from page.get(key) or []
        else:
            yield from getattr(client, op)(**kwargs).get(key) or []

    def filters(self) -> list[list[dict[str, Any]]]:
        """Describe filters: the kubeaws ownership tag, then the Kubernetes cluster tag (any value)."""
        return [[{"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster]}],
                [{"Name": "tag-key", "Values": [k8s_tag(self.cluster)]}]]

    def ec2(self, kind: str, op: str, key: str, id_field: str, state: Callable[[dict[str, Any]], str] | None = None,
            gone: frozenset[str] = frozenset(), filter_param: str = "Filters") -> None:
        def run() -> None:
            for flt in self.filters():
                items: Iterable[dict[str, Any]] = self.pages("ec2", op, key, **{filter_param: flt})
                if op == "describe_instances":
                    items = [i for r in items for i in r.get("Instances") or []]
                for item in items:
                    status = state(item) if state else ""
                    if status in gone:
                        continue
                    detail = ", ".join(p for p in (f"Name={_name(item.get('Tags'))}" if _name(item.get("Tags"))
                                                   else "", f"state={status}" if status else "") if p)
                    self.found.append(Leftover(f"ec2 {kind}", str(item[id_field]), detail))

        self.guard(f"ec2 {op}", run)

    def all_ec2(self) -> None:
        self.ec2("instance", "describe_instances", "Reservations", "InstanceId",
                 lambda i: str((i.get("State") or {}).get("Name", "")), frozenset({"terminated"}))
        self.ec2("volume", "describe_volumes", "Volumes", "VolumeId", lambda v: str(v.get("State", "")),
                 frozenset({"deleted"}))
        self.ec2("network interface", "describe_network_interfaces", "NetworkInterfaces", "NetworkInterfaceId",
                 lambda n: str(n.get("Status", "")))
        self.ec2("security group", "describe_security_groups", "SecurityGroups", "GroupId")
        self.ec2("NAT gateway", "describe_nat_gateways", "NatGateways", "NatGatewayId",
                 lambda n: str(n.get("State", "")), frozenset({"deleted", "failed"}), filter_param="Filter")
        self.ec2("elastic IP", "describe_addresses", "Addresses", "AllocationId")
        self.ec2("VPC", "describe_vpcs", "Vpcs", "VpcId")
        self.ec2("subnet", "describe_subnets", "Subnets", "SubnetId")
        self.ec2("route table", "describe_route_tables", "RouteTables", "RouteTableId")
        self.ec2("internet gateway", "describe_internet_gateways", "InternetGateways", "InternetGatewayId")
        self.ec2("launch template", "describe_launch_templates", "LaunchTemplates", "LaunchTemplateId")

    def autoscaling(self) -> None:
        def run() -> None:
            for flt in self.filters():
                for group in self.pages("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                                        Filters=flt):
                    status = group.get("Status") or "active"
                    self.found.append(Leftover("autoscaling group", group["AutoScalingGroupName"],
                                               f"status={status}, instances={len(group.get('Instances') or [])}"))

        self.guard("autoscaling describe_auto_scaling_groups", run)

    def load_balancers(self) -> None:
        def ours(tags: Iterable[dict[str, str]]) -> bool:
            keys = {t.get("Key"): t.get("Value") for t in tags}
            return keys.get(CLUSTER_TAG) == self.cluster or k8s_tag(self.cluster) in keys

        def v2() -> None:
            client = self.client("elbv2")
            for op, key, arn_field, kind in (("describe_load_balancers", "LoadBalancers", "LoadBalancerArn",
                                              "elbv2 load balancer"),
                                             ("describe_target_groups", "TargetGroups", "TargetGroupArn",
                                              "elbv2 target group")):
                arns = [item[arn_field] for item in self.pages("elbv2", op, key)]
                for start in range(0, len(arns), 20):
                    for desc in client.describe_tags(ResourceArns=arns[start:start + 20]).get("TagDescriptions"):
                        if ours(desc.get("Tags") or []):
                            self.found.append(Leftover(kind, desc["ResourceArn"]))

        def classic() -> None:
            client = self.client("elb")
            names = [lb["LoadBalancerName"] for lb in self.pages("elb", "describe_load_balancers",
                                                                 "LoadBalancerDescriptions")]
            for start in range(0, len(names), 20):
                for desc in client.describe_tags(LoadBalancerNames=names[start:start + 20]).get("TagDescriptions"):
                    if ours(desc.get("Tags") or []):
                        self.found.append(Leftover("elb classic load balancer", desc["LoadBalancerName"],
                                                   "made by the cluster's cloud-controller-manager"))

        self.guard("elbv2 describe_load_balancers/target_groups", v2)
        self.guard("elb describe_load_balancers", classic)

    def iam(self) -> None:
        prefix = f"/kubeaws/{self.cluster}/"

        def run() -> None:
            for role in self.pages("iam", "list_roles", "Roles", PathPrefix=prefix):
                self.found.append(Leftover("iam role", role["RoleName"], f"path {prefix}"))
            for profile in self.pages("iam", "list_instance_profiles", "InstanceProfiles", PathPrefix=prefix):
                self.found.append(Leftover("iam instance profile", profile["InstanceProfileName"], f"path {prefix}"))

        self.guard("iam list_roles/list_instance_profiles", run)

    def bucket(self, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client("s3").head_bucket(Bucket=name)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                return
            self.found.append(Leftover("s3 bucket", name, f"HeadBucket answered {code}: it still exists"))
            return
        except BotoCoreError as exc:
            self.unchecked.append(f"s3 head_bucket {name}: {exc}")
            return
        self.found.append(Leftover("s3 bucket", name, "the state bucket"))

    def tagging_api(self, bucket: str) -> None:
        def run() -> None:
            for key, values in ((CLUSTER_TAG, [self.cluster]), (k8s_tag(self.cluster), None)):
                tag_filter: dict[str, Any] = {"Key": key, **({"Values": values} if values else {})}
                for item in self.pages("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                                       TagFilters=[tag_filter]):
                    arn = str(item["ResourceARN"])
                    service, kind = arn_kind(arn)
                    if (service == "ec2" and kind in EXPLICIT_EC2) or service in EXPLICIT_SERVICES:
                        continue  # verified by the explicit describes (the tagging API lags behind deletions)
                    if service == "s3" and arn.endswith(f":::{bucket}"):
                        continue
                    self.found.append(Leftover(f"{service} {kind}", arn, "found by the Resource Groups Tagging API"))

        self.guard("resourcegroupstaggingapi get_resources", run)


def find_leftovers(session: Any, region: str, cluster: str, bucket: str,
                   client_config: Any = None) -> tuple[list[Leftover], list[str]]:
    """(what remains, what could not be checked) for `cluster` in `region` (IAM is global)."""
    finder = _Finder(session, region, cluster, client_config)
    finder.all_ec2()
    finder.autoscaling()
    finder.load_balancers()
    finder.iam()
    finder.bucket(bucket)
    finder.tagging_api(bucket)
    return sorted(set(finder.found)), finder.unchecked
