"""The delete graph: which deletions must be done before each other one starts.

The contract: for every edge of the model's graph (A depends on B: a Ref or `depends_on`), A is created after
B and deleted before B — deletes run in reverse topological order of the actual graph. The model's edges are
known for the resources the spec still describes (their `kubeaws.io/resource` tag names the graph key); for
what it no longer describes (leftovers of an older spec, what the cluster's controllers made) and for what
AWS requires beyond the model (an instance holds the groups of its launch template), the observed
references and the kinds' ranks add edges.

Each deletion has a *level* (`levels`): its kind's rank (`Kind.rank`, `ControllerKind.rank`), lifted just
above the level of everything it depends on in the model graph. A kind's rank is right for most of its
resources; the lift covers the resources whose dependencies rank higher than their kind (an IRSA role trusts
the EKS cluster's OIDC provider, the cluster's cluster.json names the API load balancer, the bastion's
Elastic IP is associated with the bastion instance). Every edge goes from a higher level to a lower one: the
graph has no cycle. The rule (`waits_for`), for two resources A and B about to be deleted, level(A) > level(B):

0. B waits for A when A depends on B in the model graph.
1. A and B are *related* when one names the other: a value anywhere in its observed `fields` or `attrs` (its
   own `name`/`arn` keys aside) equals the other's ID, ARN (`attrs["arn"]`) or name (`attrs["name"]`). E.g. an
   instance's `subnet_id` and `security_group_ids`, a NAT gateway's `subnet_id` and `allocation_id`, a subnet's
   or a group's `vpc_id`, a route table's routes (gateway and NAT IDs) and `subnet_ids`, an Auto Scaling
   group's `subnet_ids`, launch template and target groups, a rule set's `source_group`s, a profile's role,
   an Elastic IP's `instance_id`, a target group's `load_balancer_arns`, a Service load balancer's `vpc_id`.
   A value naming several resources (a security group's ID is also its rule set's ID; a role, its profile and
   a launch template may share a name) names the one of lowest rank: the one that holds the ID or name.
2. B waits for A when they are related, or when A is related to no resource of B's kind at all (nothing
   known: the level order holds between them) — unless A's kind is one whose observed attributes name
   everything it holds (`NAMES_WHAT_IT_HOLDS`: a launch template, a listener, a target group, a route table, a
   security group and its rule set, a volume, a subnet, an internet gateway, an Elastic IP, an IAM role or
   instance profile, a KMS key, an object in the state bucket); such a resource holds nothing it does not
   name: only what it names waits for it. The state bucket holds the cluster lock: it waits for every
   higher-levelled resource whatever (`GOES_LAST`).
3. Resources of the same level never wait for each other.

So a subnet waits for the instances, NAT gateways, load balancers, route tables and Auto Scaling groups that
name it, and for every resource of a higher-ranked kind that names no subnet and may hold what it does not
name (Service load balancers...), but not for security groups or launch templates; the VPC waits for
everything naming it and the rest by rank; the state bucket (and with it the cluster lock) for everything
above it. The ranks stay the tie-break where neither the model nor the observed attributes relate two
resources: where a kind's observed attributes do not show what it holds (an Auto Scaling group's instances, a
Service load balancer's ENIs), the kind that names nothing of the other kind keeps the rank order with all of
them.

Called by engine.apply (`destroy`, and the deletes of `execute`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubeaws.engine.types import Change
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Observed, walk

#: Keys that hold a resource's own identity, not a reference to another resource.
OWN_KEYS = frozenset({"name", "arn"})
#: Kinds whose observed attributes name every lower-ranked resource that cannot be deleted while they exist:
#: the rank fallback (rule 2) does not apply to them. Not here: kinds that hold what they do not name, e.g.
#: an Auto Scaling group (its instances use the launch template's groups), a NAT gateway or an instance
#: (their public addresses keep the internet gateway attached), a load balancer (the same).
NAMES_WHAT_IT_HOLDS = frozenset({"LaunchTemplate", "Listener", "TargetGroup", "RouteTable", "SecurityGroupRules",
                                 "SecurityGroup", "Volume", "Subnet", "InternetGateway", "ElasticIp", "StateObject",
                                 "ClusterPki", "InstanceProfile", "IamRole", "KmsKey", "Vpc"})
#: Kinds that wait for every higher-ranked resource: the state bucket holds the cluster lock, which must
#: outlive every other deletion of the run.
GOES_LAST = frozenset({"Bucket"})
#: How far above its highest dependency a resource is lifted (exact in binary: chains never round).
LIFT = 1 / 64


def node_key(change: Change) -> str:
    """The delete graph's key of a deletion: kind and AWS ID (logical names may repeat across kinds)."""
    return f"{change.kind}/{change.id}"


def identifiers(obs: Observed) -> set[str]:
    """What other resources may name `obs` by: its ID, ARN and name."""
    found = {obs.id}
    for key in ("arn", "name"):
        value = obs.attrs.get(key)
        if isinstance(value, str) and value:
            found.add(value)
    return found


