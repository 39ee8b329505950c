"""`kubeaws rollout` as one operation: which groups the spec has, what AWS says is outdated in them, the
plan of the roll, and the run (AWS side: rollout.aws_ops; Kubernetes side: rollout.kube_ops through the
admin credentials, tunnelled through the bastion for a private endpoint; upgrade hooks when the Kubernetes
version moves).

The spec decides which groups are the cluster's (the model's Auto Scaling groups: one per control-plane
member, one per self-managed node group) and their surge settings; AWS decides what is outdated. The
bastion is a plain instance that `apply` replaces itself, and EKS managed node groups are rolled by EKS
through UpdateNodegroupVersion during `apply`: neither is part of a rollout.

`--dry-run` reads AWS and prints the plan: no mutating call. `--cloud-only` drives no API (no drain, no
readiness, no validation: terminate and wait for the instances). A kubeadm cluster's rollout also carries
the cluster-wide kubeadm state along (rollout.upgrade: kubeadm-config before the first member, kube-proxy
and CoreDNS after the last). Called by kubeaws.cli.rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.model import build
from kubeaws.model.common import node_group_of
from kubeaws.rollout.aws_ops import AwsCloud
from kubeaws.rollout.inventory import GroupState, read_groups
from kubeaws.rollout.planner import RolloutPlan, plan_rollout
from kubeaws.rollout.runner import Cloud, RolloutResult, Runner, Timeouts
from kubeaws.spec.models import ClusterSpec

if TYPE_CHECKING:
    from kubeaws.kube_client import KubeClient


class RolloutInputError(KubeawsError):
    """A rollout option names something the spec does not have (exit 2)."""


@dataclass
class RolloutOptions:
    groups: list[str] = field(default_factory=list)  # spec names (nodeGroups[].name, control-plane-<i>) or ASGs
    control_plane_only: bool = False
    cloud_only: bool = False
    force: bool = False
    parallel_groups: int = 1
    timeouts: Timeouts = field(default_factory=Timeouts)
    ssh_key: Path | None = None
    direct: bool | None = False  # True: never tunnel (--no-tunnel); None: tunnel only when the API is unreachable


def cluster_groups(spec: ClusterSpec) -> dict[str, str]:
    """Spec-side name -> Auto Scaling group name, control-plane members first (member order), then the
    self-managed node groups in spec order."""
    graph = build(spec)
    out: dict[str, str] = {}
    for desired in graph.of_kind("AutoScalingGroup"):
        name = node_group_of(desired.spec_path) or desired.name
        out[name] = str(desired.props["name"])
    return dict(sorted(out.items(), key=lambda kv: (not kv[0].startswith("control-plane-"),)))


def surge_settings(spec: ClusterSpec) -> dict[str, dict[str, Any]]:
    """Auto Scaling group name -> {"maxSurge", "maxUnavailable"} of each node group."""
    names = cluster_groups(spec)
    return {names[ng.name]: {"maxSurge": ng.rollout.max_surge, "maxUnavailable": ng.rollout.max_unavailable}
            for ng in spec.spec.node_groups if ng.name in names}


def selected(spec: ClusterSpec, wanted: list[str]) -> set[str] | None:
    """The Auto Scaling groups `--group` names (None: all); RolloutInputError for a name the spec lacks."""
    if not wanted:
        return None
    names = cluster_groups(spec)
    out = set()
    for name in wanted:
        if name in names:
            out.add(names[name])
        elif name in names.values():
            out.add(name)
        else:
            raise RolloutInputError(f"--group {name}: the spec has no such group; its groups: "
                                    f"{', '.join(names)}")
    return out


def read(spec: ClusterSpec, ctx: AwsContext) -> list[GroupState]:
    return read_groups(ctx, cluster_groups(spec).values())


def plan(spec: ClusterSpec, ctx: AwsContext, options: RolloutOptions,
         groups: list[GroupState] | None = None) -> RolloutPlan:
    """What `kubeaws rollout` would replace now (read-only)."""
    return plan_rollout(groups if groups is not None else read(spec, ctx), surge_settings(spec),
                        only=selected(spec, options.groups), control_plane_only=options.control_plane_only,
                        force=options.force, parallel_groups=options.parallel_groups)


def run(spec: ClusterSpec, ctx: AwsContext, options: RolloutOptions, rollout: RolloutPlan,
        say: Callable[[str], None] | None = None, *, kube: KubeClient | None = None,
        cloud: Cloud | None = None) -> RolloutResult:
    """Run `rollout` (from `plan`); prunes the template versions no group launches any more when done.
    `kube`: a client of the cluster's API to use (default: the admin credentials, tunnelled when needed);
    `cloud`: the AWS side (default: rollout.aws_ops on `ctx`)."""
    aws = AwsCloud(ctx)
    if rollout.empty:
        return RolloutResult()
    if options.cloud_only:
        result = Runner(cloud or aws, None, ctx.policy, options.timeouts, say, options.force).run(rollout)
    else:
        from kubeaws.reach import api_client
        from kubeaws.rollout.kube_ops import KubeCluster
        from kubeaws.rollout.upgrade import cluster_version, upgrade_hooks

        with ExitStack() as stack:
            if kube is None:
                kube = stack.enter_context(api_client(spec, ctx, ctx.policy, ssh_key=options.ssh_key,
                                                      direct=options.direct, notify=say))
            cluster = KubeCluster(kube, spec, ctx.policy, say)
            # A kubeadm cluster's kubeadm-config, kubelet-config, kube-proxy and CoreDNS follow the members
            # (rollout.upgrade); each hook writes only what differs, so a resumed or plain rollout is safe.
            upgrade = upgrade_hooks(spec, cluster_version(kube), say)
            hooks = upgrade.bind(kube) if upgrade is not None else None
            result = Runner(cloud or aws, cluster, ctx.policy, options.timeouts, say, options.force,
                            hooks=hooks).run(rollout)
    aws.prune(read(spec, ctx))
    return result

