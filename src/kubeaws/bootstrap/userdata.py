"""EC2 user data (cloud-config) and boot scripts of a self-managed (kubeadm) cluster.

Pure renderers. Called by the model builders (the launch templates' `user_data`, through a `Computed` value
that receives the state bucket name) and by `kubeaws render -o DIR` (`artifacts`).

The user data is a `#cloud-config` with `write_files` (boot script, kubeadm config templates, systemd units)
and `runcmd` (runs the boot script). It holds no secret: CAs, the encryption key and the join token are read
from the state bucket with the instance role. The addon manifests (the upstream ones vendored in the package:
nothing is downloaded from the internet at boot) are too big for user data: kubeaws uploads
them to the state bucket (`bucket_objects`: keys `cluster/addons/<file>`, to be written as `StateObject`s by the model)
and the first control-plane member downloads them; so is the kubelet serving-certificate approver that every
member runs (`cluster/node/kubelet-serving-approver.py`: the file `bootstrap/serving_approver.py` as it is,
too big for user data). EC2 limits user data to 16 KB: a bigger document is sent gzip-compressed by the
LaunchTemplate kind (cloud-init decompresses gzip user data); the text stays the reviewable form here, in
`kubeaws render` and in the golden files. A document too big even compressed raises ValueError.
"""

from __future__ import annotations

import gzip
import json
import shlex
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from kubeaws import addons
from kubeaws.addons import images, versions
from kubeaws.addons.descriptors import aws_vpc_cni
from kubeaws.addons.templating import environment
from kubeaws.bootstrap import kubeadm
from kubeaws.bootstrap.kubeadm import Role
from kubeaws.spec.models import ClusterSpec

USER_DATA_LIMIT = 16384
LIB_DIR = "/usr/local/lib/kubeaws"
#: The approver of kubelet serving certificates: its state-bucket key, and where members install it.
APPROVER_KEY = "cluster/node/kubelet-serving-approver.py"
APPROVER_PATH = f"{LIB_DIR}/kubelet-serving-approver.py"
APPROVER_UNIT = "kubeaws-serving-approver.service"
AWSCLI_PIP = "awscli==1.36.40"
PKGS_K8S_IO = "https://pkgs.k8s.io"
#: The Python package index the AWS CLI comes from where the OS has no awscli package (Ubuntu 24.04); with
#: `mirrors.packages` set, `<packages>/pypi.org/simple/` (docs/kubeadm.md, "Mirrors").
PYPI_SIMPLE = "https://pypi.org/simple/"


def sh(value: object) -> str:
    """The template filter `sh`: a value as ONE literal shell word (shlex.quote), whatever it holds. Every
    value a boot script gets from kubeaws goes through it (docs/security.md, "Hostile input")."""
    return shlex.quote(str(value))


def comment(value: object) -> str:
    """The template filter `comment`: a value shown inside a `#` comment, on one line (JSON string escapes,
    so a line break cannot end the comment)."""
    return json.dumps(str(value))[1:-1]


@cache
def _env() -> jinja2.Environment:
    # Comment delimiters moved away from `{#`, which bash uses (`${#array[@]}`).
    env = environment("kubeaws.bootstrap", "templates", comment_start_string="<#", comment_end_string="#>")
    env.filters.update(sh=sh, comment=comment)
    return env


def package_base(spec: ClusterSpec) -> str:
    """The apt repository of the Kubernetes packages (pkgs.k8s.io layout, or the `mirrors.packages` mirror)."""
    base = (spec.spec.mirrors.packages or PKGS_K8S_IO).rstrip("/")
    return f"{base}/core:/stable:/v{spec.spec.kubernetes_version}/deb"


def _mirrored_url(spec: ClusterSpec, url: str) -> str:
    """`https://host/path` -> `<mirrors.packages>/host/path` when a package mirror is set."""
    mirror = spec.spec.mirrors.packages
    return f"{mirror.rstrip('/')}/{url.removeprefix('https://')}" if mirror else url


def _apply_steps(spec: ClusterSpec) -> list[str]:
    """Shell lines of install_addons: every addon file (downloaded from the state bucket, the vendored upstream
    manifests included: nothing comes from the internet) applied in order, a custom resource only once its
    CRD is established. Code, not values: they name only kubeaws' own files and CRDs, never a string from
    the spec."""
    #: File -> the CRD its custom resources need (the CRD comes in an earlier file).
    needs = {"cni-calico.yaml": "installations.operator.tigera.io", "rook-ceph.yaml": "cephclusters.ceph.rook.io"}
    steps: list[str] = []
    for name in addons.boot_files(spec):
        if name in needs:
            steps.append(f'retry "CRD {needs[name]}" "${{KUBECTL[@]}}" wait --for condition=established '
                         f'--timeout=10s crd/{needs[name]}')
        steps.append(f'kubectl_apply "$CONF_DIR/addons/{name}"')
    return steps