def references(obs: Observed) -> set[str]:
    """Every string in `obs`'s fields and attrs (its own name/ARN keys aside): candidates for references."""
    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, str) and value:
            found.add(value)

    for source in (obs.fields, obs.attrs):
        for key, value in source.items():
            if key not in OWN_KEYS:
                walk(value, visit)
    return found - {obs.id}


def model_edges(deletes: Sequence[Change], graph: Graph | None) -> list[tuple[int, int]]:
    """(i, j) for every pair of deletions where i depends on j in the model graph (rule 0), matched by the
    `kubeaws.io/resource` tag (the graph key); a key found on several resources (duplicates) matches each."""
    if graph is None:
        return []
    by_key: dict[str, list[int]] = {}
    for i, c in enumerate(deletes):
        key = c.actual.logical_key if c.actual is not None else None
        if key and key in graph:
            by_key.setdefault(key, []).append(i)
    return [(i, j) for key, members in by_key.items() for dep in sorted(graph[key].refs())
            for j in by_key.get(dep, ()) for i in members if i != j]


def graph_levels(graph: Graph, rank: Callable[[str], int]) -> dict[str, float]:
    """Graph key -> its level: the kind's rank, lifted `LIFT` above every key it depends on."""
    level: dict[str, float] = {}
    for key in graph.topological():  # dependencies first
        own = float(rank(graph[key].kind))
        level[key] = max([own, *(level[d] + LIFT for d in graph[key].refs() if d in level)])
    return level


def levels(deletes: Sequence[Change], rank: Callable[[str], int], graph: Graph | None = None) -> dict[str, float]:
    """For each deletion (by `node_key`), its level: the kind's rank, lifted above its model dependencies'."""
    lifted = graph_levels(graph, rank) if graph is not None else {}
    out: dict[str, float] = {}
    for c in deletes:
        key = c.actual.logical_key if c.actual is not None else None
        out[node_key(c)] = lifted.get(key or "", float(rank(c.kind)))
    return out


def waits_for(deletes: Sequence[Change], rank: Callable[[str], int], graph: Graph | None = None
              ) -> dict[str, set[str]]:
    """For each deletion (by `node_key`), the keys of the deletions that must be done before it starts (the
    module docstring's rule). `rank(kind)`: the kind's rank; `graph`: the model's graph the resources were
    made from, when known (its edges and levels; without it, kinds' ranks alone)."""
    nodes = [c for c in deletes if c.actual is not None]
    keys = [node_key(c) for c in nodes]
    ranks = [rank(c.kind) for c in nodes]
    level_of = levels(nodes, rank, graph)
    lv = [level_of[k] for k in keys]
    named: dict[str, list[int]] = {}
    for i, c in enumerate(nodes):
        assert c.actual is not None
        for ident in identifiers(c.actual):
            named.setdefault(ident, []).append(i)
    related: list[set[int]] = [set() for _ in nodes]
    for i, c in enumerate(nodes):
        assert c.actual is not None
        for value in references(c.actual):
            candidates = [j for j in named.get(value, ()) if j != i]
            if candidates:
                j = min(candidates, key=lambda n: (ranks[n], keys[n]))
                related[i].add(j)
                related[j].add(i)
    by_kind: dict[str, list[int]] = {}
    for i, c in enumerate(nodes):
        by_kind.setdefault(c.kind, []).append(i)
    deps: dict[str, set[str]] = {k: set() for k in keys}
    for i, j in model_edges(nodes, graph):
        deps[keys[j]].add(keys[i])
    for i, c in enumerate(nodes):
        for kind, members in by_kind.items():
            below = [j for j in members if lv[j] < lv[i]]
            if not below:
                continue
            mine = related[i].intersection(below)
            if kind in GOES_LAST or not (related[i].intersection(members) or c.kind in NAMES_WHAT_IT_HOLDS):
                mine = set(below)
            for j in mine:
                deps[keys[j]].add(keys[i])
    return deps


def order(deps: Mapping[str, set[str]], level: Mapping[str, float]) -> list[str]:
    """A topological order of the delete graph (what must go first, first): highest level first, then by key,
    which is one since every edge goes down the levels. The serial (one worker) order."""
    return sorted(deps, key=lambda k: (-level[k], k))


def critical_path(deps: dict[str, set[str]], seconds: Callable[[str], float]) -> tuple[float, list[str]]:
    """The longest chain of the delete graph, each deletion weighing `seconds(key)`: the wall time a delete
    with unbounded parallelism cannot beat (the bench compares the real wall with it)."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(key: str) -> tuple[float, list[str]]:
        if key not in memo:
            before = [longest(d) for d in deps.get(key, ())]
            best = max(before, default=(0.0, []))
            memo[key] = (best[0] + seconds(key), [*best[1], key])
        return memo[key]

    return max((longest(k) for k in deps), default=(0.0, []))
