"""Saved plans: `kubeaws plan --out plan.json`, then `kubeaws apply --plan plan.json` applies exactly what was
reviewed, or refuses when the spec or AWS changed since.

A saved plan is a fingerprint of a plan, not the plan itself: the spec's canonical hash, the kubeaws version,
where it applies (region, account, partition), every pending change (key, action, AWS ID and a digest of its
field-level diff) and, for every resource the plan found, a digest of what the plan depends on (ID, fields,
tags, state). Apply plans again (under the cluster lock) and compares the fingerprints: equal, it executes the
fresh plan, whose changes are the reviewed ones; different, it refuses and lists the differences. The file
holds no values at all, only digests (user data, manifests and state objects never leave the machine), and
is sealed by a digest of its own content so that an edited or truncated file is refused rather than read.

Called by the public API (kubeaws.api.save_plan / check_plan / apply) and the CLI (plan --out, apply --plan).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubeaws.engine.types import Change, Plan, jsonable
from kubeaws.errors import KubeawsError
from kubeaws.resources.base import Computed, Lookup, Ref, walk
from kubeaws.spec.models import ClusterSpec

#: The file's kind and version; another value is refused.
FORMAT = "kubeaws.io/v1alpha1/SavedPlan"
#: The state bucket, which the cluster lock of `apply` makes (every setting but its policy, kubeaws.api.lock_home)
#: before it plans again: a reviewed "create" of it is then an "update" (the policy), or nothing.
LOCK_HOME = "Bucket/state"


class PlanFileError(KubeawsError):
    """The plan file cannot be read: not JSON, another format, edited by hand or truncated (exit 2)."""


class StalePlanError(KubeawsError):
    """The saved plan no longer describes what apply would do: the spec, AWS or the target changed (exit 1).
    `differences`: one line each."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("the plan is out of date; nothing was changed:\n  - " + "\n  - ".join(differences)
                         + "\nreview a new plan (`kubeaws plan --out FILE`) and apply that one")


