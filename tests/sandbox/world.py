"""A sandbox world: a kubeaws cluster applied on the moto server, whose instances boot with their real user
data under bash, each in its own directory as "/" (tests/sandbox/host.py), with the real AWS CLI, a real
etcd, real mkfs.ext4/blkid and the stand-ins of tests/sandbox/standins.py (each host's calls run by a command server
of its own: tests/sandbox/cmdserver.py).

What the world provides besides moto:
- an IMDSv2 stand-in (tests/sandbox/imds.py) answering from each instance's moto data, with the instance
  profile's role credentials from moto's STS;
- a "kernel" thread that turns moto's volume and ENI attachments into each host's block devices
  (`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...`, a sparse image file per volume that follows the
  volume) and network links (MACs), asynchronously, as on an instance;
- distinct loopback addresses per world: the cluster's VPC is 127.N.0.0/16 (moto accepts it; Linux routes all
  of 127/8 to lo), so every instance's private address is a real local address that etcd can bind, and two
  worlds of parallel test workers never share an address (N is reserved by binding a socket on 127.N.255.253).
  This, and the etcd loopback listeners left out (host.py), are the sandbox's only adaptations of the network.

Used by tests/test_bootstrap_sandbox.py.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from kubeaws import api
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.aws.tags import tag_dict
from kubeaws.model.state import state_bucket_name
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec
from tests.sandbox import standins
from tests.sandbox.cmdserver import CommandServer
from tests.sandbox.host import Host, all_hosts
from tests.sandbox.imds import Imds

REGION = "us-east-1"
VENV_BIN = Path(sys.executable).parent
IMAGE_SIZE = 64 * 1024 * 1024
RESERVE_PORT = 65431


def _reserve_net() -> tuple[int, socket.socket]:
    for n in range(20, 250):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((f"127.{n}.255.253", RESERVE_PORT))
        except OSError:
            sock.close()
            continue
        return n, sock
    raise RuntimeError("no free 127.N.0.0/16 for a sandbox world")


class World:
    def __init__(self, tmp: Path, moto_url: str, name: str = "sbx", **spec: Any) -> None:
        self.dir = tmp / "world"
        (self.dir / "hosts").mkdir(parents=True)
        (self.dir / "volumes").mkdir()
        self.moto = moto_url
        self.net, self._reservation = _reserve_net()
        azs = ["us-east-1a", "us-east-1b", "us-east-1c"]
        network = {"vpc": {"cidr": f"127.{self.net}.0.0/16"}, "availabilityZones": azs, **spec.pop("network", {})}
        self.spec: ClusterSpec = make_spec(name=name, network=network, **spec)
        self.ctx = AwsContext(AwsSettings(region=REGION, endpoint_url=moto_url), cluster=name, policy=FAST_POLICY)
        self.bin = standins.install(self.dir)
        self.imds = Imds(self._imds_lookup)
        self.commands: dict[str, CommandServer] = {}  # per host: the calls' HOME must be the server's
        self._creds: dict[str, dict[str, Any]] = {}
        self._roles: dict[str, dict[str, Any] | None] = {}
        self._stop = threading.Event()
        self._kernel = threading.Thread(target=self._kernel_loop, daemon=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle ------------------------------------------------------------------------------------------
    def apply(self) -> None:
        result = api.apply(self.spec, self.ctx)
        assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
        self.discover()
        if not self._kernel.is_alive():
            self._kernel.start()

    def apply_again(self) -> bool:
        """`kubeaws apply` on the running cluster (e.g. to recreate a lost volume)."""
        result = api.apply(self.spec, self.ctx)
        assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
        return True

    @property
    def bucket(self) -> str:
        return state_bucket_name(self.spec.name, self.ctx.account_id(), REGION)

    def close(self) -> None:
        self._stop.set()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        for server in self.commands.values():
            server.close()
        for host in all_hosts(self.dir):
            host.stop_etcd()
        self.imds.close()
        self._reservation.close()

    def instances(self) -> list[dict[str, Any]]:
        pages = self.ctx.client("ec2").describe_instances(
            Filters=[{"Name": f"tag:kubernetes.io/cluster/{self.spec.name}", "Values": ["owned"]}])
        return [i for r in pages["Reservations"] for i in r["Instances"]]

    def discover(self) -> list[Host]:
        """A Host for every running instance of the cluster not seen yet (bastion excluded)."""
        new = []
        for item in self.instances():
            tags = tag_dict(item.get("Tags"))
            host = Host(self.dir, item["InstanceId"])
            if item["State"]["Name"] != "running" or tags.get("kubeaws.io/role") == "bastion" or host.dir.exists():
                continue
            host.root.mkdir(parents=True)
            (host.root / "etc").mkdir()
            (host.root / "etc/fstab").write_text("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n")
            itype = self.ctx.client("ec2").describe_instance_types(InstanceTypes=[item["InstanceType"]])
            archs = itype["InstanceTypes"][0]["ProcessorInfo"]["SupportedArchitectures"]
            (host.dir / "state.json").write_text(json.dumps({
                "ip": item["PrivateIpAddress"], "name": item["PrivateDnsName"].split(".")[0] + ".ec2.internal",
                "az": item["Placement"]["AvailabilityZone"], "alive": True,
                "arch": "arm64" if "arm64" in archs else "amd64", "role": tags.get("kubeaws.io/role"),
                "member": tags.get("kubeaws.io/control-plane-member"), "group": tags.get("aws:autoscaling:groupName"),
            }))
            new.append(host)
        return new

    def hosts(self, role: str | None = None) -> list[Host]:
        found = [h for h in all_hosts(self.dir) if role is None or h.state().get("role") == role]
        return sorted(found, key=lambda h: (str(h.state().get("member")), h.iid))

    def member(self, index: int) -> Host:
        return next(h for h in reversed(self.hosts("control-plane"))
                    if h.alive and h.state().get("member") == str(index))

    # -- booting --------------------------------------------------------------------------------------------
    def user_data(self, iid: str) -> str:
        """The instance's user data as cloud-init reads it (base64-decoded, gunzipped when compressed)."""
        raw = base64.b64decode(self.ctx.client("ec2").describe_instance_attribute(
            InstanceId=iid, Attribute="userData")["UserData"]["Value"])
        return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()

    def env(self, host: Host, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin}:{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(host.root / "root"),
            "KUBEAWS_ROOT": str(host.root), "SANDBOX_WORLD": str(self.dir), "SANDBOX_HOST": host.iid,
            "KUBEAWS_IMDS_URL": f"{self.imds.url}/{host.iid}",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"{self.imds.url}/{host.iid}/",
            "AWS_METADATA_SERVICE_TIMEOUT": "2", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "2",
            "AWS_ENDPOINT_URL": self.moto, "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "LANG": "C.UTF-8",
            # waits 10 times shorter than on AWS (resources of the emulator are ready at once)
            "KUBEAWS_WAIT_SLEEP": "1", "KUBEAWS_WAIT_TRIES": "30", "KUBEAWS_WAIT_LONG_TRIES": "150",
            "KUBEAWS_WAIT_LONG_SLEEP": "3", "KUBEAWS_BOOT_ATTEMPTS": "2",
        }
        if host.iid not in self.commands:
            self.commands[host.iid] = CommandServer(host.dir / "cmdserver.log", env)
        env["SANDBOX_STANDINS"] = self.commands[host.iid].address  # where the launchers of bin/ send the calls
        env.update(extra)
        return env

    def kill_calls(self, host: Host) -> None:
        """The host's running commands die (with its boot script: tests/sandbox/cmdserver.py)."""
        if host.iid in self.commands:
            self.commands[host.iid].kill_host(host.iid)

    def write_files(self, host: Host) -> list[str]:
        """cloud-init's write_files; returns the runcmd's command."""
        doc = yaml.safe_load(self.user_data(host.iid))
        for entry in doc["write_files"]:
            path = host.root / entry["path"].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(entry["content"])
            path.chmod(int(entry["permissions"], 8))
        command: list[str] = doc["runcmd"][0]
        return ["bash", str(host.root / command[1].lstrip("/"))]

    def start(self, host: Host, **env: str) -> subprocess.Popen[bytes]:
        command = self.write_files(host) if not (host.dir / "command.json").exists() else \
            json.loads((host.dir / "command.json").read_text())
        (host.dir / "command.json").write_text(json.dumps(command))
        log = open(host.dir / "boot.log", "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(command, env=self.env(host, **env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[host.iid] = proc
        return proc

    def boot(self, hosts: list[Host], timeout: float = 240, **env: str) -> dict[str, int]:
        """Run the boot script of each host at once (as their instances start together); exit codes."""
        procs = {h.iid: self.start(h, **env) for h in hosts}
        codes = {}
        for iid, proc in procs.items():
            try:
                codes[iid] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                self.kill_calls(Host(self.dir, iid))
                codes[iid] = -9
        return codes

    def log(self, host: Host) -> str:
        path = host.root / "var/log/kubeaws-bootstrap.log"
        return path.read_text() if path.exists() else (host.dir / "boot.log").read_text()

    def calls(self, host: Host | None = None) -> list[str]:
        path = self.dir / "calls.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [ln.split(" ", 1)[1] for ln in lines if host is None or ln.startswith(host.iid + " ")]

    def terminate(self, host: Host, replace: bool = True) -> None:
        """The instance dies (its processes with it); its Auto Scaling group launches a replacement."""
        with host.edit() as state:
            state["alive"] = False
        host.stop_etcd()
        proc = self.procs.get(host.iid)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, 9)
        self.kill_calls(host)
        if replace:
            self.ctx.client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=host.iid, ShouldDecrementDesiredCapacity=False)
        else:
            self.ctx.client("ec2").terminate_instances(InstanceIds=[host.iid])

    # -- IMDS and kernel ------------------------------------------------------------------------------------
    def _imds_lookup(self, iid: str) -> dict[str, Any] | None:
        host = Host(self.dir, iid)
        if not host.dir.exists():
            return None
        state = host.state()
        ec2 = self.ctx.client("ec2")
        links = host.links()

        def meta(key: str) -> str | None:
            fixed = {"instance-id": iid, "local-ipv4": state["ip"], "local-hostname": state["name"],
                     "placement/availability-zone": state["az"], "mac": links[0]["mac"] if links else None}
            if key in fixed:
                return fixed[key]
            if key.startswith("network/interfaces/macs/") and key.endswith("/subnet-ipv4-cidr-block"):
                mac = key.split("/")[3]
                enis = ec2.describe_network_interfaces(Filters=[{"Name": "mac-address", "Values": [mac]}])
                subnet = enis["NetworkInterfaces"][0]["SubnetId"]
                return str(ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["CidrBlock"])
            return None

        role = self._role(iid)
        return {"meta": meta, "role": role["RoleName"] if role else None,
                "credentials": lambda: self._credentials(iid, role)}

    def _role(self, iid: str) -> dict[str, Any] | None:
        if iid not in self._roles:
            self._roles[iid] = self._find_role(iid)
        return self._roles[iid]

    def _find_role(self, iid: str) -> dict[str, Any] | None:
        item = self.ctx.client("ec2").describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        tags = tag_dict(item.get("Tags"))
        template = tags.get("aws:ec2launchtemplate:id")
        if not template:
            return None
        data = self.ctx.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=template, Versions=[tags["aws:ec2launchtemplate:version"]]
        )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        profile = (data.get("IamInstanceProfile") or {}).get("Name")
        if not profile:
            return None
        roles = self.ctx.client("iam").get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
        return dict(roles[0]) if roles else None

    def _credentials(self, iid: str, role: dict[str, Any] | None) -> dict[str, Any]:
        if iid not in self._creds and role:
            creds = self.ctx.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=iid)["Credentials"]
            self._creds[iid] = {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": creds["AccessKeyId"],
                                "SecretAccessKey": creds["SecretAccessKey"], "Token": creds["SessionToken"],
                                "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                                "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return self._creds[iid]

    def _kernel_loop(self) -> None:
        ec2 = self.ctx.client("ec2")
        while not self._stop.wait(0.3):
            with contextlib.suppress(Exception):
                self._kernel_sync(ec2)

    def _kernel_sync(self, ec2: Any) -> None:
        hosts = {h.iid: h for h in all_hosts(self.dir)}
        if not hosts:
            return
        filters = [{"Name": "attachment.instance-id", "Values": list(hosts)}]
        devices: dict[str, set[str]] = {iid: set() for iid in hosts}
        for vol in ec2.describe_volumes(Filters=filters)["Volumes"]:
            for att in vol.get("Attachments", []):
                if att["InstanceId"] in devices and att["State"] == "attached":
                    devices[att["InstanceId"]].add(vol["VolumeId"])
        links: dict[str, list[tuple[int, str]]] = {iid: [] for iid in hosts}
        for eni in ec2.describe_network_interfaces(Filters=filters)["NetworkInterfaces"]:
            att = eni.get("Attachment") or {}
            if att.get("InstanceId") in links:
                links[att["InstanceId"]].append((int(att.get("DeviceIndex", 0)), eni["MacAddress"]))
        for iid, host in hosts.items():
            by_id = host.root / "dev/disk/by-id"
            by_id.mkdir(parents=True, exist_ok=True)
            present = {p.name: p for p in by_id.iterdir()}
            for vol in devices[iid]:
                name = f"nvme-Amazon_Elastic_Block_Store_{vol.replace('-', '')}"
                if name not in present:
                    image = self.dir / "volumes" / f"{vol}.img"
                    if not image.exists():
                        with open(image, "wb") as fh:
                            fh.truncate(IMAGE_SIZE)
                    (by_id / name).symlink_to(image)
            for name, path in present.items():
                if "vol" + name.rsplit("_vol", 1)[-1] not in {v.replace("-", "") for v in devices[iid]}:
                    path.unlink()
            wanted = [{"name": f"ens{5 + index}", "mac": mac} for index, mac in sorted(links[iid])]
            if wanted != host.links():
                tmp = host.dir / "links.json.tmp"
                tmp.write_text(json.dumps(wanted))
                tmp.replace(host.dir / "links.json")
