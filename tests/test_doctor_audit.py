"""The doctor audit (docs/doctor.md, "Audit"): the table stays honest (every check id the doctor can emit is a
row, every test a row names exists), and the static checks run on a spec that brings its VPC, subnets and
security groups from the moto server, each with a failing and a passing case (no false alarm, no blind spot
when the network is the user's).

The check ids are read from the doctor's source (the string constants of `Finding(severity, check, ...)`
calls and of the local helpers that take the check first), so a new check without a row fails here.

moto adaptations: moto reports a new /24 subnet's AvailableIpAddressCount as 251 (AWS: the same), which
sizes the ip-capacity cases.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeaws.aws.session import AwsContext
from kubeaws.doctor import check_spec
from kubeaws.doctor.brought import brought_facts
from kubeaws.doctor.static import check_artifacts
from kubeaws.model.graph import Graph
from tests.conftest import make_ctx, reset_moto
from tests.helpers import make_spec

ROOT = Path(__file__).resolve().parent.parent
DOCTOR = ROOT / "src" / "kubeaws" / "doctor"
DOC = ROOT / "docs" / "doctor.md"
CHECK_ID = re.compile(r"^[a-z]+(?:-[a-z]+)*\.[a-z0-9]+(?:-[a-z0-9]+)*$")
#: A table row: | `check.id` | what | failing | passing | tests |
ROW = re.compile(r"^\| `(?P<check>[^`]+)` \|(?P<what>[^|]+)\|(?P<failing>[^|]+)\|(?P<passing>[^|]+)\|"
                 r"(?P<tests>[^|]+)\|$")
TEST_REF = re.compile(r"`(?P<file>test_[a-z_]+)::(?P<test>test_[a-z0-9_]+)(?:\[(?P<case>[^\]]+)\])?`")


def emitted_check_ids() -> set[str]:
    """Every check id in the doctor's source: the 2nd argument of `Finding(...)`, the 1st of other calls."""
    found: set[str] = set()
    for path in DOCTOR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or not node.args:
                continue
            arg = node.args[1] if node.func.id == "Finding" and len(node.args) > 1 else node.args[0]
            found |= {c.value for c in ast.walk(arg)
                      if isinstance(c, ast.Constant) and isinstance(c.value, str) and CHECK_ID.match(c.value)}
    return found


def audit_rows() -> dict[str, dict[str, str]]:
    text = DOC.read_text()
    section = text[text.index("## Audit"):]
    rows = {}
    for line in section.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m["check"]] = {k: v.strip() for k, v in m.groupdict().items()}
    return rows


def test_every_check_the_doctor_can_emit_is_in_the_audit_table() -> None:
    ids = emitted_check_ids()
    assert len(ids) > 40 and "exposure.world-open" in ids and "etcd.no-snapshot" in ids  # the scan works
    rows = audit_rows()
    assert sorted(ids - set(rows)) == [], "check ids missing from the audit table in docs/doctor.md"
    assert sorted(set(rows) - ids) == [], "audit rows of check ids the doctor no longer emits"


def test_every_test_the_audit_table_names_exists() -> None:
    rows = audit_rows()
    for check, row in rows.items():
        refs = list(TEST_REF.finditer(row["tests"]))
        assert refs, f"{check}: no test named"
        assert row["failing"] and row["passing"], check
        for ref in refs:
            source = (ROOT / "tests" / f"{ref['file']}.py").read_text()
            assert re.search(rf"^def {ref['test']}\(", source, re.M), f"{check}: {ref.group(0)} does not exist"
            if ref["case"]:
                assert f'"{ref["case"]}"' in source, f"{check}: case {ref['case']!r} not in {ref['file']}"


