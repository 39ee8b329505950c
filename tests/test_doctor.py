"""`kubeaws doctor` (static): for every check a failing and a passing case (specs, or built graphs mutated
where generated resources always pass), the reachability matrix, the report shape, and the CLI (exit codes,
JSON shape, matrix in the text, speed, no boto3)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kubeaws.cli.doctor import register
from kubeaws.doctor import Finding, Report, check_spec, matrix
from kubeaws.doctor.capacity import check_ip_capacity, check_quotas, check_storage
from kubeaws.doctor.findings import SEVERITIES
from kubeaws.doctor.network import check_access, check_addressing, check_exposure, check_pod_network
from kubeaws.doctor.static import (
    CHECKS,
    check_artifacts,
    check_control_plane,
    check_discovery_tags,
    check_eks_join,
    check_node_groups,
)
from kubeaws.model import build
from kubeaws.model.graph import Graph
from kubeaws.resources.base import Desired
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EKS: dict[str, Any] = {
    "mode": "eks", "network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
    "access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
    "nodeGroups": [{"name": "general", "instanceTypes": ["m5.large"], "size": {"min": 1, "desired": 2, "max": 10}},
                   {"name": "managed", "type": "managed", "instanceTypes": ["t3.large"]}]}

Mutation = Callable[[Graph], None]
CheckFn = Callable[[ClusterSpec, Graph], list[Finding]]


# -- graph mutation helpers -------------------------------------------------------------------------------
def set_props(graph: Graph, key: str, **props: Any) -> None:
    d = graph[key]
    graph.replace(replace(d, props={**d.props, **props}))


def set_tags(graph: Graph, key: str, tags: dict[str, str]) -> None:
    graph.replace(replace(graph[key], tags=tags))


def drop_rules(role: str, pred: Callable[[dict[str, Any]], bool]) -> Mutation:
    def mutate(graph: Graph) -> None:
        rules = graph[f"SecurityGroupRules/{role}"].props["ingress"]
        kept = [r for r in rules if not pred(r)]
        assert len(kept) < len(rules), "the mutation removed nothing"
        set_props(graph, f"SecurityGroupRules/{role}", ingress=kept)
    return mutate


def add_rule(role: str, **rule: Any) -> Mutation:
    def mutate(graph: Graph) -> None:
        rules = graph[f"SecurityGroupRules/{role}"].props["ingress"]
        base = {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "0.0.0.0/0", "source_group": None,
                "description": "test"}
        set_props(graph, f"SecurityGroupRules/{role}", ingress=[*rules, {**base, **rule}])
    return mutate


def without(key: str) -> Mutation:
    def mutate(graph: Graph) -> None:
        kept = [d for d in graph if d.key != key]
        assert len(kept) < len(graph)
        graph._nodes = {d.key: d for d in kept}
    return mutate


def without_kind(kind: str) -> Mutation:
    def mutate(graph: Graph) -> None:
        graph._nodes = {d.key: d for d in graph if d.kind != kind}
    return mutate


def port(p: int, protocol: str = "tcp") -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["protocol"] == protocol and r["from_port"] == p


def nothing(graph: Graph) -> None:
    return None


def run_check(fn: CheckFn, spec: ClusterSpec, mutate: Mutation = nothing) -> list[Finding]:
    graph = build(spec)
    mutate(graph)
    return fn(spec, graph)


# -- every check: a failing and a passing case ------------------------------------------------------------
def _lt_tokens(graph: Graph) -> None:
    set_props(graph, "LaunchTemplate/ng-general",
              metadata_options={**graph["LaunchTemplate/ng-general"].props["metadata_options"],
                                "http_tokens": "optional"})


def _lt_unencrypted(graph: Graph) -> None:
    devices = graph["LaunchTemplate/control-plane"].props["block_devices"]
    set_props(graph, "LaunchTemplate/control-plane", block_devices=[{**devices[0], "encrypted": False}])


def _asg_tags(drop: str | None = None, **changed: str) -> Mutation:
    def mutate(graph: Graph) -> None:
        tags = {k: v for k, v in graph["AutoScalingGroup/ng-general"].tags.items() if k != drop}
        set_tags(graph, "AutoScalingGroup/ng-general", {**tags, **changed})
    return mutate


KUBEADM = make_spec()
STORAGE = {"name": "storage", "extraVolumes": [{"size": 100}], "size": {"min": 3, "desired": 3, "max": 3}}

# (id, check, spec, graph mutation, expected check id or None for "no error/warning finding")
CASES: list[tuple[str, CheckFn, ClusterSpec, Mutation, str | None]] = [
    ("pod-network ok", check_pod_network, KUBEADM, nothing, None),
    ("pod-network ok eks", check_pod_network, make_spec(**EKS), nothing, None),
    ("pod-network calico BGP missing", check_pod_network, KUBEADM, drop_rules("nodes", port(179)),
     "pod-network.missing-flow"),
    ("pod-network ip-in-ip to cp missing", check_pod_network, KUBEADM,
     drop_rules("control-plane", lambda r: r["protocol"] == "4"), "pod-network.missing-flow"),
    ("pod-network DNS missing", check_pod_network, KUBEADM, drop_rules("nodes", port(53, "udp")),
     "pod-network.missing-flow"),
    ("pod-network eks pod traffic missing", check_pod_network, make_spec(**EKS),
     drop_rules("nodes", lambda r: r["protocol"] == "-1"), "pod-network.missing-flow"),
    ("admin ssh missing", check_pod_network, KUBEADM, drop_rules("bastion", port(22)), "network.missing-flow"),
    ("vpc-wide rule covers", check_pod_network, KUBEADM,
     add_rule("nodes", protocol="-1", from_port=-1, to_port=-1, cidr="10.0.0.0/16"), None),
    ("control-plane ok", check_control_plane, make_spec(controlPlane={"count": 3}), nothing, None),
    ("control-plane single without backup", check_control_plane, make_spec(etcdBackup=None), nothing,
     "control-plane.no-etcd-backup"),
    ("control-plane schedulable", check_control_plane, make_spec(controlPlane={"count": 3, "schedulable": True}),
     nothing, "control-plane.schedulable"),
    ("storage ok", check_storage, make_spec(addons={"rookCeph": {}}, nodeGroups=[STORAGE]), nothing, None),
    ("storage not enabled", check_storage, KUBEADM, nothing, None),
    ("storage no disks", check_storage, make_spec(addons={"rookCeph": {}}), nothing, "storage.no-disks"),
    ("storage few hosts", check_storage,
     make_spec(addons={"rookCeph": {}}, nodeGroups=[{**STORAGE, "size": {"min": 1, "desired": 1, "max": 3}}]),
     nothing, "storage.few-hosts"),
    ("eks-join ok", check_eks_join, make_spec(**EKS), nothing, None),
    ("eks-join no access entry", check_eks_join, make_spec(**EKS), without("AccessEntry/node"),
     "eks-join.no-access-entry"),
    ("eks-join config map", check_eks_join, make_spec(**{**EKS, "eks": {"authenticationMode": "CONFIG_MAP"}}),
     nothing, None),
    ("eks-join config map without aws-auth", check_eks_join,
     make_spec(**{**EKS, "eks": {"authenticationMode": "CONFIG_MAP"}}),
     without_kind("KubernetesObject"), "eks-join.aws-auth"),
    ("eks-join config map managed only", check_eks_join,
     make_spec(**{**EKS, "eks": {"authenticationMode": "CONFIG_MAP"}, "nodeGroups": EKS["nodeGroups"][1:]}),
     nothing, None),
    ("ip-capacity ok", check_ip_capacity, make_spec(**EKS), nothing, None),
    ("ip-capacity not vpc cni", check_ip_capacity, KUBEADM, nothing, None),
    ("ip-capacity subnet too small", check_ip_capacity,
     make_spec(**{**EKS, "network": {**EKS["network"], "vpc": {"cidr": "10.0.0.0/23"}}}), nothing,
     "ip-capacity.subnet-too-small"),
    ("discovery-tags ok", check_discovery_tags, KUBEADM, nothing, None),
    ("discovery-tags ok eks", check_discovery_tags, make_spec(**EKS), nothing, None),
    ("discovery-tags no cluster tag", check_discovery_tags, KUBEADM,
     _asg_tags(drop="kubernetes.io/cluster/dev"), "discovery-tags.cluster-tag"),
    ("discovery-tags no autoscaler tag", check_discovery_tags, KUBEADM,
     _asg_tags(drop="k8s.io/cluster-autoscaler/enabled"), "discovery-tags.autoscaler"),
    ("discovery-tags node-template differs", check_discovery_tags, KUBEADM,
     _asg_tags(**{"k8s.io/cluster-autoscaler/node-template/label/stale": "x"}), "discovery-tags.node-template"),
    ("discovery-tags spec tags on instances", check_discovery_tags, make_spec(tags={"team": "dsp"}), nothing, None),
    ("discovery-tags spec tags missing", check_discovery_tags, make_spec(tags={"team": "dsp"}),
     lambda g: set_props(g, "LaunchTemplate/ng-general", instance_tags={
         k: v for k, v in g["LaunchTemplate/ng-general"].props["instance_tags"].items() if k != "team"}),
     "discovery-tags.spec-tags"),
    ("addressing ok", check_addressing, KUBEADM, nothing, None),
    ("addressing pod overlaps vpc", check_addressing, make_spec(network={"podCIDR": "10.0.0.0/16"}), nothing,
     "addressing.overlap"),
    ("exposure ok", check_exposure, KUBEADM, nothing, None),
    ("exposure ok eks", check_exposure, make_spec(**EKS), nothing, None),
    ("exposure ssh to world", check_exposure, KUBEADM, add_rule("bastion"), "exposure.world-open"),
    ("exposure all to world", check_exposure, KUBEADM, add_rule("nodes", protocol="-1", from_port=-1, to_port=-1,
                                                                   cidr="::/0"), "exposure.world-open"),
    ("exposure etcd to world", check_exposure, KUBEADM, add_rule("control-plane", from_port=2379, to_port=2380),
     "exposure.world-open"),
    ("exposure eks api open", check_exposure,
     make_spec(**{**EKS, "access": {"apiEndpoint": "public", "adminCIDRs": []}}), nothing, "exposure.world-open"),
    ("exposure nodeports to world", check_exposure, make_spec(network={"nodePortCIDRs": ["0.0.0.0/0"]}), nothing,
     "exposure.world-open"),
    ("exposure nodeports udp to world", check_exposure, KUBEADM,
     add_rule("nodes", protocol="udp", from_port=30000, to_port=32767, cidr="::/0"), "exposure.world-open"),
    ("exposure imdsv1", check_exposure, KUBEADM, _lt_tokens, "exposure.imdsv1"),
    ("exposure unencrypted block device", check_exposure, KUBEADM, _lt_unencrypted, "exposure.unencrypted"),
    ("exposure unencrypted etcd volume", check_exposure, KUBEADM,
     lambda g: set_props(g, "Volume/etcd-0", encrypted=False), "exposure.unencrypted"),
    ("access ok", check_access, make_spec(access={"adminCIDRs": ["100.20.30.0/24"]}), nothing, None),
    ("access documentation range", check_access, KUBEADM, nothing, "access.documentation-range"),
    ("access documentation nodeports", check_access,
     make_spec(access={"adminCIDRs": ["100.20.30.0/24"]}, network={"nodePortCIDRs": ["2001:db8::/48"]}), nothing,
     "access.documentation-range"),
    ("artifacts ok", check_artifacts, KUBEADM, nothing, None),
    ("artifacts china with mirrors", check_artifacts,
     make_spec(region="cn-north-1", mirrors={"imageRepository": "reg.example.cn/k8s",
                                             "packages": "https://pkgs.example.cn"}), nothing, None),
    ("artifacts china", check_artifacts, make_spec(region="cn-northwest-1"), nothing, "artifacts.isolated-region"),
    ("artifacts no nat no mirrors", check_artifacts, make_spec(network={"natGateway": "none"}), nothing,
     "artifacts.no-egress"),
    ("node-groups mixed sizes", check_node_groups,
     make_spec(nodeGroups=[{"name": "general", "instanceTypes": ["m5.large", "m5.xlarge"]}]), nothing,
     "node-groups.mixed-sizes"),
    ("node-groups one size", check_node_groups,
     make_spec(nodeGroups=[{"name": "general", "instanceTypes": ["m5.large", "m5a.large", "m6i.large"]}]), nothing,
     None),
    ("node-groups pattern without cluster", check_node_groups,
     make_spec(nodeGroupNamePattern="{team}-{spec}", nodeGroups=[{"name": "general", "team": "payments"}]),
     nothing, "node-groups.pattern-without-cluster"),
    ("node-groups pattern with cluster", check_node_groups,
     make_spec(nodeGroupNamePattern="{team}-{spec}-{cluster}", nodeGroups=[{"name": "general", "team": "payments"}]),
     nothing, None),
    ("artifacts no nat with mirrors", check_artifacts,
     make_spec(network={"natGateway": "none"}, mirrors={"imageRepository": "r.example/k8s",
                                                        "packages": "https://p.example"}), nothing, None),
    ("quota ok", check_quotas, KUBEADM, nothing, None),
    ("quota security group rules", check_quotas,
     make_spec(network={"nodePortCIDRs": [f"198.18.{i}.0/24" for i in range(30)]}), nothing,
     "quota.security-group-rules"),  # the other quota cases: tests/test_doctor_quotas.py
]


@pytest.mark.parametrize(("fn", "spec", "mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check(fn: CheckFn, spec: ClusterSpec, mutate: Mutation, expected: str | None) -> None:
    findings = run_check(fn, spec, mutate)
    problems = [f for f in findings if f.severity != "info"]
    if expected is None:
        assert problems == [], problems
    else:
        assert expected in {f.check for f in problems}, findings
        assert all(f.message and f.hint for f in problems)


def test_every_registered_check_has_a_failing_and_a_passing_case() -> None:
    names = {c.name for c in CHECKS}
    failing = {c[4].split(".")[0] for c in CASES if c[4]}
    passing = {c[0].split(" ")[0] for c in CASES if c[4] is None}
    assert names <= passing
    assert names <= failing


# -- details --------------------------------------------------------------------------------------------
def test_node_group_outside_the_table_is_a_note_and_mixed_sizes_name_every_type() -> None:
    spec = make_spec(nodeGroups=[{"name": "odd", "instanceTypes": ["zz9.mega"]},
                                 {"name": "mixed", "instanceTypes": ["t3.medium", "m5.large"]}])
    found = {f.check: f for f in check_node_groups(spec, Graph("dev", "kubeadm"))}
    assert found["node-groups.unknown-instance-spec"].severity == "info"
    mixed = found["node-groups.mixed-sizes"]
    assert "t3.medium 2cpu-4gib" in mixed.message and "m5.large 2cpu-8gib" in mixed.message
    assert mixed.resource == "spec.nodeGroups[1].instanceTypes"


def test_missing_flow_names_the_rule_to_add() -> None:
    [finding] = run_check(check_pod_network, KUBEADM,
                          drop_rules("nodes", lambda r: port(179)(r) and "control-plane" in str(r["source_group"])))
    assert finding.severity == "error" and finding.resource == "SecurityGroup/nodes"
    assert "control-plane -> nodes" in finding.message and "calico BGP" in finding.message
    assert finding.hint == ("add an ingress rule to security group nodes: protocol tcp, ports 179, from security "
                            "group control-plane")


def test_matrix_covers_every_role_pair_and_shows_missing_flows() -> None:
    graph = build(KUBEADM)
    rows = matrix(KUBEADM, graph)
    assert all(r.ok for r in rows)
    pairs = {(r.source, r.target) for r in rows}
    roles = ("control-plane", "nodes")
    assert {(a, b) for a in roles for b in roles} <= pairs
    assert ("bastion", "nodes") in pairs
    # One private member has no API load balancer: no flow from or to it is required (its rules are harmless).
    assert not any("lb" in pair for pair in pairs)
    ha = make_spec(controlPlane={"count": 3})
    assert ("lb", "control-plane") in {(r.source, r.target) for r in matrix(ha, build(ha))}
    drop_rules("control-plane", lambda r: r["protocol"] == "4")(graph)
    bad = [r for r in matrix(KUBEADM, graph) if not r.ok]
    assert {(r.source, r.target) for r in bad} == {("nodes", "control-plane"), ("control-plane", "control-plane")}
    assert all("IP-in-IP" in r.purpose for r in bad)
    source, target, _purpose, ok = bad[0]  # a plain 4-tuple too
    assert (source, target, ok) == (bad[0].source, bad[0].target, False)


def test_schedulable_control_plane_says_whether_pod_rules_exist() -> None:
    spec = make_spec(controlPlane={"count": 3, "schedulable": True})
    [ok] = run_check(check_control_plane, spec)
    assert "are present" in ok.message
    [bad] = run_check(check_control_plane, spec, drop_rules("control-plane", port(53, "udp")))
    assert "MISSING" in bad.message and "DNS" in bad.message


def test_single_member_is_noted() -> None:
    findings = run_check(check_control_plane, KUBEADM)
    assert [(f.severity, f.check) for f in findings] == [("info", "control-plane.single-member")]


def test_aws_auth_in_graph_satisfies_config_map_mode() -> None:
    spec = make_spec(**{**EKS, "eks": {"authenticationMode": "CONFIG_MAP"}})
    graph = build(spec)
    without_kind("KubernetesObject")(graph)
    graph.add(Desired("KubernetesObject", "configmap/kube-system/aws-auth", {
        "cluster_name": "dev", "manifest": {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "aws-auth", "namespace": "kube-system"}}}))
    assert check_eks_join(spec, graph) == []


def test_max_pods_above_eni_limit_and_unknown_types() -> None:
    spec = make_spec(**{**EKS, "nodeGroups": [{"name": "big", "instanceTypes": ["m5.large"], "maxPods": 200},
                                              {"name": "odd", "instanceTypes": ["zz9.mega"]}]})
    graph = Graph("dev", "eks")  # the model refuses such a spec; the check needs no graph
    findings = {f.check: f for f in check_ip_capacity(spec, graph)}
    assert findings["ip-capacity.max-pods"].severity == "error" and "(29)" in findings["ip-capacity.max-pods"].message
    assert findings["ip-capacity.unknown-instance-type"].severity == "warning"
    report = check_spec(spec)  # the graph cannot be built: reported, graph-free checks still run
    assert {"spec.build", "ip-capacity.max-pods"} <= report.checks() and report.has_errors


def test_subnet_finding_suggests_fixes() -> None:
    spec = make_spec(**{**EKS, "network": {**EKS["network"], "vpc": {"cidr": "10.0.0.0/23"}}})
    [finding] = [f for f in check_ip_capacity(spec, build(spec)) if f.check == "ip-capacity.subnet-too-small"]
    assert "privateSubnetPrefix" in finding.hint and "prefixDelegation" in finding.hint
    delegated = make_spec(**{**EKS, "network": {**EKS["network"], "vpc": {"cidr": "10.0.0.0/23"}},
                             "eks": {"prefixDelegation": True}})
    assert "prefixDelegation" not in next(f.hint for f in check_ip_capacity(delegated, build(delegated))
                                          if f.check == "ip-capacity.subnet-too-small")


def test_world_access_acknowledged_is_a_warning() -> None:
    spec = make_spec(access={"adminCIDRs": ["0.0.0.0/0"], "allowWorldAccess": True})
    findings = run_check(check_exposure, spec)
    assert findings and {f.severity for f in findings} == {"warning"}


def test_report_shape_and_order() -> None:
    report = Report([Finding("info", "a.b", "m"), Finding("error", "c.d", "m", "r", "h"),
                     Finding("warning", "e.f", "m")])
    assert [f.severity for f in report.findings] == list(SEVERITIES)
    assert report.summary() == {"error": 1, "warning": 1, "info": 1} and report.has_errors
    data = report.to_dict()
    assert set(data) == {"findings", "summary"}
    assert data["findings"][0] == {"severity": "error", "check": "c.d", "message": "m", "resource": "r", "hint": "h"}
    assert not Report([]).has_errors


@pytest.mark.parametrize("example", ["dev.yaml", "ha.yaml", "eks.yaml"])
def test_examples_have_no_errors(example: str) -> None:
    from kubeaws.spec.load import load_spec

    assert not check_spec(load_spec(EXAMPLES / example)).has_errors


# -- CLI ------------------------------------------------------------------------------------------------
def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """test root"""

    return app


def invoke(*args: str) -> Any:
    return CliRunner().invoke(_app(), ["doctor", *args])


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return str(path)


ERROR_SPEC = (EXAMPLES / "dev.yaml").read_text()


def _failing_spec(tmp_path: Path) -> str:
    import yaml

    doc = yaml.safe_load(ERROR_SPEC)
    doc["spec"]["etcdBackup"] = None
    doc["spec"].setdefault("controlPlane", {})["count"] = 1
    return write(tmp_path, yaml.safe_dump(doc))


def test_cli_exit_codes(tmp_path: Path) -> None:
    assert invoke("-f", str(EXAMPLES / "eks.yaml")).exit_code == 0
    result = invoke("-f", _failing_spec(tmp_path))
    assert result.exit_code == 1, result.output
    assert "control-plane.no-etcd-backup" in result.output
    assert invoke("-f", write(tmp_path, "apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\n")).exit_code == 2
    assert invoke("-f", str(tmp_path / "missing.yaml")).exit_code == 2


def test_cli_json_shape(tmp_path: Path) -> None:
    result = invoke("-f", _failing_spec(tmp_path), "--output", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == {"findings", "summary"}
    assert data["summary"]["error"] >= 1
    assert {"severity", "check", "message", "resource", "hint"} == set(data["findings"][0])


def test_cli_text_has_findings_and_matrix() -> None:
    result = invoke("-f", str(EXAMPLES / "ha.yaml"))
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output
    assert "Reachability between roles" in result.output and "✓" in result.output and "✗" not in result.output
    assert "cilium VXLAN" in result.output


def test_cli_static_check_never_waits_nor_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The static doctor is pure computation on the spec (what makes it take seconds, with no AWS account): any
    sleep or network connection during the run fails it. Checked as behaviour, never against the clock."""
    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("the static doctor slept or opened a network connection")

    monkeypatch.setattr(time, "sleep", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    result = invoke("-f", str(EXAMPLES / "ha.yaml"))
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_cli_does_not_import_boto3() -> None:
    code = ("import sys, typer\nfrom typer.testing import CliRunner\nfrom kubeaws.cli.doctor import register\n"
            "app = typer.Typer()\nregister(app)\napp.callback()(lambda: None)\n"
            f"r = CliRunner().invoke(app, ['doctor', '-f', {str(EXAMPLES / 'ha.yaml')!r}])\n"
            "assert r.exit_code == 0, r.output\nprint('boto3' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_plan_and_apply_run_the_doctor_first(tmp_path: Path, endpoint: str) -> None:
    """`plan` and `apply` refuse a spec with doctor errors (exit 1, nothing planned or created) unless --force."""
    import yaml

    from kubeaws.cli.main import app as main_app

    doc = make_spec(addons={"rookCeph": {}}).model_dump(by_alias=True, exclude_none=True)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    runner = CliRunner()
    refused = runner.invoke(main_app, ["plan", "-f", str(path)])
    assert refused.exit_code == 1, refused.output
    assert "storage" in refused.output and "--force" in refused.output
    refused = runner.invoke(main_app, ["apply", "-f", str(path), "--yes"])
    assert refused.exit_code == 1 and "Apply complete" not in refused.output
    forced = runner.invoke(main_app, ["plan", "-f", str(path), "--force", "--output", "json"])
    assert forced.exit_code == 0, forced.output
    assert '"summary"' in forced.stdout
