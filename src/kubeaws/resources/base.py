"""The uniform interface of every AWS resource kind, and the records the engine passes around.

- `Desired`: what the model builders want (props may hold `Ref`s to other desired resources and `Lookup`s
  resolved at plan time, e.g. an AMI from a public SSM parameter).
- `Observed`: what a kind found in AWS, with `fields` in the same shape as `Desired.props` so the engine can
  diff them field by field.
- `Kind`: one subclass per AWS kind (resources/<kind>.py) implementing list_owned / get / create / update /
  delete. Registered in `resources.registry`.
- `create_or_adopt`: the one create sequence of every kind: a create whose outcome is unknown (no answer
  from AWS) is resolved by looking for what it may have made (`Kind.find_created`) before creating again.

Called by model/ (builds Desired records) and engine/ (plan, apply, delete, status).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from kubeaws.aws.errors import AmbiguousOutcome
from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import RESOURCE_TAG, is_owned_by, tag_dict, tag_list
from kubeaws.errors import WaitTimeout


@dataclass(frozen=True)
class Ref:
    """A reference to an attribute ("id" by default) of another desired resource: an explicit dependency
    edge in the graph, resolved to a concrete value when that resource exists."""

    kind: str
    name: str
    attr: str = "id"

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def __str__(self) -> str:
        return f"<{self.key}.{self.attr}>"


@dataclass(frozen=True)
class Lookup:
    """A value read from AWS at plan time, e.g. Lookup("ssm", "/aws/service/.../ami-id")."""

    source: str
    name: str

    def __str__(self) -> str:
        return f"<{self.source}:{self.name}>"


@dataclass(frozen=True)
class Computed:
    """A value computed by a pure function (a renderer) from arguments that may hold Refs and Lookups:
    the engine resolves the arguments, then calls `fn(**args)`. While an argument is still unknown the
    value is Unknown. Used for user data and names that embed IDs known only at plan or apply time."""

    fn: Callable[..., Any]
    args: Mapping[str, Any]
    label: str = ""

    def __str__(self) -> str:
        return f"<{self.label or getattr(self.fn, '__name__', 'computed')}>"


@dataclass(frozen=True)
class Unknown:
    """A value only known after apply: an attribute of a resource still to be created or replaced.
    `ref` says which, so a plan can show "SecurityGroup/nodes (known after apply)"."""

    ref: Ref | None = None

    def __str__(self) -> str:
        if self.ref is None:
            return "(known after apply)"
        attr = "" if self.ref.attr == "id" else f".{self.ref.attr}"
        return f"{self.ref.key}{attr} (known after apply)"

    __repr__ = __str__


UNKNOWN = Unknown()


@dataclass
class Desired:
    """A resource the spec asks for.

    `name` is the logical name, unique within the kind (e.g. "private-us-east-1a"); the pair (kind, name)
    is the graph key and is written to the `kubeaws.io/resource` tag so the resource can be found again.
    `brought_id` marks a resource the user brings: it is looked up by ID, only tagged `shared`, and never
    modified otherwise nor deleted. `create_only` props are used on create but not diffed afterwards (e.g.
    an AMI resolved from a moving SSM parameter). `fallback` (brought resources only): the owned resource, of
    the same key, that the planner uses instead when `get` finds nothing for `brought_id` (e.g. the instance
    profile of a brought role: the role's own profile when it has one, else one kubeaws makes). `spec_path`:
    the spec field the resource comes from (`nodeGroups[general]`, `controlPlane`, `access.bastion`...; empty
    for what the whole cluster needs), named by the plan's reasons and errors.
    """

    kind: str
    name: str
    props: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    brought_id: str | None = None
    depends_on: tuple[str, ...] = ()
    create_only: frozenset[str] = frozenset()
    fallback: Desired | None = None
    spec_path: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def refs(self) -> set[str]:
        """Keys of every resource this one depends on: Refs anywhere in props, plus `depends_on` (the
        fallback's too: either may be the one applied)."""
        found: set[str] = set(self.depends_on)
        walk(self.props, lambda v: found.add(v.key) if isinstance(v, Ref) else None)
        if self.fallback is not None:
            found |= self.fallback.refs()
        return found

    def resolved(self, resolve: Callable[[Any], Any]) -> Desired:
        """A copy whose props have every Ref/Lookup replaced through `resolve`."""
        return replace(self, props=substitute(self.props, resolve))


def walk(value: Any, visit: Callable[[Any], None]) -> None:
    """Call `visit` on every leaf of a JSON-like structure."""
    if isinstance(value, Computed):
        walk(value.args, visit)
    elif isinstance(value, Mapping):
        for v in value.values():
            walk(v, visit)
    elif isinstance(value, list | tuple):
        for v in value:
            walk(v, visit)
    else:
        visit(value)


def substitute(value: Any, resolve: Callable[[Any], Any]) -> Any:
    """Copy a JSON-like structure, replacing Ref and Lookup leaves with `resolve(leaf)` and evaluating
    Computed leaves once their arguments are known."""
    if isinstance(value, Computed):
        args = substitute(value.args, resolve)
        unknown = _first_unknown(args)
        return unknown if unknown is not None else _evaluate(value, args)
    if isinstance(value, Mapping):
        return {k: substitute(v, resolve) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, resolve) for v in value]
    if isinstance(value, Ref | Lookup):
        return resolve(value)
    return value


_MEMO: OrderedDict[int, tuple[Computed, dict[str, Any], Any]] = OrderedDict()
_MEMO_LOCK = threading.Lock()
_MEMO_SIZE = 256


def _evaluate(computed: Computed, args: dict[str, Any]) -> Any:
    """`computed.fn(**args)`, remembered for the same Computed and equal arguments: one Computed (e.g. a
    launch template's user data) is often evaluated several times in a plan (its own prop, and inside the
    content hash of the Auto Scaling group), and rendering is the costly part of planning."""
    key = id(computed)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is not None and hit[0] is computed and hit[1] == args:
        return hit[2]
    result = computed.fn(**args)
    with _MEMO_LOCK:
        _MEMO[key] = (computed, args, result)  # holding `computed` keeps its id from being reused
        _MEMO.move_to_end(key)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return result


def _first_unknown(value: Any) -> Unknown | None:
    found: list[Unknown] = []
    walk(value, lambda v: found.append(v) if isinstance(v, Unknown) else None)
    return found[0] if found else None


def contains_unknown(value: Any) -> bool:
    hit: list[bool] = []
    walk(value, lambda v: hit.append(True) if isinstance(v, Unknown) else None)
    return bool(hit)


@dataclass
class Observed:
    """A resource as found in AWS.

    `fields` uses the same keys and shapes as `Desired.props` (normalized: sets as sorted lists) so that the
    default diff is a plain comparison. `attrs` holds the other attributes a Ref may point to ("arn",
    "public_ip", ...) and what `status` shows ("az", "state", "cidr"...).
    """

    kind: str
    id: str
    fields: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    state: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def logical_key(self) -> str | None:
        """'Kind/name' from the kubeaws.io/resource tag, if the resource carries it."""
        return self.tags.get(RESOURCE_TAG)

    def attr(self, name: str) -> Any:
        if name == "id":
            return self.id
        if name in self.attrs:
            return self.attrs[name]
        if name in self.fields:
            return self.fields[name]
        raise KeyError(f"{self.kind} {self.id} has no attribute {name!r}")


Diff = dict[str, tuple[Any, Any]]


class Kind(ABC):
    """One AWS resource kind. Subclasses are stateless; every method gets the AwsContext.

    Contract (checked for every registered kind by tests/test_registry.py and, against the local emulator,
    tests/test_kinds_contract.py):
    - `list_owned` finds every resource of this kind carrying `kubeaws.io/cluster=<cluster>`, with ONE
      describe/list call (plus pagination), so a re-plan costs at most one describe per kind;
    - `create` puts exactly the desired tags in the create call itself (TagSpecifications or equivalent), so
      a crash never leaves an untagged resource (where the API cannot, e.g. S3 CreateBucket, the tagging call
      comes right after), and uses a ClientToken where the API has one;
    - `delete` removes the resource and returns once dependants' deletion can proceed (e.g. a NAT gateway
      is gone, an instance terminated); NotFound counts as deleted. Each of its calls, cleanup steps
      included, retries the in-use answers AWS documents for it (DependencyViolation, ResourceInUse,
      DeleteConflict...) for the policy's budget, then raises `aws.retry.RetriesExhausted`;
    - changing an `immutable` prop plans a replacement, a `refuse_change` prop stops the plan.
    """

    kind: ClassVar[str]
    service: ClassVar[str] = "ec2"
    #: The delete graph's tie-break (engine.delete_order): where neither the model graph nor the observed
    #: references relate two resources, the higher rank is deleted first. Apply follows the model graph only.
    rank: ClassVar[int]
    #: Props whose change needs a new resource (plan shows "replace").
    immutable: ClassVar[frozenset[str]] = frozenset()
    #: Props that can never change for an existing cluster (plan stops with an error explaining why).
    refuse_change: ClassVar[frozenset[str]] = frozenset()
    #: Props used on create but not readable back cheaply (root volume settings, user data): never diffed.
    unobservable: ClassVar[frozenset[str]] = frozenset()
    #: States in which a found resource is unusable and must be replaced (e.g. a NAT gateway "failed").
    broken_states: ClassVar[frozenset[str]] = frozenset()
    #: States in which a found resource is already going away: the planner ignores it.
    gone_states: ClassVar[frozenset[str]] = frozenset()
    #: List props compared as sets (order-insensitive), e.g. security group IDs.
    set_fields: ClassVar[frozenset[str]] = frozenset()
    #: Read calls `list_owned` makes (besides pagination): 1 wherever AWS has a describe that filters by
    #: tag; more where it has none (ELBv2 describes return no tags: describe + DescribeTags).
    list_reads: ClassVar[int] = 1
    #: Cluster modes whose clusters may own resources of this kind: a plan observes only these kinds (delete
    #: observes every kind, whatever the spec says).
    modes: ClassVar[frozenset[str]] = frozenset({"kubeadm", "eks"})
    #: Whether the user may bring an existing resource of this kind (by ID).
    supports_brought: ClassVar[bool] = False
    #: Served only by AWS itself, never by a local emulator (the Kubernetes objects inside a cluster: no
    #: Kubernetes API behind the emulator): where `served` is False, plan leaves them out and says so.
    cloud_only: ClassVar[bool] = False
    #: The prop holding the resource's AWS name when that name is unique in the account and region (a rename
    #: is a replace); the planner refuses a create/replace taking a name another owned resource still holds.
    name_field: ClassVar[str | None] = None
    #: Whether resources of this kind carry AWS tags (False for e.g. the rules of a security group).
    taggable: ClassVar[bool] = True
    #: The kind this one is part of: a resource of this kind has the name and AWS ID of its parent of the
    #: same name (a security group's rule set is its group's), and is shown by its parent's key.
    parent: ClassVar[str | None] = None

    def served(self, ctx: AwsContext) -> bool:
        """Whether `ctx`'s endpoint can hold resources of this kind (a `cloud_only` kind: not on the local
        emulator)."""
        return not self.cloud_only or ctx.capabilities.kubernetes_api_behind_eks

    # -- find --------------------------------------------------------------------------------------
    @abstractmethod
    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        """Every live resource of this kind tagged kubeaws.io/cluster=ctx.cluster (one describe call)."""

    def get(self, ctx: AwsContext, ids: list[str]) -> list[Observed]:
        """Resources by ID (brought resources). Missing IDs are simply absent from the result."""
        raise NotImplementedError(f"{self.kind} cannot be brought by ID")

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """A resource that is not ours but blocks creating `desired` (same unique name). Default: none."""
        return None

    def find_created(self, ctx: AwsContext, desired: Desired, exclude: frozenset[str] = frozenset()
                     ) -> Observed | None:
        """What a create of `desired` whose answer was lost may have made: the owned resource carrying its
        logical key (tags are part of every create call), not going away, not in `exclude` (the resource a
        replacement replaces). Kinds found by another key (a name, a path) override it."""
        for found in self.list_owned(ctx):
            if found.logical_key == desired.key and found.id not in exclude and found.state not in self.gone_states:
                return found
        return None

    def adopt(self, ctx: AwsContext, found: Observed, desired: Desired) -> Observed:
        """Finish a resource an interrupted create of `desired` made: what the create does after its first
        call (attributes, associations, routes) shows as a diff, applied with `update`."""
        diff = self.diff(found, desired)
        return self.update(ctx, found, desired, diff) if diff else found

    # -- compare -----------------------------------------------------------------------------------
    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """Field-level differences {field: (old, new)}, props and tags. Unknown desired values count as a
        change. `create_only` props are skipped."""
        changes: Diff = {}
        for key, want in desired.props.items():
            if key in desired.create_only or key in self.unobservable:
                continue
            have = actual.fields.get(key)
            if contains_unknown(want) or self.canonical(key, have) != self.canonical(key, want):
                changes[key] = (have, want)
        if self.taggable:
            tag_changes = {k: v for k, v in desired.tags.items() if actual.tags.get(k) != v}
            if tag_changes:
                changes["tags"] = ({k: actual.tags.get(k) for k in tag_changes}, tag_changes)
        return changes

    def canonical(self, key: str, value: Any) -> Any:
        """Comparable form of a prop value: normalized, and sorted for `set_fields`."""
        value = normalize(value)
        if key in self.set_fields and isinstance(value, list):
            return sorted(value, key=repr)
        return value

    # -- change ------------------------------------------------------------------------------------
    @abstractmethod
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        """Create the resource with its tags; wait until it can be used by dependants; return it."""

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        """Apply the non-immutable changes in `diff`. The default handles tag-only changes."""
        rest = set(diff) - {"tags"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
        return actual

    @abstractmethod
    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete the resource and wait until dependants' deletion can proceed."""

    # -- tags --------------------------------------------------------------------------------------
    def set_tags(self, ctx: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite tags (EC2 CreateTags by default)."""
        if tags:
            ctx.call("ec2", "create_tags", Resources=[resource_id], Tags=tag_list(tags))

    def remove_tags(self, ctx: AwsContext, resource_id: str, keys: list[str]) -> None:
        """Remove tags (EC2 DeleteTags by default); used to untag brought resources on delete."""
        if keys:
            ctx.call("ec2", "delete_tags", Resources=[resource_id], Tags=[{"Key": k} for k in keys])

    # -- helpers for subclasses --------------------------------------------------------------------
    @staticmethod
    def owned_filter(ctx: AwsContext) -> list[dict[str, Any]]:
        """EC2 describe filter selecting resources tagged for the context's cluster."""
        return [{"Name": "tag:kubeaws.io/cluster", "Values": [ctx.cluster]}]

    @staticmethod
    def ec2_tag_spec(resource_type: str, desired: Desired) -> list[dict[str, Any]]:
        """TagSpecifications for an EC2 create call."""
        return [{"ResourceType": resource_type, "Tags": tag_list(desired.tags)}]

    @staticmethod
    def tags_of(item: Mapping[str, Any]) -> dict[str, str]:
        return tag_dict(item.get("Tags"))

    @staticmethod
    def owned_only(ctx: AwsContext, items: list[Observed]) -> list[Observed]:
        return [o for o in items if is_owned_by(o.tags, ctx.cluster)]


def create_or_adopt(kind: Kind, ctx: AwsContext, desired: Desired, exclude: frozenset[str] = frozenset()
                    ) -> Observed:
    """`kind.create(desired)`; when a call of the create ends with its outcome unknown (`AmbiguousOutcome`:
    the answer was lost after the request left), look for what it made for the policy's `settle_timeout`
    (describes may lag a create) and adopt it, or create again when nothing is there. Calls that can be
    repeated safely (idempotency tokens, unique names) never get here: `AwsContext.call` retries them."""
    attempts = max(1, ctx.policy.max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return kind.create(ctx, desired)
        except AmbiguousOutcome:
            if attempt == attempts:
                raise
            try:
                found = wait_until(lambda: kind.find_created(ctx, desired, exclude), ctx.policy.settle_timeout,
                                   f"{desired.key} after a create whose answer was lost", ctx.policy)
            except WaitTimeout:
                continue  # nothing there: AWS did not act, create again
            return kind.adopt(ctx, found, desired)
    raise AssertionError("unreachable")


def normalize(value: Any) -> Any:
    """Canonical form for comparison: dicts with sorted keys, None-valued keys dropped; lists kept in
    order (kinds sort set-like fields themselves when they build `fields`)."""
    if isinstance(value, Mapping):
        return {k: normalize(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value
