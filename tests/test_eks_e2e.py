"""An EKS cluster end to end against the moto server: apply -> nothing pending -> re-apply changes nothing ->
kubeconfig -> delete leaves nothing, with the ordering contracts of docs/eks.md checked from the recorded calls.

moto's EKS is metadata only (clusters and node groups are ACTIVE at once) and lacks, or half-implements,
some of what an apply needs. Answered here, never by editing production code:

- access entries (Create/Describe/List/Delete AccessEntry, ListAssociatedAccessPolicies, Associate /
  DisassociateAccessPolicy), add-ons (Create/Describe/List/Update/Delete Addon, DescribeAddonVersions) and
  DescribeUpdate are missing (HTTP 404). `FakeEks` (tests/fake_aws.py) answers them with a botocore
  `before-call.eks` handler (registered through `ctx.add_hook`, so every thread's client has it) that returns
  `(AWSResponse, parsed)`: botocore then skips the request. Their state lives in a dict (add-ons go
  CREATING -> ACTIVE and DELETING -> gone over successive describes, as on AWS).
- CreateCluster ignores `accessConfig`: DescribeCluster would report no authentication mode (read as
  CONFIG_MAP) and every plan would want to move it to API. An `after-call.eks.DescribeCluster` handler adds
  the mode the cluster was created with to moto's answer.
- No EKS-optimized AMI SSM parameter: the plan's image Lookup falls back to a stand-in AMI (plan warning).

Calls answered by the handler never reach the context's own call counter (the handler short-circuits
botocore's `before-call` chain before it), so calls are recorded at `before-parameter-build`, which every
request passes, in order, from every thread.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from typing import Any

import yaml

from kubeaws import api
from kubeaws.access import admin_kubeconfig
from kubeaws.aws.session import AwsContext, AwsSettings, is_read_operation
from tests.conftest import REGION
from tests.fake_aws import ACCOUNT, FakeEks
from tests.helpers import FakeClock, make_spec

SPEC = make_spec(
    mode="eks",
    network={"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
    access={"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
    eks={"authenticationMode": "API"},
    nodeGroups=[
        {"name": "general", "instanceTypes": ["m5.large"], "labels": {"team": "dsp"}, "maxPods": 20,
         "taints": [{"key": "dedicated", "value": "dsp", "effect": "NoSchedule"}],
         "size": {"min": 1, "desired": 1, "max": 3}},
        {"name": "managed", "type": "managed", "instanceTypes": ["t3.large"], "capacity": "spot",
         "size": {"min": 1, "desired": 2, "max": 4}},
    ],
)


class Recorder:
    """Every request's (service, operation, params) in the order they were built, from every thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, params: Any, model: Any, context: Any, **_: Any) -> None:
        snapshot = copy.deepcopy(dict(params))
        with self.lock:
            self.calls.append((model.service_model.service_name, model.name, snapshot))

    def mark(self) -> int:
        with self.lock:
            return len(self.calls)

    def ops(self, since: int = 0) -> list[str]:
        with self.lock:
            return [op for _, op, _ in self.calls[since:]]

    def mutating(self, since: int = 0) -> list[str]:
        return [op for op in self.ops(since) if not is_read_operation(op)]


def connect(ctx: AwsContext) -> tuple[Recorder, FakeEks]:
    recorder = Recorder()
    ctx.add_hook("before-parameter-build", recorder)
    return recorder, FakeEks().install(ctx)


def first(ops: list[str], *names: str) -> int:
    return min(i for i, op in enumerate(ops) if op in names)


def last(ops: list[str], *names: str) -> int:
    return max(i for i, op in enumerate(ops) if op in names)


