"""Bootstrap renderers: shellcheck on every script, cloud-init's JSON schema on the user data, the 16 KB
limit (as the launch template sends it), no secret in user data, kubeadm configs (API version per Kubernetes
version, fields), direct assertions on the safety-critical lines, and golden files of every script, kubeadm
config and user data, stored as plain text so that a diff reads as code (regenerate with
KUBEAWS_UPDATE_GOLDEN=1 and review the diff). What the scripts DO is run in tests/test_bootstrap_sandbox.py."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubeaws.bootstrap import USER_DATA_LIMIT, artifacts, render_kubeadm_configs, render_user_data
from kubeaws.resources.launch_template import encode_user_data
from kubeaws.spec.load import load_spec
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).parent / "golden" / "bootstrap"
SCHEMA = json.loads((Path(__file__).parent / "data" / "schema-cloud-config-v1.json").read_text())
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
BUCKET = "kubeaws-prod-ha-0123456789"


def _examples() -> list[ClusterSpec]:
    return [load_spec(EXAMPLES / "dev.yaml"), load_spec(EXAMPLES / "ha.yaml")]


def _user_data_files(text: str) -> dict[str, str]:
    doc = yaml.safe_load(text)
    out = {}
    for entry in doc["write_files"]:
        content = entry["content"]
        if entry.get("encoding") == "gz+b64":
            content = gzip.decompress(base64.b64decode(content)).decode()
        out[entry["path"]] = content
    return out


def _shellcheck(script: str, tmp: Path, name: str) -> None:
    path = tmp / name
    path.write_text(script)
    result = subprocess.run([str(SHELLCHECK), "--shell=bash", "--severity=style", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("spec", _examples(), ids=lambda s: s.name)
def test_scripts_pass_shellcheck(spec: ClusterSpec, tmp_path: Path) -> None:
    files = artifacts(spec, BUCKET)
    scripts = {k: v for k, v in files.items() if k.startswith("scripts/")}
    assert "scripts/bootstrap-control-plane.sh" in scripts and "scripts/etcd-backup.sh" in scripts
    for name, text in scripts.items():
        assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
        _shellcheck(text, tmp_path, name.split("/")[1])
    for name, text in files.items():
        if name.startswith("user-data/"):
            doc = yaml.safe_load(text)
            runcmd = "\n".join(" ".join(c) if isinstance(c, list) else c for c in doc["runcmd"])
            _shellcheck("#!/bin/bash\n" + runcmd + "\n", tmp_path, "runcmd.sh")
            for path, content in _user_data_files(text).items():
                if path.endswith(".sh"):
                    _shellcheck(content, tmp_path, Path(path).name)


@pytest.mark.parametrize("spec", _examples(), ids=lambda s: s.name)
def test_user_data_is_valid_cloud_config_under_16k(spec: ClusterSpec) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA)
    for name, text in artifacts(spec, BUCKET).items():
        if not name.startswith("user-data/"):
            continue
        assert text.startswith("#cloud-config\n")
        sent = base64.b64decode(encode_user_data(text))  # what RunInstances receives, before base64
        assert len(sent) <= USER_DATA_LIMIT, (name, len(sent))
        if len(text.encode()) > USER_DATA_LIMIT:  # sent gzip-compressed: cloud-init reads it decompressed
            assert gzip.decompress(sent).decode() == text
        else:
            assert sent.decode() == text
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(text))]
        assert not errors, (name, errors)


@pytest.mark.parametrize("spec", _examples(), ids=lambda s: s.name)
def test_no_secret_in_user_data(spec: ClusterSpec) -> None:
    for name, text in artifacts(spec, BUCKET).items():
        if not name.startswith("user-data/"):
            continue
        for path, content in {"": text, **_user_data_files(text)}.items():
            assert "BEGIN" not in content and "PRIVATE KEY" not in content, (name, path)
            for doc in yaml.safe_load_all(content) if path.endswith(".yaml") and "kubeadm" in path else []:
                token = doc.get("discovery", {}).get("bootstrapToken", {}).get("token")
                assert token in (None, "@@TOKEN@@")
                assert "bootstrapTokens" not in doc and "certificateKey" not in doc


def _configs(spec: ClusterSpec, role: Any, group: str | None = None) -> dict[str, list[dict[str, Any]]]:
    return {k: list(yaml.safe_load_all(v)) for k, v in render_kubeadm_configs(spec, role, group).items()}


def _args(value: Any) -> dict[str, str]:
    return {a["name"]: a["value"] for a in value} if isinstance(value, list) else dict(value)


@pytest.mark.parametrize(("version", "api"), [("1.30", "v1beta3"), ("1.31", "v1beta4"), ("1.33", "v1beta4")])
def test_kubeadm_init_config(version: str, api: str) -> None:
    spec = make_spec(kubernetesVersion=version, mirrors={"imageRepository": "registry.example.cn/k8s"},
                     addons={"cloudProviderAWS": {}})
    init, cluster, kubelet = _configs(spec, "control-plane")["init.yaml"]
    assert init["apiVersion"] == cluster["apiVersion"] == f"kubeadm.k8s.io/{api}"
    assert init["kind"] == "InitConfiguration" and cluster["kind"] == "ClusterConfiguration"
    assert cluster["kubernetesVersion"].startswith(f"v{version}.")
    assert cluster["controlPlaneEndpoint"] == "@@ENDPOINT@@:@@PORT@@"
    assert cluster["networking"] == {"podSubnet": "192.168.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                     "dnsDomain": "cluster.local"}
    assert cluster["imageRepository"] == "registry.example.cn/k8s"
    api_args = _args(cluster["apiServer"]["extraArgs"])
    assert api_args["profiling"] == "false" and api_args["audit-policy-file"] == "/etc/kubernetes/audit-policy.yaml"
    assert api_args["encryption-provider-config"] == "/etc/kubernetes/encryption/config.yaml"
    assert isinstance(cluster["apiServer"]["extraArgs"], list) == (api == "v1beta4")
    assert _args(init["nodeRegistration"]["kubeletExtraArgs"])["cloud-provider"] == "external"
    assert init["nodeRegistration"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane",
                                                  "effect": "NoSchedule"}]
    assert kubelet["kind"] == "KubeletConfiguration" and kubelet["readOnlyPort"] == 0
    assert kubelet["authentication"]["anonymous"]["enabled"] is False and kubelet["protectKernelDefaults"]
    assert kubelet["authorization"]["mode"] == "Webhook"


def test_schedulable_control_plane_has_no_taint() -> None:
    configs = _configs(make_spec(controlPlane={"schedulable": True}), "control-plane")
    assert configs["init.yaml"][0]["nodeRegistration"]["taints"] == []
    join = configs["join-control-plane.yaml"][0]
    assert join["nodeRegistration"]["taints"] == [] and "controlPlane" in join


def test_node_join_config() -> None:
    spec = load_spec(EXAMPLES / "ha.yaml")
    (join,) = _configs(spec, "node", "batch-spot")["join-batch-spot.yaml"]
    assert join["kind"] == "JoinConfiguration" and "controlPlane" not in join
    assert join["discovery"]["bootstrapToken"]["caCertHashes"] == ["@@CA_HASH@@"]
    labels = dict(kv.split("=") for kv in _args(join["nodeRegistration"]["kubeletExtraArgs"])["node-labels"].split(","))
    assert labels == {"workload": "batch", "kubeaws.io/node-group": "batch-spot", "kubeaws.io/capacity": "spot",
                      "kubeaws.io/instance-spec": "2cpu-8gib"}  # m5.large, the first type
    assert join["nodeRegistration"]["taints"] == [{"key": "workload", "value": "batch", "effect": "NoSchedule"}]
    assert join["patches"] == {"directory": "/etc/kubeaws/patches"}
    files = _user_data_files(render_user_data(spec, "node", BUCKET, "batch-spot"))
    assert files["/etc/kubeaws/patches/kubeletconfiguration+merge.yaml"] == "maxPods: 58\n"
    storage = _user_data_files(render_user_data(spec, "node", BUCKET, "storage"))
    script = storage["/usr/local/lib/kubeaws/bootstrap-node-storage.sh"]
    assert "mkfs" not in script and "mount " not in script  # extra volumes stay raw


def test_unknown_group_is_an_error() -> None:
    with pytest.raises(ValueError, match="no node group named 'nope'"):
        render_user_data(make_spec(), "node", BUCKET, "nope")


def test_package_mirror_and_versions() -> None:
    spec = make_spec(kubernetesVersion="1.32", mirrors={"packages": "https://mirror.example.cn/k8s"})
    script = artifacts(spec, BUCKET)["scripts/bootstrap-node-general.sh"]
    assert 'PKG_BASE=https://mirror.example.cn/k8s/core:/stable:/v1.32/deb\n' in script
    plain = artifacts(make_spec(), BUCKET)["scripts/bootstrap-node-general.sh"]
    assert 'PKG_BASE=https://pkgs.k8s.io/core:/stable:/v1.31/deb\n' in plain


def test_user_data_too_big_even_compressed_is_refused() -> None:
    with pytest.raises(ValueError, match="even compressed"):
        encode_user_data(os.urandom(USER_DATA_LIMIT).hex())


@pytest.mark.parametrize("spec", _examples(), ids=lambda s: s.name)
def test_safety_critical_lines(spec: ClusterSpec) -> None:
    """The lines whose mistakes a golden diff could hide, asserted directly."""
    files = artifacts(spec, BUCKET)
    cp = files["scripts/bootstrap-control-plane.sh"]
    # the etcd volume of THIS member in THIS AZ, owned by THIS cluster (a volume of another AZ cannot attach)
    lookup = cp[cp.index("attach_etcd_volume() {"):].split("--query", 1)[0]
    for wanted in ('"Name=tag:kubeaws.io/cluster,Values=$CLUSTER"', '"Name=tag:kubeaws.io/etcd-member,Values=$MEMBER"',
                   '"Name=availability-zone,Values=$AZ"'):
        assert wanted in lookup
    # peers are found by the tag Auto Scaling propagates to instances (kubeaws.io/cluster is not propagated)
    assert '"Name=tag:kubernetes.io/cluster/$CLUSTER,Values=owned"' in cp
    # every placeholder of the kubeadm configs is substituted, and a leftover stops the boot
    placeholders = set()
    for name, text in files.items():
        if name.startswith("kubeadm/"):
            placeholders |= set(re.findall(r"@@([A-Z_]+)@@", text))
    assert placeholders == {"ENDPOINT", "PORT", "CA_HASH", "NODE_NAME", "NODE_IP", "TOKEN"}
    for script in (cp, files["scripts/bootstrap-node-general.sh"]):
        render = script[script.index("render_config() {"):script.index("token_ready()")]
        for ph in placeholders:
            assert f'-e "s#@@{ph}@@#' in render, ph
        assert "placeholders left in" in render
    # etcd's data directory is inside the mount (never the mount root with its lost+found)
    init = yaml.safe_load_all(files["kubeadm/init.yaml"])
    assert next(d for d in init if d["kind"] == "ClusterConfiguration")["etcd"]["local"]["dataDir"] == \
        "/var/lib/etcd/data"
    assert 'ETCD_DATA="$ETCD_MOUNT/data"' in cp and 'install -d -m 0700 "$ETCD_DATA"' in cp
    # the CA hash from the bucket is checked before use (an empty pin would make kubeadm refuse or trust anyone)
    assert "[[ \"$CA_HASH\" =~ ^sha256:[0-9a-f]{64}$ ]]" in cp


@pytest.mark.parametrize("example", ["dev", "ha"])
def test_golden(example: str) -> None:
    spec = load_spec(EXAMPLES / f"{example}.yaml")
    files = artifacts(spec, f"kubeaws-{spec.name}-0123456789")
    wanted = {k: v for k, v in files.items()
              if (k.startswith(("kubeadm/", "scripts/")) and not k.startswith("scripts/bootstrap-node-"))
              or k in ("user-data/control-plane.yaml", "user-data/node-general.yaml",
                       "scripts/bootstrap-node-general.sh")}
    for name, text in wanted.items():
        path = GOLDEN / example / name
        if os.environ.get("KUBEAWS_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"missing golden {path}: run with KUBEAWS_UPDATE_GOLDEN=1"
        assert path.read_text() == text, f"{path} differs: review and regenerate with KUBEAWS_UPDATE_GOLDEN=1"
