"""Registry of resource kinds, keyed by kind name.

Resource modules register their Kind subclass with `@register`; `kinds()` imports them all. Used by the
engine (plan, apply, delete, status) and by the registry-wide tests.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from kubeaws.resources.base import Kind

_KINDS: dict[str, Kind] = {}
K = TypeVar("K", bound=type[Kind])

# Every module defining a kind; imported lazily so `kubeaws --help` stays fast.
MODULES = (
    "kubeaws.resources.vpc",
    "kubeaws.resources.subnet",
    "kubeaws.resources.internet_gateway",
    "kubeaws.resources.elastic_ip",
    "kubeaws.resources.nat_gateway",
    "kubeaws.resources.route_table",
    "kubeaws.resources.security_group",
    "kubeaws.resources.security_group_rules",
    "kubeaws.resources.instance",
    "kubeaws.resources.iam_role",
    "kubeaws.resources.instance_profile",
    "kubeaws.resources.bucket",
    "kubeaws.resources.pki",
    "kubeaws.resources.state_object",
    "kubeaws.resources.volume",
    "kubeaws.resources.network_interface",
    "kubeaws.resources.load_balancer",
    "kubeaws.resources.target_group",
    "kubeaws.resources.listener",
    "kubeaws.resources.launch_template",
    "kubeaws.resources.auto_scaling_group",
    "kubeaws.resources.kms_key",
    "kubeaws.resources.eks_cluster",
    "kubeaws.resources.oidc_provider",
    "kubeaws.resources.access_entry",
    "kubeaws.resources.eks_addon",
    "kubeaws.resources.eks_nodegroup",
    "kubeaws.resources.kubernetes_object",
)


def register(cls: K) -> K:
    """Class decorator: register one instance of a Kind subclass under `cls.kind`."""
    if cls.kind in _KINDS and type(_KINDS[cls.kind]) is not cls:
        raise ValueError(f"kind {cls.kind} registered twice")
    _KINDS[cls.kind] = cls()
    return cls


def _load() -> None:
    for module in MODULES:
        importlib.import_module(module)


def kinds() -> dict[str, Kind]:
    """Every registered kind by name."""
    _load()
    return dict(_KINDS)


def get(kind: str) -> Kind:
    _load()
    try:
        return _KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown resource kind {kind!r}") from None


def for_mode(mode: str | None) -> dict[str, Kind]:
    """The kinds a cluster of `mode` can own (every kind when `mode` is None, e.g. for delete)."""
    return {name: k for name, k in kinds().items() if mode is None or mode in k.modes}

