"""The graph of desired resources: explicit references between them give the apply order (topological) and
its reverse gives the delete order (engine.delete_order: what depends on a resource is deleted before it).

Built by model builders (`model.build`), read by the engine (planner and executor).
"""

from __future__ import annotations

from collections.abc import Iterator

from kubeaws.errors import KubeawsError
from kubeaws.resources.base import Desired, normalize


class GraphError(KubeawsError):
    """Duplicate keys with different content, references to missing resources, or a cycle."""


class Graph:
    """Desired resources keyed by "Kind/name"."""

    def __init__(self, cluster: str, mode: str | None = None) -> None:
        self.cluster = cluster
        #: The cluster's mode (kubeadm / eks): which kinds it can own; None = any.
        self.mode = mode
        self._nodes: dict[str, Desired] = {}
        #: Each node's references (Desired.refs walks its props), kept until the node is added or replaced.
        self._refs: dict[str, set[str]] = {}

    def refs(self, key: str) -> set[str]:
        """The keys `key` refers to (read-only: a copy is not made)."""
        found = self._refs.get(key)
        if found is None:
            found = self._refs[key] = self._nodes[key].refs()
        return found

    def add(self, desired: Desired) -> Desired:
        """Add a resource; adding the same key twice is an error unless both are identical."""
        existing = self._nodes.get(desired.key)
        if existing is not None:
            if (normalize(existing.props), existing.tags, existing.brought_id) != (
                normalize(desired.props), desired.tags, desired.brought_id):
                raise GraphError(f"{desired.key} added twice with different content")
            return existing
        self._nodes[desired.key] = desired
        self._refs.pop(desired.key, None)
        return desired

    def replace(self, desired: Desired) -> None:
        """Swap a resource for an updated version of itself (same key), e.g. to add dependencies."""
        if desired.key not in self._nodes:
            raise GraphError(f"{desired.key} is not in the graph")
        self._nodes[desired.key] = desired
        self._refs.pop(desired.key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._nodes

    def __getitem__(self, key: str) -> Desired:
        return self._nodes[key]

    def __iter__(self) -> Iterator[Desired]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def keys(self) -> list[str]:
        return list(self._nodes)

    def of_kind(self, kind: str) -> list[Desired]:
        return [d for d in self._nodes.values() if d.kind == kind]

    def dependencies(self, key: str) -> set[str]:
        return set(self.refs(key))

    def dependants(self) -> dict[str, set[str]]:
        """key -> keys that depend on it."""
        out: dict[str, set[str]] = {k: set() for k in self._nodes}
        for key in self._nodes:
            for dep in self.refs(key):
                out[dep].add(key)
        return out

    def validate(self) -> None:
        """Every reference points into the graph and there is no cycle."""
        for node in self._nodes.values():
            missing = sorted(self.refs(node.key) - self._nodes.keys())
            if missing:
                raise GraphError(f"{node.key} refers to missing {', '.join(missing)}")
        self.topological()

    def topological(self) -> list[str]:
        """Keys in an order where every resource comes after what it refers to (stable: insertion order
        breaks ties)."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(key: str, path: list[str]) -> None:
            mark = state.get(key, 0)
            if mark == 2:
                return
            if mark == 1:
                raise GraphError("dependency cycle: " + " -> ".join([*path, key]))
            state[key] = 1
            for dep in sorted(self.refs(key)):
                if dep in self._nodes:
                    visit(dep, [*path, key])
            state[key] = 2
            order.append(key)

        for key in self._nodes:
            visit(key, [])
        return order
