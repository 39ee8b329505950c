"""The upstream manifests shipped in the package (kubeaws.addons.vendored): each recorded in vendor/SOURCES.json
with its repository, commit, path and sha256, the digest right, shipped as package data, read only through the
digest check; the per-cluster values and the mirror set on them (kubeaws.addons.upstream) with every other
document kept verbatim; and the one image rewrite (kubeaws.addons.images)."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kubeaws.addons import images, upstream, vendored, versions
from tests.helpers import make_spec

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "kubeaws"
VENDOR = PACKAGE / "addons" / "vendor"
REGISTRY = "registry.example.cn/k8s"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d]


def image_refs(node: Any) -> list[str]:
    """Every string under an `image` key, `*_IMAGE` env var or ConfigMap key, and tigera's registry."""
    if isinstance(node, dict):
        if node.get("kind") == "CustomResourceDefinition":
            return []
        found = [v for k, v in node.items() if isinstance(v, str) and (k == "image" or k.endswith("_IMAGE")
                                                                        or k == "registry")]
        if str(node.get("name", "")).endswith("_IMAGE") and isinstance(node.get("value"), str):
            found.append(node["value"])
        return found + [i for v in node.values() for i in image_refs(v)]
    if isinstance(node, list):
        return [i for v in node for i in image_refs(v)]
    return []


def test_every_vendored_file_is_recorded_with_its_digest_and_source() -> None:
    record = json.loads((VENDOR / "SOURCES.json").read_text())["files"]
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"SOURCES.json"}
    assert {f["path"] for f in record} == on_disk
    for entry in record:
        data = (VENDOR / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert entry["path"].startswith(f"{entry['addon']}/{entry['version']}/")
        if entry["repository"] != "kubeaws":  # upstream: a public repository at a full commit
            assert re.fullmatch(r"github\.com/[\w.-]+/[\w.-]+", entry["repository"]), entry
            assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), entry
            assert entry["upstreamPath"]
    assert {(f.addon, f.name) for f in vendored.sources()} == {
        ("calico", "tigera-operator.yaml"), ("rook", "crds.yaml"), ("rook", "common.yaml"), ("rook", "operator.yaml"),
        ("cilium", "cilium.yaml"), ("cilium", "values.yaml"),
        ("aws-load-balancer-controller", "crds.yaml"), ("aws-load-balancer-controller", "iam_policy.json"),
        ("aws-vpc-cni", "aws-k8s-cni.yaml")}


