"""Runs the rendered boot scripts with bash in a sandbox: files from the user data under a temporary root
(KUBEAWS_ROOT), every host command replaced by tests/data/bootstrap_stub.py, a directory as the state bucket
and a JSON file as EC2. Checks step order, idempotence, the replaced-member path and bounded failures."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeaws.bootstrap import render_user_data
from tests.helpers import make_spec

STUB = Path(__file__).parent / "data" / "bootstrap_stub.py"
COMMANDS = ["curl", "aws", "kubeadm", "kubectl", "systemctl", "apt-get", "apt-cache", "apt-mark", "gpg",
            "containerd", "swapoff", "modprobe", "sysctl", "blkid", "mkfs.ext4", "mount", "mountpoint",
            "etcdctl", "ip"]
BUCKET = "kubeaws-dev-0123456789"
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs bash and a Linux userland")


class Sandbox:
    def __init__(self, tmp: Path, user_data: str, state: dict[str, Any]) -> None:
        self.root, self.bucket, self.bin = tmp / "root", tmp / "bucket", tmp / "bin"
        self.calls_file, self.state_file = tmp / "calls.log", tmp / "aws.json"
        for d in (self.root, self.bucket, self.bin):
            d.mkdir()
        stub = self.bin / "_stub.py"
        stub.write_text(f"#!{sys.executable}\n" + STUB.read_text())
        stub.chmod(0o755)
        for cmd in COMMANDS:
            (self.bin / cmd).symlink_to(stub)
        self.state_file.write_text(json.dumps(state))
        doc = yaml.safe_load(user_data)
        self.script = ""
        for entry in doc["write_files"]:
            content = entry["content"]
            if entry.get("encoding") == "gz+b64":
                content = gzip.decompress(base64.b64decode(content)).decode()
            path = self.root / entry["path"].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        self.script = str(self.root / doc["runcmd"][0][1].lstrip("/"))
        self.put("cluster/cluster.json", json.dumps({"endpoint": "dev-api.example", "port": 6443,
                                                    "caCertHash": "sha256:" + "ab" * 32}))

    def put(self, key: str, text: str) -> None:
        (self.bucket / key).parent.mkdir(parents=True, exist_ok=True)
        (self.bucket / key).write_text(text)

    def run(self, tries: int = 3) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "KUBEAWS_ROOT": str(self.root), "KUBEAWS_WAIT_TRIES": str(tries),
               "KUBEAWS_WAIT_SLEEP": "0", "STUB_BUCKET": str(self.bucket), "STUB_STATE": str(self.state_file),
               "STUB_CALLS": str(self.calls_file), "KUBEAWS_IMDS_URL": "http://imds.invalid", "HOME": str(self.root)}
        return subprocess.run(["bash", self.script], env=env, capture_output=True, text=True, timeout=60)

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []

    def log(self) -> str:
        return (self.root / "var/log/kubeaws-bootstrap.log").read_text()


def first(calls: list[str], prefix: str) -> int:
    return next(i for i, c in enumerate(calls) if c.startswith(prefix))


def _state(member: int, fs: str = "", holder: str | None = None) -> dict[str, Any]:
    vol: dict[str, Any] = {"member": str(member), "state": "in-use" if holder else "available", "fs": fs,
                           "attachment": {"instance": holder, "state": "attached"} if holder else None}
    return {"imds": {"instance-id": "i-new", "local-ipv4": "10.0.1.10", "local-hostname": "ip-10-0-1-10.ec2.internal",
                     "placement/availability-zone": "us-east-1a"},
            "member": member, "volumes": {"vol-0abc": vol}, "instances": {"i-old": "terminated"},
            "peers": ["10.0.2.20", "10.0.1.10"]}


HA = {"controlPlane": {"count": 3}, "network": {"cni": "calico"}, "addons": {"metricsServer": {}}}


def test_first_member_initializes_then_rerun_is_noop(tmp_path: Path) -> None:
    spec = make_spec(**HA)
    box = Sandbox(tmp_path, render_user_data(spec, "control-plane", BUCKET), _state(0))
    for key in ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key",
                "sa.key", "sa.pub", "encryption-key"):
        box.put(f"pki/{key}", "material")
    box.put("cluster/addons/metrics-server.yaml", "kind: List\n")
    box.put("cluster/addons/cni-calico.yaml", "kind: List\n")
    result = box.run()
    assert result.returncode == 0, box.log()
    calls = box.calls()
    containerd = first(calls, "systemctl restart containerd")
    attach, mkfs, mount = first(calls, "aws ec2 attach-volume"), first(calls, "mkfs.ext4"), first(calls, "mount ")
    init = first(calls, "kubeadm init --config")
    cni = first(calls, "kubectl --kubeconfig")  # readiness probes come first, then applies
    apply_cni = next(i for i, c in enumerate(calls) if "apply" in c and "cni-calico" in c)
    assert containerd < attach < mkfs < mount < init < apply_cni
    assert init < cni
    assert (box.bucket / "join/initialized").exists()
    assert (box.bucket / "join/token").read_text().strip() == "abcdef.0123456789abcdef"
    assert "UUID=0b0c0d0e-uuid /var/lib/etcd ext4 defaults,nofail 0 2" in (box.root / "etc/fstab").read_text()
    config = (box.root / "etc/containerd/config.toml").read_text()
    assert "SystemdCgroup = true" in config and "registry.k8s.io/pause:3.10" in config
    assert "material" in (box.root / "etc/kubernetes/encryption/config.yaml").read_text()
    assert "step attach-etcd-volume: done" in box.log()

    before = len(box.calls())
    second = box.run()
    assert second.returncode == 0
    rerun = box.calls()[before:]
    assert not [c for c in rerun if c.startswith(("kubeadm", "aws ec2 attach", "mkfs"))]
    assert "nothing to do" in box.log()


def test_replaced_member_reuses_its_old_etcd_volume(tmp_path: Path) -> None:
    spec = make_spec(**HA)
    box = Sandbox(tmp_path, render_user_data(spec, "control-plane", BUCKET), _state(1, fs="ext4", holder="i-old"))
    for key in ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key",
                "sa.key", "sa.pub", "encryption-key"):
        box.put(f"pki/{key}", "material")
    box.put("join/initialized", "yes")
    box.put("join/token", "abcdef.0123456789abcdef")
    etcd = box.root / "var/lib/etcd"
    (etcd / "member").mkdir(parents=True)
    (etcd / "kubeaws-member-name").write_text("ip-10-0-1-99.ec2.internal\n")
    result = box.run()
    assert result.returncode == 0, box.log()
    calls = box.calls()
    assert first(calls, "aws ec2 detach-volume --region us-east-1 --volume-id vol-0abc --force") < \
        first(calls, "aws ec2 attach-volume --region us-east-1 --volume-id vol-0abc")
    assert not [c for c in calls if c.startswith(("mkfs", "aws ec2 create-volume", "kubeadm init --config"))]
    assert not [c for c in calls if c.startswith("kubeadm join --config")]  # no new etcd member
    update = [c for c in calls if c.startswith("etcdctl") and "member update 8e9e05c52164694d" in c]
    assert update and "https://10.0.1.10:2380" in update[0] and "https://10.0.2.20:2379" in update[0]
    assert first(calls, "etcdctl") < first(calls, "kubeadm init phase etcd local")
    assert "restoring member 1" in box.log()
    # the token fetched from the bucket never reaches the log or stays on disk
    assert "0123456789abcdef" not in box.log()
    assert not (box.root / "etc/kubeaws/run/join.yaml").exists()


def test_node_without_join_material_fails_clearly(tmp_path: Path) -> None:
    spec = make_spec()
    box = Sandbox(tmp_path, render_user_data(spec, "node", BUCKET, "general"), _state(0))
    result = box.run(tries=3)
    assert result.returncode != 0
    log = box.log()
    assert f"gave up waiting for s3://{BUCKET}/join/token (written by the control plane) after 3 attempts" in log
    assert "bootstrap FAILED" in log and "kubeadm-join" in log
    assert not [c for c in box.calls() if c.startswith("kubeadm join")]
    assert log.count("(attempt ") == 3


def test_node_joins_with_token_from_bucket(tmp_path: Path) -> None:
    spec = make_spec(nodeGroups=[{"name": "general", "maxPods": 58, "labels": {"team": "a"},
                                  "taints": [{"key": "t", "value": "v", "effect": "NoSchedule"}]}])
    box = Sandbox(tmp_path, render_user_data(spec, "node", BUCKET, "general"), _state(0))
    box.put("join/token", "abcdef.0123456789abcdef\n")
    result = box.run()
    assert result.returncode == 0, box.log()
    calls = box.calls()
    assert first(calls, "systemctl restart containerd") < first(calls, "kubeadm join --config")
    assert (box.root / "etc/kubeaws/patches/kubeletconfiguration+merge.yaml").read_text() == "maxPods: 58\n"
    assert not [c for c in calls if c.startswith(("mkfs", "mount"))]
