"""The typed Python API of kubeaws; the CLI is a thin layer over it.

    spec = kubeaws.load_spec("cluster.yaml")
    ctx = kubeaws.connect(spec)            # or connect(spec, endpoint_url="http://127.0.0.1:4599")
    p = kubeaws.plan(spec, ctx)
    result = kubeaws.apply(spec, ctx)
    kubeaws.status(spec, ctx); kubeaws.delete(spec, ctx)

A reviewed plan: `saved = save_plan(spec, ctx, p)` (write it with `saved.write(path)`), later
`apply(spec, ctx, plan=SavedPlan.read(path))` applies exactly those changes or raises StalePlanError listing
what changed (engine.saved_plan).

`plan`, `apply` and `status` read and apply the cluster's Kubernetes objects (the addons) through its API:
they give the context a `kubeaws.reach.KubeReach` for the call (`ctx.kube`; set one yourself to pass an SSH
key for the bastion tunnel, or `direct`), closed at the end of the call when they made it. `delete` does not:
the objects go with the cluster.

Each call with an AWS context first resolves the spec's instance types (`resolved`): the bundled table, plus
one ec2:DescribeInstanceTypes call (read-only) for the types newer than it; an unknown type is a SpecError
(field path, line, did-you-mean) before anything is read or changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from kubeaws.aws.retry import RetryPolicy
from kubeaws.aws.session import AwsContext, settings_from_env
from kubeaws.engine import apply as _apply
from kubeaws.engine.instance_types import resolved
from kubeaws.engine.observe import Observation
from kubeaws.engine.plan import PlanState, make_plan
from kubeaws.engine.saved_plan import SavedPlan, Target, differences
from kubeaws.engine.saved_plan import StalePlanError as StalePlanError
from kubeaws.engine.status import cluster_status
from kubeaws.engine.types import ApplyResult, Plan, StatusReport
from kubeaws.model import build
from kubeaws.model.flows import documentation_cidrs, documentation_range_message
from kubeaws.model.graph import Graph
from kubeaws.spec.load import load_spec as _load_spec
from kubeaws.spec.models import ClusterSpec

if TYPE_CHECKING:
    from kubeaws.lock import ClusterLock

__all__ = ["apply", "build", "check_plan", "connect", "delete", "load_spec", "plan", "plan_state", "save_plan",
           "status"]


def load_spec(path: str | os.PathLike[str]) -> ClusterSpec:
    """Read and validate a spec file; raises SpecError listing every problem."""
    return _load_spec(Path(path))


def connect(spec: ClusterSpec, *, profile: str | None = None, region: str | None = None,
            endpoint_url: str | None = None, policy: RetryPolicy | None = None) -> AwsContext:
    """An AWS context for the spec's cluster (region from the spec unless overridden)."""
    settings = settings_from_env(region or spec.spec.region, profile, endpoint_url)
    return AwsContext(settings, cluster=spec.metadata.name, policy=policy)


