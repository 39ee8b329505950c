"""Why two user data documents differ, in words: the spec fields and the files behind the change.

kubeaws' own user data is a `#cloud-config` whose `write_files` are the boot scripts, the kubeadm configs, a
kubelet config patch, the audit policy and systemd units (bootstrap.userdata). Both documents are parsed and
compared file by file; each differing file is named by what it is for, with what changed inside it where a
spec field can be read back from it:

- `kubernetesVersion`: `K8S_PATCH="…"` of the boot scripts and `kubernetesVersion:` of the kubeadm config,
  said once as `kubernetesVersion v1.31.13 -> v1.32.9`;
- addons and the CNI: the addon file list of the control-plane script (`names=(…)`), said as
  `addons.rookCeph added` / `network.cni calico -> flannel`;
- kubeadm configs: differing settings by document kind and path; kubelet flags (`kubeletExtraArgs`) and
  taints named as such; shell settings of the scripts (`IMAGE_MIRROR="…"`...) by name.

Anything else (EKS' MIME documents, a hand-written script) is compared as text: `user data: N lines changed`.
Pure; called by engine.why for the launch templates a plan changes.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import shlex
from typing import Any

import yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: `NAME=value` lines of the boot scripts: settings when the value is one literal word (`X=a`, `X='a b'`, and
#: `X="a"` as scripts rendered before the `sh` filter wrote them), not when it expands something (`X="$ROOT/a"`).
_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)
_ADDON_NAMES = re.compile(r"names=\(([^)]*)\)")
_KUBEADM_VERSION = re.compile(r"^\s*kubernetesVersion:\s*(\S+)\s*$", re.MULTILINE)
#: Shell settings that are spec fields said elsewhere (the version) or not settings at all.
_SKIP_VARS = frozenset({"K8S_PATCH", "ROLE", "CLUSTER"})
#: Addon file of the bootstrap -> the spec field that adds it.
ADDON_FIELDS = {"cloud-provider-aws.yaml": "addons.cloudProviderAWS", "ebs-csi.yaml": "addons.ebsCSI",
                "metrics-server.yaml": "addons.metricsServer", "cluster-autoscaler.yaml": "addons.clusterAutoscaler",
                "rook-ceph.yaml": "addons.rookCeph"}
#: Changed lines of a text shown as a count beyond this many facts.
MAX_FACTS = 4


def decode(encoded: str | None) -> str:
    """Text of base64 user data as EC2 returns it (gunzipped when it was sent compressed)."""
    if not encoded:
        return ""
    try:
        raw = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        return encoded
    if raw.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def file_purpose(path: str) -> str:
    """What a file of kubeaws' user data is for."""
    name = path.rsplit("/", 1)[-1]
    if name == "bootstrap-control-plane.sh":
        return "control-plane boot script"
    if name.startswith("bootstrap-node-"):
        return "node boot script"
    if name == "init.yaml":
        return "kubeadm init config"
    if name.startswith("join-") and name.endswith(".yaml"):
        return "kubeadm join config"
    if "kubeletconfiguration" in name:
        return "kubelet config patch"
    if name == "token-refresh.sh":
        return "join token refresh script"
    if name == "etcd-backup.sh":
        return "etcd backup script"
    if "audit" in name:
        return "API server audit policy"
    if path.startswith("/etc/systemd/"):
        return "systemd unit"
    return "file"


def _cloud_config(text: str) -> dict[str, Any] | None:
    if not text.startswith("#cloud-config"):
        return None
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, dict) else None


def _files(doc: dict[str, Any]) -> dict[str, str]:
    return {str(f.get("path")): str(f.get("content", "")) for f in doc.get("write_files") or []
            if isinstance(f, dict)}


def _shell_vars(text: str) -> dict[str, str]:
    """The settings of a boot script (name -> literal value)."""
    found: dict[str, str] = {}
    for m in _ASSIGNMENT.finditer(text):
        raw = m.group(2)
        if not raw.startswith("'") and ("$" in raw or "`" in raw or raw.startswith("(")):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        if len(words) == 1 or raw in ("''", '""'):
            found[m.group(1)] = words[0] if words else ""
    return found


def _versions(text: str) -> set[str]:
    found = {v for k, v in _shell_vars(text).items() if k == "K8S_PATCH"}
    found |= {m.group(1).lstrip("v") for m in _KUBEADM_VERSION.finditer(text)}
    return found


def _addons(text: str) -> set[str] | None:
    match = _ADDON_NAMES.search(text)
    return set(shlex.split(match.group(1))) if match else None


