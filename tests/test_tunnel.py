"""The SSH tunnel to a private API (kubeaws.tunnel, `kubeaws tunnel`, `kubeaws kubeconfig --tunnel`) against a
REAL OpenSSH server: Debian's /usr/sbin/sshd (package openssh-server), started by the test on 127.0.0.1 with a
configuration of its own (its own host key, an authorized_keys file with a key the test makes, no PAM), and
behind it a real HTTPS server (tests/kube_fake.py) whose certificate, signed by a test CA, names a made-up
endpoint (`dev-api.elb.example`, or the API interface address of a cluster applied on the moto server).

What stands in: the AWS side is the moto server (the bastion is found by its tags there; its console output
has no host key fingerprints, so the first connection is trust-on-first-use); moto's bastion address and the
endpoint's private address are made up, so `open_tunnel`'s `resolve` parameter (for tests only) maps them to
the sshd and the HTTPS server on loopback: no packet leaves 127.0.0.1. sshd logs in the user running the
tests (root in CI) instead of ec2-user (`user=` / `--ssh-user`).

Without /usr/sbin/sshd these tests FAIL (never skip): `apt-get install -y openssh-server`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import getpass
import ipaddress
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import owned_tags, tag_list
from kubeaws.eks_auth import eks_kubeconfig
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient
from kubeaws.model.state import state_bucket_name
from kubeaws.spec.models import ClusterSpec
from kubeaws.tunnel import (
    Bastion,
    HostKeyMismatch,
    TunnelError,
    check_host_key,
    endpoint_of,
    find_bastion,
    fingerprint,
    known_hosts_file,
    open_tunnel,
    private_keys,
    tunnel_kubeconfig,
    tunnel_needed,
)
from tests.conftest import REGION, REPO, make_ctx
from tests.helpers import make_spec
from tests.kube_fake import FakeApi, key_pem, make_cert, pem, serve
from tests.tunnel_child import cli_app

SSHD = Path("/usr/sbin/sshd")
ENDPOINT = "dev-api.elb.example"
SERVER = f"https://{ENDPOINT}:6443"
TOKEN = "k8s-aws-v1.test-token"
#: The cluster of the library-level tests (the CLI test applies its own cluster "dev").
CLUSTER = "tunnel-test"
USER = getpass.getuser()
runner = CliRunner()


# -- helpers ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ssh_keypair(path: Path) -> str:
    """An Ed25519 key in OpenSSH format at `path` (0600); its public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (path.parent / f"{path.name}.pub").write_bytes(public + b"\n")
    return public.decode()


def require_sshd() -> Path:
    if not SSHD.is_file():
        pytest.fail(f"{SSHD} is missing: the tunnel tests run a real OpenSSH server; install it with "
                    "`apt-get install -y openssh-server` (Debian/Ubuntu)")
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        # sshd run as root needs its privilege separation directory, which the system service creates at boot.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    return SSHD


class Sshd:
    """An OpenSSH server on 127.0.0.1 (a free port) with its own config, host key and authorized_keys."""

    def __init__(self, folder: Path, host_key: Path, authorized: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = host_key
        (folder / "authorized_keys").write_text("".join(f"{line}\n" for line in authorized))
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", "UsePAM no", "StrictModes no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", "AllowTcpForwarding yes", "LogLevel VERBOSE", ""]))
        self.log = folder / "sshd.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([str(require_sshd()), "-D", "-e", "-f", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd exited ({self.proc.returncode}): {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"sshd does not listen on 127.0.0.1:{self.port}: {self.log.read_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def tls_server_cert(name: str, ca: x509.Certificate, ca_key: Any) -> tuple[str, str]:
    """(certificate PEM, key PEM) of an API server certificate for `name` (DNS name or IP address)."""
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return pem(cert), key_pem(key)


def resolver(mapping: dict[tuple[str, int], tuple[str, int]]) -> Callable[[str, int], tuple[str, int]]:
    def resolve(host: str, port: int) -> tuple[str, int]:
        assert (host, port) in mapping, f"the test did not map {host}:{port}: nothing may leave loopback"
        return mapping[(host, port)]
    return resolve


def ensure_bastion(ctx: AwsContext, spec: ClusterSpec) -> Bastion:
    """The cluster's bastion on the moto server: a running instance tagged as kubeaws tags a bastion, made
    when this worker's moto does not hold one yet (the server is not reset for these tests: loading moto's
    AMIs for RunInstances after each reset would cost seconds per test; the cluster name is theirs alone)."""
    with contextlib.suppress(TunnelError):
        return find_bastion(spec, ctx)
    cluster = spec.metadata.name
    image = ctx.call("ec2", "describe_images", Owners=["amazon"])["Images"][0]["ImageId"]
    tags = owned_tags(cluster, "Instance", "bastion", f"{cluster}-bastion", {"kubeaws.io/role": "bastion"})
    ctx.call("ec2", "run_instances", ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1,
             TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list(tags)}])
    return find_bastion(spec, ctx)


