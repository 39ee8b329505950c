"""Pure model tests: spec -> desired resources, no AWS. The security rules are checked against the
Kubernetes ports table and each CNI's pod traffic (problems 1 and 2 of DESIGN.md)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeaws.model import build
from kubeaws.model.flows import cni_flows, required_flows
from kubeaws.model.images import architecture
from kubeaws.resources.base import Lookup, Ref
from tests.helpers import make_spec


def rules(graph: Any, role: str) -> list[dict[str, Any]]:
    return list(graph[f"SecurityGroupRules/{role}"].props["ingress"])


def has(rule_list: list[dict[str, Any]], protocol: str, lo: int, hi: int, *, group: str | None = None,
        cidr: str | None = None) -> bool:
    for r in rule_list:
        if (r["protocol"], r["from_port"], r["to_port"]) != (protocol, lo, hi):
            continue
        if group is not None and r["source_group"] == Ref("SecurityGroup", group):
            return True
        if cidr is not None and r["cidr"] == cidr:
            return True
    return False


@pytest.mark.parametrize(
    ("nat", "expected_nats"),
    [("none", 0), ("single", 1), ("perAZ", 3)],
)
def test_nat_gateway_layouts(nat: str, expected_nats: int) -> None:
    spec = make_spec(network={"availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"], "natGateway": nat})
    g = build(spec)
    assert len(g.of_kind("NatGateway")) == expected_nats
    assert len(g.of_kind("ElasticIp")) == expected_nats
    private_tables = [d for d in g.of_kind("RouteTable") if d.name.startswith("private-")]
    assert len(private_tables) == 3  # one per AZ whatever the NAT layout
    for table in private_tables:
        routes = table.props["routes"]
        assert len(routes) == (0 if nat == "none" else 1)
        if nat == "perAZ":
            assert routes[0]["nat_gateway_id"] == Ref("NatGateway", table.name.removeprefix("private-"))


def test_subnets_tagged_for_load_balancers() -> None:
    g = build(make_spec())
    for d in g.of_kind("Subnet"):
        role = "kubernetes.io/role/elb" if d.name.startswith("public-") else "kubernetes.io/role/internal-elb"
        assert d.tags[role] == "1"
        assert d.tags["kubernetes.io/cluster/dev"] == "owned"
        assert d.tags["kubeaws.io/cluster"] == "dev"
        assert d.tags["kubeaws.io/resource"] == f"Subnet/{d.name}"
        assert d.props["map_public_ip_on_launch"] is d.name.startswith("public-")


def test_every_resource_carries_ownership_and_spec_tags() -> None:
    g = build(make_spec(tags={"team": "dsp", "cost-center": "42"}))
    for d in g:
        assert d.tags["team"] == "dsp" and d.tags["cost-center"] == "42", d.key
        assert d.tags["Name"].startswith("dev-"), d.key


def test_kubernetes_ports_table() -> None:
    g = build(make_spec())
    cp, nodes = rules(g, "control-plane"), rules(g, "nodes")
    for src in ("nodes", "control-plane", "bastion", "lb"):
        assert has(cp, "tcp", 6443, 6443, group=src), src
    assert has(cp, "tcp", 2379, 2380, group="control-plane")
    assert not has(cp, "tcp", 2379, 2380, group="nodes")
    assert not any(r["from_port"] == 2379 for r in nodes)
    assert has(cp, "tcp", 10257, 10257, group="control-plane") and has(cp, "tcp", 10259, 10259, group="control-plane")
    assert not any(r["from_port"] in (10257, 10259) and r["source_group"] != Ref("SecurityGroup", "control-plane")
                   for r in cp)
    assert has(nodes, "tcp", 10250, 10250, group="control-plane")
    assert has(cp, "tcp", 10250, 10250, group="control-plane")
    # The API load balancer health-checks the members on 6443 only: it never reaches kube-proxy (10256).
    assert not any(r["from_port"] == 10256 for r in nodes + cp)
    for proto in ("tcp", "udp"):
        assert has(nodes, proto, 30000, 32767, cidr="10.0.0.0/16")
    assert has(nodes, "tcp", 22, 22, group="bastion")
    assert has(rules(g, "bastion"), "tcp", 22, 22, cidr="203.0.113.0/24")


def test_private_endpoint_keeps_admin_cidrs_off_the_api() -> None:
    g = build(make_spec(access={"apiEndpoint": "private"}))
    assert not any(r["cidr"] == "203.0.113.0/24" for r in rules(g, "control-plane"))
    g = build(make_spec(access={"apiEndpoint": "public"}))
    assert has(rules(g, "control-plane"), "tcp", 6443, 6443, cidr="203.0.113.0/24")
    assert has(rules(g, "lb"), "tcp", 6443, 6443, cidr="203.0.113.0/24")


def test_nothing_open_to_the_world_by_default() -> None:
    for cni in ("calico", "flannel", "cilium", "aws-vpc-cni"):
        g = build(make_spec(network={"cni": cni}, access={"apiEndpoint": "public"}))
        for d in g.of_kind("SecurityGroupRules"):
            assert all(r["cidr"] not in ("0.0.0.0/0", "::/0") for r in d.props["ingress"]), (cni, d.key)


def test_node_ports_only_from_inside_the_vpc_unless_widened() -> None:
    g = build(make_spec(network={"nodePortCIDRs": ["10.0.0.0/8"]}))
    nodes = rules(g, "nodes")
    assert has(nodes, "tcp", 30000, 32767, cidr="10.0.0.0/8")
    assert not has(nodes, "tcp", 30000, 32767, cidr="10.0.0.0/16")


CNI_CASES = [
    ("flannel", "ipip", [("udp", 8472, 8472)]),
    ("calico", "ipip", [("tcp", 179, 179), ("4", -1, -1), ("tcp", 5473, 5473)]),
    ("calico", "vxlan", [("tcp", 179, 179), ("udp", 4789, 4789), ("tcp", 5473, 5473)]),
    ("cilium", "ipip", [("udp", 8472, 8472), ("tcp", 4240, 4240), ("icmp", -1, -1)]),
    ("aws-vpc-cni", "ipip", [("-1", -1, -1)]),
]


@pytest.mark.parametrize(("cni", "encap", "expected"), CNI_CASES)
def test_cni_traffic_between_all_nodes_control_plane_included(cni: str, encap: str,
                                                             expected: list[tuple[str, int, int]]) -> None:
    g = build(make_spec(network={"cni": cni, "calico": {"encapsulation": encap}}))
    for target in ("control-plane", "nodes"):
        target_rules = rules(g, target)
        for source in ("control-plane", "nodes"):
            for proto, lo, hi in expected:
                assert has(target_rules, proto, lo, hi, group=source), (cni, source, target, proto, lo)
            for proto in ("udp", "tcp"):
                assert has(target_rules, proto, 53, 53, group=source), ("dns", source, target)
    assert {(p, lo, hi) for p, lo, hi, _ in cni_flows(cni, encap)} == set(expected)


def test_calico_ipip_is_not_opened_for_vxlan() -> None:
    g = build(make_spec(network={"cni": "calico", "calico": {"encapsulation": "vxlan"}}))
    assert not any(r["protocol"] == "4" for r in rules(g, "nodes"))


def test_metrics_server_adds_kubelet_access_from_nodes() -> None:
    assert not has(rules(build(make_spec()), "nodes"), "tcp", 10250, 10250, group="nodes")
    g = build(make_spec(addons={"metricsServer": {}}))
    assert has(rules(g, "nodes"), "tcp", 10250, 10250, group="nodes")


def test_bastion_is_hardened() -> None:
    g = build(make_spec())
    bastion = g["Instance/bastion"]
    assert bastion.props["metadata_options"]["http_tokens"] == "required"
    assert bastion.props["root_volume"]["encrypted"] is True
    assert bastion.props["subnet_id"] == Ref("Subnet", "public-us-east-1a")
    assert isinstance(bastion.props["image_id"], Lookup)
    assert "image_id" in bastion.create_only  # a new AMI in SSM must not replace the bastion
    assert "ElasticIp/bastion" not in g


def test_bastion_explicit_ami_and_elastic_ip() -> None:
    g = build(make_spec(access={"bastion": {"ami": "ami-0123456789abcdef0", "elasticIP": True}}))
    assert g["Instance/bastion"].props["image_id"] == "ami-0123456789abcdef0"
    assert g["Instance/bastion"].create_only == frozenset()
    assert g["ElasticIp/bastion"].props["instance_id"] == Ref("Instance", "bastion")


def test_no_bastion() -> None:
    g = build(make_spec(access={"bastion": {"enabled": False}}))
    assert "Instance/bastion" not in g and "SecurityGroup/bastion" not in g
    assert not any(r["from_port"] == 22 for r in rules(g, "nodes"))


def test_brought_vpc_creates_no_network() -> None:
    g = build(make_spec(network={"vpc": {"cidr": None, "id": "vpc-0abc"}, "availabilityZones": [],
                                 "subnets": {"public": ["subnet-1"], "private": ["subnet-2", "subnet-3"]}}))
    assert g["Vpc/main"].brought_id == "vpc-0abc"
    assert g["Vpc/main"].tags == {"kubernetes.io/cluster/dev": "shared"}
    assert [d.brought_id for d in g.of_kind("Subnet")] == ["subnet-1", "subnet-2", "subnet-3"]
    for kind in ("InternetGateway", "NatGateway", "RouteTable", "ElasticIp"):
        assert not g.of_kind(kind), kind
    # NodePorts default to the brought VPC's own CIDR, read at plan time.
    assert has(rules(g, "nodes"), "tcp", 30000, 32767, cidr=Ref("Vpc", "main", "cidr"))  # type: ignore[arg-type]


def test_graviton_architecture() -> None:
    assert [architecture(t) for t in ("t4g.micro", "m6gd.large", "c7gn.xlarge", "g5g.xlarge")] == ["arm64"] * 4
    assert [architecture(t) for t in ("t3.micro", "m5.large", "g4dn.xlarge", "inf2.xlarge")] == ["x86_64"] * 4


def test_flows_are_deduplicated() -> None:
    flows = required_flows(make_spec(), "10.0.0.0/16")
    keys = [(f.source, f.target, f.protocol, f.from_port, f.to_port, f.cidrs) for f in flows]
    assert len(keys) == len(set(keys))
