"""The way into a private Kubernetes API: an SSH tunnel through the cluster's bastion, opened by kubeaws itself.

`open_tunnel(spec, ctx, server)` finds the bastion by its tags (`kubeaws.io/role=bastion`,
`kubernetes.io/cluster/<name>=owned`, running), logs in over SSH as the bastion OS's default user (ec2-user on
al2023, ubuntu on Ubuntu) with a private key, and forwards a local port on 127.0.0.1 to the API endpoint as the
bastion sees it (kubeadm: the internal load balancer's DNS name or the API interface's address; EKS: the
cluster endpoint's host), until `Tunnel.close()`. `tunnel_needed` says when one is needed at all. Used by
`kubeaws tunnel`, `kubeaws kubeconfig --tunnel`, and any caller that talks to the API (doctor --live, EKS
in-cluster objects, rollouts).

SSH library: paramiko. kubeaws is synchronous and uses threads (the executor, kube_client's http.client), and
paramiko is synchronous too: a tunnel is a Transport, a listening socket and one thread per forwarded
connection, with no event loop to run beside the caller's (asyncssh would need one). Its Transport also lets
kubeaws check the host key itself, after the key exchange and before any authentication. Shelling out to
`ssh` was not chosen: its host-key policy, key selection and errors would be ssh_config's and stderr text's,
not kubeaws's.

Host keys are pinned per cluster in `$KUBEAWS_HOME/ssh/<cluster>.known_hosts` (OpenSSH format, one line per
bastion instance: `<instance-id>,<address> <type> <key>`; `ssh -o UserKnownHostsFile=<file>` reads it too):
- a pinned instance must present the pinned key, else the connection is refused (HostKeyMismatch says what to
  check and how to forget the old key); nothing is ever accepted silently;
- an instance seen for the first time (a new bastion is a new instance ID, learnt from the AWS API) is
  checked against the SHA256 fingerprints cloud-init prints on its EC2 console output (`ec2:` lines); a
  mismatch is refused; when the console shows none (not written yet, or an image without cloud-init), the key
  is trusted on first use and pinned, with a message giving its fingerprint and how to check it.

Private key: `key_file` (`--ssh-key FILE`), else every key of the SSH agent ($SSH_AUTH_SOCK), then
`~/.ssh/<key pair name>` and `~/.ssh/<key pair name>.pem` (the bastion's EC2 key pair, `access.sshKeyName`).
A passphrase-protected file is not prompted for: add it to the agent (`ssh-add FILE`).

TLS: the API server's certificate names the endpoint, not 127.0.0.1. `Tunnel.server_name` is that name: a
client connects to `Tunnel.server` and verifies the certificate (SNI and hostname) for `server_name`
(`KubeClient(..., tls_server_name=...)`; kubeconfig `tls-server-name`, written by `tunnel_kubeconfig`).

`resolve` (tests only): maps the (address, port) kubeaws would use, the bastion's (public address, 22) and
the endpoint's (host, port) asked of the bastion, to the one actually used. The test suite points moto's
made-up addresses at a real sshd and a TLS server on loopback with it; the names checked (host-key record,
TLS name) are never changed by it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import select
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paramiko
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, k8s_cluster_tag
from kubeaws.errors import KubeawsError
from kubeaws.local.emulator import home
from kubeaws.spec.models import ClusterSpec

SSH_PORT = 22
CONNECT_TIMEOUT = 15.0
KEEPALIVE_SECONDS = 30
#: Seconds a `tunnel_needed(..., direct=None)` probe waits for a direct TCP connection to the endpoint.
PROBE_TIMEOUT = 2.0
#: Local port `kubeaws kubeconfig --tunnel` writes when no --port is given (`kubeaws tunnel` picks a free one).
DEFAULT_LOCAL_PORT = 16443
BASTION_ROLE = "bastion"
_CHUNK = 65536
Resolver = Callable[[str, int], tuple[str, int]]
Notify = Callable[[str], None]
#: paramiko key name -> the type cloud-init prints in parentheses after a fingerprint.
_CONSOLE_TYPES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ecdsa-sha2-nistp256": "ECDSA",
                  "ecdsa-sha2-nistp384": "ECDSA", "ecdsa-sha2-nistp521": "ECDSA"}
_FINGERPRINT_LINE = re.compile(r"\b\d+ (SHA256:[A-Za-z0-9+/]+)=* .*\((\w+)\)\s*$")
_KEY_LINE = re.compile(r"\b(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) (AAAA[A-Za-z0-9+/]+=*)")


class TunnelError(KubeawsError):
    """The tunnel cannot be opened (no bastion, SSH refused, the bastion cannot reach the endpoint...)."""


class HostKeyMismatch(TunnelError):
    """The bastion's host key is not the one pinned for it, or not the one its console output shows."""


