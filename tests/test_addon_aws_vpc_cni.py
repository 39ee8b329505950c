"""The Amazon VPC CNI on kubeadm (`network.cni: aws-vpc-cni`), all from
kubeaws/addons/descriptors/aws_vpc_cni.py: its manifest (the vendored upstream file, the aws-node DaemonSet with
the region's EKS registry and CLUSTER_NAME, every document valid), applied at boot first, in `kubeaws render`,
through the mirror; the instance roles' permissions (AmazonEKS_CNI_Policy's actions, scoped); the API ENI it
must leave alone; pod traffic between the node roles; and EKS unchanged (the vpc-cni managed add-on)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from kubeaws.access import render_artifacts
from kubeaws.addons import DESCRIPTORS, enabled, render_manifests, vendored, versions
from kubeaws.addons.descriptors import aws_vpc_cni as cni
from kubeaws.bootstrap import USER_DATA_LIMIT
from kubeaws.bootstrap.userdata import _apply_steps
from kubeaws.model import build
from kubeaws.model.flows import required_flows
from kubeaws.model.iam import control_plane_policy, node_policy
from kubeaws.resources._s3 import state_bucket_name
from kubeaws.resources.base import Computed
from kubeaws.resources.launch_template import encode_user_data
from tests.helpers import make_spec

ON = {"cni": "aws-vpc-cni"}
FILE = "cni-aws-vpc-cni.yaml"
ALL = ("cloud-provider-aws", "ebs-csi", "cluster-autoscaler", cni.NAME)
#: The actions of the AWS managed policy AmazonEKS_CNI_Policy (IPv4).
MANAGED = {"ec2:AssignPrivateIpAddresses", "ec2:AttachNetworkInterface", "ec2:CreateNetworkInterface",
           "ec2:DeleteNetworkInterface", "ec2:DescribeInstances", "ec2:DescribeTags",
           "ec2:DescribeNetworkInterfaces", "ec2:DescribeInstanceTypes", "ec2:DetachNetworkInterface",
           "ec2:ModifyNetworkInterfaceAttribute", "ec2:UnassignPrivateIpAddresses", "ec2:CreateTags"}
EKS = {"mode": "eks", "network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
       "access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]}}


def daemonset(spec: Any) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(render_manifests(spec)[FILE])
                if d and d["kind"] == "DaemonSet" and d["metadata"]["name"] == "aws-node")


def pod_images(spec: Any) -> list[str]:
    pod = daemonset(spec)["spec"]["template"]["spec"]
    return [c["image"] for c in [*pod["initContainers"], *pod["containers"]]]


def test_kubeadm_only_and_first() -> None:
    spec = make_spec(network=ON, addons={"cloudProviderAWS": {}, "metricsServer": {}})
    assert cni.ADDON in DESCRIPTORS and cni.ADDON.spec_path == "spec.network.cni"
    assert next(iter(render_manifests(spec))) == FILE
    assert FILE not in render_manifests(make_spec(network={"cni": "calico"}))
    eks = make_spec(**EKS)
    assert cni.ADDON not in enabled(eks) and FILE not in render_manifests(eks)


def test_manifest_is_the_vendored_release_with_the_clusters_values() -> None:
    entry = vendored.find("aws-vpc-cni", "aws-k8s-cni.yaml", cni.VERSION)
    assert (entry.repository, entry.upstream_path) == ("github.com/aws/amazon-vpc-cni-k8s",
                                                        "config/master/aws-k8s-cni.yaml")
    assert entry.commit == "0c65d58cf2b490014e7aa19aac172a032f4e520a"
    shipped = vendored.split_documents(vendored.read("aws-vpc-cni", "aws-k8s-cni.yaml", cni.VERSION))
    rendered = vendored.split_documents(render_manifests(make_spec(name="blue", network=ON))[FILE])
    changed = [piece for piece in rendered if piece not in shipped]
    assert len(rendered) == len(shipped) and len(changed) == 1  # the DaemonSet alone; the rest verbatim
    ds = yaml.safe_load(changed[0])
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True  # the instance metadata at hop limit 1
    [node] = [c for c in pod["containers"] if c["name"] == "aws-node"]
    assert {"name": "CLUSTER_NAME", "value": "blue"} in node["env"]
    assert [e["name"] for e in node["env"]].count("CLUSTER_NAME") == 1


def test_every_document_validates_strictly() -> None:
    spec = make_spec(network=ON, kubernetesVersion="1.33")
    docs = [d for d in yaml.safe_load_all(render_manifests(spec)[FILE]) if d]
    assert {d["kind"] for d in docs} == {"CustomResourceDefinition", "ServiceAccount", "ConfigMap", "ClusterRole",
                                         "ClusterRoleBinding", "DaemonSet"}
    for doc in docs:
        kubernetes_validate.validate(doc, versions.kubernetes_patch("1.33"), strict=True)


def test_images_from_the_regions_registry() -> None:
    assert all(i.startswith("602401143452.dkr.ecr.us-east-1.amazonaws.com/") for i in pod_images(make_spec(network=ON)))
    china = make_spec(region="cn-north-1", network={**ON, "availabilityZones": ["cn-north-1a", "cn-north-1b"]})
    assert pod_images(china) == [f"918309763551.dkr.ecr.cn-north-1.amazonaws.com.cn/{name}" for name in (
        "amazon-k8s-cni-init:v1.23.0", "amazon-k8s-cni:v1.23.0", "amazon/aws-network-policy-agent:v1.4.1")]
    assert cni.registry("cn-northwest-1") == "961992271922.dkr.ecr.cn-northwest-1.amazonaws.com.cn"
    assert cni.registry("us-gov-west-1") == "013241004608.dkr.ecr.us-gov-west-1.amazonaws.com"
    assert cni.registry("eu-south-1") == "590381155156.dkr.ecr.eu-south-1.amazonaws.com"
    assert cni.registry("eu-west-1") == "602401143452.dkr.ecr.eu-west-1.amazonaws.com"


def test_mirror_rewrites_the_images() -> None:
    spec = make_spec(network=ON, mirrors={"imageRepository": "registry.example.cn/k8s"})
    assert pod_images(spec) == ["registry.example.cn/k8s/amazon-k8s-cni-init:v1.23.0",
                                "registry.example.cn/k8s/amazon-k8s-cni:v1.23.0",
                                "registry.example.cn/k8s/amazon/aws-network-policy-agent:v1.4.1"]
    assert "dkr.ecr" not in render_manifests(spec)[FILE]


def test_applied_at_first_boot_and_rendered() -> None:
    spec = make_spec(network=ON, addons={"metricsServer": {}})
    steps = [s for s in _apply_steps(spec) if "kubectl_apply" in s]
    assert steps[0] == f'kubectl_apply "$CONF_DIR/addons/{FILE}"'
    artifacts = render_artifacts(spec)
    assert any(path.endswith(f"addons/{FILE}") for path in artifacts), sorted(artifacts)


def test_every_instance_pulls_the_images_with_its_ecr_token(tmp_path: Path) -> None:
    """kubelet has no ECR credential provider: the boot scripts of both roles pull the CNI's images from the
    region's EKS registry with the instance role's token (the ECR read-only managed policy), before kubeadm."""
    spec = make_spec(network=ON)
    artifacts = render_artifacts(spec)
    scripts = {k: v for k, v in artifacts.items() if k.startswith("scripts/bootstrap-")}
    assert set(scripts) == {"scripts/bootstrap-control-plane.sh", "scripts/bootstrap-node-general.sh"}
    for name, text in scripts.items():
        pulls = [line.split()[-1] for line in text.splitlines() if line.strip().startswith("retry 'image ")]
        assert pulls == pod_images(spec), name
        assert 'aws ecr get-login-password --region "$REGION"' in text
        body = text[text.index("configure_containerd() {"):]
        assert "ecr_pull 602401143452" in body[:body.index("\n}\n")]  # the step before kubeadm runs
        assert text.index("step configure-containerd") < text.index("step kubeadm-join" if "node" in name
                                                                   else "step control-plane")
        path = tmp_path / name.split("/")[1]
        path.write_text(text)
        result = subprocess.run([str(Path(sys.executable).parent / "shellcheck"), "--shell=bash", "--severity=style",
                                 str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
    for name, text in artifacts.items():
        if name.startswith("user-data/"):
            assert len(base64.b64decode(encode_user_data(text))) <= USER_DATA_LIMIT, name  # as RunInstances gets it
    for other in (make_spec(network={**ON}, mirrors={"imageRepository": "registry.example.cn/k8s"}), make_spec()):
        assert not any("ecr_pull" in v for k, v in render_artifacts(other).items() if k.startswith("scripts/"))
    graph = build(spec)
    for role in ("node", "control-plane"):
        assert "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly" in graph[f"IamRole/{role}"].props[
            "managed_policy_arns"]


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


def test_node_role_gets_the_cni_actions_scoped() -> None:
    policy = node_policy("dev", "bucket", ("aws-load-balancer-controller", cni.NAME), "aws-cn")
    assert _actions(policy) >= MANAGED
    statements = cni.statements("dev", "aws-cn")
    for st in statements:
        writes = [a for a in st["Action"] if not a.startswith("ec2:Describe")]
        assert not writes or st["Resource"] != "*", st["Sid"]
        for resource in st["Resource"] if st["Resource"] != "*" else []:
            assert resource.startswith("arn:aws-cn:ec2:*:*:"), resource
    by_sid = {st["Sid"]: st for st in statements}
    assert by_sid["VpcCniTagEnis"]["Resource"] == ["arn:aws-cn:ec2:*:*:network-interface/*"]
    assert set(by_sid["VpcCniTagEnis"]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]) == {
        "node.k8s.amazonaws.com/instance_id", "node.k8s.amazonaws.com/createdAt", cni.CLUSTER_TAG, "eks:eni:owner"}
    assert by_sid["VpcCniCreateEnis"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/cluster.k8s.amazonaws.com/name": "dev"}}
    assert by_sid["VpcCniClusterEnis"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/cluster.k8s.amazonaws.com/name": "dev"}}
    assert {"ec2:DeleteNetworkInterface", "ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface",
            "ec2:ModifyNetworkInterfaceAttribute", "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses"} <= set(by_sid["VpcCniClusterEnis"]["Action"])
    graph = build(make_spec(network=ON))
    inline = graph["IamRole/node"].props["inline_policies"]["kubeaws-node"]
    assert isinstance(inline, Computed) and cni.NAME in inline.args["addons"]
    calico = build(make_spec())["IamRole/node"].props["inline_policies"]["kubeaws-node"]
    assert cni.NAME not in calico.args["addons"]


def test_control_plane_role_gets_the_managed_policy_within_the_inline_limit() -> None:
    """The control plane runs aws-node too; its inline policy has no room for the statements (longest cluster
    name and bucket, the longest partition: still under IAM's 10,240 characters), so the managed policy."""
    name = "a" * 28  # the longest cluster name (spec.validate)
    policy = control_plane_policy(name, state_bucket_name(name, "123456789012", "us-gov-west-1"), ALL, "aws-us-gov")
    assert len(json.dumps(policy, separators=(",", ":"))) < 10240
    assert not any(st.get("Sid", "").startswith("VpcCni") for st in policy["Statement"])
    spec = make_spec(region="us-gov-west-1", network={**ON, "availabilityZones": ["us-gov-west-1a", "us-gov-west-1b"]})
    graph = build(spec)
    assert graph["IamRole/control-plane"].props["managed_policy_arns"] == [
        "arn:aws-us-gov:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        "arn:aws-us-gov:iam::aws:policy/AmazonEKS_CNI_Policy"]
    assert graph["IamRole/node"].props["managed_policy_arns"] == [
        "arn:aws-us-gov:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"]
    assert len(build(make_spec())["IamRole/control-plane"].props["managed_policy_arns"]) == 1


def test_the_api_eni_is_left_to_kubeaws() -> None:
    single = {"controlPlane": {"count": 1}, "access": {"apiEndpoint": "private", "adminCIDRs": ["203.0.113.0/24"]}}
    tags = build(make_spec(network=ON, **single))["NetworkInterface/api"].tags
    assert tags[cni.NO_MANAGE_TAG] == "true"
    assert cni.NO_MANAGE_TAG not in build(make_spec(**single))["NetworkInterface/api"].tags


def test_pod_traffic_between_every_node_role() -> None:
    flows = required_flows(make_spec(network=ON), "10.0.0.0/16")
    pods = {(f.source, f.target) for f in flows if f.protocol == "-1" and "VPC CNI" in f.purpose}
    roles = {f.target for f in flows if f.source == "control-plane"} - {"lb", "bastion", "cidr"}
    assert pods == {(a, b) for a in roles for b in roles} and ("nodes", "control-plane") in pods


def test_eks_keeps_the_managed_add_on() -> None:
    graph = build(make_spec(**EKS))
    assert "vpc-cni" in {d.props["addon_name"] for d in graph.of_kind("EksAddon")}
    assert not any(d.name.startswith(("daemonset/kube-system/aws-node", "customresourcedefinition/eniconfigs"))
                   for d in graph.of_kind("KubernetesObject"))
