"""Result records of the engine: plan changes, apply/delete events and results, status reports.

Produced by engine.plan / engine.apply / engine.status; rendered by engine.render (text) and `to_dict`
(JSON contract), consumed by the CLI and by users of the Python API.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kubeaws.casing import camel_keys
from kubeaws.resources.base import Desired, Observed, Ref, Unknown

if TYPE_CHECKING:
    from kubeaws.engine.observe import Observation

Action = Literal["create", "update", "replace", "delete", "noop"]
ACTIONS: tuple[Action, ...] = ("create", "update", "replace", "delete", "noop")


def jsonable(value: Any) -> Any:
    """Plan values for JSON: Refs and unknowns become their display strings."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Unknown | Ref):
        return str(value)
    return value


@dataclass
class Change:
    """One planned change. `desired` is None for deletes; `actual` is None for creates."""

    action: Action
    kind: str
    name: str
    id: str | None
    diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    desired: Desired | None = None
    actual: Observed | None = None
    reason: str = ""
    #: Why it changes, in words naming the spec fields (launch templates and Auto Scaling groups: engine.why).
    reasons: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; field names in camelCase, as everywhere in kubeaws' output (kubeaws.casing)."""
        return {"action": self.action, "kind": self.kind, "name": self.name, "id": self.id,
                "diff": camel_keys({k: [jsonable(old), jsonable(new)] for k, (old, new) in self.diff.items()}),
                "reasons": list(self.reasons)}


@dataclass
class Plan:
    """Everything `apply` would do, in apply order (deletes last, in delete order)."""

    cluster: str
    changes: list[Change]
    warnings: list[str] = field(default_factory=list)
    #: AWS ID -> "Kind/name" of every resource the plan found, to show IDs by name.
    names: dict[str, str] = field(default_factory=dict)
    #: What apply deliberately leaves alone of what the spec asks (engine.why.ignored_notes).
    notes: list[str] = field(default_factory=list)
    #: The roll `kubeaws rollout` does after this apply, in order (engine.rollout_preview): one entry per
    #: group {group, role, instances, reason, order, by, summary, batches}.
    rollout: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action for c in self.changes)
        return {a: counts.get(a, 0) for a in ACTIONS}

    @property
    def pending(self) -> int:
        """Number of changes that are not no-ops."""
        return sum(1 for c in self.changes if c.action != "noop")

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "changes": [c.to_dict() for c in self.changes],
                "summary": self.summary(), "warnings": list(self.warnings), "notes": list(self.notes),
                "rollout": jsonable(self.rollout)}


EventState = Literal["started", "done", "failed", "skipped"]


@dataclass
class Event:
    """Progress of one resource during apply/delete."""

    kind: str
    name: str
    action: Action
    state: EventState
    seconds: float = 0.0
    id: str | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class ApplyResult:
    """What an apply or delete did. `ok` is False when any resource failed (others may have succeeded)."""

    cluster: str
    operation: Literal["apply", "delete"]
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Event]:
        return [e for e in self.events if e.state == "failed"]

    @property
    def done(self) -> list[Event]:
        return [e for e in self.events if e.state == "done"]

    @property
    def skipped(self) -> list[Event]:
        return [e for e in self.events if e.state == "skipped"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "operation": self.operation,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "resources": [{"kind": e.kind, "name": e.name, "action": e.action, "state": e.state,
                           "id": e.id, "seconds": round(e.seconds, 3), "error": e.error}
                          for e in self.events],
        }


def _by_kind(items: list[Observed]) -> dict[str, list[Observed]]:
    out: dict[str, list[Observed]] = {}
    for o in items:
        out.setdefault(o.kind, []).append(o)
    return out


@dataclass
class StatusReport:
    """What exists for a cluster, by kind, and how far it is from the spec. `controller_made`: what the
    cluster's own controllers made (Service load balancers, EBS CSI volumes...): never part of the spec nor of
    a plan, deleted by `kubeaws delete` with the cluster."""

    cluster: str
    resources: list[Observed]
    pending_changes: int
    plan_summary: dict[str, int]
    controller_made: list[Observed] = field(default_factory=list)
    #: The observation the report was made from, for `kubeaws delete` to delete what its preview showed
    #: without reading the cluster again. Not part of `to_dict`.
    observation: Observation | None = field(default=None, repr=False, compare=False)

    def by_kind(self) -> dict[str, list[Observed]]:
        return _by_kind(self.resources)

    def controller_made_by_kind(self) -> dict[str, list[Observed]]:
        return _by_kind(self.controller_made)

    @property
    def in_sync(self) -> bool:
        return self.pending_changes == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "inSync": self.in_sync,
            "pendingChanges": self.pending_changes,
            "planSummary": self.plan_summary,
            "resources": {kind: [{"name": (o.logical_key or "").split("/", 1)[-1], "id": o.id,
                                  "state": o.state, **camel_keys({k: jsonable(v) for k, v in o.attrs.items()})}
                                 for o in items]
                          for kind, items in self.by_kind().items()},
            "controllerMade": {kind: [{"id": o.id, "state": o.state,
                                       **camel_keys({k: jsonable(v) for k, v in o.attrs.items()})} for o in items]
                               for kind, items in self.controller_made_by_kind().items()},
        }
