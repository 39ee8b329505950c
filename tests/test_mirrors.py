"""With `mirrors` set, every download goes through them, on every supported node OS and with every CNI and
addon: no rendered artifact (user data, scripts, kubeadm configs, manifests, Helm values, EKS user data) has a
URL on another host than `mirrors.packages` (the instance metadata service aside), every image is under
`mirrors.imageRepository`, and the AWS CLI install that goes to the Python package index (Ubuntu 24.04, which has
no awscli deb) uses `<packages>/pypi.org/simple/` (docs/kubeadm.md, "Mirrors": the paths the mirror serves).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeaws.access import render_artifacts
from kubeaws.addons import versions
from kubeaws.bootstrap.userdata import AWSCLI_PIP
from kubeaws.spec.models import ClusterSpec
from tests.conftest import EXAMPLES

PACKAGES = "https://mirror.example.cn/k8s"
REGISTRY = "registry.example.cn/k8s"
IMDS = "169.254.169.254"
#: The host of a URL written out in full (not `https://%s` and `https://$host`, built from the mirror, nor the
#: `@@EKS_ENDPOINT@@` placeholder).
URL = re.compile(r"https?://([A-Za-z0-9][A-Za-z0-9.-]*)")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "kubeadm.md"


def mirrored(example: str, mirrors: bool = True, **body: Any) -> ClusterSpec:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    if mirrors:
        doc["spec"]["mirrors"] = {"packages": PACKAGES, "imageRepository": REGISTRY}
    doc["spec"].update(body)
    return ClusterSpec.model_validate(doc)


def kubeadm_spec(cni: str, os_name: str, mirrors: bool = True) -> ClusterSpec:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / "dev.yaml").read_text())
    body = doc["spec"]
    body["network"]["cni"] = cni
    body["controlPlane"]["os"] = os_name
    for group in body["nodeGroups"]:
        group["os"] = os_name
    body["addons"] = {"metricsServer": {}, "cloudProviderAWS": {}, "ebsCSI": {}, "clusterAutoscaler": {},
                      "rookCeph": {}}
    return mirrored("dev", mirrors, **body)


def images(node: Any) -> list[str]:
    """Every `image` value in a parsed manifest or values file."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "image" and isinstance(v, str)]
        if isinstance(node.get("image"), dict):  # Helm values: {repository, tag}
            found.append(str(node["image"].get("repository", "")))
        return found + [i for v in node.values() for i in images(v)]
    if isinstance(node, list):
        return [i for v in node for i in images(v)]
    return []


def check_artifacts(files: dict[str, str]) -> None:
    mirror_host = PACKAGES.split("/")[2]
    for path, text in files.items():
        hosts = set(URL.findall(text)) - {mirror_host, IMDS}
        assert not hosts, f"{path} downloads from {sorted(hosts)}"
        if path.endswith((".yaml", ".yml")) and not path.startswith(("user-data/", "kubeadm/")):
            for image in images(list(yaml.safe_load_all(text))):
                assert image.startswith(REGISTRY + "/"), f"{path}: image {image}"


@pytest.mark.parametrize("os_name", ["ubuntu-22.04", "ubuntu-24.04"])
@pytest.mark.parametrize("cni", ["calico", "cilium", "flannel"])
def test_kubeadm_artifacts_download_only_from_the_mirrors(cni: str, os_name: str) -> None:
    files = render_artifacts(kubeadm_spec(cni, os_name))
    check_artifacts(files)
    script = files["scripts/bootstrap-node-general.sh"]
    assert f"AWSCLI_INDEX={PACKAGES}/pypi.org/simple/\n" in script
    assert '--index-url "$AWSCLI_INDEX"' in script
    assert f"imageRepository: {REGISTRY}" in files["kubeadm/init.yaml"]


def test_eks_artifacts_download_only_from_the_mirrors() -> None:
    check_artifacts(render_artifacts(mirrored("eks")))


def test_the_checks_find_a_public_download() -> None:
    """The checks above fail on what they look for."""
    with pytest.raises(AssertionError, match=r"pypi\.org"):
        check_artifacts({"scripts/x.sh": "pip install --index-url https://pypi.org/simple/ awscli"})
    with pytest.raises(AssertionError, match=r"image registry\.k8s\.io"):
        check_artifacts({"addons/x.yaml": "spec: {containers: [{image: registry.k8s.io/pause:3.10}]}"})


def test_without_mirrors_the_cli_comes_from_the_public_index() -> None:
    files = render_artifacts(kubeadm_spec("calico", "ubuntu-24.04", mirrors=False))
    script = files["scripts/bootstrap-node-general.sh"]
    assert "AWSCLI_INDEX" not in script and "--index-url" not in script


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("mirror", [True, False])
def test_ubuntu_2404_awscli_install_runs_pip_against_the_mirror(tmp_path: Path, mirror: bool) -> None:
    """install_awscli as rendered, run under bash with stand-ins for an OS without an awscli deb (24.04): the
    venv's pip is called with the mirror's index, or with none (the public index) when no mirror is set."""
    script = render_artifacts(kubeadm_spec("calico", "ubuntu-24.04", mirror))["scripts/bootstrap-node-general.sh"]
    settings = [line for line in script.splitlines() if line.startswith(("AWSCLI_PIP=", "AWSCLI_INDEX="))]
    function = re.search(r"^install_awscli\(\) \{\n.*?^\}\n", script, re.M | re.S)
    assert function is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    stand_ins = {
        "apt-cache": "exit 100",  # no awscli package: Ubuntu 24.04
        "apt-get": f'echo "apt-get $*" >>{log}',
        # `python3 -m venv DIR`: a venv whose pip records its arguments
        "python3": f'mkdir -p "$3/bin"; printf \'#!/bin/sh\\necho "pip $*" >>{log}\\n\' >"$3/bin/pip"; '
                   'chmod +x "$3/bin/pip"',
        "ln": "exit 0",
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    program = "\n".join(["set -euo pipefail", f"ROOT={tmp_path}/root", "APT_GET=(apt-get -y)", *settings,
                         function.group(0), "install_awscli"])
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=30,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    index = [f"--index-url {PACKAGES}/pypi.org/simple/"] if mirror else []
    assert calls[-1] == " ".join(["pip install -q", *index, AWSCLI_PIP])
    assert os.path.exists(tmp_path / "root/opt/kubeaws/awscli/bin/pip")


def test_docs_list_every_path_the_package_mirror_serves() -> None:
    """docs/kubeadm.md names each upstream host the boot scripts fetch from (`<packages>/<host>/<path>`)."""
    text = DOCS.read_text()
    hosts = {r.url.split("/")[2] for remotes in versions.REMOTE.values() for r in remotes}
    for path in ["core:/stable:/v", "pypi.org/simple/", *sorted(hosts)]:
        assert path in text, f"docs/kubeadm.md does not say the mirror serves {path}"
