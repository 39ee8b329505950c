"""EKS kinds against the moto server: KmsKey, EksCluster, OidcProvider, AccessEntry, EksAddon, EksNodegroup.

Each: create -> tags on the resource -> list_owned (counted reads <= list_reads) diffs clean -> update ->
delete -> gone -> delete again is a no-op.

moto gaps met (EKS there is metadata only: clusters and node groups are ACTIVE at once): access entries,
add-ons, DescribeUpdate, UpdateClusterVersion, AssociateEncryptionConfig and UpdateNodegroupVersion are
missing (HTTP 404), as are IAM's Add/RemoveClientIDTo/FromOpenIDConnectProvider; CreateCluster ignores
accessConfig. Where a test needs a missing call it answers the EKS client through botocore's `Stubber`
(activated on `ctx.client("eks")`, the test thread's client: every EKS call inside the block must then be
stubbed) and says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from botocore.stub import Stubber

import kubeaws.resources.access_entry
import kubeaws.resources.eks_addon
import kubeaws.resources.eks_cluster
import kubeaws.resources.eks_nodegroup
import kubeaws.resources.kms_key
import kubeaws.resources.oidc_provider  # noqa: F401  (registers the kinds until registry.MODULES lists them)
from kubeaws.aws.session import AwsContext, is_read_operation
from kubeaws.aws.tags import owned_tags, tag_dict
from kubeaws.errors import AwsCallError, KubeawsError
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Kind, Observed
from kubeaws.resources.eks_cluster import EksVersionError
from kubeaws.resources.oidc_provider import EKS_ROOT_CA_THUMBPRINT
from tests.helpers import CallRecorder

KMS = registry.get("KmsKey")
CLUSTER = registry.get("EksCluster")
OIDC = registry.get("OidcProvider")
ENTRY = registry.get("AccessEntry")
ADDON = registry.get("EksAddon")
NODES = registry.get("EksNodegroup")
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},' \
        '"Action":"sts:AssumeRole"}]}'


def tags_for(kind: str, name: str) -> dict[str, str]:
    return owned_tags("dev", kind, name, f"dev-{name}")


def listed(ctx: AwsContext, kind: Kind) -> list[Observed]:
    """list_owned, checking it only reads, and no more than the kind's declared `list_reads`. Requests are
    seen at parameter-build time: a Stubber answers before the context's own `before-call` counter runs."""
    operations: list[str] = []

    def seen(model: Any, **_: Any) -> None:
        operations.append(model.name)

    clients = [ctx.client(s) for s in ("eks", "iam", "kms")]
    for client in clients:
        client.meta.events.register("before-parameter-build", seen, unique_id="test-listed")
    try:
        found = kind.list_owned(ctx)
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", unique_id="test-listed")
    assert all(is_read_operation(op) for op in operations), operations
    assert 1 <= len(operations) <= kind.list_reads, operations
    return found


@contextmanager
def stubbed(ctx: AwsContext) -> Iterator[Stubber]:
    """botocore's Stubber on this thread's EKS client, for the calls moto lacks; all answers consumed."""
    stub = Stubber(ctx.client("eks"))
    with stub:
        yield stub
    stub.assert_no_pending_responses()


@pytest.fixture
def net(ctx: AwsContext) -> dict[str, Any]:
    """An IAM role for EKS, a VPC with subnets in two AZs and a security group."""
    role = ctx.call("iam", "create_role", RoleName="dev-eks", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    vpc = ctx.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ctx.call("ec2", "create_subnet", VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                        AvailabilityZone=az)["Subnet"]["SubnetId"] for i, az in enumerate(("us-east-1a", "us-east-1b"))]
    group = ctx.call("ec2", "create_security_group", GroupName="dev-control-plane", Description="cp",
                     VpcId=vpc)["GroupId"]
    return {"role": role, "vpc": vpc, "subnets": sorted(subnets), "group": group}


def cluster_desired(net: dict[str, Any], **overrides: Any) -> Desired:
    props = {"name": "dev", "version": "1.30", "role_arn": net["role"], "subnet_ids": net["subnets"],
             "security_group_ids": [net["group"]], "endpoint_public": True, "endpoint_private": True,
             "public_access_cidrs": ["203.0.113.0/24"], "logging": ["api", "audit"], "encryption_key_arn": None,
             "authentication_mode": "CONFIG_MAP", **overrides}
    return Desired("EksCluster", "dev", props, tags=tags_for("EksCluster", "dev"))


@pytest.fixture
def cluster(ctx: AwsContext, net: dict[str, Any]) -> Observed:
    return CLUSTER.create(ctx, cluster_desired(net))


# -- KmsKey ----------------------------------------------------------------------------------------------
def test_kms_key_lifecycle(ctx: AwsContext) -> None:
    want = Desired("KmsKey", "secrets", {"description": "dev secrets", "alias": "alias/kubeaws/dev", "policy": None},
                   tags=tags_for("KmsKey", "secrets"))
    created = KMS.create(ctx, want)
    assert created.attrs["arn"].endswith(created.id)
    tags = ctx.call("kms", "list_resource_tags", KeyId=created.id)["Tags"]
    assert {t["TagKey"]: t["TagValue"] for t in tags} == want.tags
    policy = ctx.call("kms", "get_key_policy", KeyId=created.id, PolicyName="default")["Policy"]
    assert ":root" in policy and "kms:*" in policy  # the account root may use the key

    [found] = listed(ctx, KMS)
    assert found.id == created.id and found.logical_key == "KmsKey/secrets" and KMS.diff(found, want) == {}

    changed = Desired("KmsKey", "secrets", {**want.props, "description": "dev secrets v2"}, tags=want.tags)
    diff = KMS.diff(found, changed)
    assert set(diff) == {"description"}
    KMS.update(ctx, found, changed, diff)
    [found] = listed(ctx, KMS)
    assert KMS.diff(found, changed) == {}
    moved = Desired("KmsKey", "secrets", {**want.props, "alias": "alias/kubeaws/dev/other"}, tags=want.tags)
    assert "alias" in KMS.diff(found, moved) and "alias" in KMS.refuse_change

    KMS.delete(ctx, found)
    meta = ctx.call("kms", "describe_key", KeyId=created.id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"  # scheduled (7 days), not destroyed
    assert all(a["AliasName"] != "alias/kubeaws/dev" for a in ctx.call("kms", "list_aliases")["Aliases"])
    assert KMS.list_owned(ctx) == []
    KMS.delete(ctx, found)  # again: no-op


# -- EksCluster ------------------------------------------------------------------------------------------
def test_eks_cluster_lifecycle(ctx: AwsContext, net: dict[str, Any]) -> None:
    want = cluster_desired(net)
    created = CLUSTER.create(ctx, want)
    described = ctx.call("eks", "describe_cluster", name="dev")["cluster"]
    assert described["tags"] == want.tags and described["status"] == "ACTIVE"
    for attr in ("arn", "endpoint", "certificate_authority", "oidc_issuer"):
        assert created.attrs[attr], attr

    [found] = listed(ctx, CLUSTER)
    assert found.id == "dev" and found.logical_key == "EksCluster/dev" and CLUSTER.diff(found, want) == {}
    assert CLUSTER.find_conflict(ctx, want) is None

    # Logging: UpdateClusterConfig (moto applies it at once and answers no update to wait for).
    more_logs = cluster_desired(net, logging=["api", "audit", "authenticator"])
    diff = CLUSTER.diff(found, more_logs)
    assert set(diff) == {"logging"}
    with ctx.counting() as log:
        CLUSTER.update(ctx, found, more_logs, diff)
    assert log.snapshot()[("eks", "UpdateClusterConfig")] == 1
    [found] = listed(ctx, CLUSTER)
    assert found.fields["logging"] == ["api", "audit", "authenticator"] and CLUSTER.diff(found, more_logs) == {}

    CLUSTER.delete(ctx, found)
    assert CLUSTER.list_owned(ctx) == []
    CLUSTER.delete(ctx, found)  # again: no-op


def test_eks_cluster_version_upgrade_one_minor(ctx: AwsContext, net: dict[str, Any], cluster: Observed) -> None:
    """UpdateClusterVersion and DescribeUpdate are missing in moto: answered by the Stubber."""
    want = cluster_desired(net, version="1.31")
    diff = CLUSTER.diff(cluster, want)
    assert diff == {"version": ("1.30", "1.31")}
    with stubbed(ctx) as stub:
        stub.add_response("update_cluster_version", {"update": {"id": "u-1", "status": "InProgress"}},
                          {"name": "dev", "version": "1.31",
                           "clientRequestToken": ctx.client_token("EksCluster/dev/1.31")})
        stub.add_response("describe_update", {"update": {"id": "u-1", "status": "InProgress"}},
                          {"name": "dev", "updateId": "u-1"})
        stub.add_response("describe_update", {"update": {"id": "u-1", "status": "Successful"}},
                          {"name": "dev", "updateId": "u-1"})
        updated = CLUSTER.update(ctx, cluster, want, diff)
    assert updated.fields["version"] == "1.31"


def test_eks_cluster_refuses_version_jump_and_downgrade(net: dict[str, Any], cluster: Observed) -> None:
    with pytest.raises(EksVersionError, match=r"one minor version at a time.*1\.31.*1\.30 -> 1\.31 -> 1\.32"):
        CLUSTER.diff(cluster, cluster_desired(net, version="1.32"))
    with pytest.raises(EksVersionError, match=r"cannot be downgraded to 1\.29"):
        CLUSTER.diff(cluster, cluster_desired(net, version="1.29"))


def test_eks_cluster_update_failure_is_reported(ctx: AwsContext, net: dict[str, Any], cluster: Observed) -> None:
    """A failed update raises with EKS's errors (DescribeUpdate through the Stubber)."""
    want = cluster_desired(net, version="1.31")
    with stubbed(ctx) as stub:
        stub.add_response("update_cluster_version", {"update": {"id": "u-2", "status": "InProgress"}})
        stub.add_response("describe_update", {"update": {"id": "u-2", "status": "Failed", "type": "VersionUpdate",
                                                         "errors": [{"errorCode": "InsufficientFreeAddresses",
                                                                     "errorMessage": "no free IPs"}]}})
        with pytest.raises(AwsCallError, match="InsufficientFreeAddresses: no free IPs"):
            CLUSTER.update(ctx, cluster, want, CLUSTER.diff(cluster, want))


def test_eks_cluster_encryption_enabled_once(ctx: AwsContext, net: dict[str, Any], cluster: Observed) -> None:
    """AssociateEncryptionConfig is missing in moto (Stubber). Enabling is an update; removing or moving the
    key afterwards is refused by the planner (refuse_change)."""
    key = "arn:aws:kms:us-east-1:123456789012:key/abc"
    want = cluster_desired(net, encryption_key_arn=key)
    diff = CLUSTER.diff(cluster, want)
    assert set(diff) == {"encryption"}
    with stubbed(ctx) as stub:
        stub.add_response("associate_encryption_config", {"update": {"id": "u-3", "status": "Successful"}},
                          {"clusterName": "dev", "encryptionConfig": [{"resources": ["secrets"],
                                                                        "provider": {"keyArn": key}}],
                           "clientRequestToken": ctx.client_token("EksCluster/dev/encryption")})
        encrypted = CLUSTER.update(ctx, cluster, want, diff)
    assert encrypted.fields["encryption_key_arn"] == key
    for other in (None, key + "2"):
        diff = CLUSTER.diff(encrypted, cluster_desired(net, encryption_key_arn=other))
        assert set(diff) == {"encryption_key_arn"} and "encryption_key_arn" in CLUSTER.refuse_change


# -- OidcProvider ----------------------------------------------------------------------------------------
def test_oidc_provider_lifecycle(ctx: AwsContext, cluster: Observed) -> None:
    assert OIDC.list_owned(ctx) == []
    props = {"url": cluster.attrs["oidc_issuer"], "client_ids": ["sts.amazonaws.com"],
             "thumbprints": [EKS_ROOT_CA_THUMBPRINT]}
    want = Desired("OidcProvider", "irsa", props, tags=tags_for("OidcProvider", "irsa"))
    created = OIDC.create(ctx, want)
    got = ctx.call("iam", "get_open_id_connect_provider", OpenIDConnectProviderArn=created.id)
    assert tag_dict(got["Tags"]) == want.tags

    [found] = listed(ctx, OIDC)
    assert found.id == created.id and found.logical_key == "OidcProvider/irsa" and OIDC.diff(found, want) == {}

    rotated = Desired("OidcProvider", "irsa", {**want.props, "thumbprints": ["a" * 40]}, tags=want.tags)
    diff = OIDC.diff(found, rotated)
    assert set(diff) == {"thumbprints"}
    OIDC.update(ctx, found, rotated, diff)
    [found] = listed(ctx, OIDC)
    assert OIDC.diff(found, rotated) == {}
    assert OIDC.create(ctx, rotated).id == created.id  # already exists and ours: adopted

    OIDC.delete(ctx, found)
    assert OIDC.list_owned(ctx) == []
    OIDC.delete(ctx, found)  # again: no-op


# -- AccessEntry -----------------------------------------------------------------------------------------
def test_access_entry_lifecycle(ctx: AwsContext, cluster: Observed) -> None:
    """moto has no access entries: every EKS call goes through the Stubber (list_owned on the emulator
    first checks the cluster exists: DescribeCluster is stubbed too)."""
    assert ENTRY.list_owned(ctx) == []  # moto: the API is missing (404) -> nothing
    admin = "arn:aws:iam::123456789012:role/admin"
    policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    want = Desired("AccessEntry", "admin", {"cluster_name": "dev", "principal_arn": admin, "type": "STANDARD",
                                            "policy_arns": [policy]}, tags=tags_for("AccessEntry", "admin"))
    entry = {"clusterName": "dev", "principalArn": admin, "type": "STANDARD", "tags": want.tags,
             "accessEntryArn": "arn:aws:eks:us-east-1:123456789012:access-entry/dev/role/admin/x",
             "kubernetesGroups": []}
    with stubbed(ctx) as stub:
        stub.add_response("create_access_entry", {"accessEntry": entry},
                          {"clusterName": "dev", "principalArn": admin, "type": "STANDARD", "tags": want.tags,
                           "clientRequestToken": ctx.client_token("AccessEntry/admin")})
        stub.add_response("list_associated_access_policies", {"associatedAccessPolicies": []})
        stub.add_response("associate_access_policy", {},
                          {"clusterName": "dev", "principalArn": admin, "policyArn": policy,
                           "accessScope": {"type": "cluster"}})
        created = ENTRY.create(ctx, want)
    assert created.id == f"dev/{admin}" and created.fields["policy_arns"] == [policy]

    creator = {**entry, "principalArn": "arn:aws:iam::123456789012:role/creator", "tags": {}}
    with stubbed(ctx) as stub:
        stub.add_response("describe_cluster", {"cluster": {"name": "dev", "status": "ACTIVE"}})
        stub.add_response("list_access_entries", {"accessEntries": [admin, creator["principalArn"]]})
        stub.add_response("describe_access_entry", {"accessEntry": entry})
        stub.add_response("list_associated_access_policies", {"associatedAccessPolicies": [
            {"policyArn": policy, "accessScope": {"type": "cluster"}}]})
        stub.add_response("describe_access_entry", {"accessEntry": creator})  # EKS's own: not ours, kept
        [found] = listed(ctx, ENTRY)
    assert found.logical_key == "AccessEntry/admin" and ENTRY.diff(found, want) == {}

    viewer = Desired("AccessEntry", "admin", {**want.props, "policy_arns": [policy.replace("Admin", "View")]},
                     tags=want.tags)
    with stubbed(ctx) as stub:
        stub.add_response("associate_access_policy", {})
        stub.add_response("disassociate_access_policy", {}, {"clusterName": "dev", "principalArn": admin,
                                                             "policyArn": policy})
        ENTRY.update(ctx, found, viewer, ENTRY.diff(found, viewer))

    with stubbed(ctx) as stub:
        stub.add_response("delete_access_entry", {}, {"clusterName": "dev", "principalArn": admin})
        stub.add_client_error("delete_access_entry", "ResourceNotFoundException", http_status_code=404)
        ENTRY.delete(ctx, found)
        ENTRY.delete(ctx, found)  # again: no-op


# -- EksAddon --------------------------------------------------------------------------------------------
def test_eks_addon_lifecycle(ctx: AwsContext, cluster: Observed) -> None:
    """moto has no add-ons: the EKS calls go through the Stubber. coredns without nodes is DEGRADED: the
    create accepts it (it heals once the node groups join)."""
    assert ADDON.list_owned(ctx) == []  # moto: the API is missing (404) -> nothing
    want = Desired("EksAddon", "coredns", {"cluster_name": "dev", "addon_name": "coredns",
                                           "addon_version": "v1.11.1-eksbuild.1", "service_account_role_arn": None},
                   tags=tags_for("EksAddon", "coredns"))
    addon = {"addonName": "coredns", "clusterName": "dev", "addonVersion": "v1.11.1-eksbuild.1", "tags": want.tags,
             "addonArn": "arn:aws:eks:us-east-1:123456789012:addon/dev/coredns/x"}
    with stubbed(ctx) as stub:
        stub.add_response("create_addon", {"addon": {**addon, "status": "CREATING"}},
                          {"clusterName": "dev", "addonName": "coredns", "addonVersion": "v1.11.1-eksbuild.1",
                           "resolveConflicts": "OVERWRITE", "tags": want.tags,
                           "clientRequestToken": ctx.client_token("EksAddon/coredns")})
        stub.add_response("describe_addon", {"addon": {**addon, "status": "CREATING"}})
        stub.add_response("describe_addon", {"addon": {**addon, "status": "DEGRADED"}})
        created = ADDON.create(ctx, want)
    assert created.id == "dev/coredns" and created.state == "DEGRADED"

    with stubbed(ctx) as stub:
        stub.add_response("describe_cluster", {"cluster": {"name": "dev", "status": "ACTIVE"}})
        stub.add_response("list_addons", {"addons": ["coredns"]})
        stub.add_response("describe_addon", {"addon": {**addon, "status": "ACTIVE"}})
        [found] = listed(ctx, ADDON)
    assert found.logical_key == "EksAddon/coredns" and ADDON.diff(found, want) == {}

    newer = Desired("EksAddon", "coredns", {**want.props, "addon_version": "v1.11.3-eksbuild.2"}, tags=want.tags)
    diff = ADDON.diff(found, newer)
    assert set(diff) == {"addon_version"}
    with stubbed(ctx) as stub:
        stub.add_response("update_addon", {"update": {"id": "u-4", "status": "InProgress"}})
        stub.add_response("describe_update", {"update": {"id": "u-4", "status": "Successful"}},
                          {"name": "dev", "updateId": "u-4", "addonName": "coredns"})
        assert ADDON.update(ctx, found, newer, diff).fields["addon_version"] == "v1.11.3-eksbuild.2"

    with stubbed(ctx) as stub:
        stub.add_response("delete_addon", {"addon": {**addon, "status": "DELETING"}})
        stub.add_response("describe_addon", {"addon": {**addon, "status": "DELETING"}})
        stub.add_client_error("describe_addon", "ResourceNotFoundException", http_status_code=404)
        ADDON.delete(ctx, found)
        stub.add_client_error("delete_addon", "ResourceNotFoundException", http_status_code=404)
        stub.add_client_error("describe_addon", "ResourceNotFoundException", http_status_code=404)
        ADDON.delete(ctx, found)  # again: no-op


def test_eks_addon_create_failure_names_health_issues(ctx: AwsContext) -> None:
    want = Desired("EksAddon", "vpc-cni", {"cluster_name": "dev", "addon_name": "vpc-cni"},
                   tags=tags_for("EksAddon", "vpc-cni"))
    failed = {"addonName": "vpc-cni", "clusterName": "dev", "status": "CREATE_FAILED",
              "health": {"issues": [{"code": "InsufficientNumberOfReplicas", "message": "no nodes"}]}}
    with stubbed(ctx) as stub:
        stub.add_response("create_addon", {"addon": {**failed, "status": "CREATING"}})
        stub.add_response("describe_addon", {"addon": failed})
        with pytest.raises(AwsCallError, match=r"CREATE_FAILED.*InsufficientNumberOfReplicas: no nodes"):
            ADDON.create(ctx, want)


# -- EksNodegroup ----------------------------------------------------------------------------------------
def test_eks_nodegroup_lifecycle(ctx: AwsContext, net: dict[str, Any], cluster: Observed) -> None:
    node_role = ctx.call("iam", "create_role", RoleName="dev-nodes", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    template = ctx.call("ec2", "create_launch_template", LaunchTemplateName="dev-general",
                        LaunchTemplateData={"MetadataOptions": {"HttpTokens": "required"}})["LaunchTemplate"]
    lt_id = template["LaunchTemplateId"]
    want = Desired("EksNodegroup", "general", {
        "cluster_name": "dev", "nodegroup_name": "general", "node_role_arn": node_role,
        "subnet_ids": net["subnets"], "launch_template": {"id": lt_id, "version": 1},
        "scaling": {"min": 1, "max": 5, "desired": 2}, "labels": {"pool": "general"},
        "taints": [{"key": "dedicated", "value": "general", "effect": "NO_SCHEDULE"}],
        "capacity_type": "ON_DEMAND", "instance_types": ["m5.large"]}, tags=tags_for("EksNodegroup", "general"))
    created = NODES.create(ctx, want)
    described = ctx.call("eks", "describe_nodegroup", clusterName="dev", nodegroupName="general")["nodegroup"]
    assert described["tags"] == want.tags and described["launchTemplate"]["id"] == lt_id
    assert created.id == "dev/general" and created.state == "ACTIVE"

    [found] = listed(ctx, NODES)
    assert found.logical_key == "EksNodegroup/general" and NODES.diff(found, want) == {}
    autoscaled = {**found.fields, "scaling": {"min": 1, "max": 5, "desired": 4}}
    assert NODES.diff(Observed(found.kind, found.id, autoscaled, found.tags, found.state, found.attrs), want) == {}

    # Labels, taints, min/max: one UpdateNodegroupConfig (moto answers a finished update).
    changed = Desired("EksNodegroup", "general", {**want.props, "labels": {"pool": "big"}, "taints": [],
                                                  "scaling": {"min": 2, "max": 6, "desired": 2}}, tags=want.tags)
    diff = NODES.diff(found, changed)
    assert set(diff) == {"labels", "taints", "scaling"}
    with ctx.counting() as log:
        NODES.update(ctx, found, changed, diff)
    assert log.snapshot()[("eks", "UpdateNodegroupConfig")] == 1
    [found] = listed(ctx, NODES)
    assert found.fields["labels"] == {"pool": "big"} and found.fields["taints"] == []
    assert NODES.diff(found, changed) == {}

    # A new launch template version: UpdateNodegroupVersion (missing in moto: Stubber).
    rolled = Desired("EksNodegroup", "general", {**changed.props, "launch_template": {"id": lt_id, "version": 2}},
                     tags=want.tags)
    diff = NODES.diff(found, rolled)
    assert set(diff) == {"launch_template"}
    with stubbed(ctx) as stub:
        stub.add_response("update_nodegroup_version", {"update": {"id": "u-5", "status": "InProgress"}},
                          {"clusterName": "dev", "nodegroupName": "general",
                           "launchTemplate": {"id": lt_id, "version": "2"},
                           "clientRequestToken": ctx.client_token("EksNodegroup/general/lt-2")})
        stub.add_response("describe_update", {"update": {"id": "u-5", "status": "Successful"}},
                          {"name": "dev", "updateId": "u-5", "nodegroupName": "general"})
        NODES.update(ctx, found, rolled, diff)
    other = Desired("EksNodegroup", "general", {**rolled.props, "launch_template": {"id": "lt-other", "version": 1}},
                    tags=want.tags)
    assert "launch_template_id" in NODES.diff(found, other) and "launch_template_id" in NODES.refuse_change

    NODES.delete(ctx, found)
    assert NODES.list_owned(ctx) == []
    NODES.delete(ctx, found)  # again: no-op
    CLUSTER.delete(ctx, cluster)  # the node group is gone: the cluster can go
    assert NODES.list_owned(ctx) == []  # no cluster: nothing


def test_eks_nodegroup_create_failure_names_health_issues(ctx: AwsContext) -> None:
    want = Desired("EksNodegroup", "general", {"cluster_name": "dev", "nodegroup_name": "general",
                                               "node_role_arn": "arn:aws:iam::123456789012:role/n",
                                               "subnet_ids": ["subnet-1"], "scaling": {"min": 1, "max": 2}},
                   tags=tags_for("EksNodegroup", "general"))
    group = {"nodegroupName": "general", "clusterName": "dev", "status": "CREATE_FAILED",
             "health": {"issues": [{"code": "Ec2SubnetInvalidConfiguration", "message": "no public IP",
                                    "resourceIds": ["subnet-1"]}]}}
    with stubbed(ctx) as stub:
        stub.add_response("create_nodegroup", {"nodegroup": {**group, "status": "CREATING"}})
        stub.add_response("describe_nodegroup", {"nodegroup": group})
        with pytest.raises(AwsCallError, match=r"Ec2SubnetInvalidConfiguration: no public IP \(subnet-1\)"):
            NODES.create(ctx, want)


def test_eks_nodegroup_rollout_settings_and_a_blocked_drain(ctx: AwsContext, net: dict[str, Any],
                                                             cluster: Observed) -> None:
    """`rollout.maxUnavailable` of a managed group is EKS's updateConfig (a count or a percentage), sent on
    create and through UpdateNodegroupConfig when it changes; an update that EKS could not finish because a
    PodDisruptionBudget refused an eviction (PodEvictionFailure) says what to do. moto lacks
    UpdateNodegroupVersion and DescribeUpdate (Stubber), and keeps no updateConfig (the test puts AWS's answer
    in the observed group)."""
    from kubeaws.resources.eks_nodegroup import update_config

    assert update_config(None) is None and update_config(2) == {"maxUnavailable": 2}
    assert update_config("25%") == {"maxUnavailablePercentage": 25}
    want = Desired("EksNodegroup", "general", {
        "cluster_name": "dev", "nodegroup_name": "general", "node_role_arn": "arn:aws:iam::123456789012:role/n",
        "subnet_ids": net["subnets"], "scaling": {"min": 1, "max": 2}, "update_config": {"maxUnavailable": 2}},
        tags=tags_for("EksNodegroup", "general"))
    recorder = CallRecorder()
    ctx.add_hook("before-call.eks", recorder)
    found = NODES.create(ctx, want)
    [(_, sent)] = [c for c in recorder.calls if c[0] == "CreateNodegroup"]
    assert json.loads(sent)["updateConfig"] == {"maxUnavailable": 2}  # rest-json: the body as sent
    # moto does not keep updateConfig (DescribeNodegroup answers none): compare with what AWS would answer.
    found = replace(found, fields={**found.fields, "update_config": {"maxUnavailable": 2}})
    assert NODES.diff(found, want) == {}
    changed = Desired("EksNodegroup", "general", {**want.props, "update_config": {"maxUnavailablePercentage": 50}},
                      tags=want.tags)
    assert set(NODES.diff(found, changed)) == {"update_config"}
    with stubbed(ctx) as stub:
        stub.add_response("update_nodegroup_config", {"update": {"id": "u-1", "status": "Successful"}},
                          {"clusterName": "dev", "nodegroupName": "general",
                           "updateConfig": {"maxUnavailablePercentage": 50}})
        NODES.update(ctx, found, changed, {"update_config": NODES.diff(found, changed)["update_config"]})

    rolled = Desired("EksNodegroup", "general", {**want.props, "launch_template": {"id": "lt-1", "version": 2}},
                     tags=want.tags)
    failed = {"id": "u-2", "status": "Failed", "type": "VersionUpdate", "errors": [
        {"errorCode": "PodEvictionFailure", "errorMessage": "Reached max retries while trying to evict pods from "
         "nodes in node group general", "resourceIds": ["ip-10-0-1-1.ec2.internal"]}]}
    with stubbed(ctx) as stub:
        stub.add_response("update_nodegroup_version", {"update": {"id": "u-2", "status": "InProgress"}})
        stub.add_response("describe_update", {"update": failed})
        with pytest.raises(KubeawsError, match=r"PodEvictionFailure.*PodDisruptionBudget refused.*--force"):
            NODES.update(ctx, found, rolled, {"launch_template": (None, {"id": "lt-1", "version": 2})})