@contextmanager
def kube_reach(spec: ClusterSpec, ctx: AwsContext, *, ssh_key: Path | None = None, direct: bool | None = None,
               notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """`ctx.kube` for the block: the caller's, or a KubeReach made here (the bastion tunnel with `ssh_key` for
    a private endpoint, or `direct`) and closed after."""
    if ctx.kube is not None:
        yield
        return
    from kubeaws.reach import KubeReach

    reach = KubeReach(spec, ctx, ssh_key=ssh_key, direct=direct, notify=notify)
    ctx.kube = reach
    try:
        yield
    finally:
        ctx.kube = None
        reach.close()


def unread_objects_warning(ctx: AwsContext, graph: Graph) -> list[str]:
    """A warning when the graph has Kubernetes objects that could not be read (the API did not answer)."""
    kube = ctx.kube
    if kube is None or not kube.possible or not kube.problem or not graph.of_kind("KubernetesObject"):
        return []
    return [f"the cluster's Kubernetes objects were not read ({kube.problem}): they show as creates; apply "
            "applies them once the API answers (server-side apply: an object already there is only updated)"]


def held_minor(spec: ClusterSpec, ctx: AwsContext) -> str | None:
    """During a kubeadm upgrade, the minor the API servers still run when it is below the spec's (the addons
    that follow the minor stay there until the rollout moves them: model.addon_objects); else None. Read
    through `ctx.kube` (one list of the kube-apiserver pods); None when the API does not answer."""
    from kubeaws.resources.state_object import minor_of
    from kubeaws.rollout.upgrade import api_server_minor

    kube = ctx.kube
    if spec.spec.mode != "kubeadm" or kube is None or not kube.possible:
        return None
    client = kube.client(wait=False)
    running = api_server_minor(client) if client is not None else None
    if running is None or minor_of(running) >= minor_of(spec.spec.kubernetes_version):
        return None
    return running


def _graph(spec: ClusterSpec, ctx: AwsContext, graph: Graph | None) -> tuple[Graph, list[str]]:
    """The graph to plan (the caller's, unless an upgrade holds the addons that follow the minor) and the
    plan's note about what is held."""
    held = held_minor(spec, ctx)
    if held is None:
        return (graph if graph is not None else build(spec)), []
    from kubeaws.model.addon_objects import versioned_addons

    names = ", ".join(addon.name for addon in versioned_addons(spec))
    note = (f"{names}: kept at Kubernetes {held}'s images while an API server still runs {held} (a newer "
            f"controller than its API server breaks the version-skew policy); `kubeaws rollout` moves them "
            f"to {spec.spec.kubernetes_version} after the last control-plane member") if names else ""
    return build(spec, addons_minor=held), [note] if note else []


def plan_state(spec: ClusterSpec, ctx: AwsContext | None = None, *, graph: Graph | None = None) -> PlanState:
    """The plan with what it was computed from (feed it to `apply` to avoid observing twice). `graph`: the
    spec's resource graph when the caller already built it (`build(spec)`)."""
    ctx = ctx or connect(spec)
    spec = resolved(spec, ctx)
    with kube_reach(spec, ctx):
        graph, notes = _graph(spec, ctx, graph)
        state = make_plan(graph, ctx, spec=spec)
        state.plan.notes += notes
        state.plan.warnings += unread_objects_warning(ctx, graph)
    state.plan.warnings += [documentation_range_message(path, cidr) for path, cidr in documentation_cidrs(spec)]
    from kubeaws.doctor.live_certs import plan_warnings as certificate_warnings

    state.plan.warnings += certificate_warnings(spec, ctx)  # kubeadm members' certificates near expiry
    return state


def plan(spec: ClusterSpec, ctx: AwsContext | None = None, *, graph: Graph | None = None) -> Plan:
    """What `apply` would change. Makes only read calls."""
    return plan_state(spec, ctx, graph=graph).plan


def target(ctx: AwsContext) -> Target:
    """Where `ctx` applies: region, account (one sts:GetCallerIdentity, cached) and partition."""
    from kubeaws.partition import partition_of

    return Target(region=ctx.region, account=ctx.account_id(), partition=partition_of(ctx.region))


def save_plan(spec: ClusterSpec, ctx: AwsContext, plan: Plan) -> SavedPlan:
    """The fingerprint of `plan` (made from `spec` on `ctx`) to save and apply later (engine.saved_plan)."""
    return SavedPlan.of(plan, spec, target(ctx))


def check_plan(reviewed: Plan | SavedPlan, spec: ClusterSpec, ctx: AwsContext, fresh: PlanState) -> None:
    """Raise StalePlanError (listing the differences) unless `fresh`, planned now, does exactly what
    `reviewed` said: the same changes with the same values, on resources AWS shows as they were, for the
    same spec (a SavedPlan records its spec; a Plan in memory is compared on its changes and resources)."""
    saved = reviewed if isinstance(reviewed, SavedPlan) else SavedPlan.of(reviewed, spec, target(ctx))
    found = differences(saved, SavedPlan.of(fresh.plan, spec, target(ctx)))
    if found:
        raise StalePlanError(found)


def apply(spec: ClusterSpec, ctx: AwsContext | None = None, *, plan: Plan | PlanState | SavedPlan | None = None,
          on_event: _apply.EventSink | None = None, max_workers: int = 8) -> ApplyResult:
    """Make AWS match the spec. `plan`: None plans now and applies that; a PlanState from `plan_state` is
    applied as is (the caller just made it); a reviewed Plan or SavedPlan is applied only when planning again
    now gives exactly it (`check_plan`), else StalePlanError and nothing changes. Callers that must exclude
    other runs between the check and the changes hold the cluster lock (`cluster_lock`) around this call."""
    ctx = ctx or connect(spec)
    with kube_reach(spec, ctx):
        if isinstance(plan, PlanState):
            state = plan
        elif plan is None:
            spec = resolved(spec, ctx)
            state = make_plan(_graph(spec, ctx, None)[0], ctx)
        else:
            state = plan_state(spec, ctx)
            check_plan(plan, spec, ctx, state)
        return _apply.execute(state, ctx, on_event, max_workers)


def delete(spec: ClusterSpec, ctx: AwsContext | None = None, *, on_event: _apply.EventSink | None = None,
           max_workers: int = 8, observation: Observation | None = None) -> ApplyResult:
    """Delete everything kubeaws created for the cluster, and what the cluster's controllers made (Service load
    balancers and their security groups, EBS CSI volumes and snapshots); brought resources only lose the
    `shared` tag. `observation`: the cluster as already read (`status(spec, ctx, every_kind=True)
    .observation`), so that it is not read again; None reads it."""
    ctx = ctx or connect(spec)
    return _apply.destroy(ctx, build(resolved(spec, ctx)), on_event, max_workers, observation=observation)


def status(spec: ClusterSpec, ctx: AwsContext | None = None, *, controller_made: bool = True,
           every_kind: bool = False) -> StatusReport:
    """What exists for the cluster and how many changes are pending; with `controller_made`, also what the
    cluster's controllers made (`report.controller_made`), which `delete` removes too; with `every_kind`,
    owned resources of every kind whatever the spec's mode (as delete sees them: `report.observation` can then
    be passed to `delete`)."""
    ctx = ctx or connect(spec)
    graph = build(resolved(spec, ctx))
    if every_kind:  # as delete sees the cluster: its Kubernetes objects go with it, they are not read
        return cluster_status(graph, ctx, controller_made, every_kind)
    with kube_reach(spec, ctx):
        return cluster_status(graph, ctx, controller_made, every_kind)


# -- the cluster lock (kubeaws.lock) ----------------------------------------------------------------------
def lock_home(spec: ClusterSpec, ctx: AwsContext, *, create: bool) -> str | None:
    """The state bucket that holds the cluster's lock (kubeaws.lock says why there). With `create`, a missing
    one is made first through the Bucket kind (every setting but the bucket policy, which names roles that do
    not exist yet: the plan that follows puts it on); without, None when it does not exist."""
    from kubeaws.aws.tags import owned_tags
    from kubeaws.model.state import PUBLIC_ACCESS_BLOCK
    from kubeaws.resources.base import Desired
    from kubeaws.resources.bucket import Bucket
    from kubeaws.resources.registry import kinds

    kind = kinds()["Bucket"]
    assert isinstance(kind, Bucket)
    name = _bucket_name(ctx)
    if _bucket_exists(ctx, name):
        return name
    if not create:
        return None
    graph = build(spec)
    if "Bucket/state" in graph:  # kubeadm: the model's bucket, but its policy
        model = graph["Bucket/state"]
        desired = replace(model, props={**model.props, "name": name, "policy": None})
    else:  # EKS has no state bucket of its own: the lock's home is made the same way (delete removes it)
        props = {"name": name, "versioning": True, "encryption": "AES256", "policy": None, "tls_only": True,
                 "public_access_block": dict(PUBLIC_ACCESS_BLOCK)}
        desired = Desired("Bucket", "state", props, tags=owned_tags(
            ctx.cluster, "Bucket", "state", f"{ctx.cluster}-state", spec.spec.tags))
    kind.create(ctx, desired)
    return name


def _bucket_name(ctx: AwsContext) -> str:
    from kubeaws.resources._s3 import cluster_bucket

    return cluster_bucket(ctx)


def _bucket_exists(ctx: AwsContext, name: str) -> bool:
    from botocore.exceptions import ClientError

    from kubeaws.aws.retry import error_code

    try:
        ctx.call("s3", "head_bucket", Bucket=name)
        return True
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def cluster_lock(spec: ClusterSpec, ctx: AwsContext, command: str, *, create_home: bool = False,
                 say: Callable[[str], None] | None = None) -> ClusterLock | None:
    """The lock `command` takes on the cluster (not yet acquired); None when it has no home and
    `create_home` is False (a cluster with nothing deployed)."""
    from kubeaws.lock import ClusterLock

    bucket = lock_home(spec, ctx, create=create_home)
    return None if bucket is None else ClusterLock(ctx, bucket, command, say=say)