def _common_context(spec: ClusterSpec, role: Role, bucket: str) -> dict[str, Any]:
    body = spec.spec
    minor = body.kubernetes_version
    mirror = body.mirrors.image_repository
    return {
        "role": role, "cluster": spec.name, "bucket": bucket, "region": body.region,
        "k8s_patch": versions.kubernetes_patch(minor), "pkg_base": package_base(spec),
        "pause_image": images.mirror_image(versions.pause_image(minor), mirror),
        "image_mirror": mirror or "", "awscli_pip": AWSCLI_PIP,
        "awscli_index": _mirrored_url(spec, PYPI_SIMPLE) if body.mirrors.packages else "",
        "ecr_images": aws_vpc_cni.ecr_images(spec),
    }


def render_scripts(spec: ClusterSpec, role: Role, bucket: str, group: str | None = None) -> dict[str, str]:
    """File name -> bash script (installed under /usr/local/lib/kubeaws) for a role."""
    ctx = _common_context(spec, role, bucket)
    env = _env()
    if role == "node":
        ng = kubeadm.find_group(spec, group)
        return {f"bootstrap-node-{ng.name}.sh": env.get_template("node.sh.j2").render(ctx, group=ng.name)}
    body = spec.spec
    backup = body.etcd_backup
    cp = env.get_template("control-plane.sh.j2").render(
        ctx, members=body.control_plane.count, schedulable=body.control_plane.schedulable,
        api_eni=api_uses_eni(spec), apply_steps=_apply_steps(spec),
        approver_key=APPROVER_KEY, approver_path=APPROVER_PATH, approver_unit=APPROVER_UNIT,
        etcd_backup=backup is not None, addon_files=sorted(addons.boot_files(spec)))
    out = {"bootstrap-control-plane.sh": cp,
           "token-refresh.sh": env.get_template("token-refresh.sh.j2").render(ctx)}
    if backup is not None:
        out["etcd-backup.sh"] = env.get_template("etcd-backup.sh.j2").render(
            ctx, keep=backup.keep, every=backup.every_minutes)
        out["etcd-restore-watch.sh"] = env.get_template("etcd-restore-watch.sh.j2").render(ctx)
    return out


def api_uses_eni(spec: ClusterSpec) -> bool:
    """A single private control-plane member holds the stable API address as a secondary ENI."""
    cp = spec.spec
    return cp.control_plane.count == 1 and cp.access.api_endpoint == "private"


def _units(spec: ClusterSpec) -> dict[str, str]:
    def service(name: str, what: str) -> str:
        return (f"[Unit]\nDescription=kubeaws: {what}\nAfter=kubelet.service\n\n[Service]\nType=oneshot\n"
                f"ExecStart=/bin/bash {LIB_DIR}/{name}.sh\n")

    def timer(what: str, schedule: str) -> str:
        return f"[Unit]\nDescription=kubeaws: {what}\n\n[Timer]\n{schedule}\nPersistent=true\n\n" \
               "[Install]\nWantedBy=timers.target\n"

    units = {
        "kubeaws-token-refresh.service": service("token-refresh", "refresh the join token in the state bucket"),
        "kubeaws-token-refresh.timer": timer("hourly join token refresh", "OnBootSec=5min\nOnUnitActiveSec=1h"),
        # Cluster name and region are DNS-label / region grammar (spec.grammar): nothing systemd would split.
        APPROVER_UNIT: "[Unit]\nDescription=kubeaws: approve the kubelet serving certificates of this cluster's "
                       "instances\nAfter=kubelet.service\n\n[Service]\n"
                       f"ExecStart=/usr/bin/python3 {APPROVER_PATH} --cluster {spec.name} --region {spec.spec.region} "
                       "--kubeconfig /etc/kubernetes/admin.conf\nRestart=always\nRestartSec=10\n\n"
                       "[Install]\nWantedBy=multi-user.target\n",
    }
    backup = spec.spec.etcd_backup
    if backup is not None:
        units["kubeaws-etcd-backup.service"] = service("etcd-backup", "etcd snapshot to the state bucket")
        units["kubeaws-etcd-backup.timer"] = timer(
            "etcd snapshot", f"OnBootSec=10min\nOnUnitActiveSec={backup.every_minutes}min")
        # `kubeaws etcd restore` (kubeaws.etcd_restore): one S3 read a minute while no restore is in progress.
        units["kubeaws-etcd-restore.service"] = service("etcd-restore-watch", "follow an etcd restore")
        units["kubeaws-etcd-restore.timer"] = timer(
            "etcd restore watch", "OnBootSec=2min\nOnUnitActiveSec=1min\nAccuracySec=5s")
    return units


