"""Plan as text, kops/terraform style: grouped create / update / replace / delete, `old -> new` per field,
list changes as added (+) and removed (-) items; under a change, why it changes (`why:` lines naming the spec
fields); then the notes (what apply leaves alone) and the roll the plan implies ("Rollout after apply").

Also the one-line count of what the cluster's controllers made that `kubeaws delete` removes too
(`controller_made_summary`).

Called by the CLI (`kubeaws plan`, and before `apply`/`delete`) and by the plan golden tests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubeaws.engine.types import Change, Plan, jsonable
from kubeaws.resources import controller_made
from kubeaws.resources.base import Observed

#: Text longer than this (or on several lines) is shown as its size and digest.
LONG_TEXT = 160
#: A Kubernetes object's update shows at most this many changed fields.
MANIFEST_PATHS = 8

HEADINGS = (
    ("create", "+", "Will create resources"),
    ("update", "~", "Will modify resources"),
    ("replace", "-/+", "Will replace resources"),
    ("delete", "-", "Will delete resources"),
)


def _fmt(value: Any, names: dict[str, str] | None = None) -> str:
    """A compact, stable rendering of a prop value; IDs of resources the plan knows are shown by name."""
    names = names or {}
    value = jsonable(value)
    if _is_manifest(value):  # a Kubernetes object (an addon's CRD can be 100 KB): what it is, its size, digest
        text = json.dumps(value, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"{value['apiVersion']} {value['kind']} <{len(text.encode())} bytes, sha256 {digest}>"
    if isinstance(value, str):
        if "\n" in value or len(value) > LONG_TEXT:  # user data, manifests: a digest, not the text
            digest = hashlib.sha256(value.encode()).hexdigest()[:12]
            return f"<{len(value.encode())} bytes, sha256 {digest}>"
        return f"{value} ({names[value]})" if value in names else value
    if isinstance(value, dict) and "protocol" in value:  # a security-group rule
        return rule_text(value, names)
    return json.dumps(value, sort_keys=True, default=str)


def rule_text(rule: dict[str, Any], names: dict[str, str] | None = None) -> str:
    proto = {"-1": "all", "4": "ipip"}.get(str(rule.get("protocol")), str(rule.get("protocol")))
    lo, hi = rule.get("from_port"), rule.get("to_port")
    ports = "" if lo in (None, -1) else (f" {lo}" if lo == hi else f" {lo}-{hi}")
    source = str(rule.get("cidr") or rule.get("source_group"))
    source = (names or {}).get(source, source).removesuffix(" (known after apply)")
    desc = f"  ({rule['description']})" if rule.get("description") else ""
    return f"{proto}{ports} from {source}{desc}"


def _field_lines(name: str, old: Any, new: Any, creating: bool, names: dict[str, str]) -> list[str]:
    def fmt(value: Any) -> str:
        return _fmt(value, names)

    if isinstance(new, list) and (creating or isinstance(old, list)):
        old_items = sorted(fmt(v) for v in (old or []))
        new_items = sorted(fmt(v) for v in new)
        if creating:
            return [f"      {name}:"] + [f"        {v}" for v in new_items] if new_items else [f"      {name}: []"]
        added = [v for v in new_items if v not in old_items]
        removed = [v for v in old_items if v not in new_items]
        lines = [f"      {name}:"]
        lines += [f"        + {v}" for v in added]
        lines += [f"        - {v}" for v in removed]
        if not added and not removed:
            lines = [f"      {name}: {fmt(old)} -> {fmt(new)}"]
        return lines
    if not creating and _is_manifest(new):
        return [f"      {name}: {line}" for line in manifest_changes(old, jsonable(new))]
    if isinstance(new, dict) and name == "tags":
        return [f"      tags.{k}: {fmt((old or {}).get(k))} -> {fmt(v)}" for k, v in sorted(new.items())]
    if creating:
        return [f"      {name}: {fmt(new)}"]
    return [f"      {name}: {fmt(old)} -> {fmt(new)}"]


def _is_manifest(value: Any) -> bool:
    return isinstance(value, dict) and {"apiVersion", "kind", "metadata"} <= set(value)


def manifest_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """`path: old -> new` for each field of the desired object `new` that the found one `old` does not have
    as asked (the KubernetesObject kind's containment diff), at most MANIFEST_PATHS lines."""
    found: list[str] = []

    def visit(have: Any, want: Any, at: str) -> None:
        if len(found) > MANIFEST_PATHS:
            return
        if isinstance(want, dict) and isinstance(have, dict):
            for key, value in want.items():
                if value is not None:
                    visit(have.get(key), value, f"{at}.{key}" if at else str(key))
        elif isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
            for i, (h, w) in enumerate(zip(have, want, strict=True)):
                visit(h, w, f"{at}[{i}]")
        elif have != want:
            found.append(f"{at}: {_short(have)} -> {_short(want)}")

    visit(old, new, path)
    if len(found) > MANIFEST_PATHS:
        return [*found[:MANIFEST_PATHS], "..."]
    return found or [f"{_fmt(old)} -> {_fmt(new)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else f"<{len(text)} bytes>"


def _change_lines(change: Change, symbol: str, names: dict[str, str]) -> list[str]:
    ident = f" ({change.id})" if change.id else ""
    shown = change.action in ("replace", "delete") or change.reason.startswith("brought")
    note = f"  # {change.reason}" if change.reason and shown else ""
    lines = [f"  {symbol} {change.key}{ident}{note}"]
    lines += [f"      why: {reason}" for reason in change.reasons]
    creating = change.action == "create"
    for name in sorted(change.diff):
        old, new = change.diff[name]
        if creating and new is None:
            continue
        lines.extend(_field_lines(name, old, new, creating, names))
    return lines


def plan_text(plan: Plan) -> str:
    s = plan.summary()
    lines = [f'Plan for cluster "{plan.cluster}": {s["create"]} to create, {s["update"]} to modify, '
             f'{s["replace"]} to replace, {s["delete"]} to delete, {s["noop"]} unchanged.']
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    if not plan.pending:
        lines.append("No changes: the cluster matches the spec.")
    for action, symbol, heading in HEADINGS:
        group = [c for c in plan.changes if c.action == action]
        if not group:
            continue
        lines.append("")
        lines.append(f"{heading}:")
        for change in group:
            lines.extend(_change_lines(change, symbol, plan.names))
    if plan.notes:
        lines += ["", "Notes (apply leaves these alone):"]
        lines += [f"  - {note}" for note in plan.notes]
    lines += rollout_lines(plan.rollout)
    return "\n".join(lines) + "\n"


def rollout_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The final section of a plan: the roll `kubeaws rollout` does after apply (numbered, in order), then the
    groups EKS rolls itself. Nothing when no instance is to be replaced."""
    if not entries:
        return []
    lines = ["", "Rollout after apply (kubeaws rollout):"]
    ours = [e for e in entries if e.get("order") is not None]
    lines += [f"  {e['order']}. {e['group']}: {e['summary']}" for e in ours]
    if not ours:
        lines.append("  nothing for kubeaws to replace")
    lines += [f"  - {e['group']}: {e['summary']}" for e in entries if e.get("order") is None]
    return lines


def controller_made_summary(items: list[Observed]) -> str:
    """Counts by what they are, in the order the kinds are declared (about the delete order), e.g.
    `2 load balancers, 1 security group and 3 volumes`."""
    counts: dict[str, int] = {}
    for kind in controller_made.kinds().values():
        n = sum(1 for o in items if o.kind == kind.kind)
        if n:
            counts[kind.noun] = counts.get(kind.noun, 0) + n
    parts = [f"{n} {noun}{'' if n == 1 else 's'}" for noun, n in counts.items()]
    return " and ".join(parts) if len(parts) < 3 else ", ".join(parts[:-1]) + " and " + parts[-1]