class World:
    """sshd + an HTTPS API behind it + a bastion on moto + the resolver between them."""

    def __init__(self, tmp: Path, ctx: AwsContext) -> None:
        self.tmp = tmp
        self.ctx = ctx
        self.spec = make_spec(name=CLUSTER)
        self.client_key = tmp / "client_key"
        self.host_key = tmp / "host_key"
        ssh_keypair(self.host_key)
        self.sshd = Sshd(tmp / "sshd", self.host_key, [ssh_keypair(self.client_key)])
        self.bastion = ensure_bastion(ctx, self.spec)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = make_cert("test-ca", ca_key, None, True)
        self.ca_key = ca_key
        self.api_port = 0
        self.notes: list[str] = []

    def resolve(self) -> Callable[[str, int], tuple[str, int]]:
        return resolver({(self.bastion.address, 22): ("127.0.0.1", self.sshd.port),
                         (ENDPOINT, 6443): ("127.0.0.1", self.api_port)})

    def tunnel(self, **kwargs: Any) -> Any:
        options: dict[str, Any] = {"key_file": self.client_key, "user": USER, "resolve": self.resolve(),
                                   "notify": self.notes.append}
        options.update(kwargs)
        return open_tunnel(self.spec, self.ctx, SERVER, **options)

    @property
    def ca_pem(self) -> str:
        return pem(self.ca)


