"""The desired-resource graph: explicit references give the apply order; bad graphs are refused."""

from __future__ import annotations

import pytest

from kubeaws.model.graph import Graph, GraphError
from kubeaws.resources.base import Desired, Ref


def node(kind: str, name: str, **props: object) -> Desired:
    return Desired(kind=kind, name=name, props=dict(props))


def test_topological_order_follows_refs() -> None:
    g = Graph("c")
    g.add(node("RouteTable", "public", vpc_id=Ref("Vpc", "main"), routes=[{"gateway_id": Ref("InternetGateway",
                                                                                                   "main")}]))
    g.add(node("InternetGateway", "main", vpc_id=Ref("Vpc", "main")))
    g.add(node("Vpc", "main", cidr_block="10.0.0.0/16"))
    order = g.topological()
    assert order.index("Vpc/main") < order.index("InternetGateway/main") < order.index("RouteTable/public")
    assert g.levels() == [["Vpc/main"], ["InternetGateway/main"], ["RouteTable/public"]]


def test_same_key_twice_must_be_identical() -> None:
    g = Graph("c")
    g.add(node("Vpc", "main", cidr_block="10.0.0.0/16"))
    g.add(node("Vpc", "main", cidr_block="10.0.0.0/16"))  # identical: accepted
    with pytest.raises(GraphError, match="added twice"):
        g.add(node("Vpc", "main", cidr_block="10.1.0.0/16"))


def test_missing_reference_is_an_error() -> None:
    g = Graph("c")
    g.add(node("Subnet", "a", vpc_id=Ref("Vpc", "main")))
    with pytest.raises(GraphError, match="missing Vpc/main"):
        g.validate()


def test_cycle_is_an_error() -> None:
    g = Graph("c")
    g.add(node("A", "x", other=Ref("B", "y")))
    g.add(node("B", "y", other=Ref("A", "x")))
    with pytest.raises(GraphError, match="cycle"):
        g.validate()


def test_depends_on_counts_as_an_edge() -> None:
    d = Desired(kind="NatGateway", name="a", props={}, depends_on=("InternetGateway/main",))
    assert d.refs() == {"InternetGateway/main"}
