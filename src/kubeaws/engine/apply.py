"""The executor: runs a plan's creates/updates/replacements on a bounded thread pool as soon as each
resource's dependencies are done, then its deletes on the delete graph; and tears a whole cluster down.

Every resource is reported through `on_event` (started / done / failed / skipped). With one worker, changes
run one at a time in the graph's order, so a run's AWS calls come in the same order every time. A failure stops only
what depends on the failed resource; the result says what was done and what was not, and running the same
command again finishes the job (every step is idempotent: resources are found again by their tags).

Deletes run on the delete graph (engine.delete_order): the model graph's edges reversed (what depends on a
resource goes before it), references between the observed resources, the kinds' ranks where nothing else is
known. Each deletion starts as soon as everything that must go before it is gone, e.g. a subnet as soon as
the instances, NAT gateways, load balancers and route tables naming it are, not when a whole rank is. A
failed deletion skips only what waits for it.

`destroy` also deletes what the cluster's own controllers made (resources/controller_made.py: Service load
balancers and their security groups, EBS CSI volumes and snapshots), in the same delete graph, so the load
balancers are gone before the subnets, groups and VPC they would block. An apply (`execute`) never observes
those, so never deletes them. Both run on one thread pool (engine.schedule) whose tasks use the context's
shared clients: one botocore client per service for the whole command.

Called by the public API (kubeaws.api.apply / delete).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import k8s_cluster_tag
from kubeaws.engine import delete_order
from kubeaws.engine.observe import Observation, observe
from kubeaws.engine.plan import PlanState
from kubeaws.engine.schedule import run_dag
from kubeaws.engine.types import Action, ApplyResult, Change, Event, EventState
from kubeaws.errors import KubeawsError, OwnershipError
from kubeaws.model.graph import Graph
from kubeaws.resources import controller_made, registry
from kubeaws.resources.base import Desired, Kind, Lookup, Observed, Ref, create_or_adopt
from kubeaws.resources.controller_made import ControllerKind

EventSink = Callable[[Event], None]


def describe_error(exc: BaseException) -> str:
    """A one-line error for the user: AWS code and message, or the kubeaws message."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{error_code(exc)}: {err.get('Message', '')}".strip()
    if isinstance(exc, KubeawsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Reporter:
    """Collects events (thread-safe) and forwards them to the caller's sink."""

    def __init__(self, result: ApplyResult, sink: EventSink | None) -> None:
        self.result = result
        self.sink = sink
        self.lock = threading.Lock()

    def emit(self, kind: str, name: str, action: Action, state: EventState, seconds: float = 0.0,
             rid: str | None = None, error: str | None = None) -> None:
        event = Event(kind, name, action, state, seconds, rid, error)
        with self.lock:
            if state != "started":
                self.result.events.append(event)
            if self.sink is not None:
                self.sink(event)


def execute(state: PlanState, ctx: AwsContext, on_event: EventSink | None = None,
            max_workers: int = 8) -> ApplyResult:
    """Apply a plan. Creates/updates/replacements first (dependency order, in parallel), then deletes."""
    started = time.monotonic()
    result = ApplyResult(cluster=state.plan.cluster, operation="apply")
    rep = _Reporter(result, on_event)
    kinds = registry.kinds()
    results: dict[str, Observed] = {k: v for k, v in state.matched.items() if v is not None}
    lookups = state.observation.lookups
    changes = {c.key: c for c in state.plan.changes if c.action != "delete"}
    replaced_old: list[Change] = []
    lock = threading.Lock()

    def resolve(value: Any) -> Any:
        if isinstance(value, Lookup):
            return lookups[value]
        if isinstance(value, Ref):
            return results[value.key].attr(value.attr)
        return value

    def run(change: Change) -> None:
        desired = change.desired
        assert desired is not None
        kind = kinds[desired.kind]
        resolved = desired.resolved(resolve)
        t0 = time.monotonic()
        action = change.action
        if action == "noop":
            return
        rep.emit(desired.kind, desired.name, action, "started", rid=change.id)
        try:
            actual = change.actual
            if action == "update" and actual is not None:
                diff = kind.diff(actual, resolved)
                if set(diff) & kind.immutable and not desired.brought_id:
                    action = "replace"
                elif diff:
                    actual = kind.update(ctx, actual, resolved, diff)
            if action in ("create", "replace"):
                clash = kind.find_conflict(ctx, resolved)
                if clash is not None:
                    raise OwnershipError(f"{clash.kind} {clash.id} already exists with the name of {desired.key} "
                                         f"and is not owned by cluster {ctx.cluster!r}")
                replaced = frozenset({change.actual.id}) if change.actual is not None else frozenset()
                new = create_or_adopt(kind, ctx, resolved, exclude=replaced)
                if action == "replace" and change.actual is not None:
                    with lock:
                        replaced_old.append(Change("delete", change.kind, change.name, change.actual.id, {}, None,
                                                   change.actual, reason="replaced"))
                actual = new
            assert actual is not None
            with lock:
                results[desired.key] = actual
            rep.emit(desired.kind, desired.name, action, "done", time.monotonic() - t0, actual.id)
        except Exception as exc:
            rep.emit(desired.kind, desired.name, action, "failed", time.monotonic() - t0, change.id,
                     describe_error(exc))
            raise

    failed = _run_graph(state.graph, changes, run, rep, ctx, max_workers)
    if not failed:
        deletes = [c for c in state.plan.changes if c.action == "delete"] + replaced_old
        _run_deletes(ctx, deletes, rep, max_workers, graph=state.graph)
    else:
        for c in state.plan.changes:
            if c.action == "delete":
                rep.emit(c.kind, c.name, "delete", "skipped", rid=c.id, error="not run: an earlier step failed")
    result.seconds = time.monotonic() - started
    return result


def _run_graph(graph: Graph, changes: dict[str, Change], run: Callable[[Change], None], rep: _Reporter,
               ctx: AwsContext, max_workers: int) -> set[str]:
    """Run `run` for every change once its dependencies succeeded (engine.schedule); return the keys that
    failed or were skipped because a dependency failed. With `max_workers` 1, one change at a time in the
    graph's topological order."""
    deps = {key: {d for d in graph[key].refs() if d in changes} for key in changes}

    def skip(key: str, failed: set[str]) -> None:
        c = changes[key]
        if c.action != "noop":
            rep.emit(c.kind, c.name, c.action, "skipped", rid=c.id, error="not run: " + ", ".join(sorted(failed))
                     + " failed")

    order = [k for k in graph.topological() if k in changes]
    return run_dag(order, deps, lambda key: run(changes[key]), skip, ctx, max_workers)


def _run_deletes(ctx: AwsContext, deletes: list[Change], rep: _Reporter, max_workers: int,
                 kinds: Mapping[str, Kind | ControllerKind] | None = None, graph: Graph | None = None) -> bool:
    """Delete resources on the delete graph (engine.delete_order): each deletion starts as soon as every
    deletion it waits for is done; one that waits for a failed deletion is skipped (and what waits for it),
    the others go on. True when every deletion succeeded. `kinds`: who deletes each kind (default: the
    registry); `graph`: the model graph the resources were made from (its edges order their deletion)."""
    kinds = kinds if kinds is not None else registry.kinds()
    by_key = {delete_order.node_key(c): c for c in deletes}

    def rank(kind: str) -> int:
        return kinds[kind].rank

    deps = delete_order.waits_for(list(by_key.values()), rank, graph)
    level = delete_order.levels(list(by_key.values()), rank, graph)

    def one(key: str) -> None:
        c = by_key[key]
        assert c.actual is not None
        t0 = time.monotonic()
        rep.emit(c.kind, c.name, "delete", "started", rid=c.id)
        try:
            kinds[c.kind].delete(ctx, c.actual)
        except Exception as exc:
            rep.emit(c.kind, c.name, "delete", "failed", time.monotonic() - t0, c.id, describe_error(exc))
            raise
        rep.emit(c.kind, c.name, "delete", "done", time.monotonic() - t0, c.id)

    def skip(key: str, failed: set[str]) -> None:
        c = by_key[key]
        names = ", ".join(sorted(f"{by_key[f].kind}/{by_key[f].name}" for f in failed))
        rep.emit(c.kind, c.name, "delete", "skipped", rid=c.id, error=f"not run: waits for {names}, not deleted")

    bad = run_dag(delete_order.order(deps, level), deps, one, skip, ctx, max_workers)
    return not bad


def destroy(ctx: AwsContext, graph: Graph | None, on_event: EventSink | None = None,
            max_workers: int = 8, observation: Observation | None = None) -> ApplyResult:
    """Delete every resource tagged as owned by the cluster (whatever the spec says now) and what the
    cluster's controllers made, on the delete graph, then remove the `shared` tag from brought resources.
    Brought resources are never deleted. `observation`: the cluster as read by the caller (e.g. for the
    delete's preview: `observe(ctx, graph, every_kind=True, controller_made_too=True)`), used instead of a
    read of its own; without `every_kind`, kinds outside the spec's mode are not deleted, and without
    `controller_made_too`, neither is what the controllers made."""
    started = time.monotonic()
    result = ApplyResult(cluster=ctx.cluster, operation="delete")
    rep = _Reporter(result, on_event)
    obs = observation or observe(ctx, graph, every_kind=True, controller_made_too=True)
    deletes = [Change("delete", o.kind, (o.logical_key or "").split("/", 1)[-1] or o.id, o.id, {}, None, o)
               for o in obs.all_owned()]
    deletes += [Change("delete", o.kind, controller_made.name_of(o), o.id, {}, None, o,
                       reason="made by the cluster's controllers") for o in obs.all_controller_made()]
    kinds: dict[str, Kind | ControllerKind] = {**registry.kinds(), **controller_made.kinds()}
    ok = _run_deletes(ctx, deletes, rep, max_workers, kinds, graph)
    if ok and graph is not None:
        _untag_brought(ctx, graph, obs, rep)
    result.seconds = time.monotonic() - started
    return result


def _untag_brought(ctx: AwsContext, graph: Graph, obs: Observation, rep: _Reporter) -> None:
    tag = k8s_cluster_tag(ctx.cluster)
    for desired in graph:
        brought: Desired = desired
        if not brought.brought_id or brought.brought_id not in obs.brought:
            continue
        if tag not in obs.brought[brought.brought_id].tags:
            continue
        t0 = time.monotonic()
        try:
            registry.get(brought.kind).remove_tags(ctx, brought.brought_id, [tag])
        except Exception as exc:
            rep.emit(brought.kind, brought.name, "update", "failed", time.monotonic() - t0, brought.brought_id,
                     describe_error(exc))
            continue
        rep.emit(brought.kind, brought.name, "update", "done", time.monotonic() - t0, brought.brought_id)