# -- every static check with brought resources, on the moto server --------------------------------------------
@pytest.fixture(scope="module")
def brought(moto_server: str) -> Iterator[tuple[AwsContext, dict[str, Any]]]:
    """A VPC 10.30.0.0/16 with a public and two private /24 subnets, a subnet of another VPC, and security
    groups: `nodes` (everything the nodes need with flannel), `nodes-world` (the same, NodePorts open to the
    world), `nodes-missing` (flannel's VXLAN from the control plane missing), `cp` (all from the VPC) and
    `cp-narrow` (from the nodes, the bastion and itself only: no rule admits a load balancer)."""
    reset_moto(moto_server)
    ctx = make_ctx(moto_server)
    ec2 = ctx.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    other = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]

    def subnet(vpc_id: str, cidr: str, az: str) -> str:
        return str(ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"])

    ids: dict[str, Any] = {"vpc": vpc, "pub": subnet(vpc, "10.30.0.0/24", "us-east-1a"),
                           "priv": [subnet(vpc, "10.30.10.0/24", "us-east-1a"),
                                    subnet(vpc, "10.30.11.0/24", "us-east-1b")],
                           "foreign": subnet(other, "10.40.11.0/24", "us-east-1b")}
    for name in ("nodes", "nodes-world", "nodes-missing", "cp", "cp-narrow"):
        ids[name] = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]

    def allow(group: str, protocol: str, lo: int, hi: int, *, cidr: str = "", groups: tuple[str, ...] = ()) -> None:
        ec2.authorize_security_group_ingress(GroupId=ids[group], IpPermissions=[{
            "IpProtocol": protocol, "FromPort": lo, "ToPort": hi, "IpRanges": [{"CidrIp": cidr}] if cidr else [],
            "UserIdGroupPairs": [{"GroupId": ids[g]} for g in groups]}])

    for group in ("nodes", "nodes-world", "nodes-missing"):
        allow(group, "tcp", 0, 65535, cidr="10.30.0.0/16")
        allow(group, "udp", 30000, 32767, cidr="10.30.0.0/16")
        allow(group, "udp", 53, 53, groups=(group, "cp", "cp-narrow"))
        allow(group, "udp", 8472, 8472, groups=(group,) if group == "nodes-missing" else (group, "cp", "cp-narrow"))
    allow("nodes-world", "tcp", 30000, 32767, cidr="0.0.0.0/0")
    ec2.authorize_security_group_ingress(GroupId=ids["cp"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.30.0.0/16"}]}])
    for lo, hi in ((6443, 6443), (2379, 2380), (10250, 10250), (10257, 10257), (10259, 10259), (53, 53)):
        allow("cp-narrow", "tcp", lo, hi, groups=("cp-narrow", "nodes"))
    for lo, hi in ((8472, 8472), (53, 53)):
        allow("cp-narrow", "udp", lo, hi, groups=("cp-narrow", "nodes"))
    for protocol in ("tcp", "udp"):
        allow("cp-narrow", protocol, 30000, 32767, cidr="10.30.0.0/16")  # NodePorts: network.nodePortCIDRs
    allow("cp-narrow", "tcp", 22, 22, cidr="10.30.0.0/24")  # the bastion's public subnet
    allow("cp-narrow", "tcp", 6443, 6443, cidr="10.30.0.0/24")
    yield ctx, ids


def _spec(ids: dict[str, Any], nodes: str = "nodes", cp: str = "cp", *, private: list[str] | None = None,
          **extra: Any) -> Any:
    network: dict[str, Any] = {
        "vpc": {"cidr": None, "id": ids["vpc"]}, "availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "flannel",
        "subnets": {"public": [ids["pub"]], "private": private or ids["priv"]},
        "securityGroups": {"nodes": ids[nodes], "controlPlane": ids[cp]}}
    network.update(extra.pop("network", {}))
    access = {"adminCIDRs": ["100.20.30.0/24"], "bastion": {"enabled": True}, **extra.pop("access", {})}
    return make_spec(network=network, access=access, **extra)


EKS_BIG: dict[str, Any] = {"mode": "eks", "network": {"cni": "aws-vpc-cni", "securityGroups": None},
           "nodeGroups": [{"name": "big", "instanceTypes": ["m5.large"], "size": {"min": 1, "desired": 1, "max": 20}}]}
EKS_FITS = {**EKS_BIG, "nodeGroups": [{**EKS_BIG["nodeGroups"][0], "size": {"min": 1, "desired": 1, "max": 10}}]}
STORAGE = {"name": "storage", "extraVolumes": [{"size": 100}], "size": {"min": 3, "desired": 3, "max": 3}}

# (case id, spec arguments (nodes group, control-plane group, overrides), the check expected or None: no error and
# no warning at all from every static check)
BROUGHT_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("brought ok", {}, None),
    ("brought pod flow missing", {"nodes": "nodes-missing"}, "pod-network.missing-flow"),
    ("brought one member without load balancer", {"cp": "cp-narrow"}, None),
    ("brought load balancer flow missing", {"cp": "cp-narrow", "controlPlane": {"count": 3}},
     "network.missing-flow"),
    ("brought nodeports open to the world", {"nodes": "nodes-world"}, "exposure.world-open"),
    ("brought spec nodeports open to the world", {"network": {"nodePortCIDRs": ["0.0.0.0/0"]}},
     "exposure.world-open"),
    ("brought documentation admin range", {"access": {"adminCIDRs": ["203.0.113.0/24"]}},
     "access.documentation-range"),
    ("brought subnet of another vpc", {"private": "foreign"}, "addressing.brought-subnet-vpc"),
    ("brought pod range overlaps the vpc", {"network": {"podCIDR": "10.30.128.0/17"}}, "addressing.overlap"),
    ("brought subnets too small", EKS_BIG, "ip-capacity.subnet-too-small"),
    ("brought subnets large enough", EKS_FITS, None),
    ("brought vpc public endpoint", {"access": {"apiEndpoint": "public"}}, "control-plane.public-endpoint-nat"),
    ("brought single member without backup", {"etcdBackup": None}, "control-plane.no-etcd-backup"),
    ("brought storage without disks", {"addons": {"rookCeph": {}}}, "storage.no-disks"),
    ("brought storage with disks", {"addons": {"rookCeph": {}}, "nodeGroups": [STORAGE]}, None),
    ("brought mixed sizes", {"nodeGroups": [{"name": "general", "instanceTypes": ["m5.large", "m5.xlarge"]}]},
     "node-groups.mixed-sizes"),
    ("brought eks config map", {**EKS_FITS, "eks": {"authenticationMode": "CONFIG_MAP"}}, None),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in BROUGHT_CASES], ids=[c[0] for c in BROUGHT_CASES])