def addon_reasons(old: set[str], new: set[str]) -> list[str]:
    """`addons.rookCeph added`, `network.cni calico -> flannel`... from the addon file lists."""
    out: list[str] = []
    old_cni = sorted(n.removeprefix("cni-").removesuffix(".yaml") for n in old if n.startswith("cni-"))
    new_cni = sorted(n.removeprefix("cni-").removesuffix(".yaml") for n in new if n.startswith("cni-"))
    if "cilium-values.yaml" in old:
        old_cni.append("cilium")
    if "cilium-values.yaml" in new:
        new_cni.append("cilium")
    if old_cni != new_cni:
        out.append(f"network.cni {'/'.join(old_cni) or 'none'} -> {'/'.join(new_cni) or 'none'}")
    for name in sorted(new - old):
        if name in ADDON_FIELDS:
            out.append(f"{ADDON_FIELDS[name]} added")
    for name in sorted(old - new):
        if name in ADDON_FIELDS:
            out.append(f"{ADDON_FIELDS[name]} removed")
    return out


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths -> leaves; kubelet flag lists ({name, value} items) become maps of flags."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and set(v) == {"name", "value"} for v in value):
        value = {str(v["name"]): v["value"] for v in value}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: value}


def _short(value: Any) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kubeadm_facts(old: str, new: str) -> list[str]:
    """Differing kubeadm settings, by document kind: `kubelet flags: node-labels a -> b`, `taints`..."""
    def docs(text: str) -> dict[str, Any]:
        try:
            loaded = [d for d in yaml.load_all(text, Loader=_Loader) if isinstance(d, dict)]
        except yaml.YAMLError:
            return {}
        return {str(d.get("kind", f"document {i}")): d for i, d in enumerate(loaded)}

    before, after = docs(old), docs(new)
    facts: list[str] = []
    for kind in sorted(set(before) | set(after)):
        if kind not in after or kind not in before:
            facts.append(f"{kind} {'added' if kind in after else 'removed'}")
            continue
        a, b = _flat(before[kind]), _flat(after[kind])
        for path in sorted(set(a) | set(b)):
            if a.get(path) == b.get(path) or path.endswith("kubernetesVersion"):
                continue
            if ".kubeletExtraArgs." in f".{path}":
                flag = path.split("kubeletExtraArgs.", 1)[1]
                facts.append(f"kubelet flags: --{flag} {_short(a.get(path))} -> {_short(b.get(path))}")
            elif path.endswith("taints") or ".taints" in path:
                facts.append(f"node taints ({kind})")
            else:
                facts.append(f"{kind}.{path} {_short(a.get(path))} -> {_short(b.get(path))}")
    return list(dict.fromkeys(facts))


def _line_count(old: str, new: str) -> int:
    a, b = old.splitlines(), new.splitlines()
    return len(set(a) ^ set(b)) or abs(len(a) - len(b)) or 1


def file_facts(path: str, old: str, new: str) -> list[str]:
    """What changed inside one file, as far as it can be said in words (the version is said elsewhere)."""
    facts: list[str] = []
    if (path.endswith(".yaml") and "/kubeadm/" in path) or "kubeletconfiguration" in path:
        facts = kubeadm_facts(old, new)
    else:
        before, after = _shell_vars(old), _shell_vars(new)
        facts = [f"{k} {_short(before.get(k) or None)} -> {_short(after.get(k) or None)}"
                 for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k) and k not in _SKIP_VARS]
    if len(facts) > MAX_FACTS:
        facts = [*facts[:MAX_FACTS], f"{len(facts) - MAX_FACTS} more"]
    return facts


def user_data_reasons(old: str, new: str) -> list[str]:
    """Reasons, most telling first: the version, addons, then one line per differing file."""
    if old == new:
        return []
    old_doc, new_doc = _cloud_config(old), _cloud_config(new)
    if old_doc is None or new_doc is None:
        return [f"user data: {_line_count(old, new)} line(s) changed"]
    head: list[str] = []
    before, after = _files(old_doc), _files(new_doc)
    old_text, new_text = "\n".join(before.values()), "\n".join(after.values())
    old_versions, new_versions = _versions(old_text), _versions(new_text)
    if old_versions != new_versions and old_versions and new_versions:
        head.append(f"kubernetesVersion v{', v'.join(sorted(old_versions))} -> v{', v'.join(sorted(new_versions))}")
    old_addons, new_addons = _addons(old_text), _addons(new_text)
    if old_addons is not None and new_addons is not None:
        head += addon_reasons(old_addons, new_addons)
    lines: list[str] = []
    for path in sorted(set(before) | set(after)):
        name = path.rsplit("/", 1)[-1]
        what = f"{file_purpose(path)} {name}"
        if path not in before:
            lines.append(f"user data: {what} added")
        elif path not in after:
            lines.append(f"user data: {what} removed")
        elif before[path] != after[path]:
            facts = file_facts(path, before[path], after[path])
            if _versions(before[path]) != _versions(after[path]):
                facts.insert(0, "kubernetesVersion")
            if _addons(before[path]) != _addons(after[path]):
                facts.append("addon list")
            facts = facts or [f"{_line_count(before[path], after[path])} line(s) changed"]
            lines.append(f"user data: {what}: {'; '.join(facts)}")
    if old_doc.get("runcmd") != new_doc.get("runcmd"):
        lines.append("user data: runcmd changed")
    return head + (lines or ["user data: reformatted (same files)"])
