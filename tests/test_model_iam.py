"""IAM and state builders (pure): least-privilege policies (unit-tested statement by statement), the roles,
instance profiles, bucket and PKI they add to the graph, brought roles, and the bucket name."""

from __future__ import annotations

import json
from typing import Any

from kubeaws.model.common import Builder
from kubeaws.model.graph import Graph
from kubeaws.model.iam import (
    ECR_READ_ONLY,
    IamRefs,
    build_iam,
    control_plane_policy,
    node_policy,
    trust_policy,
)
from kubeaws.model.state import bucket_policy, build_state_and_iam, state_bucket_name, state_object
from kubeaws.resources.base import Computed, Lookup, Ref, substitute
from tests.helpers import make_spec

BUCKET = "kubeaws-dev-0123456789"
#: The addons on the control plane whose statements these tests read (descriptors' names).
CONTROLLERS = ("cloud-provider-aws", "ebs-csi")


def actions(policy: dict[str, Any], effect: str = "Allow") -> set[str]:
    out: set[str] = set()
    for s in policy["Statement"]:
        if s["Effect"] == effect:
            out.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return out


def statements_with(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if s["Effect"] == "Allow" and action in s["Action"]]


def test_node_policy_reads_cluster_info_only() -> None:
    policy = node_policy("dev", BUCKET)
    assert actions(policy) == {"s3:GetObject", "ec2:DescribeInstances", "autoscaling:SetInstanceHealth"}
    [health] = statements_with(policy, "autoscaling:SetInstanceHealth")
    assert health["Condition"] == {"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/dev": "owned",
                                                    "aws:ResourceTag/kubeaws.io/role": "nodes"}}
    [s3] = statements_with(policy, "s3:GetObject")
    assert s3["Resource"] == [f"arn:aws:s3:::{BUCKET}/cluster/*", f"arn:aws:s3:::{BUCKET}/join/token"]
    assert not any(a.startswith("ec2:") and not a.startswith("ec2:Describe") for a in actions(policy))
    assert "s3:PutObject" not in actions(policy)


def test_control_plane_runs_the_cluster_autoscaler_with_its_documented_permissions() -> None:
    """kubeadm mode runs the autoscaler on the control plane: the role then has what the autoscaler's AWS
    documentation lists (the same as the EKS IRSA role), its writes only on this cluster's groups."""
    assert not statements_with(control_plane_policy("dev", BUCKET, CONTROLLERS), "autoscaling:SetDesiredCapacity")
    policy = control_plane_policy("dev", BUCKET, (*CONTROLLERS, "cluster-autoscaler"))
    for action in ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"):
        [s] = statements_with(policy, action)
        assert s["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/dev": "owned"}}
    for action in ("autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeScalingActivities",
                   "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeInstanceTypes"):
        assert statements_with(policy, action), action
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))


def test_control_plane_volume_and_instance_writes_are_scoped_to_the_cluster() -> None:
    policy = control_plane_policy("dev", BUCKET, CONTROLLERS)
    for action in ("ec2:AttachVolume", "ec2:DetachVolume", "ec2:AttachNetworkInterface",
                   "ec2:DetachNetworkInterface", "autoscaling:SetInstanceHealth", "ec2:ModifyVolume",
                   "ec2:DeleteVolume", "ec2:ModifyInstanceAttribute", "ec2:CreateRoute"):
        found = statements_with(policy, action)
        assert found, action
        for s in found:
            assert s["Condition"]["StringEquals"]["aws:ResourceTag/kubernetes.io/cluster/dev"] == "owned", action
    [attach] = statements_with(policy, "ec2:AttachVolume")
    assert "arn:aws:ec2:*:*:volume/*" in attach["Resource"] and "arn:aws:ec2:*:*:instance/*" in attach["Resource"]
    for s in statements_with(policy, "ec2:CreateVolume"):
        assert "Condition" in s
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert {s["Sid"] for s in deny} == {"GuardClusterTagsEc2", "GuardClusterTagsElb"}
    for s in deny:
        keys = s["Condition"]["ForAnyValue:StringLike"]["aws:TagKeys"]
        assert {"kubernetes.io/cluster/*", "kubeaws.io/*", "k8s.io/cluster-autoscaler/*"} <= set(keys)


