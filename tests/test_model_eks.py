"""EKS model (pure) and an EKS plan against the moto server (plan only: moto lacks access entries and add-ons,
so an EKS apply there is covered kind by kind in tests/test_resources_eks.py with botocore's Stubber)."""

from __future__ import annotations

from typing import Any

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.model import build
from kubeaws.resources.base import Computed, Lookup, Ref
from tests.helpers import make_spec

EKS = {"mode": "eks", "kubernetesVersion": "1.31",
       "network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
       "access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
       "nodeGroups": [{"name": "general", "instanceTypes": ["m5.large"], "labels": {"team": "dsp"},
                       "taints": [{"key": "dedicated", "value": "dsp", "effect": "NoSchedule"}]},
                      {"name": "managed", "type": "managed", "instanceTypes": ["t3.large"], "capacity": "spot"}]}


def rules(graph: Any, role: str) -> list[dict[str, Any]]:
    return list(graph[f"SecurityGroupRules/{role}"].props["ingress"])


def test_eks_graph() -> None:
    g = build(make_spec(**EKS))
    cluster = g["EksCluster/main"].props
    assert cluster["version"] == "1.31" and cluster["endpoint_public"] is True
    assert cluster["public_access_cidrs"] == ["203.0.113.0/24"]
    assert len(cluster["subnet_ids"]) == 4  # private and public subnets of both AZs
    assert cluster["security_group_ids"] == [Ref("SecurityGroup", "control-plane")]
    assert cluster["encryption_key_arn"] == Ref("KmsKey", "secrets", "arn")
    assert "SecurityGroup/lb" not in g and not g.of_kind("ClusterPki") and not g.of_kind("Volume")
    assert {d.name for d in g.of_kind("EksAddon")} == {"vpc-cni", "kube-proxy", "coredns"}
    entry = g["AccessEntry/node"].props
    assert entry["type"] == "EC2_LINUX" and entry["principal_arn"] == Ref("IamRole", "node", "arn")
    # Nodes never boot before their role is mapped.
    assert "AccessEntry/node" in g["AutoScalingGroup/ng-general"].refs()
    assert "AccessEntry/node" in g["EksNodegroup/managed"].refs()
    lt = g["LaunchTemplate/ng-general"].props
    assert isinstance(lt["image_id"], Lookup) and "/eks/optimized-ami/1.31/amazon-linux-2023/" in lt["image_id"].name
    assert isinstance(lt["user_data"], Computed)
    managed = g["EksNodegroup/managed"].props
    assert managed["capacity_type"] == "SPOT" and managed["labels"]["kubeaws.io/node-group"] == "managed"
    assert g["LaunchTemplate/mng-managed"].props["image_id"] is None  # EKS chooses the AMI


def test_eks_security_groups() -> None:
    g = build(make_spec(**EKS))
    cp, nodes = rules(g, "control-plane"), rules(g, "nodes")
    from_nodes = Ref("SecurityGroup", "nodes")
    from_cp = Ref("SecurityGroup", "control-plane")
    assert any(r["from_port"] == 443 and r["source_group"] == from_nodes for r in cp)
    assert any(r["from_port"] == 10250 and r["source_group"] == from_cp for r in nodes)
    assert any(r["protocol"] == "-1" and r["source_group"] == from_nodes for r in nodes)  # VPC CNI pods
    assert not any(r["from_port"] == 2379 for r in cp + nodes)  # no etcd on EKS
    assert all(r["cidr"] != "0.0.0.0/0" for r in cp + nodes)


def test_eks_plan_on_the_emulator(ctx: AwsContext) -> None:
    plan = api.plan(make_spec(**EKS), ctx)
    summary = plan.summary()
    assert summary["create"] == len(plan.changes) and summary["delete"] == 0
    kinds = {c.kind for c in plan.changes}
    assert {"EksCluster", "AccessEntry", "EksAddon", "EksNodegroup", "OidcProvider", "KmsKey"} <= kinds
    assert any("stands in" in w for w in plan.warnings)  # moto has no EKS-optimized AMI parameter


def test_irsa_roles_and_addons() -> None:
    g = build(make_spec(**{**EKS, "addons": {"clusterAutoscaler": {}, "ebsCSI": {}, "metricsServer": {}}}))
    ebs = g["EksAddon/aws-ebs-csi-driver"].props
    assert ebs["service_account_role_arn"] == Ref("IamRole", "ebs-csi", "arn")
    assert "EksAddon/metrics-server" in g
    ca = g["IamRole/cluster-autoscaler"].props
    policy = ca["inline_policies"]["kubeaws-cluster-autoscaler"]
    scale = next(s for s in policy["Statement"] if s["Sid"] == "ScaleOwnGroups")
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/dev": "owned"}}
    trust = ca["assume_role_policy"]
    assert isinstance(trust, Computed)
    doc = trust.fn(**{**trust.args, "provider_arn": "arn:aws:iam::1:oidc-provider/oidc.eks.x/id/ABC",
                      "issuer": "https://oidc.eks.x/id/ABC"})
    cond = doc["Statement"][0]["Condition"]["StringEquals"]
    assert cond == {"oidc.eks.x/id/ABC:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
                    "oidc.eks.x/id/ABC:aud": "sts.amazonaws.com"}


def test_max_pods_above_the_eni_limit_is_a_spec_error() -> None:
    import pytest

    from kubeaws.errors import SpecError

    spec = make_spec(**{**EKS, "nodeGroups": [{"name": "small", "instanceTypes": ["t3.medium"], "maxPods": 50}]})
    with pytest.raises(SpecError) as err:
        build(spec)
    text = str(err.value)
    assert "spec.nodeGroups[0].maxPods" in text and "17" in text


def test_cluster_autoscaler_runs_with_its_irsa_role() -> None:
    g = build(make_spec(**{**EKS, "addons": {"clusterAutoscaler": {}}}))
    objects = {d.name: d for d in g.of_kind("KubernetesObject")}
    assert "serviceaccount/kube-system/cluster-autoscaler" in objects
    assert "deployment/kube-system/cluster-autoscaler" in objects
    sa = objects["serviceaccount/kube-system/cluster-autoscaler"].props["manifest"]
    assert isinstance(sa, Computed) and sa.args["role_arn"] == Ref("IamRole", "cluster-autoscaler", "arn")
    doc = sa.fn(**{**sa.args, "role_arn": "arn:aws:iam::123456789012:role/x"})
    assert doc["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/x"
    assert doc["metadata"]["labels"]["kubeaws.io/cluster"] == "dev"
    dep = objects["deployment/kube-system/cluster-autoscaler"].props["manifest"]
    pod = dep.fn(**{**dep.args, "role_arn": "arn:aws:iam::123456789012:role/x"})["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod  # no control-plane nodes on EKS
    args = " ".join(pod["containers"][0].get("command", []) + pod["containers"][0].get("args", []))
    assert "k8s.io/cluster-autoscaler/dev" in args
