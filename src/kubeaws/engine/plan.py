"""The planner: for every desired resource, find it (by ID if brought, else by its ownership tags; a brought
one that is not there and has a `fallback` is planned as that owned resource) and diff it field by field;
owned resources that are no longer desired (or duplicates) are planned for deletion. Plan = find + diff, no
change is made.

Given the spec, a plan also says why launch templates and Auto Scaling groups change (engine.why: one
read per changed launch template) and the roll it implies (engine.rollout_preview); it always notes what
the spec asks that apply leaves alone, and on a local emulator leaves out the kinds only AWS serves
(`Kind.cloud_only`: the Kubernetes objects inside a cluster), saying so in a note.

Called by the public API (kubeaws.api.plan / apply / status); its PlanState feeds engine.apply.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.engine import why
from kubeaws.engine.observe import Observation, observe, parallel
from kubeaws.engine.rollout_preview import preview
from kubeaws.engine.types import Change, Plan
from kubeaws.errors import ImmutableChangeError, KubeawsError, OwnershipError
from kubeaws.model.graph import Graph
from kubeaws.resources import registry
from kubeaws.resources.base import UNKNOWN, Desired, Lookup, Observed, Ref, Unknown, contains_unknown
from kubeaws.rollout.upgrade import downtime_note
from kubeaws.spec.models import ClusterSpec


class PlanError(KubeawsError):
    """The spec cannot be planned against what exists (missing brought resources, immutable changes...)."""


@dataclass
class PlanState:
    """A plan together with what it was computed from; `engine.apply` executes it."""

    graph: Graph
    observation: Observation
    plan: Plan
    #: key -> the observed resource each desired one matched (None when it is to be created).
    matched: dict[str, Observed | None]


def make_plan(graph: Graph, ctx: AwsContext, observation: Observation | None = None, *,
              spec: ClusterSpec | None = None) -> PlanState:
    """The plan of `graph` against AWS. With `spec` (the one `graph` was built from), launch-template and
    group changes carry their reasons and the plan its rollout preview (read-only calls, see the modules)."""
    obs = observation or observe(ctx, graph)
    kinds = registry.kinds()
    changes: list[Change] = []
    matched: dict[str, Observed | None] = {}
    pending_new: set[str] = set()  # keys whose ID is unknown until apply (create / replace)
    errors: list[str] = []
    to_check: list[tuple[Any, Desired]] = []  # creates whose name could clash with an unowned resource
    resolved_of: dict[str, Desired] = {}  # key -> resolved desired of what exists (for engine.why)

    by_key: dict[str, list[Observed]] = {}
    for kind_name in sorted(obs.owned):
        for o in obs.owned[kind_name]:
            by_key.setdefault(o.logical_key or f"{o.kind}/?{o.id}", []).append(o)

    def resolve(value: Any) -> Any:
        if isinstance(value, Lookup):
            return obs.lookups.get(value, UNKNOWN)
        if isinstance(value, Ref):
            target = matched.get(value.key)
            if value.key in pending_new or target is None:
                return Unknown(value)
            return target.attr(value.attr)
        return value

    duplicates: list[Observed] = []
    brought_notes: list[str] = []
    cloud_only: list[Desired] = []  # left out on a local emulator (see `Kind.cloud_only`)
    for key in graph.topological():
        desired = graph[key]
        kind = kinds[desired.kind]
        if not kind.served(ctx):
            cloud_only.append(desired)
            continue
        if desired.brought_id and desired.fallback is not None and desired.brought_id not in obs.brought:
            desired = desired.fallback  # nothing to bring: the owned resource of the same key
        if desired.brought_id:
            actual = obs.brought.get(desired.brought_id)
            if actual is None:
                errors.append(f"{_at(desired)}{desired.kind} {desired.brought_id} (brought as {key}) does not "
                              f"exist in {ctx.region}: check the ID in the spec")
                continue
            matched[key] = actual
            diff = kind.diff(actual, desired)
            changes.append(Change("update" if diff else "noop", desired.kind, desired.name, actual.id, diff,
                                  desired, actual, reason="brought: tags only"))
            if actual.attrs.get("plan_note"):  # how a brought resource is used, when the spec does not say it
                brought_notes.append(str(actual.attrs["plan_note"]))
            continue
        candidates = [c for c in by_key.pop(key, []) if c.state not in kind.gone_states]
        resolved = desired.resolved(resolve)
        actual = _best_match(kind, candidates, resolved)
        duplicates.extend(c for c in candidates if c is not actual)
        matched[key] = actual
        if actual is not None:
            resolved_of[key] = resolved
        if actual is None:
            pending_new.add(key)
            if not contains_unknown(resolved.props):  # depends on something still to be created: no clash yet
                to_check.append((kind, resolved))
            changes.append(Change("create", desired.kind, desired.name, None,
                                  {k: (None, v) for k, v in resolved.props.items()}, desired, None))
            continue
        diff = kind.diff(actual, resolved)
        if actual.state in kind.broken_states:
            pending_new.add(key)
            changes.append(Change("replace", desired.kind, desired.name, actual.id, diff, desired, actual,
                                  reason=f"found in state {actual.state}"))
            continue
        refused = sorted(set(diff) & kind.refuse_change)
        if refused:
            errors.append(_refusal(desired, actual, refused, diff))
            changes.append(Change("noop", desired.kind, desired.name, actual.id, {}, desired, actual))
            continue
        if set(diff) & kind.immutable:
            pending_new.add(key)
            changes.append(Change("replace", desired.kind, desired.name, actual.id, diff, desired, actual,
                                  reason="changes " + ", ".join(sorted(set(diff) & kind.immutable))))
        elif diff:
            changes.append(Change("update", desired.kind, desired.name, actual.id, diff, desired, actual))
        else:
            changes.append(Change("noop", desired.kind, desired.name, actual.id, {}, desired, actual))
    errors += _conflicts(ctx, to_check)
    errors += _name_takeovers(changes, obs, kinds)
    if errors:
        raise PlanError("cannot plan:\n  - " + "\n  - ".join(errors))

    leftovers = [o for group in by_key.values() for o in group
                 if o.state not in kinds[o.kind].gone_states] + duplicates
    changes.extend(_deletes(leftovers, duplicates))
    names: dict[str, str] = {}
    for key, found in matched.items():
        if found is not None:
            names.setdefault(found.id, _shown(kinds[found.kind], key))
    for gone in leftovers:
        if gone.logical_key:
            names.setdefault(gone.id, _shown(kinds[gone.kind], gone.logical_key))
    plan = Plan(cluster=graph.cluster, changes=changes, names=names, warnings=list(obs.warnings),
                notes=brought_notes + why.ignored_notes(changes, resolved_of) + _cloud_only_notes(cloud_only))
    if spec is not None:
        why.explain_templates(ctx, changes, resolved_of, names)
        for change in changes:
            if change.kind == "AutoScalingGroup" and change.action == "update":
                change.reasons = why.group_reasons(change)
        plan.rollout = preview(ctx, graph, changes, matched, spec)
        note = downtime_note(spec)
        if note and any(e.get("role") == "control-plane" for e in plan.rollout):
            plan.warnings.append(f"API downtime: {note}")
    return PlanState(graph=graph, observation=obs, plan=plan, matched=matched)


def _at(desired: Desired) -> str:
    """The spec path an error about `desired` starts with (`Desired.spec_path`), if it has one."""
    return f"{desired.spec_path}: " if desired.spec_path else ""


def _shown(kind: Any, key: str) -> str:
    """How the plan names a resource by its ID: its key, or its parent's (`Kind.parent`: a rule set is shown as
    its security group, whose ID it has)."""
    return f"{kind.parent}/{key.split('/', 1)[1]}" if kind.parent else key


#: Up to this many left-out resources of a kind are named in the note; more are counted per spec field.
NAMED_IN_NOTE = 8


def _cloud_only_notes(left_out: list[Desired]) -> list[str]:
    """The plan's note for what a local emulator cannot hold (one line per kind): the resources by name, or
    when there are many (an addon's objects), their count per spec field."""
    by_kind: dict[str, list[Desired]] = {}
    for desired in left_out:
        by_kind.setdefault(desired.kind, []).append(desired)
    notes = []
    for kind, found in sorted(by_kind.items()):
        if len(found) <= NAMED_IN_NOTE:
            what = ", ".join(d.name for d in found)
        else:
            per_path = Counter(d.spec_path or "the cluster" for d in found)
            what = ", ".join(f"{count} for {path}" for path, count in sorted(per_path.items()))
        notes.append(f"local emulator: {len(found)} {kind}(s) skipped, cloud-only (no Kubernetes API behind the "
                     f"emulator; AWS gets them): {what}")
    return notes


def _best_match(kind: Any, candidates: list[Observed], desired: Desired) -> Observed | None:
    """The candidate closest to the desired state (fewest differing fields, then oldest ID order)."""
    if not candidates:
        return None
    return min(candidates, key=lambda o: (len(kind.diff(o, desired)), o.id))


def _conflicts(ctx: AwsContext, to_check: list[tuple[Any, Desired]]) -> list[str]:
    """Ownership clashes of the resources to create (a same-named resource not owned by the cluster), looked
    up in parallel: one round trip instead of one per resource. In the order given."""
    def check(kind: Any, resolved: Desired) -> str | None:
        with ctx.sharing():
            clash = kind.find_conflict(ctx, resolved)
        if clash is None:
            return None
        return str(OwnershipError(
            f"{_at(resolved)}{resolved.key}: {clash.kind} {clash.id} already exists with the same name and is "
            f"not owned by cluster {ctx.cluster!r}. Delete or rename it, or tag it "
            f"kubeaws.io/cluster={ctx.cluster} and kubernetes.io/cluster/{ctx.cluster}=owned to let kubeaws adopt it."))

    found = parallel({str(i): partial(check, kind, resolved) for i, (kind, resolved) in enumerate(to_check)})
    return [msg for i in range(len(to_check)) if (msg := found[str(i)]) is not None]


def _name_takeovers(changes: list[Change], obs: Observation, kinds: dict[str, Any]) -> list[str]:
    """A create or replace that would take the AWS name another of the cluster's resources still holds (e.g.
    two node groups swapping names in one apply): AWS would refuse the name, or kubeaws would take the
    other resource for its own. Such renames need two applies."""
    holders: dict[tuple[str, Any], str] = {}
    for o in obs.all_owned():
        field_name = kinds[o.kind].name_field
        if field_name and o.logical_key and o.fields.get(field_name) is not None:
            holders.setdefault((o.kind, o.fields[field_name]), o.logical_key)
    errors: list[str] = []
    for change in changes:
        field_name = kinds[change.kind].name_field
        if change.action not in ("create", "replace") or not field_name or field_name not in change.diff:
            continue
        wanted = change.diff[field_name][1]
        holder = holders.get((change.kind, wanted))
        if holder is not None and holder != change.key:
            where = _at(change.desired) if change.desired is not None else ""
            errors.append(f"{where}{change.key}: its new name {wanted!r} is still held by {holder} (renamed or removed "
                          f"in the same apply). Rename in two steps: first to a name no other resource holds, "
                          "apply, then to the name you want.")
    return errors


def _refusal(desired: Desired, actual: Observed, fields: list[str], diff: dict[str, Any]) -> str:
    detail = ", ".join(f"{f}: {diff[f][0]} -> {diff[f][1]}" for f in fields)
    return str(ImmutableChangeError(
        f"{_at(desired)}{desired.key} ({actual.id}) cannot change {detail}: AWS cannot change it in place, and "
        "kubeaws will not replace it (everything built on it would go too). Put the old value back, or delete the "
        "cluster and create it again."))


def _deletes(leftovers: list[Observed], duplicates: list[Observed]) -> list[Change]:
    """Delete changes for owned resources that are no longer desired, in delete order (rank desc)."""
    dup_ids = {id(o) for o in duplicates}
    kinds = registry.kinds()
    ordered = sorted(leftovers, key=lambda o: (-kinds[o.kind].rank, o.kind, o.id))
    out: list[Change] = []
    for o in ordered:
        name = (o.logical_key or "").split("/", 1)[-1] or o.id
        out.append(Change("delete", o.kind, name, o.id, {}, None, o,
                          reason="duplicate" if id(o) in dup_ids else "no longer in the spec"))
    return out