@dataclass(frozen=True)
class Bastion:
    """The cluster's bastion as EC2 describes it."""

    instance_id: str
    address: str
    user: str
    key_name: str | None


def bastion_user(os_name: str) -> str:
    """The default login of the bastion's image (spec `access.bastion.os`)."""
    return "ubuntu" if os_name.startswith("ubuntu") else "ec2-user"


def endpoint_of(server: str) -> tuple[str, int]:
    """(host, port) of an API server URL (https://host[:port])."""
    parts = urllib.parse.urlsplit(server if "://" in server else f"https://{server}")
    if not parts.hostname:
        raise TunnelError(f"not an API server URL: {server!r}")
    return parts.hostname, parts.port or 443


def tunnel_needed(private: bool, server: str, direct: bool | None = False, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether reaching `server` needs the bastion tunnel. Never for a public endpoint, nor when the caller
    knows of a direct route (`direct=True`: `--no-tunnel`, e.g. on a VPN into the VPC or inside it). A
    private one needs it with `direct=False`; with `direct=None` only when a TCP connection to the endpoint
    does not open within `timeout` seconds."""
    if not private or direct:
        return False
    if direct is None:
        try:
            socket.create_connection(endpoint_of(server), timeout=timeout).close()
            return False
        except OSError:
            return True
    return True


def find_bastion(spec: ClusterSpec, ctx: AwsContext) -> Bastion:
    """The running bastion of the cluster, by its tags; TunnelError when there is none or it has no public
    address."""
    cluster = spec.metadata.name
    filters = [{"Name": f"tag:{k8s_cluster_tag(cluster)}", "Values": ["owned"]},
               {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]},
               {"Name": "tag:kubeaws.io/role", "Values": [BASTION_ROLE]},
               {"Name": "instance-state-name", "Values": ["running"]}]
    found = [i for r in ctx.paginate("ec2", "describe_instances", "Reservations", Filters=filters)
             for i in r.get("Instances") or []]
    if not found:
        raise TunnelError(f"cluster {cluster} has no running bastion in {ctx.region}: the private API is reached "
                          "through it (access.bastion.enabled: true, then `kubeaws apply`)")
    instance = max(found, key=lambda i: str(i.get("LaunchTime", "")))
    address = instance.get("PublicIpAddress")
    if not address:
        raise TunnelError(f"bastion {instance['InstanceId']} of cluster {cluster} has no public address: set "
                          "access.bastion.elasticIP: true and apply, or check its subnet is public")
    return Bastion(instance["InstanceId"], str(address), bastion_user(spec.spec.access.bastion.os),
                   instance.get("KeyName") or spec.spec.access.ssh_key_name)


# -- host keys --------------------------------------------------------------------------------------------
def known_hosts_file(cluster: str) -> Path:
    """Where the bastion host keys of `cluster` are pinned."""
    return home() / "ssh" / f"{cluster}.known_hosts"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key (`SHA256:...`, as `ssh-keygen -l` prints it)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def console_fingerprints(text: str) -> dict[str, set[str]]:
    """Host key fingerprints by type (ED25519, ECDSA, RSA) from an EC2 console output: cloud-init's
    `ec2: <bits> SHA256:... <comment> (TYPE)` lines and the keys between `BEGIN/END SSH HOST KEY KEYS`."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = _FINGERPRINT_LINE.search(line)
        if match:
            found.setdefault(match.group(2).upper(), set()).add(match.group(1))
            continue
        key = _KEY_LINE.search(line)
        if key:
            digest = hashlib.sha256(base64.b64decode(key.group(2))).digest()
            found.setdefault(_CONSOLE_TYPES[key.group(1)], set()).add(
                "SHA256:" + base64.b64encode(digest).decode().rstrip("="))
    return found


def console_output(ctx: AwsContext, instance_id: str) -> str:
    """The instance's EC2 console output ("" when AWS has none or it cannot be read)."""
    for params in ({"Latest": True}, {}):
        try:
            return str(ctx.call("ec2", "get_console_output", InstanceId=instance_id, **params).get("Output") or "")
        except (ClientError, BotoCoreError):
            continue
    return ""


def _pinned(path: Path, instance_id: str) -> dict[str, paramiko.PKey]:
    if not path.exists():
        return {}
    try:
        return dict(paramiko.HostKeys(str(path)).lookup(instance_id) or {})
    except (OSError, paramiko.SSHException) as exc:
        raise TunnelError(f"{path} cannot be read ({exc}): fix or delete it") from exc


def _record(path: Path, bastion: Bastion, key: paramiko.PKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        if new:
            f.write(f"# kubeaws: pinned SSH host keys of the bastions of cluster {path.stem} "
                    "(instance ID, address)\n")
        f.write(f"{bastion.instance_id},{bastion.address} {key.get_name()} {key.get_base64()}\n")


def check_host_key(path: Path, bastion: Bastion, key: paramiko.PKey, console: Callable[[], str],
                   notify: Notify) -> None:
    """Accept `key` for `bastion` only if it is the pinned one, or (first connection to this instance) if it
    matches the console output's fingerprints or none are shown there (then it is pinned: trust on first use).
    Raises HostKeyMismatch otherwise."""
    seen, kind = fingerprint(key), key.get_name()
    pinned = _pinned(path, bastion.instance_id)
    if pinned:
        if any(p.asbytes() == key.asbytes() for p in pinned.values()):
            return
        old = ", ".join(f"{fingerprint(p)} ({n})" for n, p in pinned.items())
        raise HostKeyMismatch(
            f"HOST KEY MISMATCH: bastion {bastion.instance_id} ({bastion.address}) presented {seen} ({kind}), but "
            f"{path} pins {old} for it. Someone may be intercepting the connection, or the bastion's host keys "
            f"were regenerated: do not go on until you know which. Compare with its console output (`aws ec2 "
            f"get-console-output --instance-id {bastion.instance_id} --latest --output text`); if its keys did "
            f"change, remove its line from {path} (`ssh-keygen -R {bastion.instance_id} -f {path}`) and run again")
    shown = console_fingerprints(console()).get(_CONSOLE_TYPES.get(kind, kind.upper()), set())
    if shown and seen not in shown:
        raise HostKeyMismatch(
            f"HOST KEY MISMATCH: bastion {bastion.instance_id} ({bastion.address}) presented {seen} ({kind}), but "
            f"its EC2 console output lists {', '.join(sorted(shown))}: someone may be intercepting the connection "
            "to its address; nothing was recorded")
    _record(path, bastion, key)
    how = ("matches its EC2 console output" if shown else
           f"was trusted on first use: its EC2 console output shows no fingerprint yet; check it with `aws ec2 "
           f"get-console-output --instance-id {bastion.instance_id} --latest --output text | grep -A5 FINGERPRINTS`")
    notify(f"bastion {bastion.instance_id} ({bastion.address}): host key {seen} ({kind}) {how}. Pinned in {path}: "
           "a different key from this instance will be refused.")


def _key_types(pinned: dict[str, paramiko.PKey]) -> tuple[str, ...]:
    """The host key algorithms to offer when keys are pinned: theirs (RSA keys sign with SHA-2)."""
    names: list[str] = []
    for name in pinned:
        names += ["rsa-sha2-512", "rsa-sha2-256"] if name == "ssh-rsa" else [name]
    return tuple(names)


# -- client keys ------------------------------------------------------------------------------------------
def load_private_key(path: Path) -> paramiko.PKey:
    """A private key file (OpenSSH or PEM: Ed25519, ECDSA, RSA); TunnelError saying why it cannot be used."""
    if not path.is_file():
        raise TunnelError(f"SSH private key not found: {path}")
    try:
        return paramiko.PKey.from_path(str(path))
    except paramiko.PasswordRequiredException:
        raise TunnelError(f"{path} is protected by a passphrase: add it to the SSH agent (`ssh-add {path}`) and "
                          "run again without --ssh-key") from None
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise TunnelError(f"{path} is not a usable SSH private key ({exc})") from None


def private_keys(key_file: Path | None, key_name: str | None, agent: paramiko.Agent | None,
                 ssh_dir: Path | None = None) -> list[tuple[str, paramiko.PKey]]:
    """(label, key) to try in order: `key_file` alone when given; else the agent's keys, then
    ~/.ssh/<key_name> and ~/.ssh/<key_name>.pem."""
    if key_file is not None:
        return [(str(key_file), load_private_key(key_file))]
    keys: list[tuple[str, paramiko.PKey]] = []
    if agent is not None:
        keys += [(f"ssh-agent key {fingerprint(k)}", k) for k in agent.get_keys()]
    if key_name:
        folder = ssh_dir or Path.home() / ".ssh"
        for path in (folder / key_name, folder / f"{key_name}.pem"):
            if path.is_file():
                with suppress(TunnelError):  # e.g. a passphrase: the agent may hold it
                    keys.append((str(path), load_private_key(path)))
    if not keys:
        pair = f"EC2 key pair {key_name!r}" if key_name else "the bastion's EC2 key pair (access.sshKeyName)"
        raise TunnelError(f"no SSH private key to log in to the bastion: pass --ssh-key FILE (the private key of "
                          f"{pair}), add it to the SSH agent (ssh-add FILE)"
                          + (f", or save it as ~/.ssh/{key_name}" if key_name else ""))
    return keys


# -- the tunnel -------------------------------------------------------------------------------------------
class Tunnel:
    """A local port on 127.0.0.1 forwarded through the bastion to the API endpoint. Connect to `server`,
    verify TLS for `server_name`. `close()` (or leaving `open_tunnel`) ends it."""

    def __init__(self, transport: paramiko.Transport, listener: socket.socket, remote: tuple[str, int],
                 server_name: str, bastion: Bastion, notify: Notify) -> None:
        self.transport = transport
        self.listener = listener
        self.local_host, self.local_port = listener.getsockname()[:2]
        self.remote = remote
        self.server_name = server_name
        self.bastion = bastion
        self.errors: list[str] = []
        self._notify = notify
        self._closed = threading.Event()
        listener.settimeout(0.5)
        self._thread = threading.Thread(target=self._accept, name="kubeaws-tunnel", daemon=True)
        self._thread.start()

    @property
    def server(self) -> str:
        """The API server URL to use through the tunnel."""
        return f"https://{self.local_host}:{self.local_port}"

    @property
    def active(self) -> bool:
        return not self._closed.is_set() and self.transport.is_active()

    def wait(self, poll: float = 0.5) -> None:
        """Block until the tunnel is closed or the SSH connection is lost (Ctrl-C interrupts it)."""
        while self.active:
            self._closed.wait(poll)

    def close(self) -> None:
        self._closed.set()
        with suppress(OSError):
            self.listener.close()
        self.transport.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client, peer), daemon=True).start()

    def _forward(self, client: socket.socket, peer: tuple[str, int]) -> None:
        client.settimeout(None)  # not the listener's accept timeout: pump() waits with select
        try:
            channel = self.transport.open_channel("direct-tcpip", self.remote, peer, timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            message = f"the bastion could not connect to {self.remote[0]}:{self.remote[1]}: {exc or 'refused'}"
            self.errors.append(message)
            self._notify(message)
            client.close()
            return
        with client, channel:
            pump(client, channel, self._closed)


def pump(client: socket.socket, channel: paramiko.Channel, closed: threading.Event) -> None:
    """Copy both ways between a local socket and an SSH channel until both ends have finished (an end-of-file
    on one side is passed on as a half-close) or the tunnel closes."""
    open_ends: dict[Any, bool] = {client: True, channel: True}
    while any(open_ends.values()) and not closed.is_set():
        watch = [end for end, is_open in open_ends.items() if is_open]
        try:
            ready, _, _ = select.select(watch, [], [], 0.5)
            for end in ready:
                data = end.recv(_CHUNK)
                other: Any = channel if end is client else client
                if data:
                    other.sendall(data)
                    continue
                open_ends[end] = False
                if other is channel:
                    channel.shutdown_write()
                else:
                    with suppress(OSError):
                        client.shutdown(socket.SHUT_WR)
        except (OSError, EOFError, paramiko.SSHException):
            return


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        listener.close()
        raise TunnelError(f"local port {port} cannot be used ({exc.strerror}): choose another with --port, or "
                          "leave --port out for a free one") from None
    listener.listen(16)
    return listener


def _connect(bastion: Bastion, resolve: Resolver) -> paramiko.Transport:
    address = resolve(bastion.address, SSH_PORT)
    try:
        sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise TunnelError(f"cannot reach SSH on the bastion {bastion.instance_id} at {bastion.address}:{SSH_PORT} "
                          f"({exc}): your address must be in access.adminCIDRs (its security group allows SSH "
                          "from those only), and the bastion must be running") from None
    return paramiko.Transport(sock)


def _login(transport: paramiko.Transport, bastion: Bastion, keys: list[tuple[str, paramiko.PKey]]) -> None:
    refused: list[str] = []
    for label, key in keys:
        try:
            transport.auth_publickey(bastion.user, key)
            return
        except paramiko.BadAuthenticationType as exc:
            raise TunnelError(f"the bastion {bastion.address} does not accept public-key logins ({exc})") from None
        except paramiko.AuthenticationException:
            refused.append(f"{label} ({fingerprint(key)})" if not label.startswith("ssh-agent") else label)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            refused.append(f"{label} ({exc})")
            if not transport.is_active():
                break
    pair = f"EC2 key pair {bastion.key_name!r}" if bastion.key_name else "the bastion's EC2 key pair"
    raise TunnelError(f"the bastion {bastion.instance_id} refused the SSH login of {bastion.user}@{bastion.address} "
                      f"with {', '.join(refused)}: use the private key of {pair} (--ssh-key FILE)")


@contextmanager
def open_tunnel(spec: ClusterSpec, ctx: AwsContext, server: str, *, port: int = 0, key_file: Path | None = None,
                user: str | None = None, resolve: Resolver | None = None, notify: Notify | None = None,
                check: bool = True) -> Iterator[Tunnel]:
    """A tunnel from 127.0.0.1:`port` (0: a free port) through the cluster's bastion to the API `server`
    (its URL as the kubeconfig names it), logged in as `user` (default: the bastion OS's default user; an
    image of your own, `access.bastion.ami`, may have another). With `check`, the bastion must connect to the
    endpoint once before the tunnel is handed out. `notify` gets the notes (host key pinned, forwarding
    failures; default: stderr). `resolve`: tests only (module docstring)."""
    say = notify or (lambda text: print(text, file=sys.stderr))
    where = resolve or (lambda host, p: (host, p))
    bastion = find_bastion(spec, ctx)
    if user:
        bastion = replace(bastion, user=user)
    host, remote_port = endpoint_of(server)
    path = known_hosts_file(spec.metadata.name)
    with ExitStack() as stack:
        agent = None
        if key_file is None and os.environ.get("SSH_AUTH_SOCK"):
            with suppress(paramiko.SSHException):  # an agent that does not answer: go on with the files
                agent = paramiko.Agent()
                stack.callback(agent.close)
        keys = private_keys(key_file, bastion.key_name, agent)
        transport = _connect(bastion, where)
        stack.callback(transport.close)
        pinned = _pinned(path, bastion.instance_id)
        if pinned:
            transport.get_security_options().key_types = _key_types(pinned)
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            only = (f" (kubeaws offers only the host key type(s) pinned for it in {path}: "
                    f"{', '.join(pinned)})" if pinned else "")
            raise TunnelError(f"SSH with the bastion {bastion.instance_id} ({bastion.address}) failed: "
                              f"{exc or type(exc).__name__}{only}") from None
        check_host_key(path, bastion, transport.get_remote_server_key(),
                       lambda: console_output(ctx, bastion.instance_id), say)
        _login(transport, bastion, keys)
        transport.set_keepalive(KEEPALIVE_SECONDS)
        remote = where(host, remote_port)
        if check:
            try:
                transport.open_channel("direct-tcpip", remote, ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT).close()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TunnelError(
                    f"logged in to the bastion {bastion.instance_id}, but it cannot connect to the API endpoint "
                    f"{host}:{remote_port} ({exc or 'refused'}): the API server is not up yet (right after apply), or "
                    "the endpoint's security group does not allow it from the bastion (`kubeaws doctor -f SPEC "
                    "--live`)") from None
        tunnel = Tunnel(transport, _listen(port), remote, host, bastion, say)
        stack.callback(tunnel.close)
        yield tunnel


def tunnel_kubeconfig(text: str, server: str, server_name: str, suffix: str = "-tunnel") -> str:
    """The kubeconfig `text` (one cluster, as kubeaws.access makes it) pointed at the tunnel: its server is
    `server` (https://127.0.0.1:PORT), `tls-server-name` is the endpoint's name, and its cluster and context
    are renamed `<name><suffix>` so that merging it keeps the direct context."""
    doc: dict[str, Any] = yaml.safe_load(text)
    names = {}
    for entry in doc.get("clusters") or []:
        names[entry["name"]] = entry["name"] + suffix
        entry["name"] = names[entry["name"]]
        entry["cluster"]["server"] = server
        entry["cluster"]["tls-server-name"] = server_name
    contexts = {}
    for entry in doc.get("contexts") or []:
        contexts[entry["name"]] = entry["name"] + suffix
        entry["name"] = contexts[entry["name"]]
        entry["context"]["cluster"] = names.get(entry["context"]["cluster"], entry["context"]["cluster"])
    if doc.get("current-context") in contexts:
        doc["current-context"] = contexts[doc["current-context"]]
    return yaml.safe_dump(doc, sort_keys=False, width=100000)