def _files(spec: ClusterSpec, role: Role, bucket: str, group: str | None) -> list[tuple[str, str, str]]:
    """(path, permissions, content) of every file the user data writes."""
    files = [(f"{LIB_DIR}/{name}", "0755", text) for name, text in render_scripts(spec, role, bucket, group).items()]
    files += [(f"/etc/kubeaws/kubeadm/{name}", "0644", text)
              for name, text in kubeadm.render_kubeadm_configs(spec, role, group).items()]
    if role == "node":
        patch = kubeadm.kubelet_patch(spec, kubeadm.find_group(spec, group))
        if patch:
            files.append((f"{kubeadm.PATCHES_DIR}/kubeletconfiguration+merge.yaml", "0644", patch))
        return files
    audit = resources.files("kubeaws.bootstrap").joinpath("templates/audit-policy.yaml").read_text()
    files.append((kubeadm.AUDIT_POLICY, "0644", audit))
    files += [(f"/etc/systemd/system/{name}", "0644", text) for name, text in _units(spec).items()]
    return files


# libyaml's emitter when PyYAML has it (every wheel does): the pure-Python one is ~10x slower, and user
# data is rendered for every launch template on every plan.
_Base: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):  # type: ignore[valid-type,misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _cloud_config(files: list[tuple[str, str, str]], script: str) -> str:
    entries = [{"path": path, "owner": "root:root", "permissions": mode, "content": content}
               for path, mode, content in files]
    doc = {"write_files": entries, "runcmd": [["/bin/bash", f"{LIB_DIR}/{script}"]]}
    return "#cloud-config\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100000)


def render_user_data(spec: ClusterSpec, role: Role, bucket: str, group: str | None = None) -> str:
    """The cloud-config user data of the control-plane launch template ("control-plane") or of a node
    group's launch template ("node", `group` = the group's name), as text. Over EC2's 16 KB limit, the
    launch template sends it gzip-compressed (cloud-init decompresses it); text that does not fit even
    compressed raises ValueError."""
    files = _files(spec, role, bucket, group)
    script = next(path.rsplit("/", 1)[1] for path, _, _ in files if "/bootstrap-" in path)
    text = _cloud_config(files, script)
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        size = len(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    if size > USER_DATA_LIMIT:
        raise ValueError(f"user data of {role} {group or ''} is {size} bytes even compressed "
                         f"(EC2 limit {USER_DATA_LIMIT})")
    return text


def approver_source() -> str:
    """The kubelet serving-certificate approver, as the control-plane members run it (bootstrap.serving_approver)."""
    return resources.files("kubeaws.bootstrap").joinpath("serving_approver.py").read_text()


def bucket_objects(spec: ClusterSpec) -> dict[str, str]:
    """State-bucket key -> content of the files kubeaws uploads for the control plane (the boot addons'
    manifests, the vendored upstream ones included, read by the first member as `cluster/addons/<file>`; the
    serving-certificate approver, read by every member). Not secret. The other addons are objects kubeaws
    applies through the API (kubeaws.model.addon_objects)."""
    out = {f"cluster/addons/{name}": text for name, text in addons.boot_files(spec).items()}
    out[APPROVER_KEY] = approver_source()
    return out


def artifacts(spec: ClusterSpec, bucket: str) -> dict[str, str]:
    """Every generated file for `kubeaws render -o DIR` (relative path -> content)."""
    out: dict[str, str] = {"user-data/control-plane.yaml": render_user_data(spec, "control-plane", bucket)}
    out.update({f"kubeadm/{k}": v for k, v in kubeadm.render_kubeadm_configs(spec, "control-plane").items()})
    out.update({f"scripts/{k}": v for k, v in render_scripts(spec, "control-plane", bucket).items()})
    for group in spec.spec.node_groups:
        if group.type != "self-managed":
            continue
        out[f"user-data/node-{group.name}.yaml"] = render_user_data(spec, "node", bucket, group.name)
        out.update({f"kubeadm/{k}": v for k, v in kubeadm.render_kubeadm_configs(spec, "node", group.name).items()})
        out.update({f"scripts/{k}": v for k, v in render_scripts(spec, "node", bucket, group.name).items()})
    out.update({f"addons/{k}": v for k, v in addons.addon_files(spec).items()})
    out[APPROVER_KEY.removeprefix("cluster/")] = approver_source()
    return dict(sorted(out.items()))