def launch_templates(ctx: AwsContext) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(template, its latest version's data) of every launch template."""
    found = []
    for lt in ctx.call("ec2", "describe_launch_templates")["LaunchTemplates"]:
        versions = ctx.call("ec2", "describe_launch_template_versions", LaunchTemplateId=lt["LaunchTemplateId"],
                            Versions=["$Latest"])["LaunchTemplateVersions"]
        found.append((lt, versions[0]["LaunchTemplateData"]))
    return found


def check_launch_templates(ctx: AwsContext) -> None:
    """IMDSv2, encrypted volumes, the cluster tag; the self-managed group's nodeadm user data."""
    endpoint = ctx.call("eks", "describe_cluster", name="dev")["cluster"]["endpoint"]
    templates = launch_templates(ctx)
    assert len(templates) == 2, [lt["LaunchTemplateName"] for lt, _ in templates]
    node_configs = []
    for lt, data in templates:
        name = lt["LaunchTemplateName"]
        assert data["MetadataOptions"]["HttpTokens"] == "required", name
        devices = data.get("BlockDeviceMappings") or []
        assert devices and all(d["Ebs"]["Encrypted"] for d in devices), (name, devices)
        tags = {t["Key"]: t["Value"] for t in lt.get("Tags") or []}
        assert tags.get("kubernetes.io/cluster/dev") == "owned", (name, tags)
        if data.get("UserData"):
            node_configs.append(base64.b64decode(data["UserData"]).decode())
    # The managed group's template has no user data (EKS provides it); the self-managed one has nodeadm's.
    assert len(node_configs) == 1
    text = node_configs[0]
    assert "application/node.eks.aws" in text
    doc = yaml.safe_load(text.split("---\n", 1)[1].split("\n--", 1)[0])
    assert doc["kind"] == "NodeConfig"
    assert doc["spec"]["cluster"]["name"] == "dev"
    assert doc["spec"]["cluster"]["apiServerEndpoint"] == endpoint
    assert doc["spec"]["kubelet"]["config"]["maxPods"] == 20
    flags = " ".join(doc["spec"]["kubelet"]["flags"])
    assert "team=dsp" in flags and "kubeaws.io/node-group=general" in flags
    assert "--register-with-taints=dedicated=dsp:NoSchedule" in flags


def check_nothing_left(ctx: AwsContext, fake: FakeEks) -> None:
    assert ctx.call("eks", "list_clusters")["clusters"] == []
    assert ctx.call("autoscaling", "describe_auto_scaling_groups")["AutoScalingGroups"] == []
    assert ctx.call("ec2", "describe_launch_templates")["LaunchTemplates"] == []
    assert ctx.call("iam", "list_roles", PathPrefix="/kubeaws/dev/")["Roles"] == []
    assert ctx.call("iam", "list_instance_profiles", PathPrefix="/kubeaws/dev/")["InstanceProfiles"] == []
    assert ctx.call("iam", "list_open_id_connect_providers")["OpenIDConnectProviderList"] == []
    vpcs = ctx.call("ec2", "describe_vpcs", Filters=[{"Name": "tag-key", "Values": ["kubernetes.io/cluster/dev"]}])
    assert vpcs["Vpcs"] == []
    assert [v["CidrBlock"] for v in ctx.call("ec2", "describe_vpcs")["Vpcs"] if not v.get("IsDefault")] == []
    keys = [ctx.call("kms", "describe_key", KeyId=k["KeyId"])["KeyMetadata"]
            for k in ctx.call("kms", "list_keys")["Keys"]]
    # (moto also makes its own default EBS key, for the encrypted volumes: not kubeaws')
    assert [k["KeyState"] for k in keys if k.get("Description", "").startswith("kubeaws")] == ["PendingDeletion"]
    assert not any(a["AliasName"] == "alias/kubeaws/dev" for a in ctx.call("kms", "list_aliases")["Aliases"])
    assert fake.entries == {} and fake.addons == {}


def apply_eks(ctx: AwsContext) -> tuple[Recorder, FakeEks]:
    """Apply SPEC and check what it built: the order (access entry before any node), the add-ons and access
    entry, the managed node group, the ASG and the launch templates."""
    recorder, fake = connect(ctx)
    result = api.apply(SPEC, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    applied = recorder.ops()

    # Nodes never boot before their role is mapped: the access entry precedes the ASG and the node group.
    entry = first(applied, "CreateAccessEntry")
    assert entry < first(applied, "CreateAutoScalingGroup")
    assert entry < first(applied, "CreateNodegroup")
    assert applied.count("CreateAddon") == 3 and applied.count("CreateCluster") == 1
    assert {a[1] for a in fake.addons} == {"vpc-cni", "kube-proxy", "coredns"}
    assert all(a["status"] == "ACTIVE" for a in fake.addons.values())
    (principal,) = [k[1] for k in fake.entries]
    assert principal.endswith(":role/kubeaws/dev/dev-node")
    assert fake.entries[("dev", principal)]["type"] == "EC2_LINUX"

    cluster = ctx.call("eks", "describe_cluster", name="dev")["cluster"]
    assert cluster["resourcesVpcConfig"]["endpointPublicAccess"] is True
    (group,) = ctx.call("eks", "list_nodegroups", clusterName="dev")["nodegroups"]
    managed = ctx.call("eks", "describe_nodegroup", clusterName="dev", nodegroupName=group)["nodegroup"]
    assert managed["capacityType"] == "SPOT" and managed["labels"]["kubeaws.io/node-group"] == "managed"
    assert managed["tags"]["kubernetes.io/cluster/dev"] == "owned"
    (asg,) = ctx.call("autoscaling", "describe_auto_scaling_groups")["AutoScalingGroups"]
    assert {t["Key"]: t["Value"] for t in asg["Tags"]}["kubernetes.io/cluster/dev"] == "owned"
    check_launch_templates(ctx)
    return recorder, fake


def test_eks_apply_kubeconfig_delete(endpoint: str) -> None:
    """apply -> the EKS kubeconfig -> delete, in the order docs/eks.md promises, leaving nothing; and no wait
    polls in vain. moto has everything ready at once, so every wait ends after at most a poll or two: the
    context's policy (AWS's real budgets) runs on a fake clock that counts its sleeps, and a wait stuck until
    its budget would show as hundreds of sleeps (in no real time), never as a slow test."""
    clock = FakeClock()
    ctx = AwsContext(AwsSettings(region=REGION, endpoint_url=endpoint), cluster="dev", policy=clock.policy())
    recorder, fake = apply_eks(ctx)

    # The EKS kubeconfig: endpoint and CA from DescribeCluster, user `kubeaws token --cluster dev`.
    cluster = ctx.call("eks", "describe_cluster", name="dev")["cluster"]
    kubeconfig = admin_kubeconfig(SPEC, ctx)
    doc = yaml.safe_load(kubeconfig.text)
    assert doc["clusters"][0]["cluster"]["server"] == cluster["endpoint"] == kubeconfig.server
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"] == cluster["certificateAuthority"]["data"]
    user = doc["users"][0]["user"]["exec"]
    assert user["command"] == "kubeaws" and user["args"] == ["token", "--cluster", "dev", "--region", "us-east-1"]
    assert kubeconfig.private is False and kubeconfig.hint == ""

    mark = recorder.mark()
    deleted = api.delete(SPEC, ctx)
    assert deleted.ok, [(e.key, e.error) for e in deleted.failed]
    ops = recorder.ops(mark)
    # node groups / ASGs -> add-ons / access entries -> cluster -> IAM, KMS key, network (VPC last). The OIDC
    # provider reads the cluster's issuer, so the reverse-dependency delete removes it before the cluster,
    # but only once the add-ons (the IRSA users) are gone.
    nodes_gone = last(ops, "DeleteNodegroup", "DeleteAutoScalingGroup")
    assert nodes_gone < first(ops, "DeleteAddon", "DeleteAccessEntry")
    assert last(ops, "DeleteAddon", "DeleteAccessEntry") < ops.index("DeleteCluster")
    assert last(ops, "DeleteAddon") < ops.index("DeleteOpenIDConnectProvider")
    cluster_gone = ops.index("DeleteCluster")
    assert cluster_gone < first(ops, "DeleteRole", "DeleteInstanceProfile", "ScheduleKeyDeletion", "DeleteVpc",
                                "DeleteSubnet", "DeleteSecurityGroup", "DeleteNatGateway", "DeleteRouteTable")
    vpc_gone = ops.index("DeleteVpc")
    # Delete runs on the dependency graph: the VPC waits for what is in it (subnets, security groups), not for
    # IAM roles or the KMS key, which go whenever what uses them is gone.
    assert last(ops, "DeleteSecurityGroup", "DeleteSubnet") < vpc_gone
    check_nothing_left(ctx, fake)
    # 6 today: each of the 3 add-ons is seen CREATING once, then DELETING once. A wait stuck until its budget
    # (25 minutes for a cluster, polled every 5 s) would sleep hundreds of times.
    assert clock.sleeps <= 12, clock.sleeps


def test_eks_apply_converges(ctx: AwsContext) -> None:
    """After an apply nothing is pending, and applying again makes no mutating call."""
    recorder, _ = apply_eks(ctx)
    plan = api.plan(SPEC, ctx)
    pending = [(c.key, c.action, c.diff) for c in plan.changes if c.action != "noop"]
    assert plan.pending == 0, pending

    mark = recorder.mark()
    again = api.apply(SPEC, ctx)
    assert again.ok, [(e.key, e.error) for e in again.failed]
    assert recorder.mutating(mark) == []


def test_eks_kubeconfig_before_apply_says_apply_first(ctx: AwsContext) -> None:
    import pytest

    from kubeaws.errors import KubeawsError

    with pytest.raises(KubeawsError, match="apply"):
        admin_kubeconfig(SPEC, ctx)


def test_eks_render_has_user_data_access_entries_and_roles() -> None:
    from kubeaws.access import render_artifacts

    files = render_artifacts(SPEC)
    assert set(files) == {"eks/user-data/node-general.mime", "eks/access-entries.json",
                          "iam/eks-cluster-role.json", "iam/node-role.json", "addons/eks-addons.json",
                          # the documents apply sends (kubeaws.model.documents)
                          "iam/eks-cluster-trust-policy.json", "iam/node-trust-policy.json",
                          "kms/secrets-key-policy.json"}
    assert "maxPods: 20" in files["eks/user-data/node-general.mime"]
    node = json.loads(files["iam/node-role.json"])
    assert node["assumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy" in node["managedPolicyArns"]
    plan = json.loads(files["eks/access-entries.json"])
    assert plan["accessEntries"] == [{"principalArn": f"arn:aws:iam::{ACCOUNT}:role/kubeaws/dev/dev-node",
                                      "type": "EC2_LINUX"}]


def test_eks_kubeconfig_private_endpoint_has_a_tunnel_hint(ctx: AwsContext) -> None:
    """A cluster whose endpoint has no public access (created directly in moto, no apply needed)."""
    ctx.call("eks", "create_cluster", name="dev", roleArn=f"arn:aws:iam::{ACCOUNT}:role/x",
             resourcesVpcConfig={"subnetIds": ["subnet-1"], "endpointPublicAccess": False,
                                 "endpointPrivateAccess": True})
    spec = make_spec(mode="eks", network={"cni": "aws-vpc-cni"}, access={"apiEndpoint": "private"})
    kubeconfig = admin_kubeconfig(spec, ctx)
    assert kubeconfig.private is True
    host = kubeconfig.server.removeprefix("https://").split("/")[0]
    assert f"-L 8443:{host}:443" in kubeconfig.hint and "<bastion address>" in kubeconfig.hint
    assert "access.apiEndpoint: public" in kubeconfig.hint
