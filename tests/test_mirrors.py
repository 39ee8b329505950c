"""With `mirrors` set, every download goes through them, on every supported node OS and with every CNI and
addon: no rendered artifact (user data, scripts, kubeadm configs, manifests, the vendored upstream manifests
included, EKS user data) has a URL on another host than `mirrors.packages` (the instance metadata service
aside) or names a public registry (but in containerd's redirect of those registries to the mirror), every image
is under `mirrors.imageRepository`, and the AWS CLI install that goes to the Python package index (Ubuntu 24.04,
which has no awscli deb) uses `<packages>/pypi.org/simple/` (docs/kubeadm.md, "Mirrors": the paths the mirror
serves). In manifests, the values count (parsed), not the comments or the CRDs' `description` texts.
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
from kubeaws.addons.images import PUBLIC_REGISTRIES
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
PUBLIC = re.compile(r"(?<![\w.-])(?:" + "|".join(re.escape(r) for r in PUBLIC_REGISTRIES) + r")(?![\w.-])")
#: The one line that names public registries with a mirror set: containerd sends each of them to the mirror.
REDIRECT = re.compile(r"^\s*for registry in [a-z0-9. ]+; do$")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def strings(node: Any) -> list[str]:
    """Every string value of a parsed manifest, but the `description` texts of CRD schemas."""
    if isinstance(node, dict):
        return [s for k, v in node.items() if k != "description" for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def check_artifacts(files: dict[str, str]) -> None:
    mirror_host = PACKAGES.split("/")[2]
    for path, text in files.items():
        manifest = path.startswith("addons/") and path.endswith(".yaml")
        docs = list(yaml.load_all(text, Loader=_Loader)) if manifest else []
        values = strings(docs) if manifest else [line for line in text.splitlines() if not REDIRECT.match(line)]
        for value in values:
            hosts = set(URL.findall(value)) - {mirror_host, IMDS}
            assert not hosts, f"{path} downloads from {sorted(hosts)}"
            assert not PUBLIC.search(value), f"{path} names a public registry: {value[:200]}"
        if path.endswith((".yaml", ".yml")) and not path.startswith(("user-data/", "kubeadm/")):
            for image in images([d for d in docs if d and d.get("kind") != "CustomResourceDefinition"]
                                if manifest else list(yaml.safe_load_all(text))):
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


@pytest.mark.parametrize("example", ["dev", "ha"])
def test_examples_with_mirrors_download_nothing_from_the_internet(example: str) -> None:
    """The examples as they are, with mirrors added: calico (dev), cilium and rookCeph (ha), vendored
    manifests included, every file `kubeaws render` writes."""
    files = render_artifacts(mirrored(example))
    assert any(name.startswith("addons/rook-") for name in files) == (example == "ha")
    assert ("addons/tigera-operator.yaml" in files) == (example == "dev")
    check_artifacts(files)


def test_the_checks_find_a_public_download() -> None:
    """The checks above fail on what they look for."""
    with pytest.raises(AssertionError, match=r"pypi\.org"):
        check_artifacts({"scripts/x.sh": "pip install --index-url https://pypi.org/simple/ awscli"})
    with pytest.raises(AssertionError, match=r"names a public registry: registry\.k8s\.io"):
        check_artifacts({"addons/x.yaml": "spec: {containers: [{image: registry.k8s.io/pause:3.10}]}"})
    with pytest.raises(AssertionError, match=r"image other\.example/pause"):
        check_artifacts({"addons/x.yaml": "spec: {containers: [{image: other.example/pause:3.10}]}"})
    with pytest.raises(AssertionError, match=r"names a public registry: .*quay\.io"):
        check_artifacts({"addons/x.yaml": "kind: ConfigMap\ndata: {ROOK_CSI_CEPH_IMAGE: quay.io/cephcsi/cephcsi:v3}"})
    with pytest.raises(AssertionError, match=r"names a public registry"):
        check_artifacts({"scripts/x.sh": "ctr pull docker.io/library/busybox:1"})
    # comments and CRD descriptions are no downloads; containerd's redirect names the registries it redirects
    check_artifacts({"addons/x.yaml": "# https://docs.example.org\nkind: CustomResourceDefinition\n"
                                      "spec: {description: see https://example.org and docker.io}",
                     "scripts/x.sh": "    for registry in registry.k8s.io docker.io quay.io; do"})


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
    """docs/kubeadm.md names each path the package mirror serves (`<packages>/<host>/<path>`), and no upstream
    file download (the addons' manifests come from the package)."""
    text = DOCS.read_text()
    for path in ["core:/stable:/v", "pypi.org/simple/"]:
        assert path in text, f"docs/kubeadm.md does not say the mirror serves {path}"
    assert "raw.githubusercontent.com" not in text and "get.helm.sh" not in text


@pytest.mark.parametrize("cni", ["calico", "cilium", "flannel"])
def test_docs_list_every_image_the_registry_mirror_serves(cni: str) -> None:
    """Each image repository (path under the mirror, without tag) of the manifests is in docs/kubeadm.md."""
    text = DOCS.read_text()
    files = render_artifacts(kubeadm_spec(cni, "ubuntu-22.04"))
    found = set()
    for path, content in files.items():
        if path.startswith("addons/") and path.endswith(".yaml"):
            docs = [d for d in yaml.load_all(content, Loader=_Loader)
                    if d and d.get("kind") != "CustomResourceDefinition"]
            found |= {i.removeprefix(REGISTRY + "/").split("@")[0].rsplit(":", 1)[0] for i in images(docs)}
    missing = sorted(f for f in found if f"`{f}" not in text)
    assert found and not missing, f"docs/kubeadm.md does not list {missing}"