def test_vendored_files_are_package_data() -> None:
    """pyproject's package-data globs take every vendored file and SOURCES.json into the wheel."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["kubeaws"]
    shipped = {p.relative_to(PACKAGE).as_posix() for pattern in patterns for p in PACKAGE.glob(pattern)}
    wanted = {p.relative_to(PACKAGE).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert wanted and wanted <= shipped, sorted(wanted - shipped)
    assert all(fnmatch.fnmatch(w, "addons/vendor/*") for w in wanted)


def test_a_changed_file_is_refused() -> None:
    entry = vendored.find("rook", "operator.yaml")
    assert vendored.read("rook", "operator.yaml").startswith("#")
    with pytest.raises(vendored.VendoredFileError, match=r"rook/v1\.15\.4/operator\.yaml has sha256 .* records 0+"):
        vendored._read(entry.path, "0" * 64)
    with pytest.raises(vendored.VendoredFileError, match="missing from the package"):
        vendored._read("rook/v0/none.yaml", "0" * 64)
    with pytest.raises(vendored.VendoredFileError, match="0 entries"):
        vendored.find("rook", "crds.yaml", "v0.0.1")


def test_pinned_versions_are_the_vendored_ones() -> None:
    assert upstream.version("calico") == versions.CALICO_VERSION
    assert upstream.version("rook") == versions.ROOK_VERSION
    assert upstream.version("cilium") == versions.CILIUM_VERSION
    tigera = next(d for d in docs(vendored.read("calico", "tigera-operator.yaml")) if d["kind"] == "Deployment")
    assert tigera["spec"]["template"]["spec"]["containers"][0]["image"].startswith("quay.io/tigera/operator:")
    rook = next(d for d in docs(vendored.read("rook", "operator.yaml")) if d["kind"] == "Deployment")
    assert rook["spec"]["template"]["spec"]["containers"][0]["image"] == f"docker.io/rook/ceph:{versions.ROOK_VERSION}"


def test_cilium_is_rendered_with_the_recorded_values_and_holds_no_key() -> None:
    """values.yaml beside the rendered chart is what tools/vendor_addons.py renders with; the chart's own
    certificate generation (one CA for every cluster) is off: no key material, the certificates come from the
    in-cluster Job."""
    spec = importlib.util.spec_from_file_location("vendor_addons", ROOT / "tools" / "vendor_addons.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules["vendor_addons"] = tool  # its dataclasses look their module up
    try:
        spec.loader.exec_module(tool)
    finally:
        del sys.modules["vendor_addons"]
    assert yaml.safe_load(vendored.read("cilium", "values.yaml")) == tool.CILIUM_VALUES
    assert tool.CILIUM_VERSION == versions.CILIUM_VERSION
    text = vendored.read("cilium", "cilium.yaml")
    assert "BEGIN" not in text and "PRIVATE KEY" not in text
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs(text)}
    assert {("DaemonSet", "cilium"), ("Deployment", "cilium-operator"), ("ConfigMap", "cilium-config"),
            ("Job", "hubble-generate-certs")} <= kinds
    assert not [k for k in kinds if k[0] == "Secret"]


MANIFESTS = [f for f in vendored.sources() if f.name != "values.yaml" and f.name.endswith(".yaml")]


@pytest.mark.parametrize("entry", MANIFESTS, ids=lambda f: f.path)
def test_vendored_documents_validate_strictly(entry: vendored.VendoredFile) -> None:
    patch = versions.kubernetes_patch(max(versions.KUBERNETES_PATCH, key=lambda v: tuple(map(int, v.split(".")))))
    for doc in docs(vendored.read(entry.addon, entry.name)):
        kubernetes_validate.validate(doc, patch, strict=True)


@pytest.mark.parametrize("entry", vendored.sources(), ids=lambda f: f.path)
def test_split_and_join_keep_a_file_verbatim(entry: vendored.VendoredFile) -> None:
    text = vendored.read(entry.addon, entry.name)
    pieces = vendored.split_documents(text)
    assert vendored.join_documents(pieces) == text
    assert vendored.transform_documents(text, lambda doc: False) == text


def test_without_a_mirror_the_vendored_files_are_applied_as_shipped() -> None:
    spec = make_spec(network={"cni": "calico"}, addons={"rookCeph": {}})
    assert upstream.calico(spec) == {"tigera-operator.yaml": vendored.read("calico", "tigera-operator.yaml")}
    assert upstream.rook(spec) == {ours: vendored.read("rook", theirs) for ours, theirs in upstream.ROOK_FILES.items()}
    assert list(upstream.files("rook-ceph", spec)) == ["rook-crds.yaml", "rook-common.yaml", "rook-operator.yaml"]
    assert upstream.files("metrics-server", spec) == {}


@pytest.mark.parametrize("members", [1, 3])
def test_cilium_gets_the_clusters_pod_cidr_and_operator_replicas(members: int) -> None:
    spec = make_spec(network={"cni": "cilium", "podCIDR": "172.16.0.0/16"}, controlPlane={"count": members})
    text = upstream.files("cni-cilium", spec)["cni-cilium.yaml"]
    found = {(d["kind"], d["metadata"]["name"]): d for d in docs(text)}
    assert found[("ConfigMap", "cilium-config")]["data"]["cluster-pool-ipv4-cidr"] == "172.16.0.0/16"
    assert found[("Deployment", "cilium-operator")]["spec"]["replicas"] == (2 if members > 1 else 1)
    assert "10.0.0.0/8" not in text
    # the documents kubeaws does not change are the shipped ones, byte for byte
    shipped = vendored.split_documents(vendored.read("cilium", "cilium.yaml"))
    kept = set(vendored.split_documents(text))
    assert sum(piece in kept for piece in shipped) >= len(shipped) - 2 * 2  # two documents and their `---`


def test_with_a_mirror_every_image_of_every_vendored_file_is_mirrored() -> None:
    spec = make_spec(network={"cni": "cilium"}, addons={"rookCeph": {}}, mirrors={"imageRepository": REGISTRY})
    calico = make_spec(network={"cni": "calico"}, mirrors={"imageRepository": REGISTRY})
    files = {**upstream.files("cni-cilium", spec), **upstream.files("rook-ceph", spec),
             **upstream.files("cni-calico", calico)}
    refs = [ref for text in files.values() for ref in image_refs(docs(text))]
    assert len(refs) >= 12
    assert all(ref.startswith(REGISTRY + "/") for ref in refs), refs
    config = next(d for d in docs(files["rook-operator.yaml"]) if d["kind"] == "ConfigMap")
    assert {k: v for k, v in config["data"].items() if k.endswith("_IMAGE")} == {
        k: images.mirror_image(v, REGISTRY) for k, v in upstream.ROOK_CSI_IMAGES.items()}
    # digests are kept: the mirror serves the same images
    assert any(re.search(r"/cilium/cilium:v1\.16\.3@sha256:[0-9a-f]{64}$", r) for r in refs)
    # the CRDs (the bulk of the files) are untouched
    shipped = vendored.split_documents(vendored.read("rook", "crds.yaml"))
    assert vendored.split_documents(files["rook-crds.yaml"]) == shipped


def test_rook_csi_images_are_the_settings_the_operator_documents() -> None:
    """The keys are those operator.yaml lists (commented out, with the operator's defaults)."""
    listed = dict(re.findall(r'^\s*#\s*(ROOK_CSI\w*_IMAGE):\s*"([^"]+)"', vendored.read("rook", "operator.yaml"), re.M))
    assert set(listed) == set(upstream.ROOK_CSI_IMAGES)
    for key, image in listed.items():  # the same images (operator.yaml drops cephcsi's `v`)
        assert upstream.ROOK_CSI_IMAGES[key].replace(":v", ":") == image.replace(":v", ":")


@pytest.mark.parametrize(("image", "mirrored"), [
    ("registry.k8s.io/metrics-server/metrics-server:v0.7.2", f"{REGISTRY}/metrics-server/metrics-server:v0.7.2"),
    ("docker.io/rook/ceph:v1.15.4", f"{REGISTRY}/rook/ceph:v1.15.4"),
    ("rook/ceph:v1.15.4", f"{REGISTRY}/rook/ceph:v1.15.4"),  # Docker Hub without its host
    ("busybox:1.36", f"{REGISTRY}/busybox:1.36"),
    ("localhost:5000/a/b:1", f"{REGISTRY}/a/b:1"),
    ("quay.io/cilium/cilium:v1.16.3@sha256:" + "a" * 64, f"{REGISTRY}/cilium/cilium:v1.16.3@sha256:" + "a" * 64),
    (f"{REGISTRY}/pause:3.10", f"{REGISTRY}/pause:3.10"),  # already mirrored
])
def test_mirror_image(image: str, mirrored: str) -> None:
    assert images.mirror_image(image, REGISTRY) == mirrored
    assert images.mirror_image(image, REGISTRY + "/") == mirrored
    assert images.mirror_image(image, None) == image


def test_rewrite_document_finds_every_kind_of_image_reference() -> None:
    pod = {"containers": [{"name": "a", "image": "quay.io/x/a:1",
                           "env": [{"name": "SIDECAR_IMAGE", "value": "ghcr.io/x/b:2"},
                                   {"name": "OTHER", "value": "ghcr.io/x/c:3"}]}],
           "initContainers": [{"name": "i", "image": "docker.io/x/i:1"}]}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": pod}}}
    assert images.rewrite_document(deployment, REGISTRY)
    spec = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    assert spec["containers"][0]["image"] == f"{REGISTRY}/x/a:1"
    assert spec["containers"][0]["env"] == [{"name": "SIDECAR_IMAGE", "value": f"{REGISTRY}/x/b:2"},
                                            {"name": "OTHER", "value": "ghcr.io/x/c:3"}]
    assert spec["initContainers"][0]["image"] == f"{REGISTRY}/x/i:1"
    assert not images.rewrite_document(deployment, REGISTRY)  # idempotent
    installation = {"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "spec": {}}
    assert images.rewrite_document(installation, REGISTRY)
    assert installation["spec"] == {"registry": REGISTRY + "/"}  # the operator wants the trailing slash
    crd: dict[str, Any] = {"kind": "CustomResourceDefinition", "spec": {"x": {"image": "quay.io/a/b:1"}}}
    assert not images.rewrite_document(crd, REGISTRY) and crd["spec"]["x"]["image"] == "quay.io/a/b:1"
    cm = {"kind": "ConfigMap", "metadata": {"name": "op"}, "data": {"A_IMAGE": "quay.io/a/b:1", "B": "quay.io/c"}}
    assert images.rewrite_document(cm, REGISTRY, {"op": {"C_IMAGE": "registry.k8s.io/c:1"}})
    assert cm["data"] == {"A_IMAGE": f"{REGISTRY}/a/b:1", "B": "quay.io/c", "C_IMAGE": f"{REGISTRY}/c:1"}
    assert not images.rewrite_document({"kind": "Deployment", "image": "quay.io/a:1"}, None)
