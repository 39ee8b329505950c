"""`kubeaws doctor --live` against the moto server: a kubeadm cluster applied once per module (the passing
case), then deliberately wrong resources made with boto3 by each test (and undone after it), an EKS cluster
with a managed node group, a cluster that does not exist, and the CLI (`--live`, `--wait`).

The Kubernetes API is the fake TLS server of tests/kube_fake.py. kubeadm: its certificate is signed by the
cluster CA kubeaws put in the state bucket and it accepts client certificates signed by that CA, so the
doctor's own credentials (the admin certificate `access.admin_kubeconfig` makes) are what authenticates.

moto adaptations (tests only, production code unchanged):
- nothing boots: instances are `running` at once and launched "now", so tests that want a join cause other
  than "still booting" pass `now` an hour later; the API endpoint kubeaws writes to `cluster/cluster.json`
  (an address inside the VPC) is rewritten to the fake server's 127.0.0.1 address;
- moto does not apply the launch template's MetadataOptions or IamInstanceProfile to Auto Scaling group
  instances, and adds a default unencrypted root volume (/dev/sda1) next to the launch template's encrypted
  /dev/xvda: on the emulator the doctor judges those instances by their launch template version and says so
  in one `exposure.live-emulated` note (the passing case expects exactly that note; production code asks
  `ctx.capabilities.applies_launch_template_metadata`); tests that need the profile associate it, as AWS
  would have;
- EKS is metadata only: managed node groups get no Auto Scaling group (the test creates the one
  DescribeNodegroup names), CreateCluster ignores accessConfig (read as CONFIG_MAP), and the endpoint/CA of
  DescribeCluster are replaced by the fake server's with an `after-call` hook;
- free subnet addresses cannot be made scarce without allocating thousands: the subnet test lowers the
  described AvailableIpAddressCount in the gathered inventory;
- moto ignores some filters (e.g. tag filters of DescribeAutoScalingGroups): the doctor filters again itself.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AWS, AwsContext
from kubeaws.cli import doctor as cli_doctor
from kubeaws.cli.main import app
from kubeaws.doctor import Finding
from kubeaws.doctor.live import check_live, check_subnet_room, check_type_offerings, combine, gather
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient
from kubeaws.model import build
from kubeaws.model.graph import Graph
from kubeaws.resources._s3 import state_bucket_name
from kubeaws.spec.models import ClusterSpec
from tests.conftest import make_ctx, reset_moto
from tests.helpers import BASE, make_spec, merge
from tests.kube_fake import FakeApi, key_pem, make_cert, pem, serve, test_pki, url

HOUR_LATER = time.time() + 3600
SPEC_ARGS: dict[str, Any] = {"tags": {"team": "dsp"}, "addons": {"clusterAutoscaler": {}}}


@dataclass
class Cluster:
    spec: ClusterSpec
    graph: Graph
    ctx: AwsContext
    kube: FakeApi
    bucket: str
    info: dict[str, Any]
    moto_roots: set[str]

    def call(self, service: str, operation: str, **params: Any) -> Any:
        return self.ctx.call(service, operation, **params)

    def live(self, **kwargs: Any) -> list[Finding]:
        return check_live(self.spec, self.graph, self.ctx, **kwargs)

    def point_api_at(self, host: str, port: int) -> None:
        body = json.dumps({**self.info, "endpoint": host, "port": port})
        self.call("s3", "put_object", Bucket=self.bucket, Key="cluster/cluster.json", Body=body.encode())

    def instances(self, role: str) -> list[dict[str, Any]]:
        inv = gather(self.spec, self.ctx, self.graph)
        return [i for asg, i in inv.asg_instances() if inv.is_control_plane(asg) == (role == "control-plane")]

    def group(self, name: str) -> dict[str, Any]:
        groups = self.call("ec2", "describe_security_groups", Filters=[{"Name": "group-name", "Values": [name]}])
        return dict(groups["SecurityGroups"][0])


def of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def node(instance: dict[str, Any], ready: str = "True", **condition: str) -> dict[str, Any]:
    name = instance["PrivateDnsName"]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"providerID": f"aws:///{instance['Placement']['AvailabilityZone']}/{instance['InstanceId']}"},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": ready, **condition}]}}


def pod(name: str, phase: str = "Running", ready: bool = True, waiting: str | None = None,
        **status: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"nodeName": "ip-10-0-0-4.ec2.internal"},
            "status": {"phase": phase, "containerStatuses": [{"name": "c", "ready": ready, "state": state}],
                       **status}}


def put(kube: FakeApi, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    plural = obj["kind"].lower() + "s"
    prefix = f"/api/v1/namespaces/{meta['namespace']}" if meta.get("namespace") else "/api/v1"
    kube.objects[f"{prefix}/{plural}/{meta['name']}"] = obj


def healthy(kube: FakeApi, instances: list[dict[str, Any]]) -> None:
    kube.objects.clear()
    kube.requests.clear()
    for instance in instances:
        put(kube, node(instance))
    put(kube, pod("coredns-1"))
    put(kube, pod("kube-proxy-1"))
    put(kube, pod("etcd-backup-1", phase="Succeeded", ready=False))


# -- a kubeadm cluster ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(moto_server: str) -> Iterator[Cluster]:
    reset_moto(moto_server)
    ctx = make_ctx(moto_server)
    spec = make_spec(**SPEC_ARGS)
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    graph = build(spec)
    inv = gather(spec, ctx, graph)
    moto_roots = {b["Ebs"]["VolumeId"] for _, instance in inv.asg_instances()
                  for b in instance["BlockDeviceMappings"] if b["DeviceName"] == "/dev/sda1"}
    bucket = state_bucket_name(spec.metadata.name, ctx.account_id(), spec.spec.region)

    def read(key: str) -> bytes:
        return bytes(ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read())

    ca_pem, ca_key_pem = read("pki/ca.crt"), read("pki/ca.key")
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key: Any = serialization.load_pem_private_key(ca_key_pem, password=None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = make_cert("kube-apiserver", server_key, (ca.subject, ca_key), False)
    info = json.loads(read("cluster/cluster.json"))
    with serve(pem(server_cert), key_pem(server_key), client_ca=ca_pem.decode()) as kube:
        yield Cluster(spec, graph, ctx, kube, bucket, info, moto_roots)


@pytest.fixture
def c(deployed: Cluster) -> Cluster:
    """The deployed cluster with a healthy API (every ASG instance a Ready node, kube-system pods running)."""
    deployed.point_api_at("127.0.0.1", deployed.kube.server_address[1])
    healthy(deployed.kube, deployed.instances("control-plane") + deployed.instances("nodes"))
    return deployed


def test_healthy_cluster_has_no_live_findings(c: Cluster) -> None:
    with c.ctx.counting() as log:
        found = c.live()
    # The emulator's artefacts (IMDSv1 and an extra unencrypted root volume on each ASG instance) are one note.
    [note] = found
    assert (note.severity, note.check) == ("info", "exposure.live-emulated"), found
    assert len(c.moto_roots) == 2 and "2 instance(s)" in note.message and "2 default root volume(s)" in note.message
    assert log.mutating() == 0  # read-only
    assert {r["path"] for r in c.kube.requests} == {"/api/v1/nodes", "/api/v1/namespaces/kube-system/pods"}
    assert {(r["method"], r["client_cn"]) for r in c.kube.requests} == {("GET", "kubeaws-admin")}


def test_not_deployed_is_one_clear_finding(moto_server: str) -> None:
    spec = make_spec("ghost")
    [finding] = check_live(spec, build(spec), make_ctx(moto_server, "ghost"))
    assert (finding.severity, finding.check) == ("error", "live.not-deployed")
    assert "kubeaws apply" in finding.hint


def test_instance_that_is_not_a_node(c: Cluster) -> None:
    worker = c.instances("nodes")[0]
    iid = worker["InstanceId"]
    del c.kube.objects[f"/api/v1/nodes/{worker['PrivateDnsName']}"]
    [booting] = of(c.live(), "live.node-not-registered")
    assert booting.resource == f"Instance/{iid}" and iid in booting.message and "still booting" in booting.message
    assert "--wait" in booting.hint
    [joining] = of(c.live(now=HOUR_LATER), "live.node-not-registered")
    assert "kubeadm join did not complete" in joining.message and "cloud-init-output.log" in joining.hint
    # the control plane's group no longer lets the nodes reach the API port
    cp, nodes = c.group("dev-control-plane"), c.group("dev-nodes")["GroupId"]
    pair = {"GroupId": nodes, "Description": "Kubernetes API"}
    rule = {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "UserIdGroupPairs": [pair]}
    c.call("ec2", "revoke_security_group_ingress", GroupId=cp["GroupId"], IpPermissions=[rule])
    try:
        [blocked] = of(c.live(now=HOUR_LATER), "live.node-not-registered")
    finally:
        c.call("ec2", "authorize_security_group_ingress", GroupId=cp["GroupId"], IpPermissions=[rule])
    assert "allow no tcp 6443" in blocked.message and nodes in blocked.message
    assert blocked.hint == (f"aws ec2 authorize-security-group-ingress --group-id {cp['GroupId']} --protocol tcp "
                            f"--port 6443 --source-group {nodes}")
    # matched by providerID even under another node name; a control-plane member missing is named as such
    put(c.kube, {**node(worker), "metadata": {"name": "renamed"}})
    member = c.instances("control-plane")[0]
    del c.kube.objects[f"/api/v1/nodes/{member['PrivateDnsName']}"]
    [missing] = of(c.live(now=HOUR_LATER), "live.node-not-registered")
    assert member["InstanceId"] in missing.message and "control-plane member" in missing.message


def test_node_not_ready(c: Cluster) -> None:
    worker = c.instances("nodes")[0]
    put(c.kube, node(worker, "False", reason="KubeletNotReady", message="cni plugin not initialized"))
    [finding] = of(c.live(now=HOUR_LATER), "live.node-not-ready")
    assert finding.severity == "error" and worker["InstanceId"] in finding.message
    assert "KubeletNotReady: cni plugin not initialized" in finding.message
    assert f"kubectl describe node {worker['PrivateDnsName']}" in finding.hint


def test_kube_system_pods_not_running(c: Cluster) -> None:
    put(c.kube, pod("calico-node-x", ready=False, waiting="CrashLoopBackOff"))
    put(c.kube, pod("coredns-2", phase="Pending", ready=False, waiting="ContainerCreating"))
    put(c.kube, pod("metrics-1", phase="Pending", containerStatuses=[], conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes available"}]))
    found = {f.resource: f for f in of(c.live(), "live.pod-not-running")}
    assert set(found) == {"Pod/kube-system/calico-node-x", "Pod/kube-system/coredns-2", "Pod/kube-system/metrics-1"}
    crash = found["Pod/kube-system/calico-node-x"]
    assert "Running" in crash.message and "CrashLoopBackOff" in crash.message and "--previous" in crash.hint
    assert "ContainerCreating" in found["Pod/kube-system/coredns-2"].message
    assert "Unschedulable: 0/2 nodes available" in found["Pod/kube-system/metrics-1"].message
    assert "describe pod metrics-1" in found["Pod/kube-system/metrics-1"].hint


def test_api_unreachable_still_runs_the_aws_checks(c: Cluster) -> None:
    c.point_api_at("127.0.0.1", 1)  # nothing listens there
    found = c.live()
    [unreachable] = of(found, "live.api-unreachable")
    assert unreachable.severity == "warning" and "127.0.0.1:1" in unreachable.message
    assert "ssh -N -L 6443:127.0.0.1:1" in unreachable.hint  # apiEndpoint private: the bastion tunnel
    assert of(found, "exposure.live-emulated")  # the AWS side still ran
    assert not of(found, "live.node-not-registered")


def test_leaked_enis(c: Cluster) -> None:
    inv = gather(c.spec, c.ctx, c.graph)
    subnet = sorted(inv.subnets)[0]
    nodes = c.group("dev-nodes")["GroupId"]
    other = c.call("ec2", "create_security_group", GroupName="unrelated", Description="x",
                   VpcId=inv.vpc["VpcId"] if inv.vpc else "")["GroupId"]
    cni_tag = [{"ResourceType": "network-interface", "Tags": [{"Key": "cluster.k8s.amazonaws.com/name",
                                                               "Value": "dev"}]}]
    leaked = [c.call("ec2", "create_network_interface", SubnetId=subnet, Groups=[nodes]),
              c.call("ec2", "create_network_interface", SubnetId=subnet, Groups=[other], TagSpecifications=cni_tag)]
    unrelated = c.call("ec2", "create_network_interface", SubnetId=subnet, Groups=[other])
    leaked_ids = {e["NetworkInterface"]["NetworkInterfaceId"] for e in leaked}
    try:
        found = of(c.live(), "ip-capacity.leaked-eni")
    finally:
        for eni in [*leaked, unrelated]:
            c.call("ec2", "delete_network_interface", NetworkInterfaceId=eni["NetworkInterface"]["NetworkInterfaceId"])
        c.call("ec2", "delete_security_group", GroupId=other)
    assert {f.resource.removeprefix("NetworkInterface/") for f in found} == leaked_ids
    assert all(f.severity == "warning" and f.hint.startswith("aws ec2 delete-network-interface") for f in found)


def test_subnet_free_ips(c: Cluster) -> None:
    inv = gather(c.spec, c.ctx, c.graph)
    assert check_subnet_room(c.spec, inv) == []
    vpc_cni = make_spec(**SPEC_ARGS, network={"cni": "aws-vpc-cni"},
                        nodeGroups=[{"name": "general", "instanceTypes": ["m5.large"], "maxPods": 29,
                                     "size": {"min": 1, "desired": 1, "max": 3}}])
    assert check_subnet_room(vpc_cni, inv) == []
    # moto: scarce addresses are simulated in the described subnet (see the module docstring)
    asg = next(a for a in inv.asgs if not inv.is_control_plane(a))
    tight = next(s for s in inv.subnets.values() if s["AvailabilityZone"] == "us-east-1b"
                 and s["SubnetId"] in asg["VPCZoneIdentifier"])
    tight["AvailableIpAddressCount"] = 10
    assert check_subnet_room(c.spec, inv) == []  # calico: one address per node
    here = sum(1 for i in asg["Instances"] if i["AvailabilityZone"] == "us-east-1b")
    [finding] = check_subnet_room(vpc_cni, inv)  # (ceil(3/2) nodes - those there now) x (29 pods + 1)
    assert finding.check == "ip-capacity.subnet-free-ips" and finding.severity == "error"
    assert finding.resource == f"Subnet/{tight['SubnetId']}" and "has 10 free" in finding.message
    assert f"need {(2 - here) * 30} more" in finding.message and "prefixDelegation" in finding.hint


def test_instance_type_offerings(c: Cluster) -> None:
    inv = gather(c.spec, c.ctx, c.graph)
    assert check_type_offerings(c.spec, c.ctx, inv) == []

    def with_types(*types: str) -> list[Finding]:
        spec = make_spec(**SPEC_ARGS, nodeGroups=[{"name": "general", "instanceTypes": list(types)}])
        return check_type_offerings(spec, c.ctx, inv)

    # moto's offerings: hpc7g.16xlarge only in us-east-1c, trn1.32xlarge not in us-east-1a
    [nowhere, partly] = with_types("hpc7g.16xlarge", "trn1.32xlarge")
    assert (nowhere.severity, nowhere.check) == ("error", "ip-capacity.type-not-offered")
    assert "hpc7g.16xlarge is not offered in us-east-1a, us-east-1b" in nowhere.message
    assert nowhere.resource == "spec.nodeGroups[0].instanceTypes"
    assert partly.severity == "warning" and "trn1.32xlarge is not offered in us-east-1a:" in partly.message


def test_peered_cidr_overlap(c: Cluster) -> None:
    vpc = gather(c.spec, c.ctx, c.graph).vpc
    assert vpc is not None
    overlapping = c.call("ec2", "create_vpc", CidrBlock="192.168.0.0/16")["Vpc"]["VpcId"]  # calico's pod CIDR
    apart = c.call("ec2", "create_vpc", CidrBlock="172.20.0.0/16")["Vpc"]["VpcId"]
    made = []
    for peer, accept in ((overlapping, True), (apart, True), (overlapping, False)):
        pcx = c.call("ec2", "create_vpc_peering_connection", VpcId=vpc["VpcId"], PeerVpcId=peer)
        made.append(pcx["VpcPeeringConnection"]["VpcPeeringConnectionId"])
        if accept:
            c.call("ec2", "accept_vpc_peering_connection", VpcPeeringConnectionId=made[-1])
    try:
        found = of(c.live(), "addressing.peered-cidr-overlap")
    finally:
        for pcx_id in made:
            c.call("ec2", "delete_vpc_peering_connection", VpcPeeringConnectionId=pcx_id)
    [finding] = found  # the pending one and the non-overlapping one are not reported
    assert finding.severity == "error" and overlapping in finding.message and made[0] in finding.message
    assert "podCIDR 192.168.0.0/16" in finding.message and finding.resource == "spec.network.podCIDR"
    assert not of(c.live(), "addressing.peered-cidr-overlap")  # deleted peerings are not active


def test_discovery_tags_on_live_resources(c: Cluster) -> None:
    lt = c.call("ec2", "create_launch_template", LaunchTemplateName="dev-extra", LaunchTemplateData={},
                TagSpecifications=[{"ResourceType": "launch-template",
                                    "Tags": [{"Key": "kubeaws.io/cluster", "Value": "dev"}]}])["LaunchTemplate"]
    worker = c.instances("nodes")[0]["InstanceId"]
    ca_tag = {"ResourceId": "dev-general", "ResourceType": "auto-scaling-group",
              "Key": "k8s.io/cluster-autoscaler/enabled", "Value": "true", "PropagateAtLaunch": True}
    c.call("autoscaling", "delete_tags", Tags=[ca_tag])
    c.call("ec2", "delete_tags", Resources=[worker], Tags=[{"Key": "team"}])
    try:
        found = {f.resource: f for f in of(c.live(), "discovery.live-missing-tag")}
        without_autoscaler = make_spec(tags={"team": "dsp"})
        quiet = of(check_live(without_autoscaler, build(without_autoscaler), c.ctx), "discovery.live-missing-tag")
    finally:
        c.call("ec2", "delete_launch_template", LaunchTemplateId=lt["LaunchTemplateId"])
        c.call("autoscaling", "create_or_update_tags", Tags=[ca_tag])
        c.call("ec2", "create_tags", Resources=[worker], Tags=[{"Key": "team", "Value": "dsp"}])
    assert set(found) == {"LaunchTemplate/dev-extra", "AutoScalingGroup/dev-general", f"Instance/{worker}"}
    assert "kubernetes.io/cluster/dev" in found["LaunchTemplate/dev-extra"].message
    asg = found["AutoScalingGroup/dev-general"]
    assert asg.severity == "error" and "k8s.io/cluster-autoscaler/enabled" in asg.message
    assert "aws autoscaling create-or-update-tags" in asg.hint
    team = found[f"Instance/{worker}"]
    assert team.severity == "warning" and "team" in team.message and "Key=team,Value=dsp" in team.hint
    assert {f.resource for f in quiet} == {"LaunchTemplate/dev-extra", f"Instance/{worker}"}  # no CA tags wanted


def test_exposure_of_live_resources(c: Cluster) -> None:
    bastion = next(i for r in c.call("ec2", "describe_instances", Filters=[
        {"Name": "tag:kubeaws.io/resource", "Values": ["Instance/bastion"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"] for i in r["Instances"])
    bid = bastion["InstanceId"]
    nodes = c.group("dev-nodes")["GroupId"]
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    c.call("ec2", "modify_instance_metadata_options", InstanceId=bid, HttpTokens="optional")
    c.call("ec2", "authorize_security_group_ingress", GroupId=nodes, IpPermissions=[ssh])
    volume = c.call("ec2", "create_volume", AvailabilityZone=bastion["Placement"]["AvailabilityZone"], Size=1,
                    Encrypted=False)["VolumeId"]
    c.call("ec2", "attach_volume", VolumeId=volume, InstanceId=bid, Device="/dev/sdz")
    try:
        found = c.live()
        acknowledged = make_spec(**SPEC_ARGS, access={"allowWorldAccess": True})
        lenient = of(check_live(acknowledged, build(acknowledged), c.ctx), "exposure.live-world-open")
    finally:
        c.call("ec2", "modify_instance_metadata_options", InstanceId=bid, HttpTokens="required")
        c.call("ec2", "revoke_security_group_ingress", GroupId=nodes, IpPermissions=[ssh])
        c.call("ec2", "detach_volume", VolumeId=volume, InstanceId=bid, Device="/dev/sdz")
        c.call("ec2", "delete_volume", VolumeId=volume)
    [imds] = of(found, "exposure.live-imdsv1")
    assert imds.resource == f"Instance/{bid}" and "--http-tokens required" in imds.hint
    [disk] = [f for f in of(found, "exposure.live-unencrypted") if f.resource == f"Volume/{volume}"]
    assert disk.severity == "error" and bid in disk.message
    [world] = of(found, "exposure.live-world-open")
    assert world.severity == "error" and "SSH (tcp 22)" in world.message and world.resource == f"SecurityGroup/{nodes}"
    assert world.hint.startswith(f"aws ec2 revoke-security-group-ingress --group-id {nodes}")
    assert [f.severity for f in lenient] == ["warning"]


def test_world_open_nodeports_of_live_groups(c: Cluster) -> None:
    nodes = c.group("dev-nodes")["GroupId"]
    udp = {"IpProtocol": "udp", "FromPort": 30000, "ToPort": 32767, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}
    c.call("ec2", "authorize_security_group_ingress", GroupId=nodes, IpPermissions=[udp])
    try:
        found = of(c.live(), "exposure.live-world-open")
    finally:
        c.call("ec2", "revoke_security_group_ingress", GroupId=nodes, IpPermissions=[udp])
    [world] = found
    assert world.severity == "error" and "NodePort services (udp 30000-32767) to ::/0" in world.message
    assert world.resource == f"SecurityGroup/{nodes}" and "revoke-security-group-ingress" in world.hint
    assert of(c.live(), "exposure.live-world-open") == []


def test_launch_template_allowing_imdsv1_is_found_even_on_the_emulator(c: Cluster) -> None:
    """The launch template version a group launches is checked itself (a group at size 0 too, and on the
    emulator, whose instances do not show the template's settings)."""
    [asg] = c.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=["dev-general"])[
        "AutoScalingGroups"]
    template = asg["LaunchTemplate"]
    weak = c.call("ec2", "create_launch_template_version", LaunchTemplateName=template["LaunchTemplateName"],
                  SourceVersion=str(template["Version"]), LaunchTemplateData={
                      "MetadataOptions": {"HttpTokens": "optional"},
                      "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": False}}]},
                  )["LaunchTemplateVersion"]["VersionNumber"]
    c.call("autoscaling", "update_auto_scaling_group", AutoScalingGroupName="dev-general",
           LaunchTemplate={"LaunchTemplateName": template["LaunchTemplateName"], "Version": str(weak)})
    try:
        found = [f for f in c.live() if f.resource.startswith("LaunchTemplate/")]
    finally:
        c.call("autoscaling", "update_auto_scaling_group", AutoScalingGroupName="dev-general",
               LaunchTemplate={"LaunchTemplateName": template["LaunchTemplateName"],
                               "Version": str(template["Version"])})
    assert {(f.check, f.resource) for f in found} == {
        ("exposure.live-imdsv1", f"LaunchTemplate/{template['LaunchTemplateName']}"),
        ("exposure.live-unencrypted", f"LaunchTemplate/{template['LaunchTemplateName']}")}
    assert all(f"version {weak}" in f.message and f.severity == "error" for f in found)