def kubeaws_version() -> str:
    """The installed kubeaws' version (the distribution's metadata: what `kubeaws version` prints)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kubeaws")
    except PackageNotFoundError:
        return "unknown"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def spec_hash(spec: ClusterSpec) -> str:
    """The spec's canonical hash: its validated content, defaults filled in (comments, key order and layout
    of the file do not count)."""
    return _digest(spec.model_dump(mode="json", by_alias=True))


@dataclass(frozen=True)
class Target:
    """Where a plan applies."""

    region: str
    account: str
    partition: str


@dataclass
class SavedPlan:
    """The fingerprint of a plan (see the module docstring). `changes`: key -> {action, id, digest} of every
    pending change; `observed`: key -> digest of each resource the plan found (noops included)."""

    cluster: str
    spec_hash: str
    target: Target
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    observed: dict[str, str] = field(default_factory=dict)
    kubeaws_version: str = field(default_factory=kubeaws_version)
    summary: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Plan, spec: ClusterSpec, target: Target) -> SavedPlan:
        changes: dict[str, dict[str, Any]] = {}
        observed: dict[str, str] = {}
        for change in plan.changes:
            key = _key(change)
            if change.actual is not None:
                o = change.actual
                observed[key] = _digest({"id": o.id, "fields": jsonable(o.fields), "tags": o.tags, "state": o.state})
            if change.action != "noop":
                changes[key] = {"action": change.action, "id": change.id, "digest": _digest(
                    {"action": change.action, "id": change.id, "diff": _planned(change)})}
        return cls(cluster=plan.cluster, spec_hash=spec_hash(spec), target=target, changes=changes,
                   observed=observed, summary=plan.summary())

    # -- the file ----------------------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        return {"format": FORMAT, "kubeawsVersion": self.kubeaws_version, "cluster": self.cluster,
                "specHash": self.spec_hash, "target": asdict(self.target), "summary": self.summary,
                "changes": self.changes, "observed": self.observed}

    def dumps(self) -> str:
        body = self.body()
        return json.dumps({**body, "seal": _digest(body)}, indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.dumps())

    @classmethod
    def loads(cls, text: str, source: str = "the plan file") -> SavedPlan:
        """Read a saved plan; PlanFileError (what is wrong, what to do) for anything but an intact one."""
        remake = f"make a new one with `kubeaws plan -f SPEC --out {source}`"
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise PlanFileError(f"{source} is not a saved plan (not JSON: {exc}); {remake}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise PlanFileError(f"{source} is not a saved plan of this kubeaws (format {found!r}, expected "
                                f"{FORMAT!r}); {remake}")
        seal = doc.pop("seal", None)
        if seal != _digest(doc):
            raise PlanFileError(f"{source} was changed after `kubeaws plan` wrote it (its seal does not match its "
                                f"content): a saved plan is applied as written or not at all; {remake}")
        try:
            target = doc["target"]
            return cls(cluster=str(doc["cluster"]), spec_hash=str(doc["specHash"]),
                       target=Target(str(target["region"]), str(target["account"]), str(target["partition"])),
                       changes={str(k): dict(v) for k, v in doc["changes"].items()},
                       observed={str(k): str(v) for k, v in doc["observed"].items()},
                       kubeaws_version=str(doc["kubeawsVersion"]), summary=dict(doc.get("summary", {})))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise PlanFileError(f"{source} is missing {exc} or holds it in another shape; {remake}") from None

    @classmethod
    def read(cls, path: Path) -> SavedPlan:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise PlanFileError(f"plan file not found: {path} (write one with `kubeaws plan -f SPEC --out "
                                f"{path}`)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanFileError(f"cannot read the plan file {path}: {exc}") from None
        return cls.loads(text, str(path))


def _planned(change: Change) -> dict[str, list[Any]]:
    """The change's diff as the plan means it: {field: [old, new]}, a new value that names other resources
    (a Ref anywhere in the spec's value) in its symbolic form ("<Bucket/state.name>"), whether or not that
    resource exists yet: the lock of `apply` makes the state bucket, and a replaced resource's new ID is not
    the plan's business; what each named resource is shows in its own entry."""
    wanted = change.desired.props if change.desired is not None else {}
    out: dict[str, list[Any]] = {}
    for name, (old, new) in change.diff.items():
        value = wanted.get(name)
        out[name] = [jsonable(old), _symbolic(value) if _names_resources(value) else jsonable(new)]
    return out


def _names_resources(value: Any) -> bool:
    found: list[bool] = []
    walk(value, lambda v: found.append(True) if isinstance(v, Ref) else None)
    return bool(found)


def _symbolic(value: Any) -> Any:
    if isinstance(value, Computed):
        return {"computed": str(value), "args": _symbolic(dict(value.args))}
    if isinstance(value, dict):
        return {str(k): _symbolic(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_symbolic(v) for v in value]
    if hasattr(value, "model_dump"):  # the spec, an argument of some renderers
        return value.model_dump(mode="json", by_alias=True)
    return jsonable(value) if not isinstance(value, Lookup) else str(value)


def _key(change: Change) -> str:
    """A change's key in the file: Kind/name, and the AWS ID for deletions (duplicates share a name)."""
    return change.key if change.action != "delete" else f"{change.key}@{change.id}"


def differences(saved: SavedPlan, fresh: SavedPlan) -> list[str]:
    """Why `fresh` (planned now) is not the plan that was saved, one line each; [] when it is."""
    out: list[str] = []
    if saved.target.account != fresh.target.account or saved.target.partition != fresh.target.partition:
        out.append(f"account: the plan is for account {saved.target.account} ({saved.target.partition}), the "
                   f"credentials in use are account {fresh.target.account} ({fresh.target.partition})")
    if saved.target.region != fresh.target.region:
        out.append(f"region: the plan is for {saved.target.region}, this apply targets {fresh.target.region}")
    if saved.cluster != fresh.cluster:
        out.append(f"cluster: the plan is for cluster {saved.cluster!r}, the spec names {fresh.cluster!r}")
    if saved.kubeaws_version != fresh.kubeaws_version:
        out.append(f"kubeaws version: the plan was made by {saved.kubeaws_version}, this is {fresh.kubeaws_version}")
    if out:
        return out  # another target: what it would change there says nothing
    if saved.spec_hash != fresh.spec_hash:
        out.append("spec: the spec file changed since the plan")
    lock_made = saved.changes.get(LOCK_HOME, {}).get("action") == "create" and (
        fresh.changes.get(LOCK_HOME, {}).get("action", "update") == "update")
    for key in sorted(set(saved.changes) | set(fresh.changes)):
        old, new = saved.changes.get(key), fresh.changes.get(key)
        if key == LOCK_HOME and lock_made:
            continue
        if old is None and new is not None:
            out.append(f"added: {new['action']} {key}")
        elif new is None and old is not None:
            out.append(f"removed: {old['action']} {key} (no longer needed, or planned otherwise)")
        elif old is not None and new is not None and old != new:
            what = (f"{old['action']} -> {new['action']}" if old["action"] != new["action"]
                    else f"{new['action']} with other values")
            out.append(f"changed: {key}: {what}")
    for key in sorted(set(saved.observed) | set(fresh.observed)):
        if key in saved.changes or key in fresh.changes or (key == LOCK_HOME and lock_made):
            continue  # already told above
        old_o, new_o = saved.observed.get(key), fresh.observed.get(key)
        if old_o != new_o:
            state = "gone" if new_o is None else "found" if old_o is None else "changed"
            out.append(f"AWS: {key} {state} since the plan")
    return out


def check(saved: SavedPlan, fresh: SavedPlan) -> None:
    """Raise StalePlanError when `fresh` differs from `saved`."""
    found = differences(saved, fresh)
    if found:
        raise StalePlanError(found)
