"""The summary `kubeaws status` starts with: mode, Kubernetes version, API endpoint, and per group how many
instances are desired, in service and Ready.

Desired: the Auto Scaling group's desired capacity (EKS managed groups: the node group's scaling config).
In service: its instances in the InService lifecycle state (one read-only DescribeAutoScalingGroups for every
group, EKS managed groups' own Auto Scaling groups included). Ready: Kubernetes nodes whose Ready condition is
True, matched to groups by their instance ID (spec.providerID), read from the API only when it answers from
here without a tunnel (a public endpoint, not the local emulator); otherwise unknown, and the summary says why.

Called by the status command in kubeaws.cli.main (text: `summary_text`; JSON/YAML: the `summary` key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape

from kubeaws.cli.output import Out

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.engine.types import StatusReport
    from kubeaws.spec.models import ClusterSpec

NODE_GROUP_TAG = "kubeaws.io/node-group"
#: Seconds the Kubernetes API gets to answer the node list (status must not hang on an unreachable one).
API_TIMEOUT = 5.0


def summary(spec: ClusterSpec, ctx: AwsContext, report: StatusReport) -> dict[str, Any]:
    """{mode, kubernetesVersion, endpoint, groups: [{name, desired, inService, ready}], readyFrom}: `ready`
    is None and `readyFrom` says why when the API was not asked."""
    by_kind = report.by_kind()
    eks = next(iter(by_kind.get("EksCluster", [])), None)
    version = str((eks.fields.get("version") if eks is not None else None) or spec.spec.kubernetes_version)
    groups = _groups(ctx, report)
    ready_from = "kubernetes API"
    if groups:
        ready, ready_from = _ready(spec, ctx, groups)
        for group in groups:
            group["ready"] = ready.get(group["name"], 0) if ready is not None else None
    for group in groups:
        group.pop("instances", None)
    return {"mode": spec.spec.mode, "kubernetesVersion": version, "endpoint": _endpoint(spec, ctx, eks),
            "groups": groups, "readyFrom": ready_from}


def _endpoint(spec: ClusterSpec, ctx: AwsContext, eks: Any) -> str | None:
    if spec.spec.mode == "eks":
        return str(eks.attrs.get("endpoint")) if eks is not None and eks.attrs.get("endpoint") else None
    from kubeaws.access import api_server

    return api_server(spec, ctx)


def _groups(ctx: AwsContext, report: StatusReport) -> list[dict[str, Any]]:
    """One entry per Auto Scaling group of the cluster and per EKS managed node group, with the instance IDs
    in service (`instances`, dropped from the summary once Ready is counted)."""
    by_kind = report.by_kind()
    groups: list[dict[str, Any]] = []
    asg_of: dict[str, dict[str, Any]] = {}  # Auto Scaling group name -> its summary entry
    for o in by_kind.get("AutoScalingGroup", []):
        name = o.tags.get(NODE_GROUP_TAG) or (o.logical_key or o.id).split("/", 1)[-1]
        entry: dict[str, Any] = {"name": name, "desired": o.fields.get("desired_capacity"), "inService": 0,
                                 "instances": []}
        groups.append(entry)
        asg_of[o.id] = entry
    for o in by_kind.get("EksNodegroup", []):
        entry = {"name": o.id.split("/", 1)[-1], "desired": (o.fields.get("scaling") or {}).get("desired"),
                 "inService": 0, "instances": []}
        groups.append(entry)
        for asg in o.attrs.get("auto_scaling_groups") or []:
            asg_of[asg] = entry
    names = sorted(asg_of)
    for start in range(0, len(names), 50):  # the names in chunks of 50 per request
        found = ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                             AutoScalingGroupNames=names[start:start + 50])
        for group in found:
            if group["AutoScalingGroupName"] not in asg_of:
                continue
            entry = asg_of[group["AutoScalingGroupName"]]
            live = [i["InstanceId"] for i in group.get("Instances") or [] if i.get("LifecycleState") == "InService"]
            entry["inService"] += len(live)
            entry["instances"] += live
    return sorted(groups, key=lambda g: (not str(g["name"]).startswith("control-plane"), str(g["name"])))


def _ready(spec: ClusterSpec, ctx: AwsContext, groups: list[dict[str, Any]]) -> tuple[dict[str, int] | None, str]:
    """Ready nodes per group name, or None and why the API was not asked (or did not answer)."""
    if not ctx.capabilities.boots_instances:
        return None, "unknown: the local emulator has no Kubernetes API"
    if spec.spec.mode != "eks" and spec.spec.access.api_endpoint == "private":
        return None, "unknown: the API endpoint is private (`kubeaws doctor -f SPEC --live --tunnel` reaches it)"
    from kubeaws.aws.retry import RetryPolicy
    from kubeaws.reach import api_client

    try:
        with api_client(spec, ctx, RetryPolicy(max_attempts=1), direct=True, timeout=API_TIMEOUT,
                        lifetime_hours=1.0) as kube:
            nodes = kube.list_nodes()
    except Exception as exc:  # an API that does not answer from here leaves Ready unknown, not status failed
        return None, f"unknown: the Kubernetes API did not answer ({type(exc).__name__})"
    group_of = {iid: g["name"] for g in groups for iid in g["instances"]}
    ready: dict[str, int] = {}
    for node in nodes:
        iid = str((node.get("spec") or {}).get("providerID") or "").rsplit("/", 1)[-1]
        conditions = (node.get("status") or {}).get("conditions") or []
        if iid in group_of and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready[group_of[iid]] = ready.get(group_of[iid], 0) + 1
    return ready, "kubernetes API"


def summary_text(out: Out, data: dict[str, Any]) -> None:
    """The summary lines and the group table (name, desired, in service, ready)."""
    from rich.table import Table

    out.print(f"Mode: {escape(data['mode'])}   Kubernetes: {escape(data['kubernetesVersion'])}   "
              f"Endpoint: {escape(data['endpoint'] or 'none yet')}")
    if not data["groups"]:
        return
    table = Table(title="Groups", title_justify="left")
    for column in ("group", "desired", "in service", "ready"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in data["groups"]:
        table.add_row(escape(str(g["name"])), _num(g["desired"]), _num(g["inService"]), _num(g["ready"]))
    if data["readyFrom"] != "kubernetes API":
        table.caption = f"ready: {data['readyFrom']}"
    out.stdout.print(table)


def _num(value: Any) -> str:
    return "?" if value is None else str(value)