def test_on_aws_every_instance_is_checked_itself(c: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the local emulator's artefacts are forgiven: against AWS (an endpoint that is not the emulator),
    the same instances (HttpTokens optional, an unencrypted root volume, as moto shows them) are errors."""
    monkeypatch.setattr(AwsContext, "capabilities", property(lambda self: AWS))
    found = c.live()
    assert not of(found, "exposure.live-emulated")
    asg_instances = {i["InstanceId"] for i in c.instances("control-plane") + c.instances("nodes")}
    assert {f.resource for f in of(found, "exposure.live-imdsv1")} == {f"Instance/{i}" for i in asg_instances}
    assert {f.resource for f in of(found, "exposure.live-unencrypted")} == {f"Volume/{v}" for v in c.moto_roots}


# -- EKS with a managed node group ----------------------------------------------------------------------
def test_eks_nodes_and_role_mapping(moto_server: str) -> None:
    spec = make_spec("eks1", mode="eks", network={"vpc": {"cidr": "10.1.0.0/16"}},
                     nodeGroups=[{"name": "m", "type": "managed", "instanceTypes": ["t3.large"],
                                  "size": {"min": 2, "desired": 2, "max": 2}}])
    graph = build(spec)
    ctx = make_ctx(moto_server, "eks1")
    call: Callable[..., Any] = ctx.call
    owned = [{"Key": "kubeaws.io/cluster", "Value": "eks1"}]
    vpc = call("ec2", "create_vpc", CidrBlock="10.1.0.0/16",
               TagSpecifications=[{"ResourceType": "vpc", "Tags": owned}])["Vpc"]["VpcId"]
    subnets = [call("ec2", "create_subnet", VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=az,
                    TagSpecifications=[{"ResourceType": "subnet", "Tags": [
                        *owned, {"Key": "kubeaws.io/subnet-role", "Value": "private"}]}])["Subnet"]["SubnetId"]
               for i, az in enumerate(["us-east-1a", "us-east-1b"])]
    role = call("iam", "create_role", RoleName="eks1-node", Path="/kubeaws/eks1/",
                AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    call("iam", "create_instance_profile", InstanceProfileName="eks1-node")
    call("iam", "add_role_to_instance_profile", InstanceProfileName="eks1-node", RoleName="eks1-node")
    call("eks", "create_cluster", name="eks1", roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    ng_name = graph["EksNodegroup/m"].props["nodegroup_name"]
    ng = call("eks", "create_nodegroup", clusterName="eks1", nodegroupName=ng_name, nodeRole=role,
              subnets=subnets)["nodegroup"]
    # moto: the managed node group has no Auto Scaling group; make the one DescribeNodegroup names
    asg_name = ng["resources"]["autoScalingGroups"][0]["name"]
    ami = call("ssm", "get_parameters", Names=[
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"])["Parameters"][0]["Value"]
    call("ec2", "create_launch_template", LaunchTemplateName=f"eks-{asg_name}",
         LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.large"})
    call("autoscaling", "create_auto_scaling_group", AutoScalingGroupName=asg_name, MinSize=2, MaxSize=2,
         DesiredCapacity=2, LaunchTemplate={"LaunchTemplateName": f"eks-{asg_name}"},
         VPCZoneIdentifier=",".join(subnets),
         Tags=[{"Key": "kubernetes.io/cluster/eks1", "Value": "owned", "PropagateAtLaunch": True}])
    inv = gather(spec, ctx, graph)
    instances = [i for _, i in inv.asg_instances()]
    assert len(instances) == 2 and inv.group_of(spec, inv.asgs[0]) == spec.spec.node_groups[0]
    for i in instances:  # moto: the launch template's profile and metadata options are not applied
        call("ec2", "associate_iam_instance_profile", InstanceId=i["InstanceId"],
             IamInstanceProfile={"Name": "eks1-node"})
    pki = test_pki()

    with serve(pki["cert"], pki["key"]) as kube:
        def to_fake(parsed: dict[str, Any], **_: Any) -> None:  # moto's endpoint serves no Kubernetes API
            if parsed.get("cluster", {}).get("name") == "eks1":
                parsed["cluster"]["endpoint"] = url(kube)
                parsed["cluster"]["certificateAuthority"] = {"data": base64.b64encode(pki["ca"].encode()).decode()}
                parsed["cluster"]["resourcesVpcConfig"]["endpointPublicAccess"] = True

        ctx.add_hook("after-call.eks.DescribeCluster", to_fake)
        put(kube, node(instances[0]))
        put(kube, pod("coredns-1", phase="Pending", ready=False, waiting="ContainerCreating"))
        found = check_live(spec, graph, ctx, now=HOUR_LATER)
        [unmapped] = of(found, "live.node-not-registered")
        assert instances[1]["InstanceId"] in unmapped.message and f"node role {role} is not mapped" in unmapped.message
        assert "CONFIG_MAP" in unmapped.message and "kube-system/aws-auth" in unmapped.hint
        assert all(r["path"] != "/api/v1/nodes" or r["client_cn"] is None for r in kube.requests)  # a token
        [creating] = of(found, "live.pod-not-running")
        assert "no IP address" in creating.hint  # problem 5
        mapped = [{"rolearn": role.replace("/kubeaws/eks1/", "/"), "username": "system:node:{{EC2PrivateDNSName}}",
                   "groups": ["system:bootstrappers", "system:nodes"]}]
        put(kube, {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                   "data": {"mapRoles": yaml.safe_dump(mapped)}})
        [other] = of(check_live(spec, graph, ctx, now=HOUR_LATER), "live.node-not-registered")
        assert "did not register with EKS" in other.message
        put(kube, node(instances[1]))
        found = check_live(spec, graph, ctx, now=HOUR_LATER)
        assert not of(found, "live.node-not-registered") and not of(found, "live.node-not-ready")
        assert not of(found, "live.group-missing")
        # an identity the API server refuses: one warning that says how to get access
        refused = KubeClient(url(kube), pki["ca"], "not-an-eks-token", FAST_POLICY)
        [denied] = of(check_live(spec, graph, ctx, kube=refused), "live.api-unreachable")
        assert "HTTP 401" in denied.message and "aws eks create-access-entry --cluster-name eks1" in denied.hint


# -- CLI ------------------------------------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture
def ghost_file(tmp_path: Any, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A spec of a cluster that is not deployed; AWS_ENDPOINT_URL points at the moto server (not reset)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setattr(cli_doctor, "WAIT_INTERVAL", 0.2)
    path = tmp_path / "ghost.yaml"
    path.write_text(yaml.safe_dump(merge(BASE, {"metadata": {"name": "ghost"}})))
    return str(path)


class FakeClock:
    """`time` for the --wait loop: sleeping advances the clock, so the test does not depend on how long a
    live check takes on a busy machine."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_cli_live_wait_gives_up_after_the_duration(ghost_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(cli_doctor, "time", clock)
    result = runner.invoke(app, ["doctor", "-f", ghost_file, "--live", "--wait", "1s"])
    assert result.exit_code == 1, result.output
    assert len(clock.slept) >= 5 and all(s <= 0.2 + 1e-9 for s in clock.slept)  # WAIT_INTERVAL 0.2
    assert abs(sum(clock.slept) - 1.0) < 1e-6
    assert result.stderr.count("waiting: 1 live error(s) (live.not-deployed)") == len(clock.slept)
    assert "live.not-deployed" in result.stdout and "--wait 1s is over" in result.stderr
    result = runner.invoke(app, ["doctor", "-f", ghost_file, "--live", "--wait", "1s", "--output", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)  # the final report only
    assert [f["check"] for f in doc["findings"] if f["severity"] == "error"] == ["live.not-deployed"]
    assert "waiting" not in result.stderr


def test_cli_wait_stops_as_soon_as_the_live_errors_are_gone(ghost_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = iter([[Finding("error", "live.node-not-registered", "i-1 booting")], []])
    calls: list[int] = []

    def fake_live(*_: Any, **__: Any) -> list[Finding]:
        calls.append(1)
        return next(runs)

    monkeypatch.setattr("kubeaws.doctor.live.check_live", fake_live)
    result = runner.invoke(app, ["doctor", "-f", ghost_file, "--live", "--wait", "10m"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 2 and "live checks pass" in result.stderr


def test_cli_wait_waits_for_a_public_api_to_come_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after apply a public endpoint does not answer yet: --wait keeps checking until it does; a private
    endpoint (no tunnel) is not waited for, as nothing would change."""
    unreachable = Finding("warning", "live.api-unreachable", "connection refused")
    public = tmp_path / "public.yaml"
    public.write_text(yaml.safe_dump(merge(BASE, {"metadata": {"name": "ghost"},
                                                  "spec": {"access": {"apiEndpoint": "public"}}})))
    for path, runs_wanted in ((str(public), 3), (str(tmp_path / "private.yaml"), 1)):
        if "private" in path:
            Path(path).write_text(yaml.safe_dump(merge(BASE, {"metadata": {"name": "ghost"}})))
        runs = iter([[unreachable], [unreachable], []])
        calls: list[int] = []

        def fake_live(*_: Any, runs: Any = runs, calls: list[int] = calls, **__: Any) -> list[Finding]:
            calls.append(1)
            return list(next(runs))

        clock = FakeClock()
        monkeypatch.setattr(cli_doctor, "time", clock)
        monkeypatch.setattr("kubeaws.doctor.live.check_live", fake_live)
        result = runner.invoke(app, ["doctor", "-f", path, "--live", "--wait", "10m"])
        assert result.exit_code == 0, result.output
        assert len(calls) == runs_wanted, path


@pytest.mark.parametrize(("args", "message"), [
    (["--live", "--wait", "10x"], "is not a duration"),
    (["--live", "--wait", "m"], "is not a duration"),
    (["--wait", "5m"], "add --live"),
])
def test_cli_bad_wait_is_bad_input(ghost_file: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["doctor", "-f", ghost_file, *args])
    assert result.exit_code == 2 and message in result.output + result.stderr


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("1m30s", 90), ("45", 45)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert cli_doctor.parse_duration(text) == seconds


def test_parse_duration_refuses_nonsense() -> None:
    for text in ("", "1d", "-5", "5 m", "ms"):
        with pytest.raises(KubeawsError):
            cli_doctor.parse_duration(text)


def test_live_run_reports_a_subnet_once_static_count_superseded() -> None:
    """Under --live the static free-address count of brought subnets (which asks for every node at max size
    on top of the running ones) gives way to the live count; not when the cluster is not deployed."""
    static = [Finding("error", "ip-capacity.subnet-too-small", "static", "Subnet/subnet-1", "fix"),
              Finding("warning", "pod-network.missing-flow", "kept", "SecurityGroup/nodes", "fix")]
    live = [Finding("error", "ip-capacity.subnet-free-ips", "live", "Subnet/subnet-1", "fix")]
    assert [f.check for f in combine(static, live)] == ["pod-network.missing-flow", "ip-capacity.subnet-free-ips"]
    gone = [Finding("error", "live.not-deployed", "nothing", "", "apply")]
    assert [f.check for f in combine(static, gone)] == ["ip-capacity.subnet-too-small", "pod-network.missing-flow",
                                                      "live.not-deployed"]