def test_static_checks_with_brought_resources(brought: tuple[AwsContext, dict[str, Any]], args: dict[str, Any],
                                              expected: str | None) -> None:
    ctx, ids = brought
    args = dict(args)
    nodes, cp = args.pop("nodes", "nodes"), args.pop("cp", "cp")
    private = [ids["priv"][0], ids["foreign"]] if args.pop("private", None) == "foreign" else None
    spec = _spec(ids, nodes, cp, private=private, **args)
    facts = brought_facts(spec, ctx)
    assert facts is not None and facts.unreadable == []
    report = check_spec(spec, facts=facts)
    problems = [f for f in report.findings if f.severity != "info"]
    if expected is None:
        assert problems == [], problems
    else:
        assert expected in {f.check for f in problems}, report.findings
        assert all(f.message and f.hint for f in problems)


def test_brought_vpc_without_nat_is_a_note_not_an_error() -> None:
    network = {"vpc": {"cidr": None, "id": "vpc-0a1b2c3d4e5f60789"}, "availabilityZones": ["us-east-1a"],
               "subnets": {"public": ["subnet-0000000000000000a"], "private": ["subnet-0000000000000000b"]}}
    assert check_artifacts(make_spec(), Graph("dev", "kubeadm")) == []  # a new VPC: kubeaws makes its NAT
    [note] = check_artifacts(make_spec(network=network), Graph("dev", "kubeadm"))  # the user's routing
    assert (note.severity, note.check) == ("info", "artifacts.brought-egress")


def test_a_group_without_its_auto_scaling_group_is_missing() -> None:
    from kubeaws.doctor.live import Inventory, check_groups
    from kubeaws.model import build

    spec = make_spec()
    graph = build(spec)
    names = [str(d.props["name"]) for d in graph.of_kind("AutoScalingGroup")]
    assert len(names) == 2
    every = Inventory("dev", asgs=[{"AutoScalingGroupName": n} for n in names])
    assert check_groups(spec, graph, every) == []
    [missing] = check_groups(spec, graph, Inventory("dev", asgs=[{"AutoScalingGroupName": names[0]}]))
    assert (missing.severity, missing.check) == ("error", "live.group-missing") and names[1] in missing.message
