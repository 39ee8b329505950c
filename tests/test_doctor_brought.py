"""Doctor checks of brought resources: pure checks over hand-built `BroughtFacts` (brought security groups'
actual rules, brought subnets' free addresses / VPC / AZ, unreadable IDs), `brought_facts` staying import-light
when nothing is brought, and one round trip against the moto server (a brought group lacking the CNI's port,
then the rule added with the command the finding gives).

moto adaptations: moto reports AvailableIpAddressCount as the subnet size minus AWS's 5 reserved addresses
(minus its own ENIs), like AWS for an empty subnet; it answers an unknown group ID with InvalidGroup.NotFound.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from kubeaws.aws.session import AwsContext
from kubeaws.doctor import check_spec
from kubeaws.doctor.brought import BroughtFacts, GroupFacts, SubnetFacts, Unreadable, VpcFacts, brought_facts
from kubeaws.doctor.capacity import check_ip_capacity
from kubeaws.doctor.network import check_addressing, check_exposure, check_pod_network, matrix
from kubeaws.errors import KubeawsError
from kubeaws.model import build
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

ROOT = Path(__file__).resolve().parent.parent
VPC = "vpc-0a1b2c3d4e5f60789"
PUB = "subnet-0000000000000000a"
PRIV = ["subnet-0000000000000000b", "subnet-0000000000000000c"]
NODES_SG = "sg-0aaaaaaaaaaaaaaa1"
CP_SG = "sg-0ccccccccccccccc2"
SUBNETS = {PUB: ("us-east-1a", "10.20.0.0/24"), PRIV[0]: ("us-east-1a", "10.20.10.0/24"),
           PRIV[1]: ("us-east-1b", "10.20.11.0/24")}


def brought_spec(groups: dict[str, str] | None = None, **extra: Any) -> ClusterSpec:
    network = {"vpc": {"cidr": None, "id": VPC}, "availabilityZones": ["us-east-1a", "us-east-1b"],
               "subnets": {"public": [PUB], "private": PRIV}, "cni": "flannel",
               "securityGroups": groups if groups is not None else {"nodes": NODES_SG, "controlPlane": CP_SG}}
    return make_spec(network={**network, **extra.pop("network", {})}, **extra)


def perm(protocol: str, lo: int | None = None, hi: int | None = None, *, groups: tuple[str, ...] = (),
         cidrs: tuple[str, ...] = ()) -> dict[str, Any]:
    """One AWS IpPermission."""
    p: dict[str, Any] = {"IpProtocol": protocol, "UserIdGroupPairs": [{"GroupId": g} for g in groups],
                         "IpRanges": [{"CidrIp": c} for c in cidrs]}
    if lo is not None:
        p.update(FromPort=lo, ToPort=hi if hi is not None else lo)
    return p


ALL_FROM_VPC = perm("-1", cidrs=("10.20.0.0/16",))


def facts_with(nodes: list[dict[str, Any]], cp: list[dict[str, Any]] | None = None, *,
               available: int = 250, subnet_vpc: str = VPC, **kw: Any) -> BroughtFacts:
    """Facts for `brought_spec`: both brought groups in the VPC with the given rules."""
    return BroughtFacts(
        region="us-east-1", vpc=VpcFacts(VPC, ("10.20.0.0/16",)),
        subnets={sid: SubnetFacts(sid, subnet_vpc, az, cidr, available) for sid, (az, cidr) in SUBNETS.items()},
        groups={NODES_SG: GroupFacts.from_aws(NODES_SG, VPC, nodes),
                CP_SG: GroupFacts.from_aws(CP_SG, VPC, cp if cp is not None else [ALL_FROM_VPC])}, **kw)


# Everything the nodes group needs with flannel, except flannel's udp 8472 from the control plane.
NODES_RULES = [perm("tcp", 0, 65535, cidrs=("10.20.0.0/16",)), perm("udp", 30000, 32767, cidrs=("10.20.0.0/16",)),
               perm("udp", 53, groups=(NODES_SG, CP_SG)), perm("udp", 8472, groups=(NODES_SG,))]


def errors(findings: list[Any]) -> list[Any]:
    return [f for f in findings if f.severity == "error"]


# -- pod network: the brought groups' actual rules -----------------------------------------------------------
def test_brought_groups_have_no_managed_rules_and_are_unchecked_without_facts() -> None:
    spec = brought_spec()
    findings = check_pod_network(spec, build(spec))
    assert errors(findings) == []
    [info] = findings
    assert info.check == "pod-network.brought-unchecked" and NODES_SG in info.message and CP_SG in info.message


def test_missing_cni_port_in_brought_nodes_group_is_named_with_the_command() -> None:
    spec = brought_spec()
    [finding] = errors(check_pod_network(spec, build(spec), facts_with(NODES_RULES)))
    assert finding.check == "pod-network.missing-flow" and finding.resource == "SecurityGroup/nodes"
    assert finding.message == f"nodes SG {NODES_SG} lacks ingress udp 8472 from {CP_SG} (flannel VXLAN)"
    assert finding.hint == (f"aws ec2 authorize-security-group-ingress --region us-east-1 --group-id {NODES_SG} "
                            f"--protocol udp --port 8472 --source-group {CP_SG}")
    rows = {(r.source, r.target, r.purpose): r.ok for r in matrix(spec, build(spec), facts_with(NODES_RULES))}
    assert rows[("control-plane", "nodes", "flannel VXLAN (udp 8472)")] is False
    assert rows[("nodes", "nodes", "flannel VXLAN (udp 8472)")] is True  # the self-reference


def test_the_missing_rule_added_passes() -> None:
    spec = brought_spec()
    fixed = [*NODES_RULES, perm("udp", 8472, groups=(CP_SG,))]
    assert errors(check_pod_network(spec, build(spec), facts_with(fixed))) == []


def test_all_traffic_from_the_source_group_allows_every_port() -> None:
    spec = brought_spec()
    rules = [*NODES_RULES[:3], perm("-1", groups=(NODES_SG, CP_SG))]
    assert errors(check_pod_network(spec, build(spec), facts_with(rules))) == []


def test_cidr_holding_the_source_subnets_allows_and_a_narrower_one_does_not() -> None:
    spec = brought_spec()
    private_only = [*NODES_RULES[:3], perm("udp", 8472, cidrs=("10.20.10.0/23",))]  # both private subnets
    assert errors(check_pod_network(spec, build(spec), facts_with(private_only))) == []
    one_subnet = [*NODES_RULES[:3], perm("udp", 8472, cidrs=("10.20.10.0/24",))]
    missing = errors(check_pod_network(spec, build(spec), facts_with(one_subnet)))
    assert {f.message.split(" from ")[1] for f in missing} == {f"{NODES_SG} (flannel VXLAN)",
                                                               f"{CP_SG} (flannel VXLAN)"}


def test_port_ranges_and_protocols_are_compared_exactly() -> None:
    spec = brought_spec()
    covering = [*NODES_RULES[:3], perm("udp", 8000, 9000, groups=(NODES_SG, CP_SG))]
    assert errors(check_pod_network(spec, build(spec), facts_with(covering))) == []
    short = [*NODES_RULES[:3], perm("udp", 8473, 9000, groups=(NODES_SG, CP_SG))]
    wrong_protocol = [*NODES_RULES[:3], perm("tcp", 8472, groups=(NODES_SG, CP_SG))]
    for rules in (short, wrong_protocol):
        found = errors(check_pod_network(spec, build(spec), facts_with(rules)))
        assert {f.message.split(" (")[0].split(" lacks ingress ")[1] for f in found} == {
            f"udp 8472 from {NODES_SG}", f"udp 8472 from {CP_SG}"}


def test_one_group_for_both_roles_counts_its_self_reference() -> None:
    spec = brought_spec({"nodes": NODES_SG, "controlPlane": NODES_SG})
    rules = [perm("-1", groups=(NODES_SG,)), perm("tcp", 0, 65535, cidrs=("10.20.0.0/16",)),
             perm("udp", 30000, 32767, cidrs=("10.20.0.0/16",))]
    facts = facts_with(rules)
    assert errors(check_pod_network(spec, build(spec), facts)) == []
    without_self = facts_with(rules[1:])
    found = errors(check_pod_network(spec, build(spec), without_self))
    assert f"control-plane SG {NODES_SG} lacks ingress udp 8472 from {NODES_SG} (flannel VXLAN)" in {
        f.message for f in found}


def test_owned_source_group_not_created_yet_needs_its_subnets_addresses() -> None:
    spec = brought_spec({"nodes": NODES_SG})  # the control plane's group is kubeaws'
    rules = [*NODES_RULES[:2], perm("udp", 53, cidrs=("10.20.0.0/16",)), perm("udp", 8472, groups=(NODES_SG,))]
    [finding] = errors(check_pod_network(spec, build(spec), facts_with(rules)))
    assert finding.message.startswith(f"nodes SG {NODES_SG} lacks ingress udp 8472 from 10.20.10.0/24, "
                                      "10.20.11.0/24 (flannel VXLAN) (kubeaws creates the control-plane group")
    assert finding.hint.count("--cidr") == 2 and " && " in finding.hint
    existing = facts_with(rules, owned_groups={"control-plane": "sg-0eeeeeeeeeeeeeee3"})
    [finding] = errors(check_pod_network(spec, build(spec), existing))
    assert finding.hint.endswith("--protocol udp --port 8472 --source-group sg-0eeeeeeeeeeeeeee3")


def test_unreadable_and_foreign_vpc_groups_are_errors_naming_the_id() -> None:
    spec = brought_spec()
    facts = facts_with(NODES_RULES)
    del facts.groups[CP_SG]
    facts.unreadable.append(Unreadable("SecurityGroup", CP_SG, "InvalidGroup.NotFound: no such group"))
    found = errors(check_pod_network(spec, build(spec), facts))
    assert any(f.check == "pod-network.brought-unreadable" and CP_SG in f.message for f in found)
    facts = facts_with([*NODES_RULES, perm("udp", 8472, groups=(CP_SG,))])
    facts.groups[NODES_SG] = GroupFacts(NODES_SG, "vpc-0ffffffffffffffff", "", facts.groups[NODES_SG].ingress)
    [wrong] = errors(check_pod_network(spec, build(spec), facts))
    assert wrong.check == "pod-network.brought-wrong-vpc" and "vpc-0ffffffffffffffff" in wrong.message


def test_world_open_brought_rule_is_an_exposure() -> None:
    spec = brought_spec()
    facts = facts_with([*NODES_RULES, perm("tcp", 22, cidrs=("0.0.0.0/0",))])
    assert "exposure.world-open" in {f.check for f in errors(check_exposure(spec, build(spec), facts))}
    assert errors(check_exposure(spec, build(spec), facts_with(NODES_RULES))) == []


# -- brought subnets ---------------------------------------------------------------------------------------
EKS_GROUPS = {"nodeGroups": [{"name": "big", "instanceTypes": ["m5.large"], "size": {"min": 1, "desired": 1,
                                                                                      "max": 20}}]}


def test_free_ips_of_brought_subnets_use_the_real_counts() -> None:
    spec = brought_spec({}, mode="eks", network={"cni": "aws-vpc-cni"}, **EKS_GROUPS)
    # m5.large: 29 pods + 1 node address = 30 per node; 20 nodes over 2 subnets: 300 per subnet.
    [finding] = errors(check_ip_capacity(spec, build(spec), facts_with([], available=120)))
    assert finding.check == "ip-capacity.subnet-too-small" and "300" in finding.message
    assert "has only 120 free" in finding.message and finding.resource.startswith("Subnet/subnet-")
    assert errors(check_ip_capacity(spec, build(spec), facts_with([], available=300))) == []
    assert [f.check for f in check_ip_capacity(spec, build(spec))] == ["ip-capacity.brought-subnets"]  # no facts


def test_free_ips_with_an_overlay_cni_count_nodes() -> None:
    spec = brought_spec({}, **EKS_GROUPS)  # flannel: 20 nodes + 1 control plane over 2 subnets
    assert errors(check_ip_capacity(spec, build(spec), facts_with([], available=10)))
    assert errors(check_ip_capacity(spec, build(spec), facts_with([], available=11))) == []


def test_subnet_in_another_vpc_or_az_and_unreadable_subnets() -> None:
    spec = brought_spec()
    assert errors(check_addressing(spec, build(spec), facts_with(NODES_RULES))) == []
    found = errors(check_addressing(spec, build(spec), facts_with(NODES_RULES, subnet_vpc="vpc-0999")))
    assert {f.check for f in found} == {"addressing.brought-subnet-vpc"} and len(found) == 3
    narrow = brought_spec(network={"availabilityZones": ["us-east-1a"]})
    [az] = errors(check_addressing(narrow, build(narrow), facts_with(NODES_RULES)))
    assert az.check == "addressing.brought-subnet-az" and PRIV[1] in az.message
    facts = facts_with(NODES_RULES)
    facts.unreadable.append(Unreadable("Subnet", "subnet-0dead", "UnauthorizedOperation: not allowed"))
    [gone] = errors(check_addressing(spec, build(spec), facts))
    assert gone.check == "addressing.brought-unreadable" and "subnet-0dead" in gone.message


def test_pod_range_overlapping_a_secondary_vpc_cidr() -> None:
    spec = brought_spec(network={"podCIDR": "100.64.0.0/16"})
    facts = facts_with(NODES_RULES)
    assert errors(check_addressing(spec, build(spec), facts)) == []
    facts.vpc = VpcFacts(VPC, ("10.20.0.0/16", "100.64.0.0/16"))
    [overlap] = errors(check_addressing(spec, build(spec), facts))
    assert overlap.check == "addressing.overlap" and "100.64.0.0/16" in overlap.message


def test_check_spec_passes_facts_to_the_checks() -> None:
    spec = brought_spec()
    fixed = [*NODES_RULES, perm("udp", 8472, groups=(CP_SG,))]
    assert "pod-network.missing-flow" in check_spec(spec, facts=facts_with(NODES_RULES)).checks()
    assert not check_spec(spec, facts=facts_with(fixed)).has_errors
    assert "pod-network.brought-unchecked" in check_spec(spec).checks()


def test_nothing_brought_means_no_facts_no_client_and_no_boto3() -> None:
    code = ("import sys\nfrom kubeaws.doctor.brought import brought_facts\nfrom tests.helpers import make_spec\n"
            "def boom():\n    raise AssertionError('no AWS context may be made')\n"
            "print(brought_facts(make_spec(), boom), 'boto3' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "None False"


def test_no_aws_access_makes_every_brought_id_unreadable() -> None:
    def no_access() -> AwsContext:
        raise KubeawsError("no credentials found")

    facts = brought_facts(brought_spec(), no_access)
    assert facts is not None and facts.groups == {} and facts.subnets == {}
    assert {(u.kind, u.id) for u in facts.unreadable} == {
        ("Vpc", VPC), ("Subnet", PUB), *(("Subnet", s) for s in PRIV), ("SecurityGroup", NODES_SG),
        ("SecurityGroup", CP_SG)}
    errors_ = check_spec(brought_spec(), facts=facts).by_severity("error")
    assert {f.check for f in errors_} == {"pod-network.brought-unreadable", "addressing.brought-unreadable"}
    assert all("no credentials found" in f.message for f in errors_)


# -- against the moto server ---------------------------------------------------------------------------------
def _bring(ctx: AwsContext) -> tuple[str, str, list[str], str, str]:
    ec2 = ctx.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    pub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    priv = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"us-east-1{az}")
            ["Subnet"]["SubnetId"] for i, az in ((10, "a"), (11, "b"))]
    nodes = ec2.create_security_group(GroupName="team-nodes", Description="nodes", VpcId=vpc)["GroupId"]
    cp = ec2.create_security_group(GroupName="team-cp", Description="control plane", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=cp, IpPermissions=[perm("-1", cidrs=("10.30.0.0/16",))])
    ec2.authorize_security_group_ingress(GroupId=nodes, IpPermissions=[
        perm("tcp", 0, 65535, cidrs=("10.30.0.0/16",)), perm("udp", 30000, 32767, cidrs=("10.30.0.0/16",)),
        perm("udp", 53, groups=(nodes, cp)), perm("udp", 8472, groups=(nodes,))])
    return vpc, pub, priv, nodes, cp


def test_brought_facts_from_moto_find_the_missing_cni_rule_then_pass(ctx: AwsContext) -> None:
    vpc, pub, priv, nodes, cp = _bring(ctx)
    spec = make_spec(network={"vpc": {"cidr": None, "id": vpc}, "availabilityZones": ["us-east-1a", "us-east-1b"],
                              "subnets": {"public": [pub], "private": priv}, "cni": "flannel",
                              "securityGroups": {"nodes": nodes, "controlPlane": cp}})
    with ctx.counting() as log:
        facts = brought_facts(spec, lambda: ctx)
    assert log.mutating() == 0
    assert facts is not None and facts.unreadable == []
    assert facts.vpc == VpcFacts(vpc, ("10.30.0.0/16",))
    assert {s.id: (s.az, s.cidr, s.vpc_id) for s in facts.subnets.values()} == {
        pub: ("us-east-1a", "10.30.0.0/24", vpc), priv[0]: ("us-east-1a", "10.30.10.0/24", vpc),
        priv[1]: ("us-east-1b", "10.30.11.0/24", vpc)}
    assert all(0 < s.available_ips <= 251 for s in facts.subnets.values())
    report = check_spec(spec, facts=facts)
    [missing] = [f for f in report.findings if f.check == "pod-network.missing-flow"]
    assert missing.message == f"nodes SG {nodes} lacks ingress udp 8472 from {cp} (flannel VXLAN)"
    # Run the fix exactly as the hint says (its parameters, through boto3).
    args = shlex.split(missing.hint)
    opt = {args[i]: args[i + 1] for i in range(3, len(args) - 1, 2)}
    assert opt["--group-id"] == nodes and opt["--region"] == "us-east-1"
    ctx.client("ec2").authorize_security_group_ingress(
        GroupId=opt["--group-id"], IpPermissions=[perm(opt["--protocol"], int(opt["--port"]),
                                                       groups=(opt["--source-group"],))])
    report = check_spec(spec, facts=brought_facts(spec, ctx))
    assert not [f for f in report.findings if f.check.startswith("pod-network")], report.findings
    assert not report.has_errors, report.by_severity("error")


def test_missing_brought_ids_are_findings_not_tracebacks(ctx: AwsContext) -> None:
    vpc, pub, priv, nodes, _ = _bring(ctx)
    ghost_sg, ghost_subnet = "sg-0123456789abcdef0", "subnet-0123456789abcdef0"
    spec = make_spec(network={"vpc": {"cidr": None, "id": vpc}, "availabilityZones": [],
                              "subnets": {"public": [pub], "private": [*priv, ghost_subnet]}, "cni": "flannel",
                              "securityGroups": {"nodes": nodes, "controlPlane": ghost_sg}})
    facts = brought_facts(spec, ctx)
    assert facts is not None
    assert {(u.kind, u.id) for u in facts.unreadable} == {("SecurityGroup", ghost_sg), ("Subnet", ghost_subnet)}
    assert set(facts.subnets) == {pub, *priv} and set(facts.groups) == {nodes}
    found = {f.check: f for f in check_spec(spec, facts=facts).by_severity("error")}
    assert ghost_sg in found["pod-network.brought-unreadable"].message
    assert ghost_subnet in found["addressing.brought-unreadable"].message


def test_access_denied_is_a_finding_naming_the_ids(ctx: AwsContext) -> None:
    vpc, pub, priv, nodes, cp = _bring(ctx)
    spec = make_spec(network={"vpc": {"cidr": None, "id": vpc}, "availabilityZones": [],
                              "subnets": {"public": [pub], "private": priv}, "cni": "flannel",
                              "securityGroups": {"nodes": nodes, "controlPlane": cp}})

    def deny(request: Any, **_: Any) -> AWSResponse:
        body = (b"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized "
                b"to perform this operation.</Message></Error></Errors><RequestID>x</RequestID></Response>")
        return AWSResponse(request.url, 403, {}, _Raw(body))

    ctx.add_hook("before-send.ec2.DescribeSecurityGroups", deny)
    facts = brought_facts(spec, ctx)
    assert facts is not None and set(facts.subnets) == {pub, *priv} and facts.groups == {}
    assert {u.id for u in facts.unreadable if u.kind == "SecurityGroup"} >= {nodes, cp}
    found = [f for f in check_spec(spec, facts=facts).by_severity("error")
             if f.check == "pod-network.brought-unreadable"]
    assert {f.resource for f in found} == {"SecurityGroup/nodes", "SecurityGroup/control-plane"}
    assert all("UnauthorizedOperation" in f.message for f in found)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_cli_doctor_plan_and_apply_read_brought_groups(ctx: AwsContext, tmp_path: Path) -> None:
    """End to end through the CLI: `doctor` names the missing rule of the brought group and shows ✗ in the
    matrix; `plan` stops on it (exit 1) unless --force; once the rule is added, both pass."""
    import yaml
    from typer.testing import CliRunner

    from kubeaws.cli.main import app

    vpc, pub, priv, nodes, cp = _bring(ctx)
    spec = make_spec(network={"vpc": {"cidr": None, "id": vpc}, "availabilityZones": ["us-east-1a", "us-east-1b"],
                              "subnets": {"public": [pub], "private": priv}, "cni": "flannel",
                              "securityGroups": {"nodes": nodes, "controlPlane": cp}})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    runner = CliRunner()
    missing = f"nodes SG {nodes} lacks ingress udp 8472 from {cp} (flannel VXLAN)"

    doctor = runner.invoke(app, ["doctor", "-f", str(path)])
    assert doctor.exit_code == 1, doctor.output
    assert missing in " ".join(doctor.stdout.split())
    assert "✗" in doctor.stdout  # the matrix row of the flow
    plan = runner.invoke(app, ["plan", "-f", str(path), "--output", "json"])
    assert plan.exit_code == 1 and missing in " ".join(plan.stderr.split()), plan.output
    forced = runner.invoke(app, ["plan", "-f", str(path), "--output", "json", "--force"])
    assert forced.exit_code == 0, forced.output
    assert '"SecurityGroup"' in forced.stdout

    ctx.client("ec2").authorize_security_group_ingress(GroupId=nodes, IpPermissions=[perm("udp", 8472, groups=(cp,))])
    assert runner.invoke(app, ["doctor", "-f", str(path)]).exit_code == 0
    assert runner.invoke(app, ["plan", "-f", str(path)]).exit_code == 0


def test_public_endpoint_in_a_brought_vpc_warns_about_the_nat_addresses() -> None:
    """kubeaws knows the addresses of the NAT gateways it creates (and admits them on the API load balancer);
    a brought VPC's are the user's to allow."""
    public = check_spec(brought_spec(access={"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]}))
    hits = [f for f in public.findings if f.check == "control-plane.public-endpoint-nat"]
    assert hits and hits[0].severity == "warning" and "6443" in hits[0].hint
    private = check_spec(brought_spec())
    assert not [f for f in private.findings if f.check == "control-plane.public-endpoint-nat"]


# -- flows only between components that exist ---------------------------------------------------------------
# The control plane's brought group: everything the members need from the nodes and each other, nothing more.
CP_RULES = [perm("tcp", 6443, groups=(NODES_SG, CP_SG)), perm("tcp", 2379, 2380, groups=(CP_SG,)),
            perm("tcp", 10250, groups=(CP_SG,)), perm("tcp", 10257, groups=(CP_SG,)),
            perm("tcp", 10259, groups=(CP_SG,)), perm("udp", 8472, groups=(NODES_SG, CP_SG)),
            perm("udp", 53, groups=(NODES_SG, CP_SG)), perm("tcp", 53, groups=(NODES_SG, CP_SG)),
            perm("tcp", 22, cidrs=("10.20.0.0/24",)), perm("tcp", 6443, cidrs=("10.20.0.0/24",)),
            perm("tcp", 30000, 32767, cidrs=("10.20.0.0/16",)),
            perm("udp", 30000, 32767, cidrs=("10.20.0.0/16",))]
NODES_ALL = [*NODES_RULES, perm("udp", 8472, groups=(CP_SG,))]


def test_single_private_member_needs_no_load_balancer_flows() -> None:
    spec = brought_spec(access={"bastion": {"enabled": True}})
    graph = build(spec)
    assert not graph.of_kind("LoadBalancer")
    found = check_pod_network(spec, graph, facts_with(NODES_ALL, CP_RULES))
    assert errors(found) == [], errors(found)  # before: "open 6443 from the load balancer" to a missing balancer
    assert not any("load balancer" in r.purpose for r in matrix(spec, graph, facts_with(NODES_ALL, CP_RULES)))


def test_with_a_load_balancer_its_flow_to_the_members_is_required() -> None:
    spec = brought_spec(controlPlane={"count": 3}, access={"bastion": {"enabled": True}})
    facts = facts_with(NODES_ALL, CP_RULES)
    [missing] = errors(check_pod_network(spec, build(spec), facts))
    assert missing.check == "network.missing-flow" and "Kubernetes API from the load balancer" in missing.message
    assert "tcp 6443" in missing.message and "--port 6443" in missing.hint
    lb_subnets = facts_with(NODES_ALL, [*CP_RULES, perm("tcp", 6443, cidrs=("10.20.10.0/23",))])
    assert errors(check_pod_network(spec, build(spec), lb_subnets)) == []


def test_world_open_nodeports_of_a_brought_group_are_reported() -> None:
    spec = brought_spec()
    for protocol in ("tcp", "udp"):
        facts = facts_with([*NODES_ALL, perm(protocol, 30000, 32767, cidrs=("0.0.0.0/0",))])
        [world] = errors(check_exposure(spec, build(spec), facts))
        assert world.check == "exposure.world-open" and f"NodePort services ({protocol} 30000-32767)" in world.message
        assert "nodePortCIDRs" in world.hint
    assert errors(check_exposure(spec, build(spec), facts_with(NODES_ALL))) == []
