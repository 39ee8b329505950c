"""The desired-resource graph: explicit references give the apply order; bad graphs are refused; and the
contract that governs order, held for every example graph: for every edge A depends on B, A is created after
B and deleted before B (engine.delete_order), whatever the kinds' ranks say."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.aws.tags import RESOURCE_TAG
from kubeaws.engine import delete_order
from kubeaws.engine.types import Change
from kubeaws.model import build
from kubeaws.model.graph import Graph, GraphError
from kubeaws.resources import registry
from kubeaws.resources.base import Computed, Desired, Lookup, Observed, Ref
from kubeaws.spec.load import load_spec
from kubeaws.spec.models import ClusterSpec
from tests.conftest import EXAMPLES
from tests.helpers import make_spec


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


# -- the order contract, for every example graph -----------------------------------------------------------
EKS = {"mode": "eks", "network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
       "access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
       "addons": {"clusterAutoscaler": {}, "ebsCSI": {}, "metricsServer": {}},
       "nodeGroups": [{"name": "general", "instanceTypes": ["m5.large"]},
                      {"name": "managed", "type": "managed", "instanceTypes": ["t3.large"]}]}
BROUGHT_NETWORK = {"vpc": {"cidr": None, "id": "vpc-0abc"}, "availabilityZones": [],
                   "subnets": {"public": ["subnet-1"], "private": ["subnet-2", "subnet-3"]}}
SPECS: dict[str, Any] = {
    **{f"examples/{p.name}": p for p in sorted(EXAMPLES.glob("*.yaml"))},
    "kubeadm": {},
    "kubeadm-bastion-ha": {"access": {"adminCIDRs": ["203.0.113.0/24"], "bastion": {"instanceType": "t3.micro"}},
                           "controlPlane": {"count": 3}},
    "kubeadm-public-api": {"access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]}},
    "eks": EKS,
    "eks-bastion": {**EKS, "access": {"apiEndpoint": "private", "adminCIDRs": ["203.0.113.0/24"],
                                      "bastion": {"instanceType": "t3.micro"}}},
    "brought-network": {"network": {**BROUGHT_NETWORK, "cni": "flannel"}},
    "brought-roles": {"iam": {"nodeRole": "platform-node", "controlPlaneRole": "platform-cp"}},
    "eks-brought": {**EKS, "network": {**BROUGHT_NETWORK, "cni": "aws-vpc-cni"},
                    "iam": {"nodeRole": "arn:aws:iam::123456789012:role/team/nodes"}},
}


def spec_of(source: Any) -> ClusterSpec:
    return load_spec(source) if not isinstance(source, dict) else make_spec(**source)


def as_observed(graph: Graph) -> list[Change]:
    """A deletion for every resource the graph owns, observed as AWS would show it: props with every Ref
    resolved to the target's ID (ARN, name, other attribute), tagged with its graph key."""
    ids = {d.key: d.brought_id or f"{d.kind.lower()}-{d.name}" for d in graph}

    def value(v: Any) -> Any:
        if isinstance(v, Ref):
            base = ids[v.key]
            return {"id": base, "name": base, "arn": f"arn:{base}"}.get(v.attr, f"{base}.{v.attr}")
        if isinstance(v, Lookup):
            return str(v)
        if isinstance(v, Computed):
            return value(dict(v.args))
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [value(x) for x in v]
        return v

    return [Change("delete", d.kind, d.name, ids[d.key], {}, None,
                   Observed(d.kind, ids[d.key], value(d.props), tags={RESOURCE_TAG: d.key},
                            attrs={"arn": f"arn:{ids[d.key]}", "name": ids[d.key]}))
            for d in graph if not d.brought_id]


def deleted_before(deps: dict[str, set[str]], first: str, later: str) -> bool:
    """Whether `later` waits, directly or through others, for `first`."""
    seen: set[str] = set()
    stack = [later]
    while stack:
        for d in deps[stack.pop()]:
            if d == first:
                return True
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return False


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_edge_is_created_after_and_deleted_before_what_it_depends_on(name: str) -> None:
    graph = build(spec_of(SPECS[name]))
    kinds = registry.kinds()
    deletes = as_observed(graph)
    node = {c.actual.logical_key: delete_order.node_key(c) for c in deletes if c.actual is not None}
    deps = delete_order.waits_for(deletes, lambda kind: kinds[kind].rank, graph)
    level = delete_order.levels(deletes, lambda kind: kinds[kind].rank, graph)
    serial = delete_order.order(deps, level)
    created = {key: i for i, key in enumerate(graph.topological())}
    checked = 0
    for desired in graph:
        for dep in desired.refs():
            assert created[dep] < created[desired.key], f"{desired.key} created before {dep}"
            if desired.key in node and dep in node:
                a, b = node[desired.key], node[dep]
                assert deleted_before(deps, a, b), f"{desired.key} must be deleted before {dep}"
                assert serial.index(a) < serial.index(b)
                checked += 1
    assert checked > 20
    for key, before in deps.items():  # every edge goes down the levels: no cycle
        assert all(level[d] > level[key] for d in before)


def test_the_contract_holds_where_the_kinds_rank_says_otherwise() -> None:
    """The resources that depend on a higher-ranked kind (an IRSA role on the EKS cluster's OIDC provider,
    cluster.json on the API load balancer, the bastion's Elastic IP on its instance) go first."""
    kinds = registry.kinds()
    seen: set[tuple[str, str]] = set()
    for name in ("examples/ha.yaml", "eks"):
        graph = build(spec_of(SPECS[name]))
        for desired in graph:
            for dep in desired.refs():
                if dep in graph and kinds[desired.kind].rank < kinds[graph[dep].kind].rank:
                    seen.add((desired.kind, graph[dep].kind))
    assert {("IamRole", "OidcProvider"), ("IamRole", "EksCluster"), ("StateObject", "LoadBalancer"),
            ("ElasticIp", "Instance")} <= seen
