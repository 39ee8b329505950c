"""The pure parts of the real-AWS suite, proven here with no AWS account and no network: settings and guards,
the spec copies (they load, build and pass the static doctor), the cost arithmetic (and the README figure),
the leftover report, the timings table, bounded waits and commands, the smoke manifests (Kubernetes schema),
the parsers of what kubectl/etcdctl/the probe scripts print (the scripts themselves run under /bin/sh with
fake tools), and the API prober's summary.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import kubernetes_validate
import pytest

from kubeaws.addons import versions
from kubeaws.doctor import check_spec
from kubeaws.model import build
from kubeaws.spec.load import load_spec
from tests.aws import cost, manifests
from tests.aws.api_probe import Probe, summarize
from tests.aws.cluster import ClusterRun, E2EContext
from tests.aws.kube import (
    classic_elb_name,
    cpu_millis,
    dns_script,
    etcdctl_args,
    parse_dns_output,
    parse_endpoint_health,
    parse_member_list,
    parse_nodes,
    parse_pods,
    parse_probe_output,
    probe_script,
)
from tests.aws.leftovers import Leftover, arn_kind, cleanup_commands, format_leftovers
from tests.aws.poll import CmdResult, CommandFailed, CommandTimeout, NotYet, WaitTimeout, run_command, wait_for
from tests.aws.report import Timings, build_report, format_table, load_runs
from tests.aws.settings import (
    ENV_ENABLE,
    Settings,
    SettingsError,
    e2e_requested,
    kubectl_skew_reason,
    missing_options,
    normalize_cidr,
    parse_kubectl_minor,
    static_skip_reason,
)
from tests.aws.specs import (
    DEV,
    HA,
    RUN_TAG,
    VARIANTS,
    Variant,
    cluster_name,
    dump_spec,
    expected_nodes,
    instance_types,
    load_example,
    node_group,
    pick_azs,
    rewrite_spec,
)

README = Path(__file__).with_name("README.md")


# -- settings and guards -------------------------------------------------------------------------------------
def test_settings_defaults_and_values(tmp_path: Path) -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({ENV_ENABLE: "1", "KUBEAWS_AWS_E2E_REGION": "eu-west-1", "KUBEAWS_AWS_E2E_KEEP": "true",
                           "KUBEAWS_AWS_E2E_REPORT": str(tmp_path / "r.json"),
                           "KUBEAWS_AWS_E2E_ADMIN_CIDR": "198.51.100.7", "KUBEAWS_AWS_E2E_TIMEOUT_SCALE": "1.5",
                           "KUBEAWS_AWS_E2E_RUN_ID": "abc123", "KUBEAWS_AWS_E2E_TERMINATE_MEMBER": "2"})
    assert (s.enabled, s.region, s.keep, s.admin_cidr, s.timeout_scale, s.run_id, s.terminate_member) == (
        True, "eu-west-1", True, "198.51.100.7/32", 1.5, "abc123", 2)
    assert s.report_path == tmp_path / "r.json"
    assert s.artifacts_dir("abc123").name == "abc123"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("KUBEAWS_AWS_E2E_REGION", "Europe", "region"),
    ("KUBEAWS_AWS_E2E_TIMEOUT_SCALE", "fast", "number"),
    ("KUBEAWS_AWS_E2E_TIMEOUT_SCALE", "100", "between"),
    ("KUBEAWS_AWS_E2E_RUN_ID", "Not_OK", "lowercase"),
    ("KUBEAWS_AWS_E2E_TERMINATE_MEMBER", "3", "0, 1 or 2"),
    ("KUBEAWS_AWS_E2E_ADMIN_CIDR", "0.0.0.0/0", "too wide"),
    ("KUBEAWS_AWS_E2E_ADMIN_CIDR", "198.51.100.7/24", "not an IPv4"),
])
def test_bad_settings_name_the_variable(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=name) as info:
        Settings.from_env({name: value})
    assert words in str(info.value)


def test_normalize_cidr() -> None:
    assert normalize_cidr(" 203.0.113.9 ") == "203.0.113.9/32"
    assert normalize_cidr("203.0.113.0/28") == "203.0.113.0/28"


def test_static_skip_reasons() -> None:
    assert "KUBEAWS_AWS_E2E=1" in (static_skip_reason({}, "/usr/bin/kubectl") or "")
    assert "KUBEAWS_AWS_E2E=1" in (static_skip_reason({ENV_ENABLE: "yes"}, "/usr/bin/kubectl") or "")
    on = {ENV_ENABLE: "1"}
    assert "AWS_ENDPOINT_URL" in (static_skip_reason({**on, "AWS_ENDPOINT_URL": "http://x"}, "k") or "")
    assert "KUBEAWS_LOCAL" in (static_skip_reason({**on, "KUBEAWS_LOCAL": "1"}, "k") or "")
    assert "fake" in (static_skip_reason({**on, "AWS_ACCESS_KEY_ID": "testing"}, "k") or "")
    assert "kubectl is not on PATH" in (static_skip_reason(on, None) or "")
    assert static_skip_reason(on, "/usr/bin/kubectl") is None


def test_kubectl_version_and_skew() -> None:
    assert parse_kubectl_minor(json.dumps({"clientVersion": {"major": "1", "minor": "32+"}})) == 32
    with pytest.raises(ValueError, match="no client minor"):
        parse_kubectl_minor("{}")
    assert kubectl_skew_reason(30, "1.31") is None
    assert kubectl_skew_reason(32, "1.31") is None
    assert "1.30..1.32" in (kubectl_skew_reason(29, "1.31") or "")


def test_e2e_requested_needs_the_mark_and_the_flag() -> None:
    on = {ENV_ENABLE: "1"}
    assert e2e_requested("aws", on)
    assert e2e_requested("aws and not slow", on)
    assert not e2e_requested("not aws", on)
    assert not e2e_requested("", on)
    assert not e2e_requested("aws", {})


def test_missing_options_match_whole_option_names() -> None:
    text = "│ --output-file  <path> │\n│ --lifetime-hours │"
    assert missing_options(text, ("--output-file", "--lifetime-hours")) == []
    assert missing_options(text, ("--output", "--yes")) == ["--output", "--yes"]


# -- spec copies ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.key)
def test_spec_copies_load_build_and_pass_the_static_doctor(v: Variant, tmp_path: Path) -> None:
    example = load_example()
    original = json.dumps(example, sort_keys=True)
    azs = ["us-east-1a", "us-east-1b", "us-east-1c"]
    doc = rewrite_spec(example, name=cluster_name(v, "a1b2c3"), region="us-east-1", azs=azs,
                       admin_cidr="198.51.100.7/32", control_plane=v.control_plane, run_id="a1b2c3")
    assert json.dumps(example, sort_keys=True) == original, "the example must not be modified"
    body = doc["spec"]
    assert doc["metadata"]["name"] == f"e2e-{v.key}-a1b2c3"
    assert body["access"]["apiEndpoint"] == "public"
    assert body["access"]["adminCIDRs"] == ["198.51.100.7/32"]
    assert body["controlPlane"]["count"] == v.control_plane
    assert body["network"]["availabilityZones"] == azs
    assert body["tags"][RUN_TAG] == "a1b2c3"
    assert body["tags"]["team"] == "platform", "the example's own tags are kept"
    for addon in ("cloudProviderAWS", "ebsCSI", "metricsServer", "clusterAutoscaler"):
        assert body["addons"][addon] == {}
    path = tmp_path / "cluster.yaml"
    path.write_text(dump_spec(doc, v))
    spec = load_spec(path)
    assert spec.metadata.name == doc["metadata"]["name"]
    report = check_spec(spec, build(spec), None)
    assert not report.has_errors, [f.to_dict() for f in report.by_severity("error")]
    assert expected_nodes(doc) == v.control_plane + 2
    assert node_group(doc) == ("general", 2)
    assert instance_types(doc) == {"m5.large", "t3.micro"}


def test_spec_copy_refuses_more_members_than_azs() -> None:
    with pytest.raises(ValueError, match="3 availability zones"):
        rewrite_spec(load_example(), name="e2e-ha-x1", region="us-east-1", azs=["us-east-1a"],
                     admin_cidr="198.51.100.7/32", control_plane=3, run_id="x1")


def test_cluster_names_are_short_dns_labels() -> None:
    assert cluster_name(HA, "ffffffff") == "e2e-ha-ffffffff"
    assert len(cluster_name(DEV, "ffffffff")) <= 28
    with pytest.raises(ValueError):
        cluster_name(DEV, "UPPER")


def test_pick_azs() -> None:
    offered = {"m5.large": ["a", "b", "c", "d"], "t3.micro": ["a", "b", "d", "e"]}
    assert pick_azs(["a", "b", "c", "d", "e"], offered, ["a", "b", "d"]) == ["a", "b", "d"]
    assert pick_azs(["e", "d", "c", "b", "a"], offered, ["a", "c", "d"]) == ["a", "b", "d"]
    with pytest.raises(ValueError, match="only 2 availability zone"):
        pick_azs(["a", "b", "c"], offered, [])


# -- cost ----------------------------------------------------------------------------------------------------
def test_cost_arithmetic() -> None:
    prices = cost.Prices(instance_hour=(("m5.large", 0.1), ("t3.micro", 0.01)), nat_gateway_hour=0.05,
                         nat_gateway_gb=0.05, nlb_hour=0.02, nlb_lcu_hour=0.01, classic_lb_hour=0.03,
                         ebs_gp3_gb_month=0.073, public_ipv4_hour=0.005)
    s = cost.Scenario("x", control_plane=1, workers=1, hours=2.0, autoscaled_worker_hours=0.5, classic_lb_hours=1.0,
                      nat_gb=10, root_gb=50, etcd_gb=20, bastion_gb=30, public_ips=4)
    # 2 nodes x 0.1 x 2h; autoscaled node 0.1 x 0.5h; bastion 0.01 x 2h; NAT 0.05 x 2h + 10 GB x 0.05;
    # NLB 0.03 x 2h; classic LB 0.03 x 1h; EBS (70 + 50 + 30) GB x 0.073/730 x 2h; 4 IPs x 0.005 x 2h
    expected = 0.4 + 0.05 + 0.02 + 0.1 + 0.5 + 0.06 + 0.03 + 150 * 0.0001 * 2 + 0.04
    assert cost.total(cost.line_items(s, prices)) == pytest.approx(expected)
    added = next(i for i in cost.line_items(s, prices) if "cluster-autoscaler" in i.what)
    assert added.cost == pytest.approx(0.05)
    assert cost.hourly(s, prices) == pytest.approx(0.2 + 0.01 + 0.05 + 0.03 + 0.015 + 0.02)
    assert cost.measured(s, 4.0, prices) > cost.total(cost.line_items(s, prices))


def test_readme_quotes_the_computed_estimate() -> None:
    text = README.read_text()
    assert f"${cost.run_total():.2f}" in text, "recompute the README figures: python -m tests.aws.cost"
    assert cost.markdown() in text, "paste the output of `python -m tests.aws.cost` into tests/aws/README.md"


def test_every_instance_type_of_the_example_has_a_price() -> None:
    for instance_type in instance_types(load_example()):
        assert cost.PRICES.instance(instance_type) > 0
    assert set(cost.SCENARIO_BY_VARIANT) == {v.key for v in VARIANTS}


# -- leftovers -----------------------------------------------------------------------------------------------
def test_leftover_report() -> None:
    assert format_leftovers("e2e-dev-x", "us-east-1", "/tmp/s.yaml", []) == ""
    text = format_leftovers("e2e-dev-x", "us-east-1", "/tmp/s.yaml", [
        Leftover("ec2 VPC", "vpc-1", "Name=e2e-dev-x-main"), Leftover("ec2 VPC", "vpc-1", "Name=e2e-dev-x-main"),
        Leftover("elb classic load balancer", "a123")], ["ec2 describe_volumes: AccessDenied"])
    assert text.startswith("2 resource(s) of cluster e2e-dev-x remain in us-east-1")
    assert "ec2 VPC                    vpc-1  (Name=e2e-dev-x-main)" in text
    assert "could not check 1 kind(s)" in text and "AccessDenied" in text
    for command in cleanup_commands("e2e-dev-x", "us-east-1", "/tmp/s.yaml"):
        assert f"  {command}" in text
    assert "kubeaws delete -f /tmp/s.yaml --yes" in text
    assert "Key=kubeaws.io/cluster,Values=e2e-dev-x" in text
    assert "Key=kubernetes.io/cluster/e2e-dev-x" in text


@pytest.mark.parametrize(("arn", "kind"), [
    ("arn:aws:ec2:us-east-1:123456789012:volume/vol-1", ("ec2", "volume")),
    ("arn:aws:ec2:us-east-1:123456789012:natgateway/nat-1", ("ec2", "natgateway")),
    ("arn:aws:s3:::kubeaws-dev-0123456789", ("s3", "bucket")),
    ("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/dev-api/abc", ("elasticloadbalancing",
                                                                               "loadbalancer")),
    ("arn:aws:iam::123456789012:role/kubeaws/dev/dev-node", ("iam", "role")),
    ("arn:aws:autoscaling:us-east-1:1:autoScalingGroup:uuid:autoScalingGroupName/dev-general",
     ("autoscaling", "autoScalingGroup")),
    ("garbage", ("?", "garbage")),
])
def test_arn_kind(arn: str, kind: tuple[str, str]) -> None:
    assert arn_kind(arn) == kind


# -- timings -------------------------------------------------------------------------------------------------
def test_timings_table_and_report(tmp_path: Path) -> None:
    dev = Timings(tmp_path / "timings-dev.json", "dev", "e2e-dev-x")
    dev.record("apply", 312.4)
    dev.record("nodes-ready", 905)
    dev.record("custom-step", 3)
    dev.fact("lifetimeSeconds", 3000)
    ha = Timings(tmp_path / "timings-ha.json", "ha", "e2e-ha-x")
    ha.record("apply", 400)
    ha.record("cp-recovery", 4000, ok=False, note="WaitTimeout: ...")
    ha.record("apply", 401)  # a re-recorded step replaces the first
    runs = load_runs(tmp_path)
    assert [r["variant"] for r in runs] == ["dev", "ha"]
    table = format_table(runs).splitlines()
    assert table[0].split() == ["step", "dev", "(e2e-dev-x)", "ha", "(e2e-ha-x)"]
    rows = {line.split("  ")[0]: line for line in table[2:]}
    assert "5m12s" in rows["kubeaws apply (wall)"] and "6m41s" in rows["kubeaws apply (wall)"]
    assert "15m05s" in rows["all nodes Ready (from apply start)"]
    assert "FAILED after 1h06m" in rows["control-plane member recovery"]
    assert [line.split("  ")[0] for line in table[2:]][-1] == "custom-step"
    report = build_report(runs, run_id="x", region="us-east-1")
    assert report["clusters"]["ha"]["failed"] == ["cp-recovery"]
    assert report["clusters"]["dev"]["seconds"]["apply"] == 312.4
    assert report["clusters"]["dev"]["facts"]["lifetimeSeconds"] == 3000
    assert format_table([]) == "(no timings recorded)"


# -- bounded waits and commands ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_returns_times_out_and_propagates() -> None:
    clock = FakeClock()
    calls: list[NotYet | str] = [NotYet("1/3"), NotYet("2/3"), "done"]

    def check() -> str:
        value = calls.pop(0)
        if isinstance(value, NotYet):
            raise value
        return value

    assert wait_for("thing", check, 100, 10, clock=clock, sleep=clock.sleep) == "done"
    assert clock.now == 20
    clock = FakeClock()

    def never() -> None:
        raise NotYet(f"still at {clock.now:.0f}")

    with pytest.raises(WaitTimeout, match=r"thing: not done after 25s \(4 checks\); last status: still at 25"):
        wait_for("thing", never, 25, 10, clock=clock, sleep=clock.sleep)

    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_for("thing", broken, 25, 10, clock=clock, sleep=clock.sleep)


def test_run_command_captures_and_times_out() -> None:
    logged: list[str] = []
    result = run_command(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30, log=logged.append)
    assert (result.rc, result.stdout.strip(), result.stderr.strip()) == (3, "out", "err")
    assert "err" in result.tail() and logged[0].startswith("$ /bin/sh -c")
    echoed = run_command(["cat"], timeout=30, input_text="hello")
    assert echoed.stdout == "hello"
    with pytest.raises(CommandTimeout, match="did not finish within 1s"):
        run_command(["/bin/sh", "-c", "echo started; sleep 60"], timeout=1)


# -- manifests -----------------------------------------------------------------------------------------------
def test_manifests_validate_against_the_clusters_kubernetes_version() -> None:
    version = versions.kubernetes_patch(str(load_example()["spec"]["kubernetesVersion"]))
    docs = [manifests.namespace(), manifests.agnhost_daemonset(), manifests.headless_service(),
            manifests.load_balancer_service("198.51.100.7/32"), manifests.claim(),
            manifests.volume_pod("e2e-writer", "echo x > /data/token"),
            manifests.scale_up_deployment(3, 1158, "general")]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    listed = manifests.as_list(*docs)
    assert listed["kind"] == "List" and len(listed["items"]) == len(docs)
    daemonset = manifests.agnhost_daemonset()["spec"]["template"]["spec"]
    assert daemonset["tolerations"] == [{"operator": "Exists"}], "must run on control-plane nodes too"
    assert ":" in manifests.AGNHOST and not manifests.AGNHOST.endswith(":latest")


# -- parsers and probe scripts -------------------------------------------------------------------------------
def test_parse_nodes_and_pods() -> None:
    nodes = parse_nodes({"items": [
        {"metadata": {"name": "ip-10-0-1-5.ec2.internal", "labels": {
            "node-role.kubernetes.io/control-plane": "", "topology.kubernetes.io/zone": "us-east-1a"}},
         "spec": {"providerID": "aws:///us-east-1a/i-0abc"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "2"},
                    "addresses": [{"type": "InternalIP", "address": "10.0.1.5"}]}},
        {"metadata": {"name": "ip-10-0-2-6.ec2.internal", "labels": {"kubeaws.io/node-group": "general"}},
         "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
    ]})
    assert [(n.ready, n.control_plane, n.zone, n.group, n.instance_id, n.internal_ip) for n in nodes] == [
        (True, True, "us-east-1a", "", "i-0abc", "10.0.1.5"), (False, False, "", "general", "", "")]
    pods = parse_pods({"items": [
        {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"},
         "status": {"podIP": "192.168.1.2", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "gone", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {}, "status": {}},
    ]})
    assert [(p.name, p.node, p.ip, p.ready) for p in pods] == [("a", "n1", "192.168.1.2", True)]


def test_cpu_millis() -> None:
    assert [cpu_millis(q) for q in ("1930m", "2", "1.5", "250000000n")] == [1930, 2000, 1500, 250]


def _fake_tools(tmp_path: Path, tools: dict[str, str]) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}


def test_probe_script_runs_and_parses(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path, {
        "agnhost": 'case "$2" in 10.0.0.2:8080) exit 0;; *) echo "TIMEOUT" >&2; exit 1;; esac\n',
        "curl": 'echo "pod-b"\n',
    })
    targets = ["10.0.0.2", "10.0.0.3"]
    script = probe_script(targets, 8080).replace("/agnhost", str(tmp_path / "bin" / "agnhost"))
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=30, check=True)
    assert parse_probe_output(out.stdout, targets) == {"10.0.0.2": (True, "pod-b"),
                                                      "10.0.0.3": (False, "tcp: TIMEOUT")}
    assert parse_probe_output("", ["10.0.0.9"])["10.0.0.9"][0] is False


def test_dns_script_runs_and_parses(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path, {
        "dig": 'case "$4" in kubernetes.*) echo 10.96.0.1;; *) printf "192.168.1.2\\n192.168.2.3\\n";; esac\n',
        "agnhost": 'echo "DNS: lookup failed" >&2; exit 1\n',
    })
    script = dns_script("kubernetes.default.svc.cluster.local", "h.ns.svc.cluster.local")
    script = script.replace("/agnhost", str(tmp_path / "bin" / "agnhost"))
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=30, check=True)
    answer = parse_dns_output(out.stdout)
    assert answer.api == {"10.96.0.1"}
    assert answer.headless == {"192.168.1.2", "192.168.2.3"}
    assert (answer.connect_ok, answer.connect_detail) == (False, "DNS: lookup failed")


def test_etcd_parsers() -> None:
    assert etcdctl_args("member", "list")[-2:] == ["member", "list"]
    assert "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in etcdctl_args()
    health = ('[{"endpoint":"https://10.0.1.5:2379","health":true,"took":"9ms"},'
              '{"endpoint":"https://10.0.2.6:2379","health":false,"error":"context deadline exceeded"}]\n'
              "Error: unhealthy cluster\n")
    assert parse_endpoint_health(health) == [("https://10.0.1.5:2379", True, ""),
                                             ("https://10.0.2.6:2379", False, "context deadline exceeded")]
    with pytest.raises(ValueError):
        parse_endpoint_health("Error: context deadline exceeded")
    # Member IDs are uint64: beyond a float's precision, they must survive the JSON parse exactly.
    members = json.dumps({"header": {}, "members": [{"ID": int("ef2d1a0e2b5b0e01", 16), "name": "ip-10-0-1-5"},
                                                    {"ID": 255, "name": ""}]})
    assert parse_member_list(members) == [("ef2d1a0e2b5b0e01", "ip-10-0-1-5"), ("ff", "")]


def test_classic_elb_name() -> None:
    assert classic_elb_name("a1b2c3d4e5-1234567890.us-east-1.elb.amazonaws.com") == "a1b2c3d4e5"
    assert classic_elb_name("internal-a1b2-99.us-east-1.elb.amazonaws.com") == "a1b2"


def test_api_probe_summary() -> None:
    probes = [Probe(0, True, "1.1.1.1"), Probe(5, False, failures=(("1.1.1.1", "timeout"), ("2.2.2.2", "timeout"))),
              Probe(10, False, failures=(("1.1.1.1", "timeout"),)), Probe(15, True, "2.2.2.2", (("1.1.1.1", "x"),)),
              Probe(20, False, failures=(("dns", "no address"),))]
    summary = summarize(probes)
    assert (summary.probes, summary.failed, summary.max_consecutive_failed) == (5, 3, 2)
    assert summary.longest_outage_seconds == 10
    assert summary.address_failures == {"1.1.1.1": 3, "2.2.2.2": 1, "dns": 1}
    assert summarize([]).to_dict()["probes"] == 0


def test_real_suite_is_marked_and_collected_per_cluster() -> None:
    """Every real test is marked aws and collected in one class per cluster, the delete last."""
    from tests.aws import test_real_cluster as suite

    assert suite.pytestmark.name == "aws"
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-m", "aws",
                          "-p", "no:cacheprovider", str(Path(suite.__file__))], capture_output=True, text=True,
                         timeout=120, cwd=Path(suite.__file__).parents[2])
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert out.returncode == 0, out.stdout + out.stderr
    dev = [i.split("::")[-1] for i in ids if "::TestDev::" in i]
    ha3 = [i.split("::")[-1] for i in ids if "::TestHa3::" in i]
    assert len(ids) == len(dev) + len(ha3) == 19, ids
    assert dev[0] == ha3[0] == "test_plan_and_apply"
    assert dev[-1] == ha3[-1] == "test_delete_leaves_nothing"
    assert ha3[-2] == "test_control_plane_member_replacement" and "test_control_plane_member_replacement" not in dev


# -- the cluster driver's guarantees (stubbed commands, no AWS) ----------------------------------------------
class StubRun(ClusterRun):
    """A ClusterRun whose kubeaws/kubectl commands are scripted."""

    def __init__(self, tmp_path: Path, keep: bool = False) -> None:
        ctx = E2EContext(settings=Settings(enabled=True, keep=keep), run_id="t1", artifacts=tmp_path,
                         account_id="123456789012", caller_arn="arn:aws:iam::123456789012:user/me",
                         admin_cidr="198.51.100.7/32", azs=["us-east-1a", "us-east-1b", "us-east-1c"],
                         kubectl="kubectl", kubeaws=["kubeaws"], session=None)
        super().__init__(ctx, HA)
        self.answers: dict[str, list[tuple[int, dict[str, object]]]] = {}
        self.calls: list[str] = []
        self.diagnosed: list[str] = []
        self.cleaned = 0

    def kubeaws_json(self, *args: str, timeout: float,
                     ok_codes: Sequence[int] = (0,)) -> tuple[CmdResult, dict[str, object]]:
        self.calls.append(args[0])
        rc, doc = self.answers[args[0]].pop(0)
        result = CmdResult(["kubeaws", *args], rc, json.dumps(doc), "", 0.1)
        if rc not in ok_codes:
            raise CommandFailed(result, f"kubeaws {args[0]}")
        return result, doc

    def cleanup_kubernetes(self) -> None:
        self.cleaned += 1

    def diagnose(self, label: str) -> None:
        self.diagnosed.append(label)


def test_doctor_wait_asks_again_while_the_api_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.aws.cluster.time.sleep", lambda s: None)
    run = StubRun(tmp_path)
    unreachable = {"severity": "warning", "check": "live.api-unreachable", "message": "cannot connect"}
    booting = {"severity": "error", "check": "live.node-not-registered", "message": "still booting"}
    run.answers["doctor"] = [(0, {"findings": [unreachable]}), (1, {"findings": [booting]}),
                             (1, {"error": "DescribeInstances: Throttling", "type": "ClientError"}),
                             (0, {"findings": [{"severity": "warning", "check": "x", "message": "y"}]})]
    run.wait_doctor()
    assert run.calls == ["doctor"] * 4
    assert run.timings.facts["doctorWaitEndedWhileApiUnreachable"] == 1
    assert (run.dir / "doctor-live.json").exists()
    run.answers["doctor"] = [(2, {"error": "spec"})]
    with pytest.raises(CommandFailed):
        run.wait_doctor()


def test_finalize_always_deletes_and_says_how_to_finish_by_hand(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.aws.cluster.time.sleep", lambda s: None)
    run = StubRun(tmp_path)
    run.finalize()
    assert run.calls == [], "nothing applied: nothing to delete"
    run.apply_attempted = True
    failed = {"ok": False, "resources": [{"kind": "Vpc", "name": "main", "state": "failed", "error": "Dependency"}]}
    run.answers["delete"] = [(1, failed), (1, failed)]
    run.finalize()
    assert run.calls == ["delete", "delete"] and run.cleaned == 1 and not run.deleted
    flag = tmp_path / f"CLEANUP-REQUIRED-{run.name}.txt"
    assert f"kubeaws delete -f {run.spec_path} --yes" in flag.read_text()
    run.answers["delete"] = [(1, failed), (0, {"ok": True, "resources": []})]
    run.finalize()
    assert run.deleted
    run.finalize()
    assert run.calls.count("delete") == 4, "a deleted cluster is not deleted again"
    kept = StubRun(tmp_path / "kept", keep=True)
    kept.apply_attempted = True
    kept.finalize()
    assert kept.calls == [] and kept.cleaned == 0


def test_steps_time_skip_and_diagnose(tmp_path: Path) -> None:
    run = StubRun(tmp_path)
    with run.step("plan"):
        pass
    assert "plan" in run.passed and run.timings.steps[-1].ok
    with pytest.raises(AssertionError), run.step("apply"):
        raise AssertionError("boom")
    assert run.diagnosed == ["apply"] and not run.timings.steps[-1].ok and "boom" in run.timings.steps[-1].note
    with pytest.raises(pytest.skip.Exception, match="did not pass earlier"):
        run.need("apply")
    assert json.loads((tmp_path / "timings-ha.json").read_text())["cluster"] == run.name
    assert run.spec_path.read_text().startswith("# kubeaws real-AWS suite")
