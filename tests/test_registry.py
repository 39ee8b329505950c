"""Registry-wide invariants, checked for EVERY registered resource kind (cloud-custodian style): it
declares its metadata, the model only uses registered kinds, each kind finds its resources by the
cluster's tags with a single describe call, its found fields diff clean against the spec, and its delete
removes them."""

from __future__ import annotations

import inspect

import pytest

from kubeaws import api
from kubeaws.aws.session import AwsContext, is_read_operation
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.model import build
from kubeaws.resources import registry
from kubeaws.resources.base import Kind
from tests.helpers import make_spec

FULL = make_spec(network={"natGateway": "perAZ"}, access={"bastion": {"elasticIP": True}})
KINDS = sorted(registry.kinds())


def test_every_module_registers_a_kind() -> None:
    assert len(KINDS) == len(registry.MODULES)


@pytest.mark.parametrize("name", KINDS)
def test_kind_declares_its_metadata(name: str) -> None:
    kind = registry.get(name)
    assert isinstance(kind, Kind) and not inspect.isabstract(type(kind))
    assert kind.kind == name and isinstance(kind.rank, int) and kind.service
    assert kind.immutable | kind.refuse_change | kind.unobservable | kind.set_fields is not None
    assert type(kind).__doc__ and inspect.getmodule(type(kind)).__doc__  # type: ignore[union-attr]


def test_model_uses_only_registered_kinds() -> None:
    graph = build(FULL)
    for desired in graph:
        registry.get(desired.kind)  # raises for an unknown kind
        for dep in desired.refs():
            assert dep in graph


def test_every_kind_finds_diffs_and_deletes_itself(ctx: AwsContext) -> None:
    graph = build(FULL)
    result = api.apply(FULL, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    state = api.plan_state(FULL, ctx)
    for name in KINDS:
        kind = registry.get(name)
        with ctx.counting() as log:
            found = kind.list_owned(ctx)
        reads = sum(n for (_, op), n in log.snapshot().items() if is_read_operation(op))
        assert 1 <= reads <= kind.list_reads, (name, log.snapshot())
        assert log.mutating() == 0
        assert {o.logical_key for o in found} == {d.key for d in graph.of_kind(name)}, name
        for o in found:
            assert o.tags[CLUSTER_TAG] == "dev" and o.tags[RESOURCE_TAG].startswith(f"{name}/"), o.id
    assert state.plan.pending == 0
    deleted = api.delete(FULL, ctx)
    assert deleted.ok
    for name in KINDS:
        assert registry.get(name).list_owned(ctx) == [], name