def test_control_plane_policy_has_only_the_addons_it_runs() -> None:
    """The addons' statements come from their descriptors, only for the addons the spec turns on."""
    bare = actions(control_plane_policy("dev", BUCKET))
    assert "elasticloadbalancing:CreateLoadBalancer" not in bare and "ec2:CreateVolume" not in bare
    assert {"ec2:AttachVolume", "s3:PutObject", "autoscaling:SetInstanceHealth", "ec2:DescribeInstances",
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeVolumes"} <= bare
    with_ebs = actions(control_plane_policy("dev", BUCKET, ("ebs-csi",)))
    assert "ec2:CreateVolume" in with_ebs and "elasticloadbalancing:CreateLoadBalancer" not in with_ebs


def test_control_plane_policy_covers_its_controllers_and_the_bucket() -> None:
    policy = control_plane_policy("dev", BUCKET, CONTROLLERS)
    got = actions(policy)
    assert {"ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:CreateSecurityGroup",
            "elasticloadbalancing:CreateLoadBalancer", "autoscaling:DescribeAutoScalingGroups",
            "s3:PutObject", "s3:GetObject", "s3:ListBucket"} <= got
    assert not any(a.startswith("kms:") for a in got)
    assert not any(a in ("*", "s3:*", "ec2:*", "iam:*") for a in got)
    for s in policy["Statement"]:
        if any(a.startswith("s3:") for a in s["Action"]):
            assert all(r.startswith(f"arn:aws:s3:::{BUCKET}") for r in s["Resource"])
        if s["Resource"] == "*" and s["Effect"] == "Allow":  # unscoped: only reads
            writes = [a for a in s["Action"] if not a.split(":")[1].startswith("Describe")]
            assert not writes, s["Sid"]
    # IAM's limit for all inline policies of a role, whitespace excluded.
    assert len(json.dumps(policy, separators=(",", ":"))) < 10240


def test_trust_policy_is_ec2_only() -> None:
    [s] = trust_policy()["Statement"]
    assert s == {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}


def test_build_iam_owned_roles() -> None:
    b = Builder(make_spec(), Graph("dev"))
    refs = build_iam(b, BUCKET)
    assert refs == IamRefs(Ref("InstanceProfile", "control-plane", "name"), Ref("InstanceProfile", "node", "name"),
                           Ref("IamRole", "control-plane", "arn"), Ref("IamRole", "node", "arn"))
    role = b.graph["IamRole/node"]
    assert role.props["name"] == "dev-node" and role.props["path"] == "/kubeaws/dev/"
    assert role.props["managed_policy_arns"] == [ECR_READ_ONLY]
    assert substitute(role.props["inline_policies"], lambda v: v) == {"kubeaws-node": node_policy("dev", BUCKET)}
    profile = b.graph["InstanceProfile/control-plane"]
    assert profile.props == {"name": "dev-control-plane", "path": "/kubeaws/dev/",
                             "role_name": Ref("IamRole", "control-plane", "name")}
    assert all(len(d.props["name"]) <= 64 for d in b.graph)


def test_build_iam_brought_roles() -> None:
    arn = "arn:aws:iam::123456789012:role/team/cp"
    b = Builder(make_spec(iam={"controlPlaneRole": arn, "nodeRole": "nodes"}), Graph("dev"))
    refs = build_iam(b, BUCKET)
    assert b.graph["IamRole/control-plane"].brought_id == arn
    assert b.graph["IamRole/node"].brought_id == "nodes" and b.graph["IamRole/node"].props == {}
    # The profile the brought role is already in (found at plan time), else ours around it.
    profile = b.graph["InstanceProfile/node"]
    assert profile.brought_id == "role:nodes" and profile.props == {}
    assert profile.fallback is not None and profile.fallback.brought_id is None
    assert profile.fallback.props["name"] == "dev-node" and profile.fallback.props["path"] == "/kubeaws/dev/"
    assert profile.refs() == {"IamRole/node"}
    assert b.graph["InstanceProfile/control-plane"].brought_id == f"role:{arn}"
    assert refs.node_role_arn == Ref("IamRole", "node", "arn")


def test_state_bucket_name_is_deterministic_and_short() -> None:
    name = state_bucket_name("dev", "123456789012", "us-east-1")
    assert name == state_bucket_name("dev", "123456789012", "us-east-1")
    assert name.startswith("kubeaws-dev-") and len(name) == len("kubeaws-dev-") + 10
    assert name != state_bucket_name("dev", "123456789012", "eu-west-1")
    assert len(state_bucket_name("x" * 28, "123456789012", "us-east-1")) <= 63


def test_build_state_bucket_pki_and_policy() -> None:
    b = Builder(make_spec(), Graph("dev"))
    iam, state = build_state_and_iam(b)
    bucket = b.graph["Bucket/state"]
    assert bucket.props["tls_only"] is True and bucket.props["versioning"] is True
    assert bucket.props["encryption"] == "AES256" and all(bucket.props["public_access_block"].values())
    assert isinstance(bucket.props["name"], Computed) and bucket.refs() == {"IamRole/control-plane", "IamRole/node"}
    assert b.graph["ClusterPki/main"].refs() == {"Bucket/state"}

    values = {Lookup("sts", "account_id"): "123456789012", Ref("IamRole", "control-plane", "arn"): "arn:cp",
              Ref("IamRole", "node", "arn"): "arn:node"}
    resolved = substitute(bucket.props, values.__getitem__)
    assert resolved["name"] == state_bucket_name("dev", "123456789012", "us-east-1")
    assert resolved["policy"] == bucket_policy("dev", "123456789012", "us-east-1", "arn:cp", "arn:node")
    node_policy_doc = substitute(b.graph["IamRole/node"].props["inline_policies"], values.__getitem__)
    assert resolved["name"] in json.dumps(node_policy_doc)
    assert state.pki == Ref("ClusterPki", "main") and iam.node_profile == Ref("InstanceProfile", "node", "name")
    ref = state_object(b, "cluster/cluster.json", "{}")
    assert ref == Ref("StateObject", "cluster/cluster.json")
    b.graph.validate()


def test_bucket_policy_denies_other_accounts_and_limits_nodes() -> None:
    doc = bucket_policy("dev", "123456789012", "us-east-1", "arn:cp", "arn:node")
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["DenyOtherAccounts"]["Principal"] == "*"
    assert by_sid["NodesReadOnly"]["NotAction"] == ["s3:GetObject"]
    assert by_sid["ControlPlaneAccess"]["Principal"] == {"AWS": "arn:cp"}


# -- the tag guards: what the control-plane role may NOT do (tests/iam_eval.py decides) ---------------------

K8S = "kubernetes.io/cluster/dev"
SG = "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123"
VOL = "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/a1/0123"
ESCAPES = [
    # (what, action, resource, request context, allowed?)
    ("tag a foreign security group into the cluster", "ec2:CreateTags", SG,
     {"aws:TagKeys": [K8S], f"aws:RequestTag/{K8S}": "owned"}, False),
    ("the same on a group already tagged for the cluster", "ec2:CreateTags", SG,
     {"aws:TagKeys": [K8S], f"aws:ResourceTag/{K8S}": "owned"}, False),
    ("turn a shared group into an owned one", "ec2:CreateTags", SG,
     {"aws:TagKeys": [K8S], f"aws:ResourceTag/{K8S}": "shared"}, False),
    ("tag a foreign volume into the cluster", "ec2:CreateTags", VOL, {"aws:TagKeys": [K8S]}, False),
    ("take a kubeaws tag off a cluster volume", "ec2:DeleteTags", VOL,
     {"aws:TagKeys": ["kubeaws.io/cluster"], f"aws:ResourceTag/{K8S}": "owned"}, False),
    ("tag a foreign load balancer into the cluster", "elasticloadbalancing:AddTags", LB,
     {"aws:TagKeys": [K8S], f"aws:RequestTag/{K8S}": "owned"}, False),
    ("open a foreign security group", "ec2:AuthorizeSecurityGroupIngress", SG, {}, False),
    ("delete a shared security group", "ec2:DeleteSecurityGroup", SG, {f"aws:ResourceTag/{K8S}": "shared"}, False),
    ("create an untagged security group", "ec2:CreateSecurityGroup", SG, {}, False),
    ("delete a foreign load balancer", "elasticloadbalancing:DeleteLoadBalancer", LB, {}, False),
    ("create an untagged load balancer", "elasticloadbalancing:CreateLoadBalancer", LB, {}, False),
    ("snapshot a foreign volume", "ec2:CreateSnapshot", VOL, {f"aws:RequestTag/{K8S}": "owned"}, False),
    # ... and what cloud-provider-aws / the EBS CSI driver do stays allowed:
    ("create a cluster security group", "ec2:CreateSecurityGroup", SG,
     {f"aws:RequestTag/{K8S}": "owned", "aws:TagKeys": [K8S]}, True),
    ("its tags, in the create call", "ec2:CreateTags", SG,
     {"aws:TagKeys": [K8S], "ec2:CreateAction": "CreateSecurityGroup"}, True),
    ("repair other tags of its own group", "ec2:CreateTags", SG,
     {"aws:TagKeys": ["kubernetes.io/service-name"], f"aws:ResourceTag/{K8S}": "owned"}, True),
    ("open a cluster group", "ec2:AuthorizeSecurityGroupIngress", SG, {f"aws:ResourceTag/{K8S}": "shared"}, True),
    ("create a cluster NLB with its tags", "elasticloadbalancing:AddTags", LB,
     {"aws:TagKeys": [K8S], f"aws:RequestTag/{K8S}": "owned",
      "elasticloadbalancing:CreateAction": "CreateLoadBalancer"}, True),
    ("delete a cluster NLB", "elasticloadbalancing:DeleteLoadBalancer", LB, {f"aws:ResourceTag/{K8S}": "owned"},
     True),
    ("snapshot a cluster volume", "ec2:CreateSnapshot", VOL, {f"aws:ResourceTag/{K8S}": "owned"}, True),
]


def test_tag_guards_stop_every_escape() -> None:
    """Each escape the tag guards close is denied, each call the controllers make is allowed."""
    from tests.iam_eval import Request, evaluate

    policy = control_plane_policy("dev", BUCKET, (*CONTROLLERS, "cluster-autoscaler"))
    wrong = [what for what, action, resource, context, allowed in ESCAPES
             if evaluate([policy], Request.make(action, resource, context)).allowed != allowed]
    assert wrong == []
