"""Shared helpers for model builders: the cluster's naming and tagging, and how builders add resources.

Called by every builder in model/ (pure functions, no AWS calls).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubeaws.aws.tags import owned_tags, shared_tags
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Desired, Ref
from kubeaws.spec.models import ClusterSpec


def node_group_path(name: str) -> str:
    """The spec path of node group `name`: what `Desired.spec_path` says of its resources."""
    return f"nodeGroups[{name}]"


def node_group_of(spec_path: str) -> str | None:
    """The node group a spec path names (`node_group_path`'s inverse), None for another path."""
    if spec_path.startswith("nodeGroups[") and spec_path.endswith("]"):
        return spec_path[len("nodeGroups["):-1]
    return None


@dataclass
class Builder:
    """What every model builder works with: the spec and the graph being built."""

    spec: ClusterSpec
    graph: Graph
    #: The spec path of what is being built (`Desired.spec_path` of every resource added meanwhile).
    at: str = ""
    #: The Kubernetes minor the addons that follow it are rendered for, when not the spec's: the API servers'
    #: during an upgrade's roll (model.addon_objects).
    addons_minor: str | None = None
    #: Whether the addons' Kubernetes objects are declared (not for what reads only the AWS side, e.g. the
    #: policy documents `kubeaws render` writes: the manifests are megabytes).
    kubernetes_objects: bool = True

    @contextmanager
    def section(self, path: str) -> Iterator[None]:
        """Every resource added inside the block comes from the spec field `path` (e.g. `nodeGroups[general]`)."""
        before, self.at = self.at, path
        try:
            yield
        finally:
            self.at = before

    @property
    def cluster(self) -> str:
        return self.spec.metadata.name

    def display(self, name: str) -> str:
        return f"{self.cluster}-{name}"

    def owned(self, kind: str, name: str, props: dict[str, Any], *, extra_tags: dict[str, str] | None = None,
              create_only: frozenset[str] = frozenset(), depends_on: tuple[str, ...] = (),
              display: str | None = None) -> Ref:
        """Add a resource kubeaws creates and owns; return a Ref to it. Its Name tag is `display`, by default
        `<cluster>-<name>`."""
        tags = owned_tags(self.cluster, kind, name, display or self.display(name),
                          {**self.spec.spec.tags, **(extra_tags or {})})
        self.graph.add(Desired(kind=kind, name=name, props=props, tags=tags, create_only=create_only,
                               depends_on=depends_on, spec_path=self.at))
        return Ref(kind, name)

    def brought(self, kind: str, name: str, resource_id: str) -> Ref:
        """Add a resource the user brings: only tagged `shared`, never modified otherwise nor deleted."""
        self.graph.add(Desired(kind=kind, name=name, props={}, tags=shared_tags(self.cluster),
                               brought_id=resource_id, spec_path=self.at))
        return Ref(kind, name)
