"""EKS bootstrap renderers (bootstrap/eks.py): the nodeadm NodeConfig (exact field names of
node.eks.aws/v1alpha1), the MIME structure (parsed with the `email` package), the 16 KB limit, no secret in
user data, the aws-auth ConfigMap (kubernetes-validate --strict, every role mapped, paths stripped), the
artifacts per authentication mode, and golden files (regenerate with KUBEAWS_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kubeaws.addons import versions
from kubeaws.bootstrap.eks import (
    BOUNDARY,
    PLACEHOLDER_CA,
    PLACEHOLDER_ENDPOINT,
    USER_DATA_LIMIT,
    aws_auth_role_arn,
    cluster_dns,
    eks_artifacts,
    render_aws_auth,
    render_nodeadm_user_data,
)
from kubeaws.bootstrap.kubeadm import TLS_CIPHER_SUITES
from kubeaws.model.maxpods import effective_max_pods
from kubeaws.spec.load import load_spec
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "bootstrap" / "eks"
ENDPOINT = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIC...example...\n-----END CERTIFICATE-----\n").decode()
NODE_ROLE = "arn:aws:iam::123456789012:role/kubeaws/eks-demo/eks-demo-node"


def _example() -> ClusterSpec:
    return load_spec(ROOT / "examples" / "eks.yaml")


def _render(spec: ClusterSpec, group: str, max_pods: int = 29) -> str:
    return render_nodeadm_user_data(spec, group, ENDPOINT, CA, spec.spec.network.service_cidr, max_pods)


def _parts(text: str) -> list[email.message.Message]:
    msg = email.message_from_string(text, policy=email.policy.compat32)
    assert msg.is_multipart() and msg.get_content_type() == "multipart/mixed"
    assert msg["MIME-Version"] == "1.0" and msg.get_boundary() == BOUNDARY
    assert not msg.defects, msg.defects
    return list(msg.get_payload())  # type: ignore[arg-type]


def _node_config(text: str) -> dict[str, Any]:
    (part,) = _parts(text)
    assert part.get_content_type() == "application/node.eks.aws"
    payload = part.get_payload()
    assert isinstance(payload, str)
    docs = list(yaml.safe_load_all(payload))
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def test_node_config_fields() -> None:
    doc = _node_config(_render(_example(), "self-managed", 29))
    assert doc["apiVersion"] == "node.eks.aws/v1alpha1" and doc["kind"] == "NodeConfig"
    assert set(doc) == {"apiVersion", "kind", "spec"} and set(doc["spec"]) == {"cluster", "kubelet"}
    assert doc["spec"]["cluster"] == {"name": "eks-demo", "apiServerEndpoint": ENDPOINT,
                                      "certificateAuthority": CA, "cidr": "172.20.0.0/16"}
    kubelet = doc["spec"]["kubelet"]
    assert set(kubelet) == {"config", "flags"}
    # the strong TLS 1.2 suites of the kubeadm mode replace nodeadm's (which include two TLS_RSA ones)
    assert kubelet["config"] == {"maxPods": 29, "clusterDNS": ["172.20.0.10"],
                                 "tlsCipherSuites": list(TLS_CIPHER_SUITES)}
    assert not [s for s in kubelet["config"]["tlsCipherSuites"] if not s.startswith("TLS_ECDHE_")]
    labels_flag, taints_flag = kubelet["flags"]
    assert labels_flag.startswith("--node-labels=")
    labels = dict(kv.split("=") for kv in labels_flag.removeprefix("--node-labels=").split(","))
    assert labels == {"workload": "batch", "kubeaws.io/node-group": "self-managed", "kubeaws.io/capacity": "spot",
                      "kubeaws.io/team": "data", "kubeaws.io/instance-spec": "2cpu-8gib"}
    assert taints_flag == "--register-with-taints=workload=batch:NoSchedule"


def test_node_config_without_taints_and_empty_taint_value() -> None:
    spec = make_spec(mode="eks", nodeGroups=[{"name": "plain", "instanceTypes": ["t3.medium"]},
                                             {"name": "gpu", "instanceTypes": ["g4dn.xlarge"],
                                              "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"},
                                                         {"key": "team", "value": "ml", "effect": "NoExecute"}]}])
    plain = _node_config(_render(spec, "plain", 17))["spec"]["kubelet"]
    assert plain["flags"] == ["--node-labels=kubeaws.io/capacity=on-demand,kubeaws.io/instance-spec=2cpu-4gib,"
                              "kubeaws.io/node-group=plain"]
    assert plain["config"]["clusterDNS"] == ["10.96.0.10"]  # default service CIDR 10.96.0.0/12
    gpu = _node_config(_render(spec, "gpu", 29))["spec"]["kubelet"]["flags"]
    assert gpu[1] == "--register-with-taints=nvidia.com/gpu:NoSchedule,team=ml:NoExecute"


def test_cluster_dns() -> None:
    assert cluster_dns("172.20.0.0/16") == "172.20.0.10"
    assert cluster_dns("10.100.0.0/16") == "10.100.0.10"


def test_user_data_is_small_and_holds_no_secret() -> None:
    spec = _example()
    text = _render(spec, "self-managed")
    assert len(text.encode()) < USER_DATA_LIMIT
    decoded_ca = base64.b64decode(CA).decode()
    for needle in ("PRIVATE KEY", "aws_secret_access_key", "token", decoded_ca):
        assert needle not in text
    with pytest.raises(ValueError, match="no node group named 'nope'"):
        _render(spec, "nope")


def test_user_data_over_16k_is_refused() -> None:
    prefix = ".".join(["p" * 60] * 3)  # long DNS-subdomain prefixes: 100 labels (the spec's limit) overflow 16 KB
    labels = {f"{prefix}/label-{i:03d}": "v" * 60 for i in range(100)}
    spec = make_spec(mode="eks", nodeGroups=[{"name": "huge", "labels": labels}])
    with pytest.raises(ValueError, match="EC2 limit 16384"):
        _render(spec, "huge")


def test_render_is_deterministic() -> None:
    spec = _example()
    assert _render(spec, "self-managed") == _render(spec, "self-managed")


def _validate(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    kubernetes_validate.validate(doc, versions.kubernetes_patch("1.31"), strict=True)
    return doc


def test_aws_auth_maps_every_role() -> None:
    roles = [NODE_ROLE, "arn:aws:iam::123456789012:role/other-nodes", NODE_ROLE]
    extra = [{"rolearn": "arn:aws:iam::123456789012:role/team/admins", "username": "admin",
              "groups": ["system:masters"]}]
    doc = _validate(render_aws_auth(roles, extra))
    assert doc["metadata"]["name"] == "aws-auth" and doc["metadata"]["namespace"] == "kube-system"
    assert set(doc["data"]) == {"mapRoles"}
    mapped = yaml.safe_load(doc["data"]["mapRoles"])
    assert mapped == [
        {"rolearn": "arn:aws:iam::123456789012:role/eks-demo-node", "username": "system:node:{{EC2PrivateDNSName}}",
         "groups": ["system:bootstrappers", "system:nodes"]},
        {"rolearn": "arn:aws:iam::123456789012:role/other-nodes", "username": "system:node:{{EC2PrivateDNSName}}",
         "groups": ["system:bootstrappers", "system:nodes"]},
        {"rolearn": "arn:aws:iam::123456789012:role/admins", "username": "admin", "groups": ["system:masters"]},
    ]


def test_aws_auth_role_arn_drops_the_path() -> None:
    assert aws_auth_role_arn("arn:aws:iam::123456789012:role/a/b/c") == "arn:aws:iam::123456789012:role/c"
    assert aws_auth_role_arn("arn:aws-cn:iam::123456789012:role/r") == "arn:aws-cn:iam::123456789012:role/r"
    assert aws_auth_role_arn("arn:aws:iam::123456789012:user/u") == "arn:aws:iam::123456789012:user/u"


@pytest.mark.parametrize(("mode", "aws_auth", "entries"), [
    ("API", False, True), ("API_AND_CONFIG_MAP", True, True), ("CONFIG_MAP", True, False)])
def test_artifacts_per_authentication_mode(mode: str, aws_auth: bool, entries: bool) -> None:
    spec = _example().model_copy(deep=True)
    spec.spec.eks.authentication_mode = mode  # type: ignore[assignment]
    files = eks_artifacts(spec, lambda g: effective_max_pods(spec, g), "210987654321")
    assert ("eks/aws-auth.yaml" in files) == aws_auth
    assert ("eks/access-entries.json" in files) == entries
    assert sorted(k for k in files if k.startswith("eks/user-data/")) == ["eks/user-data/node-self-managed.mime"]
    role = "arn:aws:iam::210987654321:role/kubeaws/eks-demo/eks-demo-node"
    if aws_auth:
        mapped = yaml.safe_load(_validate(files["eks/aws-auth.yaml"])["data"]["mapRoles"])
        assert [m["rolearn"] for m in mapped] == ["arn:aws:iam::210987654321:role/eks-demo-node"]
    if entries:
        plan = json.loads(files["eks/access-entries.json"])
        assert plan["accessEntries"] == [{"principalArn": role, "type": "EC2_LINUX"}]
    doc = _node_config(files["eks/user-data/node-self-managed.mime"])
    assert doc["spec"]["cluster"]["apiServerEndpoint"] == PLACEHOLDER_ENDPOINT
    assert doc["spec"]["cluster"]["certificateAuthority"] == PLACEHOLDER_CA
    assert doc["spec"]["kubelet"]["config"]["maxPods"] == 29  # min(m5.large, m5a.large)


def test_artifacts_use_spec_max_pods_and_brought_role() -> None:
    spec = make_spec(mode="eks", iam={"nodeRole": "my-nodes"}, eks={"authenticationMode": "CONFIG_MAP"},
                     nodeGroups=[{"name": "g", "instanceTypes": ["m5.xlarge"], "maxPods": 40}])
    files = eks_artifacts(spec, lambda g: effective_max_pods(spec, g))
    assert _node_config(files["eks/user-data/node-g.mime"])["spec"]["kubelet"]["config"]["maxPods"] == 40
    mapped = yaml.safe_load(yaml.safe_load(files["eks/aws-auth.yaml"])["data"]["mapRoles"])
    assert mapped[0]["rolearn"] == "arn:aws:iam::123456789012:role/my-nodes"


def test_golden() -> None:
    spec = _example()
    files = {"user-data/node-self-managed.mime": _render(spec, "self-managed"),
             "aws-auth.yaml": render_aws_auth([NODE_ROLE])}
    for name, text in files.items():
        path = GOLDEN / name
        if os.environ.get("KUBEAWS_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"missing golden {path}: run with KUBEAWS_UPDATE_GOLDEN=1"
        assert path.read_text() == text, f"{path} differs: review and regenerate with KUBEAWS_UPDATE_GOLDEN=1"
