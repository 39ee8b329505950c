"""Addon manifests: every document valid for the spec's Kubernetes version (kubernetes-validate --strict;
the vendored upstream documents kubeaws applies as shipped are validated in tests/test_vendored.py), CR kinds
(no schema there) limited to the expected ones, images rewritten to the mirror, pinned versions."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kubeaws.addons import CR_KINDS, render_manifests, vendored, versions
from kubeaws.spec.load import load_spec
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL = {"cloudProviderAWS": {}, "ebsCSI": {}, "metricsServer": {}, "clusterAutoscaler": {}, "rookCeph": {}}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: The documents of the vendored files as shipped (validated once, in tests/test_vendored.py).
SHIPPED = {piece for f in vendored.sources() if f.name.endswith(".yaml")
           for piece in vendored.split_documents(vendored.read(f.addon, f.name, f.version))}


def _specs() -> list[ClusterSpec]:
    return [load_spec(EXAMPLES / "dev.yaml"), load_spec(EXAMPLES / "ha.yaml"),
            make_spec(network={"cni": "flannel"}, addons=ALL, kubernetesVersion="1.30"),
            make_spec(network={"cni": "calico", "calico": {"encapsulation": "vxlan"}}, addons=ALL,
                      kubernetesVersion="1.33", mirrors={"imageRepository": "registry.example.cn/k8s"}),
            make_spec(network={"cni": "aws-vpc-cni"}, addons=ALL, kubernetesVersion="1.32")]


@pytest.mark.parametrize("spec", _specs(), ids=lambda s: f"{s.name}-{s.spec.kubernetes_version}-{s.spec.cni}")
def test_every_manifest_validates_strictly(spec: ClusterSpec) -> None:
    version = versions.kubernetes_patch(spec.spec.kubernetes_version)
    crs = set()
    for name, text in render_manifests(spec).items():
        for piece in vendored.split_documents(text):
            doc = yaml.load(piece, Loader=_Loader)
            if not doc or piece in SHIPPED:
                continue
            if doc["kind"] in CR_KINDS:
                crs.add(doc["kind"])
                continue
            kubernetes_validate.validate(doc, version, strict=True)
            assert doc["metadata"]["name"], name
    expected = set()
    if spec.spec.cni == "calico":
        expected |= {"Installation", "APIServer"}
    if spec.spec.addons.rook_ceph is not None:
        expected |= {"CephCluster", "CephBlockPool"}
    assert crs == expected


def test_selected_files() -> None:
    ha = load_spec(EXAMPLES / "ha.yaml")
    assert list(render_manifests(ha)) == ["cni-cilium.yaml", "cloud-provider-aws.yaml", "ebs-csi.yaml",
                                          "metrics-server.yaml", "cluster-autoscaler.yaml", "rook-crds.yaml",
                                          "rook-common.yaml", "rook-operator.yaml", "rook-ceph.yaml"]
    cilium = yaml.safe_load_all(render_manifests(ha)["cni-cilium.yaml"])
    config = next(d for d in cilium if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cilium-config")
    assert config["data"]["cluster-pool-ipv4-cidr"] == "192.168.0.0/16"
    dev = load_spec(EXAMPLES / "dev.yaml")
    assert list(render_manifests(dev)) == ["tigera-operator.yaml", "cni-calico.yaml", "cloud-provider-aws.yaml",
                                           "ebs-csi.yaml", "metrics-server.yaml"]


def test_cluster_autoscaler_discovers_the_clusters_asgs() -> None:
    text = render_manifests(load_spec(EXAMPLES / "ha.yaml"))["cluster-autoscaler.yaml"]
    assert ("--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
            "k8s.io/cluster-autoscaler/prod-ha") in text
    assert "cluster-autoscaler:v1.31." in text


def test_calico_encapsulation_and_pod_cidr() -> None:
    spec = make_spec(network={"cni": "calico", "podCIDR": "172.16.0.0/16", "calico": {"encapsulation": "vxlan"}})
    inst = next(yaml.safe_load_all(render_manifests(spec)["cni-calico.yaml"]))
    pool = inst["spec"]["calicoNetwork"]["ipPools"][0]
    assert pool["cidr"] == "172.16.0.0/16" and pool["encapsulation"] == "VXLAN"
    flannel = render_manifests(make_spec(network={"cni": "flannel", "podCIDR": "10.244.0.0/16"}))
    assert '"Network": "10.244.0.0/16"' in flannel["cni-flannel.yaml"]


def test_every_image_goes_through_the_mirror() -> None:
    spec = make_spec(network={"cni": "flannel"}, addons=ALL, mirrors={"imageRepository": "registry.example.cn/k8s"})
    images = []
    for text in render_manifests(spec).values():  # the CRDs' `image:` lines are schema fields, not images
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d and d["kind"] != "CustomResourceDefinition"]
        images += [line.split("image:", 1)[1].strip().strip("\"") for line in yaml.safe_dump_all(docs).splitlines()
                   if "image:" in line]
    assert images and all(i.startswith("registry.example.cn/k8s/") for i in images), images
    assert "registry.example.cn/k8s/rook/ceph:v1.15.4" in images
    assert "registry.example.cn/k8s/metrics-server/metrics-server:v0.7.2" in images


def test_rook_selects_the_storage_groups() -> None:
    docs = list(yaml.safe_load_all(render_manifests(load_spec(EXAMPLES / "ha.yaml"))["rook-ceph.yaml"]))
    cluster = docs[0]
    term = cluster["spec"]["placement"]["all"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0] == {
        "key": "kubeaws.io/node-group", "operator": "In", "values": ["storage"]}
    assert cluster["spec"]["storage"]["useAllDevices"] is True and cluster["spec"]["mon"]["count"] == 3
    sc = docs[2]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_calico_installation_registry_is_the_mirror_with_its_slash() -> None:
    """The tigera-operator requires `Installation.spec.registry` to end with `/` (its CRD says so); the one
    image rewrite (kubeaws.addons.images) sets it from `mirrors.imageRepository`."""
    spec = make_spec(network={"cni": "calico"}, mirrors={"imageRepository": "registry.example.cn/k8s"})
    installation = next(yaml.safe_load_all(render_manifests(spec)["cni-calico.yaml"]))
    assert installation["kind"] == "Installation"
    assert installation["spec"]["registry"] == "registry.example.cn/k8s/"
    plain = next(yaml.safe_load_all(render_manifests(make_spec(network={"cni": "calico"}))["cni-calico.yaml"]))
    assert "registry" not in plain["spec"]
