"""`kubeaws drill` (kubeaws.drill, kubeaws.cli.drill) on the moto server, the fake Kubernetes API and a REAL 3-member
etcd (tests/etcd_cluster.py) read through the control-plane probe (tests/probe_runner.py): the refusals (a
member out of range, a one-member control plane without --force, an unhealthy etcd that would lose quorum),
then a member terminated and its recovery followed phase by phase on a fake clock.

The self-healing around it is the test's `World`, stepped on every sleep of the drill's policy: an instance
gone from its group stops its member's real etcd and its node goes NotReady; a new instance of the group
registers its Node, and one step later its etcd (the member's data directory: the volume that follows the
member) starts again and the Node is Ready. moto adaptation: moto's Auto Scaling replaces an instance
terminated through EC2 at once (AWS notices it at its next health check, a minute or two later), so "new
instance running" is reached at 0 s here; and a replacement keeps the member's loopback address (on AWS the
new instance has a new address and the boot script moves the member's peer URL, tests/test_etcd_real.py)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import drill, member_probe
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.kube_client import KubeClient
from kubeaws.rollout.inventory import MEMBER_TAG, ROLE_TAG
from kubeaws.rollout.operation import cluster_groups
from tests import kube_objects as ko
from tests.conftest import make_ctx
from tests.etcd_cluster import IMAGE, Member, cluster, etcdctl, healthy, wait_for
from tests.helpers import BASE, make_spec, merge
from tests.kube_fake import FakeApi, serve, test_pki, url
from tests.probe_runner import ProbeNodes

__all__ = ["cluster"]  # the real etcd fixture
SPEC = make_spec(controlPlane={"count": 3})


@pytest.fixture
def kube() -> Iterator[FakeApi]:
    pki = test_pki()
    with serve(pki["cert"], pki["key"]) as server:
        server.ca = pki["ca"]  # type: ignore[attr-defined]
        yield server


def etcd_pod(member: Member, node: str) -> dict[str, Any]:
    pod = ko.pod(f"etcd-{node}", "kube-system", node_name=node, labels={"component": "etcd"}, mirror=True)
    pod["metadata"]["annotations"][member_probe.ADVERTISE_ANNOTATION] = member.client_url
    pod["spec"]["containers"] = [{"name": "etcd", "image": IMAGE, "command": ["etcd"]}]
    return pod


class World:
    """The member groups on moto, their nodes on the fake API, their etcd for real; `tick` is one step of
    what AWS, the kubelets and the boot scripts do on their own."""

    def __init__(self, endpoint: str, server: FakeApi, members: list[Member]) -> None:
        self.aws = make_ctx(endpoint)  # its own context: the drill's calls are counted apart
        self.server, self.members = server, members
        self.groups = {i: cluster_groups(SPEC)[f"control-plane-{i}"] for i in range(3)}
        self.nodes = ProbeNodes(server, {})
        self.instances: dict[str, tuple[int, str]] = {}  # instance -> (member, node)
        self.booting: dict[str, int] = {}
        self.log: list[str] = []
        template = self.aws.call("ec2", "create_launch_template", LaunchTemplateName="dev-control-plane",
                                 LaunchTemplateData={"ImageId": self.aws.call("ec2", "describe_images", Owners=[
                                     "amazon"])["Images"][0]["ImageId"], "InstanceType": "t3.micro"})
        for i, name in self.groups.items():
            self.aws.call("autoscaling", "create_auto_scaling_group", AutoScalingGroupName=name, MinSize=1,
                          MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"],
                          LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"],
                                          "Version": "1"},
                          Tags=[{"Key": MEMBER_TAG, "Value": str(i), "PropagateAtLaunch": True},
                                {"Key": ROLE_TAG, "Value": "control-plane", "PropagateAtLaunch": True}])
        for i in self.groups:
            (iid,) = self.live(i)
            node = self.node_name(iid)
            self.server.register_node(node, ready=True, labels={member_probe.CONTROL_PLANE_LABEL: ""})
            self.server.add(etcd_pod(members[i], node))
            self.nodes.roots[node] = members[i].root
            self.instances[iid] = (i, node)

    def live(self, i: int) -> list[str]:
        (group,) = self.aws.call("autoscaling", "describe_auto_scaling_groups",
                                 AutoScalingGroupNames=[self.groups[i]])["AutoScalingGroups"]
        return [x["InstanceId"] for x in group["Instances"] if x["LifecycleState"] == "InService"]

    def node_name(self, iid: str) -> str:
        reservation = self.aws.call("ec2", "describe_instances", InstanceIds=[iid])["Reservations"][0]
        return str(reservation["Instances"][0]["PrivateDnsName"])

    def policy(self) -> Any:
        base = self.nodes.policy()

        def sleep(seconds: float) -> None:
            self.tick()
            base.sleep(seconds)

        return dataclasses.replace(base, sleep=sleep)

    def tick(self) -> None:
        for i in self.groups:
            live = self.live(i)
            for iid, (member, node) in list(self.instances.items()):
                if member == i and iid not in live:  # the instance died: its etcd with it, its kubelet silent
                    self.members[i].stop()
                    self.server.objects.pop(f"/api/v1/namespaces/kube-system/pods/etcd-{node}", None)
                    self.server.set_ready(node, False)
                    del self.instances[iid]
                    self.log.append(f"member {i} down")
            for iid in live:
                if iid not in self.instances:  # a replacement booting: its kubelet registers the node
                    node = self.node_name(iid)
                    self.server.register_node(node, labels={member_probe.CONTROL_PLANE_LABEL: ""})
                    self.instances[iid] = (i, node)
                    self.booting[iid] = 0
                    self.log.append(f"member {i} node {node} registered")
        for iid in list(self.booting):
            self.booting[iid] += 1
            if self.booting[iid] < 2:
                continue
            member, node = self.instances[iid]
            m = self.members[member]  # the volume re-attached: etcd starts from the member's data
            m.start(",".join(f"{x.name}={x.peer_url}" for x in self.members), "existing")
            wait_for(f"member {member} back", lambda m=m: healthy(m))
            self.server.add(etcd_pod(m, node))
            self.nodes.roots[node] = m.root
            self.server.set_ready(node)
            del self.booting[iid]
            self.log.append(f"member {member} rejoined on {node}")


def test_the_drill_refuses_then_terminates_a_member_and_measures_its_recovery(
        cluster: dict[str, Any], kube: FakeApi, endpoint: str) -> None:
    members: list[Member] = cluster["members"]
    world = World(endpoint, kube, members)
    ctx = AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), cluster="dev", policy=world.policy())
    client = KubeClient(url(kube), kube.ca, "k8s-aws-v1.test", ctx.policy)  # type: ignore[attr-defined]

    with pytest.raises(drill.DrillInputError, match="members 0 to 2"):
        drill.plan_drill(SPEC, ctx, client, 3)
    single = make_spec(controlPlane={"count": 1})
    with pytest.raises(drill.DrillRefused, match=r"one control-plane member.*--force"):
        drill.plan_drill(single, ctx, client, 0)
    members[2].stop()  # one member already down: losing another would lose quorum
    with pytest.raises(drill.DrillRefused, match=rf"could lose quorum.*{re.escape(members[2].client_url)}"):
        drill.plan_drill(SPEC, ctx, client, 1)
    members[2].start(",".join(f"{x.name}={x.peer_url}" for x in members), "existing")
    wait_for("member 2 back", lambda: healthy(members[2]))
    assert world.log == [] and all(len(world.live(i)) == 1 for i in range(3))  # nothing was terminated

    etcdctl(members[0], "put", "/drill/before", "kept")
    plan = drill.plan_drill(SPEC, ctx, client, 1)
    old, old_node = plan.instance.id, plan.instance.node
    assert plan.group.name == "dev-control-plane-1" and plan.members == 3 and len(plan.etcd.healthy) == 3
    assert "etcd keeps quorum (2 of 3 members)" in "\n".join(plan.lines())
    said: list[str] = []
    with ctx.counting() as log:
        result = drill.run_drill(SPEC, ctx, client, plan, say=said.append)

    assert [p for p, _ in result.phases] == list(drill.PHASES)
    times = dict(result.phases)
    assert times["terminated"] == 0 and times["new instance running"] == 0  # moto replaces at once
    assert 0 < times["node Ready"] <= times["etcd healthy"] <= times["validated"] == result.seconds
    assert world.log == ["member 1 down", f"member 1 node {result.node} registered",
                         f"member 1 rejoined on {result.node}"]
    assert log.mutating() == 1 and log.snapshot()[("ec2", "TerminateInstances")] == 1
    state = world.aws.call("ec2", "describe_instances", InstanceIds=[old])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "terminated" and world.live(1) == [result.replacement] != [old]
    assert kube.objects.get(f"/api/v1/nodes/{old_node}") is None  # the dead member's Node is forgotten
    assert all(healthy(m) for m in members) and len(etcdctl(members[0], "member", "list").stdout.splitlines()) == 3
    assert etcdctl(members[1], "get", "/drill/before", "--print-value-only").stdout.strip() == "kept"
    assert not [p for p in kube.objects if p.startswith(member_probe.JOBS + "/")]
    # The order of actions: etcd read healthy, then the termination, then the Node forgotten only once the
    # replacement's Node was Ready, then etcd read again.
    calls = kube.calls("PATCH", "DELETE")
    first_forget = calls.index(("DELETE", f"/api/v1/nodes/{old_node}"))
    assert any(p.startswith(member_probe.JOBS) for m, p in calls[:first_forget] if m == "PATCH")
    assert any(p.startswith(member_probe.JOBS) for m, p in calls[first_forget:] if m == "PATCH")
    assert result.to_dict()["secondsToRecover"] == result.seconds and any("etcd healthy" in s for s in said)


def test_the_cli_asks_first_and_checks_the_member(tmp_path: Path) -> None:
    from kubeaws.cli.main import app

    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(merge(BASE, {"spec": {"controlPlane": {"count": 3}}})))
    runner = CliRunner()
    refused = runner.invoke(app, ["drill", "-f", str(spec_file), "--member", "1"])
    assert refused.exit_code == 2 and "without confirmation" in refused.output and "--yes" in refused.output
    as_json = runner.invoke(app, ["drill", "-f", str(spec_file), "--member", "1", "-o", "json"])
    assert as_json.exit_code == 2 and "without confirmation" in as_json.stdout
    outside = runner.invoke(app, ["drill", "-f", str(spec_file), "--member", "3", "--yes"])
    assert outside.exit_code == 2 and "members 0 to 2" in outside.output
    eks = tmp_path / "eks.yaml"
    eks.write_text(yaml.safe_dump(merge(BASE, {"spec": {"mode": "eks"}})))
    assert runner.invoke(app, ["drill", "-f", str(eks), "--member", "0", "--yes"]).exit_code == 2
