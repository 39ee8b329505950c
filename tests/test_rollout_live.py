"""`kubeaws rollout` end to end on its two real sides: Auto Scaling groups on the moto server (kubeaws.rollout.
aws_ops) and the Kubernetes API of the FAKE API server (tests/kube_fake.py, over TLS) through
kubeaws.rollout.kube_ops: cordon, evictions through the Eviction subresource with PodDisruptionBudgets,
readiness, Node removal, validation.

No kubelet exists here: a `Kubelets` wrapper around the AWS side registers a Ready Node for every live
instance of a group it reads (the name is the instance's private DNS name, as a kubelet on AWS registers it)
and schedules the Pending replacement pods there, as the scheduler would. moto adaptations: instances are
InService at once, and an instance's launch version is read from the `aws:ec2launchtemplate:version` tag (as
kubeaws does on AWS). Waits run on a fake clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.aws.retry import RetryPolicy
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.kube_client import KubeClient
from kubeaws.rollout import operation
from kubeaws.rollout.aws_ops import AwsCloud
from kubeaws.rollout.inventory import GroupState
from kubeaws.rollout.kube_ops import KubeCluster
from kubeaws.rollout.runner import RolloutError, Timeouts
from kubeaws.rollout.upgrade import COREDNS, KUBE_PROXY, KUBEADM_CONFIG, target_version
from tests import kube_objects as ko
from tests.helpers import BASE, CallRecorder, make_spec, merge
from tests.kube_fake import FakeApi, url
from tests.rollout_fakes import FakeClock

GROUPS = [{"name": "general", "instanceTypes": ["m5.large"], "size": {"min": 2, "desired": 2, "max": 3},
           "rollout": {"maxSurge": 1}},
          {"name": "batch", "instanceTypes": ["m5.large"], "size": {"min": 1, "desired": 1, "max": 2}}]
MUTATING = {"UpdateAutoScalingGroup", "TerminateInstanceInAutoScalingGroup", "CreateOrUpdateTags", "DeleteTags",
            "DeleteLaunchTemplateVersions"}


@pytest.fixture
def pki(kube_pki: dict[str, str]) -> dict[str, str]:
    return kube_pki  # tests/conftest.py


@pytest.fixture
def fake_api(fake_api: FakeApi) -> FakeApi:
    """tests/conftest.py's, scheduling replacement pods as a scheduler would."""
    fake_api.scheduler = True
    return fake_api


def policy(clock: FakeClock) -> RetryPolicy:
    return RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, poll_interval=5.0, clock=clock.clock,
                       sleep=clock.sleep)


class Kubelets(AwsCloud):
    """The AWS side, plus what the instances' kubelets and the scheduler would do: every live instance of a
    group read has a Ready Node, and Pending pods run on the newest one. `log` records every step of both
    sides in order."""

    def __init__(self, ctx: AwsContext, fake: FakeApi, log: list[str]) -> None:
        super().__init__(ctx)
        self.fake = fake
        self.log = log

    def read(self, name: str) -> GroupState:
        group = super().read(name)
        for instance in group.live:
            if f"/api/v1/nodes/{instance.node}" not in self.fake.objects:
                self.fake.register_node(instance.node, ready=True, labels={"group": name})
                self.fake.start_pending(instance.node)
                self.log.append(f"join {name} {instance.node}")
                if group.role == "control-plane":  # its kube-apiserver static pod, at the version it booted
                    version = self.versions.get(instance.version or 0, self.versions[min(self.versions)])
                    self.fake.add(api_server_pod(instance.node, version))
        return group

    versions: dict[int, str] = {}  # launch-template version -> the Kubernetes version it boots

    def pin(self, group: GroupState, version: int) -> None:
        self.log.append(f"pin {group.name} {version}")
        super().pin(group, version)

    def terminate(self, instance_id: str, decrement: bool) -> None:
        node = next(i.node for g in self.groups() for i in g.instances if i.id == instance_id)
        self.log.append(f"terminate {node} @{len(self.fake.requests)}")
        self.fake.objects.pop(f"/api/v1/namespaces/kube-system/pods/kube-apiserver-{node}", None)
        super().terminate(instance_id, decrement)

    def groups(self) -> list[GroupState]:
        from kubeaws.rollout.inventory import read_groups

        return read_groups(self.ctx, self.names)

    names: list[str] = []


def api_server_pod(node: str, version: str) -> dict[str, Any]:
    """The mirror pod of a member's kube-apiserver, as the kubelet of a kubeadm member shows it."""
    pod = ko.pod(f"kube-apiserver-{node}", "kube-system", node, {"component": "kube-apiserver",
                                                                 "tier": "control-plane"}, mirror=True)
    pod["spec"]["containers"] = [{"name": "kube-apiserver", "image": f"registry.k8s.io/kube-apiserver:{version}"}]
    return pod


def kubeadm_state(fake: FakeApi, version: str) -> None:
    """What `kubeadm init` leaves in kube-system: kubeadm-config, kubelet-config, kube-proxy, CoreDNS."""
    fake.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace":
              "kube-system"}, "data": {"ClusterConfiguration": yaml.safe_dump({
                  "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion":
                  version, "clusterName": "dev"})}})
    for kind, name, image in (("DaemonSet", "kube-proxy", f"registry.k8s.io/kube-proxy:{version}"),
                              ("Deployment", "coredns", "registry.k8s.io/coredns/coredns:v1.11.3")):
        fake.add({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "kube-system"},
                  "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}})


def start(ctx: AwsContext, fake: FakeApi, spec_groups: list[dict[str, Any]], members: int) -> Kubelets:
    """Apply a cluster at 1.31 (`members` control-plane members), register its nodes with workload pods (a
    Deployment's 3 pods per node group, spread, with a budget allowing one disruption), then re-apply at 1.32:
    every template has a new version and every instance is outdated."""
    spec = make_spec(controlPlane={"count": members}, nodeGroups=spec_groups)
    assert api.apply(spec, ctx).ok
    log: list[str] = []
    cloud = Kubelets(ctx, fake, log)
    cloud.names = list(operation.cluster_groups(spec).values())
    cloud.versions = {1: target_version(spec), 2: target_version(make_spec(kubernetesVersion="1.32"))}
    kubeadm_state(fake, target_version(spec))
    for group in cloud.groups():
        cloud.read(group.name)
    workers = [n for p, n in sorted(fake.objects.items()) if p.startswith("/api/v1/nodes/")
               and not n["metadata"]["labels"]["group"].startswith("dev-control-plane")]
    for i in range(3):
        fake.add(ko.pod(f"web-{i}", "default", workers[i % len(workers)]["metadata"]["name"], {"app": "web"},
                        "ReplicaSet/web-5d4f8"))
    fake.add(ko.pdb("web", "default", max_unavailable=1, match_labels={"app": "web"}))
    for node in workers:
        name = node["metadata"]["name"]
        fake.add(ko.pod(f"kube-proxy-{name[:12]}", "kube-system", name, {"k8s-app": "kube-proxy"},
                        "DaemonSet/kube-proxy"))
    log.clear()
    assert api.apply(make_spec(kubernetesVersion="1.32", controlPlane={"count": members},
                               nodeGroups=spec_groups), ctx).ok
    return cloud


def test_upgrade_rolls_members_one_at_a_time_then_groups_draining_each_node(ctx: AwsContext,
                                                                              fake_api: FakeApi,
                                                                              pki: dict[str, str]) -> None:
    """3 members + 2 groups after 1.31 -> 1.32: kubeadm-config moved to 1.32 first; members replaced in
    member order, each one's replacement joined (its API server at 1.32) before the next member goes; then
    kube-proxy (CoreDNS is the same for both minors); then the node groups; every node cordoned and its workload pods
    evicted before its instance is terminated; DaemonSet pods never evicted; the old Nodes removed; nothing
    left to roll and no instance replaced twice."""
    cloud = start(ctx, fake_api, GROUPS, 3)
    spec = make_spec(kubernetesVersion="1.32", controlPlane={"count": 3}, nodeGroups=GROUPS)
    clock = FakeClock()
    ctx.policy = policy(clock)
    kube = KubeClient(url(fake_api), pki["ca"], "k8s-aws-v1.abc", ctx.policy)
    options = operation.RolloutOptions(timeouts=Timeouts(drain=60, ready=300, validation=60))
    plan = operation.plan(spec, ctx, options)
    assert [g.group.name for g in plan.groups] == ["dev-control-plane-0", "dev-control-plane-1",
                                                   "dev-control-plane-2", "dev-general", "dev-batch"]
    before = {i.id: i.node for g in cloud.groups() for i in g.live}
    result = operation.run(spec, ctx, options, plan, kube=kube, cloud=cloud)

    assert sorted(result.replaced) == sorted(before), "every instance replaced exactly once"
    log = cloud.log
    terminated = [line.split()[1] for line in log if line.startswith("terminate")]
    at = {line.split()[1]: int(line.split("@")[1]) for line in log if line.startswith("terminate")}
    member_nodes = [n for g in plan.control_plane for n in (i.node for i in g.group.live)]
    assert terminated[:3] == member_nodes, "members first, in member order"
    for k in range(2):  # the next member goes only once the previous one's replacement joined
        where = {line.split()[1]: i for i, line in enumerate(log) if line.startswith("terminate")}
        between = log[where[member_nodes[k]]:where[member_nodes[k + 1]]]
        assert any(line.startswith(f"join dev-control-plane-{k} ") for line in between)
    calls = fake_api.calls("PATCH", "POST", "DELETE")
    # The kubeadm state follows the members (rollout.upgrade): kubeadm-config before the first member goes,
    # kube-proxy and CoreDNS once the last member runs 1.32 and before any node is replaced.
    requests = [(r["method"], r["path"]) for r in fake_api.requests]
    config = requests.index(("PATCH", KUBEADM_CONFIG))
    proxy = requests.index(("PATCH", KUBE_PROXY))
    new_version = target_version(spec)
    assert config < at[member_nodes[0]]
    assert at[member_nodes[-1]] < proxy < min(at[n] for n in terminated[3:])
    assert ("PATCH", COREDNS) not in requests, "kubeadm 1.31 and 1.32 deploy the same CoreDNS: left alone"
    assert new_version in fake_api.objects[KUBEADM_CONFIG]["data"]["ClusterConfiguration"]
    assert fake_api.objects[KUBE_PROXY]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(new_version)
    assert requests.count(("PATCH", KUBEADM_CONFIG)) == 1 and requests.count(("PATCH", KUBE_PROXY)) == 1
    for node in before.values():
        cordon = calls.index(("PATCH", f"/api/v1/nodes/{node}"))
        deleted = calls.index(("DELETE", f"/api/v1/nodes/{node}"))
        assert cordon < deleted
    evicted = [path for method, path in calls if method == "POST"]
    assert evicted and all("/namespaces/default/pods/web-" in p for p in evicted), "DaemonSet pods stay"
    assert not any(p.startswith("/api/v1/nodes/") and n["metadata"]["name"] in before.values()
                   for p, n in fake_api.objects.items() if p.startswith("/api/v1/nodes/"))
    assert operation.plan(spec, ctx, options).empty
    groups = {g.name: g for g in cloud.groups()}
    assert (groups["dev-general"].desired, groups["dev-general"].max_size) == (2, 3), "surge undone"


def test_a_budget_that_never_allows_stops_the_roll_naming_it(ctx: AwsContext, fake_api: FakeApi,
                                                            pki: dict[str, str]) -> None:
    """A PodDisruptionBudget with minAvailable = all its pods: the first drain of the group gives up after
    --drain-timeout (fake clock) naming the pod and the budget; the node stays cordoned, its instance is
    not terminated; a rerun resumes after the budget is relaxed."""
    groups = [GROUPS[1]]
    cloud = start(ctx, fake_api, groups, 1)
    fake_api.add(ko.pdb("web", "default", min_available="100%", match_labels={"app": "web"}))
    spec = make_spec(kubernetesVersion="1.32", nodeGroups=groups)
    clock = FakeClock()
    ctx.policy = policy(clock)
    kube = KubeClient(url(fake_api), pki["ca"], "k8s-aws-v1.abc", ctx.policy)
    options = operation.RolloutOptions(groups=["batch"], timeouts=Timeouts(drain=120, ready=300, validation=60))
    plan = operation.plan(spec, ctx, options)
    [node] = [i.node for i in plan.groups[0].group.live]
    with pytest.raises(RolloutError) as caught:
        operation.run(spec, ctx, options, plan, kube=kube, cloud=cloud)
    message = str(caught.value)
    assert f"node {node} not drained after 120s" in message
    assert "PodDisruptionBudget default/web (minAvailable 100%" in message and "pod default/web-" in message
    assert not any(line.startswith("terminate") for line in cloud.log)
    assert fake_api.objects[f"/api/v1/nodes/{node}"]["spec"]["unschedulable"] is True

    fake_api.add(ko.pdb("web", "default", max_unavailable=1, match_labels={"app": "web"}))
    result = operation.run(spec, ctx, options, operation.plan(spec, ctx, options), kube=kube, cloud=cloud)
    assert len(result.replaced) == 1 and operation.plan(spec, ctx, options).empty


def test_dry_run_changes_nothing(ctx: AwsContext, fake_api: FakeApi, tmp_path: Path) -> None:
    """`kubeaws rollout --dry-run` reads the groups and prints the plan: 0 mutating AWS calls (recorded on the
    planning path; through the CLI, the groups are the same before and after)."""
    start(ctx, fake_api, [GROUPS[1]], 1)
    doc = merge(BASE, {"spec": {"kubernetesVersion": "1.32", "nodeGroups": [GROUPS[1]]}})
    spec = make_spec(kubernetesVersion="1.32", nodeGroups=[GROUPS[1]])
    recorder = CallRecorder()
    ctx.add_hook("before-call", recorder)
    rollout = operation.plan(spec, ctx, operation.RolloutOptions())
    assert [g.count for g in rollout.groups] == [1, 1]
    assert recorder.operations() and not set(recorder.operations()) & MUTATING

    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    names = list(operation.cluster_groups(spec).values())
    before = ctx.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=names)
    answer = CliRunner().invoke(app, ["rollout", "-f", str(path), "--dry-run", "--output", "json"])
    assert answer.exit_code == 0, answer.output
    printed = json.loads(answer.stdout)
    assert printed["dryRun"] is True and printed["replaced"] == []
    assert [(r["group"], r["instances"], r["order"]) for r in printed["rollout"]] == [
        ("dev-control-plane-0", 1, 1), ("dev-batch", 1, 2)]
    after = ctx.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=names)
    assert after["AutoScalingGroups"] == before["AutoScalingGroups"]


def test_validation_reports_nodes_and_kube_system_pods(fake_api: FakeApi, pki: dict[str, str]) -> None:
    """`problems()`: a NotReady node and a crash-looping kube-system pod, each named; none when healthy."""
    clock = FakeClock()
    kube = KubeClient(url(fake_api), pki["ca"], "k8s-aws-v1.abc", policy(clock))
    cluster = KubeCluster(kube, make_spec(), policy(clock))
    fake_api.add(ko.node("ip-10-0-1-1.ec2.internal"))
    fake_api.add(ko.pod("coredns-1", "kube-system", "ip-10-0-1-1.ec2.internal", owner="ReplicaSet/coredns"))
    assert cluster.problems() == []
    fake_api.add(ko.node("ip-10-0-1-2.ec2.internal", ready=False))
    crashing = ko.pod("coredns-2", "kube-system", "ip-10-0-1-2.ec2.internal", owner="ReplicaSet/coredns",
                      ready=False)
    crashing["status"]["containerStatuses"] = [{"name": "c", "ready": False,
                                                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    fake_api.add(crashing)
    problems = cluster.problems()
    assert problems[0] == "node ip-10-0-1-2.ec2.internal is not Ready (KubeletNotReady)"
    assert problems[1:] == ["pod kube-system/coredns-2 is Running on ip-10-0-1-2.ec2.internal (CrashLoopBackOff)"]


def test_readiness_of_many_nodes_is_one_list(fake_api: FakeApi, pki: dict[str, str]) -> None:
    """`ready_nodes`: a group's poll is one request (a list of the nodes), not one GET per instance; a single
    node is one GET; NotReady and unregistered nodes are not Ready."""
    clock = FakeClock()
    kube = KubeClient(url(fake_api), pki["ca"], "k8s-aws-v1.abc", policy(clock))
    cluster = KubeCluster(kube, make_spec(), policy(clock))
    for n in range(4):
        fake_api.add(ko.node(f"ip-10-0-1-{n}.ec2.internal", ready=n != 2))
    wanted = [f"ip-10-0-1-{n}.ec2.internal" for n in (0, 1, 2, 9)]
    assert cluster.ready_nodes(wanted) == {"ip-10-0-1-0.ec2.internal", "ip-10-0-1-1.ec2.internal"}
    assert fake_api.calls() == [("GET", "/api/v1/nodes")]
    assert cluster.ready_nodes(["ip-10-0-1-3.ec2.internal"]) == {"ip-10-0-1-3.ec2.internal"}
    assert cluster.ready_nodes(["ip-10-0-1-2.ec2.internal"]) == set() and cluster.ready_nodes([]) == set()
    assert fake_api.calls()[1:] == [("GET", "/api/v1/nodes/ip-10-0-1-3.ec2.internal"),
                                    ("GET", "/api/v1/nodes/ip-10-0-1-2.ec2.internal")]
    assert fake_api.handshakes == 1, "one kept-alive connection for all of it"


def test_drain_skips_daemonset_mirror_and_finished_pods(fake_api: FakeApi, pki: dict[str, str]) -> None:
    """Cordon first, then an eviction for each workload pod (a bare pod too), none for DaemonSet, mirror
    or finished pods; the drain ends when the node holds only those."""
    clock = FakeClock()
    kube = KubeClient(url(fake_api), pki["ca"], "k8s-aws-v1.abc", policy(clock))
    node = "ip-10-0-1-1.ec2.internal"
    fake_api.add(ko.node(node))
    fake_api.add(ko.pod("web-1", "default", node, {"app": "web"}, "ReplicaSet/web-1"))
    fake_api.add(ko.pod("bare", "default", node))
    fake_api.add(ko.pod("kube-proxy-a", "kube-system", node, owner="DaemonSet/kube-proxy"))
    fake_api.add(ko.pod("kube-apiserver-a", "kube-system", node, mirror=True, owner=f"Node/{node}"))
    fake_api.add(ko.pod("job-1", "default", node, phase="Succeeded", owner="Job/job"))
    KubeCluster(kube, make_spec(), policy(clock)).drain(node, 60)
    calls = fake_api.calls("PATCH", "POST")
    assert calls[0] == ("PATCH", f"/api/v1/nodes/{node}")
    assert sorted(p for m, p in calls[1:]) == ["/api/v1/namespaces/default/pods/bare/eviction",
                                               "/api/v1/namespaces/default/pods/web-1/eviction"]
    left = sorted(p["metadata"]["name"] for p in fake_api.pods() if p["spec"].get("nodeName") == node)
    assert left == ["job-1", "kube-apiserver-a", "kube-proxy-a"]


def test_apply_rolls_after_updating_unless_told_not_to(ctx: AwsContext, tmp_path: Path) -> None:
    """`kubeaws apply` of a changed node group updates the template, then rolls the group (on the emulator:
    cloud-only, said so); `--no-rollout` leaves the instances for `kubeaws rollout`; `--group` naming no group
    of the spec is bad input (exit 2)."""
    path = tmp_path / "cluster.yaml"

    def apply(group: dict[str, Any], *extra: str) -> dict[str, Any]:
        path.write_text(yaml.safe_dump(merge(BASE, {"spec": {"nodeGroups": [group]}})))
        answer = CliRunner().invoke(app, ["apply", "-f", str(path), "--yes", "--output", "json", *extra])
        assert answer.exit_code == 0, answer.output
        doc: dict[str, Any] = json.loads(answer.stdout)
        return doc

    group = {**GROUPS[1], "size": {"min": 2, "desired": 2, "max": 2}}
    first = apply(group)
    assert first["ok"] and first["rollout"]["rollout"] == [], "a new cluster rolls nothing"
    later = apply({**group, "labels": {"team": "a"}}, "--no-rollout")
    assert "rollout" not in later
    spec = make_spec(nodeGroups=[{**group, "labels": {"team": "a"}}])
    [pending] = operation.plan(spec, ctx, operation.RolloutOptions()).groups
    assert (pending.group.name, pending.count) == ("dev-batch", 2)
    rolled = apply({**group, "labels": {"team": "b"}})
    assert [(r["group"], r["instances"]) for r in rolled["rollout"]["rollout"]] == [("dev-batch", 2)]
    assert len(rolled["rollout"]["replaced"]) == 2
    assert operation.plan(make_spec(nodeGroups=[{**group, "labels": {"team": "b"}}]), ctx,
                          operation.RolloutOptions()).empty
    answer = CliRunner().invoke(app, ["rollout", "-f", str(path), "--group", "nope", "--yes"])
    assert answer.exit_code == 2 and "--group nope: the spec has no such group; its groups: control-plane-0, " \
        "batch" in answer.output
