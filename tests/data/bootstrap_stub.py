"""Stand-in for the host commands of the kubeaws boot scripts (symlinked under each command's name).

Appends "name argv..." to $STUB_CALLS and emulates the few answers the scripts need: IMDS through curl, the
state bucket through `aws s3` (a directory), EC2 volumes/instances through `aws ec2` (a JSON state file),
blkid/mkfs on fake device files, kubeadm token creation and etcdctl member list.
"""

import json
import os
import shutil
import sys
from pathlib import Path

name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
root = Path(os.environ["KUBEAWS_ROOT"])
bucket = Path(os.environ["STUB_BUCKET"])
state_file = Path(os.environ["STUB_STATE"])
with open(os.environ["STUB_CALLS"], "a") as fh:
    fh.write(" ".join([name, *args]) + "\n")


def opt(flag: str) -> str:
    return args[args.index(flag) + 1]


def load() -> dict:
    return json.loads(state_file.read_text())


def save(state: dict) -> None:
    state_file.write_text(json.dumps(state))


def curl() -> int:
    url = next(a for a in args if a.startswith("http"))
    if url.endswith("/api/token"):
        print("imds-token")
        return 0
    if "/meta-data/" in url:
        key = url.split("/meta-data/", 1)[1]
        value = load()["imds"].get(key)
        if value is None:
            return 22
        print(value)
        return 0
    if "-o" in args:
        Path(opt("-o")).write_text("kind: List\napiVersion: v1\nitems: []\n")
    else:
        print("fake download")
    return 0


def volume_field(vol: dict, query: str, instance_states: dict) -> str:
    att = vol.get("attachment")
    fields = {"State": vol["state"], "Attachments[0].InstanceId": att["instance"] if att else "None",
              "Attachments[0].State": att["state"] if att else "None"}
    return fields[query.removeprefix("Volumes[0].")]


def aws() -> int:
    state = load()
    if args[:2] == ["s3", "cp"]:
        src, dst = [a for a in args[2:] if not a.startswith("-") and a not in ("us-east-1", "AES256")][-2:]
        if src.startswith("s3://"):
            obj = bucket / src.split("/", 3)[3]
            if not obj.exists():
                print(f"fatal error: 404 {src}", file=sys.stderr)
                return 1
            shutil.copy(obj, dst)
        else:
            obj = bucket / dst.split("/", 3)[3]
            obj.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, obj)
        return 0
    if args[:2] == ["s3api", "head-object"]:
        return 0 if (bucket / opt("--key")).exists() else 255
    if args[0] != "ec2":
        return 0
    op = args[1]
    me = state["imds"]["instance-id"]
    vols = state["volumes"]
    if op == "describe-instances":
        query = opt("--query")
        if "control-plane-member" in query and "--instance-ids" in args:
            print(state["member"])
        elif "State.Name" in query:
            print(state["instances"].get(opt("--instance-ids"), "terminated"))
        else:
            print(" ".join(state.get("peers", [])))
        return 0
    if op == "describe-volumes":
        if "--volume-ids" in args:
            print(volume_field(vols[opt("--volume-ids")], opt("--query"), state["instances"]))
        else:
            member = next(a.split("Values=")[1] for a in args if "etcd-member" in a)
            found = [v for v, d in vols.items() if d["member"] == member]
            print(found[0] if found else "None")
        return 0
    if op == "attach-volume":
        vol = opt("--volume-id")
        vols[vol].update(state="in-use", attachment={"instance": me, "state": "attached"})
        dev = root / "dev/disk/by-id" / f"nvme-Amazon_Elastic_Block_Store_{vol.replace('-', '')}"
        dev.parent.mkdir(parents=True, exist_ok=True)
        dev.write_text(vols[vol].get("fs", ""))
    elif op == "detach-volume":
        vols[opt("--volume-id")].update(state="available", attachment=None)
    save(state)
    return 0


def main() -> int:
    if name == "curl":
        return curl()
    if name == "aws":
        return aws()
    if name == "kubeadm" and args[:2] == ["token", "create"]:
        print("abcdef.0123456789abcdef")
    elif name == "gpg":
        sys.stdin.read()  # like the real gpg: consume the piped key (else the writer gets SIGPIPE)
    elif name == "containerd":
        print('version = 2\nSystemdCgroup = false\nsandbox_image = "registry.k8s.io/pause:3.8"\nconfig_path = ""')
    elif name == "blkid":
        dev = Path(args[-1])
        if not dev.read_text().strip():
            return 2
        print("ext4" if "TYPE" in args else "0b0c0d0e-uuid")
    elif name == "mkfs.ext4":
        Path(args[-1]).write_text("ext4")
    elif name == "mountpoint":
        return 1
    elif name == "etcdctl" and "list" in args:
        old = (root / "var/lib/etcd/kubeaws-member-name").read_text().strip()
        print(f"8e9e05c52164694d, started, {old}, https://10.0.0.9:2380, https://10.0.0.9:2379, false")
    return 0


sys.exit(main())