@pytest.fixture
def world(tmp_path: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("KUBEAWS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    w = World(tmp_path, make_ctx(moto_server, cluster=CLUSTER))
    yield w
    w.sshd.stop()


@pytest.fixture
def api_server(world: World) -> Iterator[FakeApi]:
    """The HTTPS API behind the bastion, its certificate naming the endpoint (signed by the test CA)."""
    with serve(*tls_server_cert(ENDPOINT, world.ca, world.ca_key)) as server:
        world.api_port = server.server_address[1]
        yield server


# -- forwarding and TLS ---------------------------------------------------------------------------------
def test_tunnel_forwards_to_the_api_and_tls_verifies_the_endpoint_name(world: World, api_server: FakeApi) -> None:
    """Through the bastion (sshd), GET /api/v1/nodes reaches the HTTPS server; TLS is verified against the
    cluster CA for the endpoint's name (Tunnel.server_name) while connecting to 127.0.0.1. Checking for
    127.0.0.1 instead fails: that is why the name is needed."""
    with world.tunnel() as tunnel:
        assert tunnel.local_host == "127.0.0.1" and tunnel.server == f"https://127.0.0.1:{tunnel.local_port}"
        assert tunnel.server_name == ENDPOINT
        kube = KubeClient(tunnel.server, world.ca_pem, TOKEN, tls_server_name=tunnel.server_name)
        assert kube.get("/api/v1/nodes") == {"kind": "List", "items": []}
        assert kube.get("/api/v1/namespaces/kube-system/pods") == {"kind": "List", "items": []}
        assert [r["path"] for r in api_server.requests] == ["/api/v1/nodes", "/api/v1/namespaces/kube-system/pods"]
        with pytest.raises(KubeawsError, match=r"TLS failed.*(mismatch|not valid for)"):
            KubeClient(tunnel.server, world.ca_pem, TOKEN).get("/api/v1/nodes")
        log = (world.tmp / "sshd" / "sshd.log").read_text()
        assert f"Accepted publickey for {USER}" in log
    assert not tunnel.active


@pytest.mark.parametrize("case", ["another name", "another CA"])
def test_tls_fails_for_a_certificate_of_another_name_or_ca(world: World, case: str) -> None:
    """The server behind the tunnel presents a certificate for `other-api.elb.example` (signed by the cluster
    CA), or one for the endpoint's name signed by another CA: the client refuses both."""
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = make_cert("other-ca", other_key, None, True)
    cert = (tls_server_cert("other-api.elb.example", world.ca, world.ca_key) if case == "another name"
            else tls_server_cert(ENDPOINT, other_ca, other_key))
    with serve(*cert) as server:
        world.api_port = server.server_address[1]
        with world.tunnel() as tunnel:
            kube = KubeClient(tunnel.server, world.ca_pem, TOKEN, tls_server_name=tunnel.server_name)
            reason = "mismatch|not valid for" if case == "another name" else "unable to get local issuer"
            with pytest.raises(KubeawsError, match=f"TLS failed.*({reason})"):
                kube.get("/api/v1/nodes")
        assert server.requests == []


def test_bastion_that_cannot_reach_the_endpoint_is_reported(world: World) -> None:
    """Nothing listens at the endpoint (as seen from the bastion): the tunnel is not handed out, and the error
    says the login worked and what to check."""
    world.api_port = free_port()
    with pytest.raises(TunnelError, match=r"logged in to the bastion i-\w+, but it cannot connect to the API "
                                          rf"endpoint {ENDPOINT}:6443"), world.tunnel():
        pass


# -- host keys ------------------------------------------------------------------------------------------
def test_first_connection_pins_the_host_key(world: World, api_server: FakeApi) -> None:
    """The first connection records the sshd's host key for the bastion instance in the cluster's own
    known_hosts file under $KUBEAWS_HOME (0600), saying so; the next connection matches it quietly."""
    path = known_hosts_file(CLUSTER)
    assert path == Path(os.environ["KUBEAWS_HOME"]) / "ssh" / f"{CLUSTER}.known_hosts" and not path.exists()
    with world.tunnel():
        pass
    host = paramiko.PKey.from_path(str(world.host_key))
    entries = [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]
    assert entries == [[f"{world.bastion.instance_id},{world.bastion.address}", "ssh-ed25519", host.get_base64()]]
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(world.notes) == 1 and "trusted on first use" in world.notes[0]
    assert fingerprint(host) in world.notes[0] and str(path) in world.notes[0]
    with world.tunnel():
        pass
    assert len(world.notes) == 1
    assert len(path.read_text().splitlines()) == 2  # comment + one key


def test_changed_host_key_is_refused_until_the_old_one_is_removed(world: World, api_server: FakeApi) -> None:
    """Same bastion instance, new host key (another sshd): refused with HOST KEY MISMATCH, naming both
    fingerprints and the command that forgets the old key; nothing is recorded. After running that very
    command, the next connection pins the new key."""
    with world.tunnel():
        pass
    path = known_hosts_file(CLUSTER)
    pinned = path.read_text()
    world.sshd.stop()
    new_key = world.tmp / "host_key2"
    ssh_keypair(new_key)
    world.sshd = Sshd(world.tmp / "sshd2", new_key, [(world.tmp / "client_key.pub").read_text().strip()])
    with pytest.raises(HostKeyMismatch) as raised, world.tunnel():
        pass
    message = str(raised.value)
    old, new = (fingerprint(paramiko.PKey.from_path(str(k))) for k in (world.host_key, new_key))
    assert "HOST KEY MISMATCH" in message and old in message and new in message
    assert path.read_text() == pinned
    command = re.search(r"`(ssh-keygen -R [^`]+)`", message)
    assert command, message
    subprocess.run(command.group(1).split(), check=True, capture_output=True)
    with world.tunnel():
        pass
    assert paramiko.HostKeys(str(path)).lookup(world.bastion.instance_id)["ssh-ed25519"].get_base64() == \
        paramiko.PKey.from_path(str(new_key)).get_base64()


def test_host_key_is_checked_against_the_console_output(world: World, tmp_path: Path) -> None:
    """cloud-init's `ec2:` fingerprint lines (made here by the real `ssh-keygen -l`) decide a first
    connection: the key they list is pinned as such; a key they do not list is refused, nothing pinned. The
    full-key block (BEGIN SSH HOST KEY KEYS) counts too."""
    key = paramiko.PKey.from_path(str(world.host_key))
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{world.host_key}.pub"], check=True, capture_output=True,
                            text=True).stdout.strip()
    console = ("[   12.3] cloud-init[987]: ec2: #############################################################\n"
               "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
               "ec2: 256 SHA256:2y3Wc4Th2o3fxmhL5ggZMRx5u6vuGVBDiMLbpL1m9XE root@ip-10-0-0-7 (ECDSA)\n"
               f"ec2: {listed}\n"
               "ec2: -----END SSH HOST KEY FINGERPRINTS-----\n")
    notes: list[str] = []
    path = tmp_path / "known_hosts"
    check_host_key(path, world.bastion, key, lambda: console, notes.append)
    assert "matches its EC2 console output" in notes[0] and world.bastion.instance_id in path.read_text()

    other = paramiko.PKey.from_path(str(world.client_key))
    with pytest.raises(HostKeyMismatch, match="its EC2 console output lists SHA256:"):
        check_host_key(tmp_path / "other", world.bastion, other, lambda: console, notes.append)
    assert not (tmp_path / "other").exists()

    keys_block = (f"-----BEGIN SSH HOST KEY KEYS-----\n{(world.tmp / 'host_key.pub').read_text()}"
                  "-----END SSH HOST KEY KEYS-----\n")
    with pytest.raises(HostKeyMismatch):
        check_host_key(tmp_path / "third", world.bastion, other, lambda: keys_block, notes.append)
    check_host_key(tmp_path / "fourth", world.bastion, key, lambda: keys_block, notes.append)
    assert "matches its EC2 console output" in notes[-1]


# -- client keys ----------------------------------------------------------------------------------------
def test_wrong_private_key_fails_with_a_clear_error(world: World, api_server: FakeApi) -> None:
    """A key that is not in the bastion's authorized_keys: the error names the user, the bastion, the key file
    and its fingerprint, and says which key to use."""
    wrong = world.tmp / "wrong_key"
    ssh_keypair(wrong)
    with pytest.raises(TunnelError) as raised, world.tunnel(key_file=wrong):
        pass
    message = str(raised.value)
    assert f"refused the SSH login of {USER}@{world.bastion.address} with {wrong}" in message
    assert fingerprint(paramiko.PKey.from_path(str(wrong))) in message and "--ssh-key FILE" in message


def test_unreachable_ssh_port_says_to_check_admin_cidrs(world: World) -> None:
    """Nothing listens on the bastion's SSH port: the error names the address and access.adminCIDRs."""
    world.sshd.stop()
    expected = rf"cannot reach SSH on the bastion {world.bastion.instance_id} at {re.escape(world.bastion.address)}:22 "
    with pytest.raises(TunnelError, match=expected + ".*access.adminCIDRs"), world.tunnel():
        pass


def test_ssh_agent_keys_are_used_without_a_key_file(world: World, api_server: FakeApi,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No --ssh-key: the keys of a real ssh-agent ($SSH_AUTH_SOCK) log in."""
    sock = world.tmp / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", str(world.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with world.tunnel(key_file=None) as tunnel:
            kube = KubeClient(tunnel.server, world.ca_pem, TOKEN, tls_server_name=tunnel.server_name)
            assert kube.get("/api/v1/nodes") is not None
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_private_keys_default_to_the_key_pair_name(tmp_path: Path) -> None:
    """Without --ssh-key or an agent: ~/.ssh/<key pair name> or <name>.pem; none at all is an error that says
    where the key is looked for."""
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    with pytest.raises(TunnelError, match=r"pass --ssh-key FILE \(the private key of EC2 key pair 'dev-key'\).*"
                                          r"ssh-add.*~/.ssh/dev-key"):
        private_keys(None, "dev-key", None, ssh_dir)
    ssh_keypair(ssh_dir / "dev-key.pem")
    assert [label for label, _ in private_keys(None, "dev-key", None, ssh_dir)] == [str(ssh_dir / "dev-key.pem")]
    with pytest.raises(TunnelError, match="SSH private key not found"):
        private_keys(tmp_path / "missing", None, None)


# -- when a tunnel is needed, and no bastion --------------------------------------------------------------
def test_tunnel_needed() -> None:
    """Public: never; direct=True (--no-tunnel): never; private: yes, or with direct=None only when the
    endpoint does not answer directly (probed on loopback here)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port = listening.getsockname()[1]
        assert tunnel_needed(False, SERVER) is False
        assert tunnel_needed(True, SERVER, direct=True) is False
        assert tunnel_needed(True, SERVER) is True
        assert tunnel_needed(True, f"https://127.0.0.1:{open_port}", direct=None) is False
    assert tunnel_needed(True, f"https://127.0.0.1:{free_port()}", direct=None, timeout=1) is True


def test_tunnel_kubeconfig_of_an_eks_cluster() -> None:
    """EKS: the endpoint host on 443 becomes tls-server-name (lower-cased: host names are matched without
    case); the exec user is kept; cluster and context are renamed `<name>-tunnel` so that a merge keeps the
    direct context."""
    host = "0123456789abcdef.gr7.us-east-1.eks.amazonaws.com"
    server = f"https://{host.upper().replace('GR7.US-EAST-1.EKS.AMAZONAWS.COM', 'gr7.us-east-1.eks.amazonaws.com')}"
    text = eks_kubeconfig("prod", REGION, server, base64.b64encode(b"ca").decode())
    assert endpoint_of(server) == (host, 443)
    config = yaml.safe_load(tunnel_kubeconfig(text, "https://127.0.0.1:18443", endpoint_of(server)[0]))
    assert config["clusters"][0]["name"] == "prod-tunnel"
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:18443"
    assert config["clusters"][0]["cluster"]["tls-server-name"] == host
    assert config["contexts"] == [{"name": "prod-tunnel",
                                   "context": {"cluster": "prod-tunnel", "user": "kubeaws-prod"}}]
    assert config["current-context"] == "prod-tunnel" and config["users"][0]["user"]["exec"]["command"] == "kubeaws"


def test_no_bastion_is_a_clear_error(moto_server: str) -> None:
    with pytest.raises(TunnelError, match=f"cluster nobastion has no running bastion in {REGION}"):
        find_bastion(make_spec(name="nobastion"), make_ctx(moto_server, cluster="nobastion"))


# -- the CLI --------------------------------------------------------------------------------------------
class Child:
    """`python -m tests.tunnel_child MAP ARGS...` with its stdout read line by line."""

    def __init__(self, mapping: dict[str, list[Any]], args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.tunnel_child", json.dumps(mapping), *args],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def read_until(self, done: Callable[[str], bool], timeout: float = 60) -> str:
        text = ""
        deadline = time.monotonic() + timeout
        while not done(text):
            try:
                text += self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no output from `kubeaws tunnel` in {timeout}s: {text}{self.stop()[1]}")
        return text

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        assert self.proc.stderr is not None
        return self.proc.returncode, self.proc.stderr.read()


def test_cli_tunnel_prints_a_usable_kubeconfig(ctx: AwsContext, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A kubeadm cluster (one private member: the endpoint is the API interface's address) applied on the moto
    server with a key pair; an HTTPS server presents a certificate for that address signed by the cluster CA
    from the state bucket, and takes the admin client certificate. `kubeaws tunnel` (a subprocess) finds the
    bastion kubeaws created, pins its host key, prints `export KUBECONFIG=...`; that kubeconfig (server
    127.0.0.1:PORT, tls-server-name the endpoint) gets the nodes through the tunnel. Ctrl-C closes it (exit
    0). A second run (--output json --port N) pins nothing new. `kubeaws kubeconfig --tunnel --port N` writes
    the same kind of context."""
    home = tmp_path / "home"
    monkeypatch.setenv("KUBEAWS_HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    client_key, host_key = tmp_path / "id_ed25519", tmp_path / "host_key"
    public = ssh_keypair(client_key)
    ssh_keypair(host_key)
    ctx.call("ec2", "import_key_pair", KeyName="dev-key", PublicKeyMaterial=public.encode())
    spec = make_spec(access={"adminCIDRs": ["203.0.113.0/24"], "sshKeyName": "dev-key"})
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(by_alias=True, exclude_none=True), sort_keys=False))

    bucket = state_bucket_name("dev", ctx.account_id(), REGION)
    read = lambda key: ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()  # noqa: E731
    endpoint = json.loads(read("cluster/cluster.json"))["endpoint"]
    ca_pem = read("pki/ca.crt")
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(read("pki/ca.key"), password=None)
    bastion = find_bastion(spec, ctx)
    assert bastion.key_name == "dev-key" and bastion.user == "ec2-user"

    sshd = Sshd(tmp_path / "sshd", host_key, [public])
    try:
        with serve(*tls_server_cert(endpoint, ca, ca_key), client_ca=ca_pem.decode()) as server:
            mapping = {f"{bastion.address}:22": ["127.0.0.1", sshd.port],
                       f"{endpoint}:6443": ["127.0.0.1", server.server_address[1]]}
            common = ["-f", str(spec_file), "--ssh-key", str(client_key), "--ssh-user", USER]
            child = Child(mapping, ["tunnel", *common])
            out = child.read_until(lambda text: "export KUBECONFIG=" in text)
            path = Path(out.split("export KUBECONFIG=", 1)[1].strip())
            assert path == home / "tunnels" / "dev.kubeconfig" and path.stat().st_mode & 0o777 == 0o600
            config = yaml.safe_load(path.read_text())
            cluster = config["clusters"][0]["cluster"]
            assert re.fullmatch(r"https://127\.0\.0\.1:\d+", cluster["server"])
            assert cluster["tls-server-name"] == endpoint and config["current-context"] == "dev-tunnel"
            user = config["users"][0]["user"]
            kube = KubeClient(cluster["server"], cluster["certificate-authority-data"], None,
                              tls_server_name=cluster["tls-server-name"],
                              client_cert=(base64.b64decode(user["client-certificate-data"]),
                                           base64.b64decode(user["client-key-data"])))
            assert kube.get("/api/v1/nodes") == {"kind": "List", "items": []}
            assert server.requests[-1]["client_cn"] == "kubeaws-admin"
            code, err = child.stop()
            assert code == 0, err
            assert "trusted on first use" in err and "tunnel closed" in err and "Traceback" not in err
            assert bastion.instance_id in (home / "ssh" / "dev.known_hosts").read_text()

            port = free_port()
            child = Child(mapping, ["tunnel", *common, "--output", "json", "--port", str(port)])
            doc = json.loads(child.read_until(lambda text: text.endswith("\n}\n")))
            assert doc["server"] == f"https://127.0.0.1:{port}" and doc["tlsServerName"] == endpoint
            assert doc["bastion"] == {"instanceId": bastion.instance_id, "address": bastion.address, "user": USER}
            assert doc["endpoint"] == f"{endpoint}:6443" and doc["kubeconfig"] == str(path)
            code, err = child.stop()
            assert code == 0 and "trusted on first use" not in err, err
    finally:
        sshd.stop()

    cli = runner.invoke(cli_app(), ["kubeconfig", "-f", str(spec_file), "--tunnel", "--port", "17443"])
    assert cli.exit_code == 0, cli.stdout + cli.stderr
    config = yaml.safe_load(cli.stdout)
    assert config["clusters"][0] == {"name": "dev-tunnel", "cluster": {
        "server": "https://127.0.0.1:17443", "certificate-authority-data": base64.b64encode(ca_pem).decode(),
        "tls-server-name": endpoint}}
    assert config["contexts"][0]["context"]["cluster"] == "dev-tunnel"
    assert f"kubeaws tunnel -f {spec_file} --port 17443" in cli.stderr


def test_cli_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(make_spec().model_dump(by_alias=True, exclude_none=True), sort_keys=False))
    cases = [(["tunnel", "-f", str(spec_file), "--ssh-key", str(tmp_path / "nope")], "SSH private key not found"),
             (["tunnel", "-f", str(tmp_path / "missing.yaml")], "spec file not found"),
             (["tunnel", "-f", str(spec_file), "--port", "70000"], "65535"),
             (["kubeconfig", "-f", str(spec_file), "--port", "6443"], "add --tunnel")]
    for args, expected in cases:
        result = runner.invoke(cli_app(), args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert expected in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr
