"""EKS on the local emulator: the emulator's EKS front (kubeaws.local.eks_front, in front of moto in the same server
process) serves what moto lacks, so examples/eks.yaml goes through plan, apply, status, re-plan and delete; the
front's access entries, access policies, add-ons and updates answer in AWS's shapes and error codes; an operation
no endpoint implements is one line in the CLI; the demo runs its own emulator and leaves the user's alone.

The cluster commands run in-process (CliRunner) against the test session's server (tests/moto_server.py: the one
`--local` starts: moto behind the front) through AWS_ENDPOINT_URL; `--local`'s own start/reuse is
tests/test_local.py's. Nothing here stands in for AWS except moto and the front themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner, Result

from kubeaws.cli.main import app
from kubeaws.local import emulator
from tests.conftest import EXAMPLES, REGION, REPO

EKS = EXAMPLES / "eks.yaml"
ACCOUNT = "123456789012"
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def both(result: Result) -> str:
    return result.stdout + (result.stderr or "")


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def make_cluster(endpoint: str, name: str, mode: str | None = "API", version: str = "1.31") -> dict[str, Any]:
    """A raw EKS cluster (its role and subnet made in moto); `mode` None sends no accessConfig."""
    iam, ec2 = client(endpoint, "iam"), client(endpoint, "ec2")
    role = iam.create_role(RoleName=f"{name}-eks-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    params: dict[str, Any] = {"name": name, "roleArn": role, "version": version,
                              "resourcesVpcConfig": {"subnetIds": [subnet]}}
    if mode:
        params["accessConfig"] = {"authenticationMode": mode}
    return dict(client(endpoint, "eks").create_cluster(**params)["cluster"])


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_eks_example_end_to_end(endpoint: str) -> None:
    """plan -> apply -> status -> re-plan (no changes) -> delete -> nothing left. The Kubernetes objects (the
    cluster-autoscaler's) are left out, said in a plan note, never failed; access entries and add-ons exist
    in between, the creator's untagged entry (made by EKS) is neither adopted nor deleted."""
    plan = invoke("plan", "-f", str(EKS))
    assert plan.exit_code == 0, both(plan)
    assert "cloud-only" in plan.stdout and "6 KubernetesObject(s) skipped" in plan.stdout
    assert "+ KubernetesObject" not in plan.stdout
    assert "+ AccessEntry/node" in plan.stdout and "+ EksAddon/coredns" in plan.stdout

    applied = invoke("apply", "-f", str(EKS), "--yes")
    assert applied.exit_code == 0, both(applied)
    assert "Apply complete" in applied.stdout and "failed" not in applied.stdout

    eks = client(endpoint, "eks")
    addons = eks.list_addons(clusterName="eks-demo")["addons"]
    assert sorted(addons) == ["aws-ebs-csi-driver", "coredns", "kube-proxy", "metrics-server", "vpc-cni"]
    assert {eks.describe_addon(clusterName="eks-demo", addonName=a)["addon"]["status"] for a in addons} == {"ACTIVE"}
    principals = eks.list_access_entries(clusterName="eks-demo")["accessEntries"]
    entries = {p: eks.describe_access_entry(clusterName="eks-demo", principalArn=p)["accessEntry"] for p in principals}
    node = [e for e in entries.values() if e["type"] == "EC2_LINUX"]
    creator = [e for e in entries.values() if e["type"] == "STANDARD"]
    assert len(node) == 1 and node[0]["tags"]["kubeaws.io/cluster"] == "eks-demo"
    assert len(creator) == 1 and creator[0]["tags"] == {}
    assert eks.describe_cluster(name="eks-demo")["cluster"]["accessConfig"]["authenticationMode"] == "API"

    status = invoke("status", "-f", str(EKS))
    assert status.exit_code == 0, both(status)
    assert "in sync" in status.stdout

    again = invoke("plan", "-f", str(EKS))
    assert again.exit_code == 0, both(again)
    assert "No changes" in again.stdout and "cloud-only" in again.stdout

    deleted = invoke("delete", "-f", str(EKS), "--yes")
    assert deleted.exit_code == 0, both(deleted)
    gone = invoke("status", "-f", str(EKS))
    assert gone.exit_code == 0 and "No resources found" in gone.stdout, both(gone)
    assert eks.list_clusters()["clusters"] == []
    with pytest.raises(ClientError) as exc:  # the cluster took its access entries and add-ons with it
        eks.list_addons(clusterName="eks-demo")
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_access_entries_and_policies(endpoint: str) -> None:
    eks, iam = client(endpoint, "eks"), client(endpoint, "iam")
    make_cluster(endpoint, "cm", mode=None)
    make_cluster(endpoint, "api")
    node = iam.create_role(RoleName="node", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    admin = iam.create_role(RoleName="admin", Path="/team/", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    admin_policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    view_policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"

    def refused(code: str, status: int, call: Any, **params: Any) -> str:
        with pytest.raises(ClientError) as exc:
            call(**params)
        assert error_of(exc) == (code, status), exc.value.response
        return str(exc.value.response["Error"]["Message"])

    # The creator's entry, made by EKS: untagged, cluster admin.
    creator = f"arn:aws:iam::{ACCOUNT}:user/moto"
    assert eks.list_access_entries(clusterName="api")["accessEntries"] == [creator]
    assert eks.describe_access_entry(clusterName="api", principalArn=creator)["accessEntry"]["tags"] == {}
    assert [p["policyArn"] for p in eks.list_associated_access_policies(
        clusterName="api", principalArn=creator)["associatedAccessPolicies"]] == [admin_policy]

    refused("InvalidRequestException", 400, eks.create_access_entry, clusterName="cm", principalArn=node)
    assert eks.list_access_entries(clusterName="cm")["accessEntries"] == []  # CONFIG_MAP: no creator entry
    refused("ResourceNotFoundException", 404, eks.create_access_entry, clusterName="nope", principalArn=node)
    refused("InvalidParameterException", 400, eks.create_access_entry, clusterName="api",
            principalArn=f"arn:aws:iam::{ACCOUNT}:role/missing")
    refused("InvalidParameterException", 400, eks.create_access_entry, clusterName="api", principalArn=node,
            type="EC2_LINUX", kubernetesGroups=["ops"])

    made = eks.create_access_entry(clusterName="api", principalArn=node, type="EC2_LINUX", tags={"a": "1"},
                                   clientRequestToken="t-1")["accessEntry"]
    assert made["username"] == "system:node:{{EC2PrivateDNSName}}" and made["kubernetesGroups"] == []
    assert made["accessEntryArn"].startswith(f"arn:aws:eks:{REGION}:{ACCOUNT}:access-entry/api/role/{ACCOUNT}/node/")
    assert {"createdAt", "modifiedAt", "tags", "type", "clusterName", "principalArn"} <= set(made)
    again = eks.create_access_entry(clusterName="api", principalArn=node, type="EC2_LINUX", clientRequestToken="t-1")
    assert again["accessEntry"]["accessEntryArn"] == made["accessEntryArn"]  # same token: the first answer
    assert "already in use" in refused("ResourceInUseException", 409, eks.create_access_entry, clusterName="api",
                                       principalArn=node, type="EC2_LINUX")
    refused("InvalidParameterException", 400, eks.associate_access_policy, clusterName="api", principalArn=node,
            policyArn=view_policy, accessScope={"type": "cluster"})

    std = eks.create_access_entry(clusterName="api", principalArn=admin, kubernetesGroups=["ops"])["accessEntry"]
    assert std["type"] == "STANDARD"
    assert std["username"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/{{{{SessionName}}}}"
    refused("InvalidParameterException", 400, eks.associate_access_policy, clusterName="api", principalArn=admin,
            policyArn="arn:aws:eks::aws:cluster-access-policy/Nope", accessScope={"type": "cluster"})
    refused("InvalidParameterException", 400, eks.associate_access_policy, clusterName="api", principalArn=admin,
            policyArn=view_policy, accessScope={"type": "namespace"})
    answer = eks.associate_access_policy(clusterName="api", principalArn=admin, policyArn=view_policy,
                                         accessScope={"type": "cluster"})
    assert answer["associatedAccessPolicy"]["accessScope"] == {"type": "cluster", "namespaces": []}
    eks.associate_access_policy(clusterName="api", principalArn=admin, policyArn=view_policy,
                                accessScope={"type": "namespace", "namespaces": ["b", "a"]})  # a new scope
    held = eks.list_associated_access_policies(clusterName="api", principalArn=admin)["associatedAccessPolicies"]
    assert [(p["policyArn"], p["accessScope"]) for p in held] == [
        (view_policy, {"type": "namespace", "namespaces": ["a", "b"]})]
    assert eks.list_access_entries(clusterName="api", associatedPolicyArn=view_policy)["accessEntries"] == [admin]
    first = eks.list_access_entries(clusterName="api", maxResults=1)
    assert len(first["accessEntries"]) == 1 and first["nextToken"]
    rest = eks.list_access_entries(clusterName="api", maxResults=2, nextToken=first["nextToken"])
    assert first["accessEntries"] + rest["accessEntries"] == sorted([creator, node, admin])
    assert eks.update_access_entry(clusterName="api", principalArn=admin,
                                   kubernetesGroups=["dev"])["accessEntry"]["kubernetesGroups"] == ["dev"]

    eks.tag_resource(resourceArn=made["accessEntryArn"], tags={"b": "2"})
    eks.untag_resource(resourceArn=made["accessEntryArn"], tagKeys=["a"])
    assert eks.list_tags_for_resource(resourceArn=made["accessEntryArn"])["tags"] == {"b": "2"}

    eks.disassociate_access_policy(clusterName="api", principalArn=admin, policyArn=view_policy)
    refused("ResourceNotFoundException", 404, eks.disassociate_access_policy, clusterName="api",
            principalArn=admin, policyArn=view_policy)
    eks.delete_access_entry(clusterName="api", principalArn=node)
    refused("ResourceNotFoundException", 404, eks.describe_access_entry, clusterName="api", principalArn=node)
    refused("ResourceNotFoundException", 404, eks.delete_access_entry, clusterName="api", principalArn=node)
    assert admin_policy in [p["arn"] for p in eks.list_access_policies()["accessPolicies"]]


def test_not_found_is_aws_json(endpoint: str) -> None:
    """The raw answer: HTTP 404, x-amzn-ErrorType, a JSON body with the message (what botocore parses)."""
    make_cluster(endpoint, "api")
    eks = client(endpoint, "eks")
    seen: dict[str, Any] = {}
    eks.meta.events.register("after-call", lambda http_response, **_: seen.update(r=http_response))
    with pytest.raises(ClientError):
        eks.describe_addon(clusterName="api", addonName="coredns")
    raw = seen["r"]
    assert raw.status_code == 404 and raw.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert raw.headers["content-type"] == "application/json"
    assert json.loads(raw.content)["message"] == "No addon: coredns found in cluster: api"


def test_addons_versions_and_updates(endpoint: str) -> None:
    eks = client(endpoint, "eks")
    make_cluster(endpoint, "c", version="1.31")
    role = client(endpoint, "iam").create_role(RoleName="csi", AssumeRolePolicyDocument="{}")["Role"]["Arn"]

    versions = eks.describe_addon_versions(addonName="kube-proxy", kubernetesVersion="1.31")["addons"]
    assert [v["addonVersion"] for v in versions[0]["addonVersions"]] == ["v1.31.0-eksbuild.1"]
    assert versions[0]["addonVersions"][0]["compatibilities"] == [
        {"clusterVersion": "1.31", "platformVersions": ["*"], "defaultVersion": True}]
    every = {a["addonName"] for a in eks.describe_addon_versions(kubernetesVersion="1.31")["addons"]}
    assert {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "metrics-server"} <= every
    assert eks.describe_addon_versions(addonName="nope")["addons"] == []

    for params in ({"addonName": "nope"}, {"addonName": "coredns", "addonVersion": "v0.0.1-eksbuild.1"},
                   {"addonName": "kube-proxy", "addonVersion": "v1.30.0-eksbuild.1"}):
        with pytest.raises(ClientError) as exc:
            eks.create_addon(clusterName="c", **params)
        assert error_of(exc) == ("InvalidParameterException", 400), params
    with pytest.raises(ClientError) as exc:
        eks.create_addon(clusterName="missing", addonName="coredns")
    assert error_of(exc) == ("ResourceNotFoundException", 404)

    made = eks.create_addon(clusterName="c", addonName="aws-ebs-csi-driver", serviceAccountRoleArn=role,
                            resolveConflicts="OVERWRITE", tags={"k": "v"}, clientRequestToken="t")["addon"]
    assert made["status"] == "CREATING" and made["addonVersion"] == "v1.38.1-eksbuild.1"
    assert made["addonArn"].startswith(f"arn:aws:eks:{REGION}:{ACCOUNT}:addon/c/aws-ebs-csi-driver/")
    described = eks.describe_addon(clusterName="c", addonName="aws-ebs-csi-driver")["addon"]
    assert described["status"] == "ACTIVE" and described["health"] == {"issues": []}
    assert described["serviceAccountRoleArn"] == role and described["tags"] == {"k": "v"}
    assert eks.create_addon(clusterName="c", addonName="aws-ebs-csi-driver", clientRequestToken="t")["addon"][
        "addonArn"] == made["addonArn"]
    with pytest.raises(ClientError) as exc:
        eks.create_addon(clusterName="c", addonName="aws-ebs-csi-driver")
    assert error_of(exc) == ("ResourceInUseException", 409)

    update = eks.update_addon(clusterName="c", addonName="aws-ebs-csi-driver", addonVersion="v1.37.0-eksbuild.1",
                              resolveConflicts="OVERWRITE")["update"]
    assert update["status"] == "InProgress" and update["type"] == "AddonUpdate"
    done = eks.describe_update(name="c", updateId=update["id"], addonName="aws-ebs-csi-driver")["update"]
    assert done["status"] == "Successful"
    with pytest.raises(ClientError) as exc:  # an add-on's update is found only with its add-on's name
        eks.describe_update(name="c", updateId=update["id"])
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    assert eks.describe_addon(clusterName="c", addonName="aws-ebs-csi-driver")["addon"]["addonVersion"] == \
        "v1.37.0-eksbuild.1"

    assert eks.delete_addon(clusterName="c", addonName="aws-ebs-csi-driver")["addon"]["status"] == "DELETING"
    with pytest.raises(ClientError) as exc:
        eks.describe_addon(clusterName="c", addonName="aws-ebs-csi-driver")
    assert error_of(exc) == ("ResourceNotFoundException", 404)

    eks.create_addon(clusterName="c", addonName="coredns")
    eks.delete_cluster(name="c")
    make_cluster(endpoint, "c")
    assert eks.list_addons(clusterName="c")["addons"] == []  # gone with the first cluster of that name


def test_cluster_updates_through_the_front(endpoint: str) -> None:
    """What kubeaws' EksCluster / EksNodegroup updates call and moto lacks or half-does: the authentication
    mode moves forward only, one minor version at a time, encryption once; each answer is an update that
    DescribeUpdate finds Successful. Each cluster has its own OIDC issuer."""
    eks = client(endpoint, "eks")
    first = make_cluster(endpoint, "a", mode="CONFIG_MAP")
    other = make_cluster(endpoint, "b")
    assert first["identity"]["oidc"]["issuer"] != other["identity"]["oidc"]["issuer"]

    moved = eks.update_cluster_config(name="a", accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})["update"]
    assert eks.describe_update(name="a", updateId=moved["id"])["update"]["status"] == "Successful"
    assert eks.describe_cluster(name="a")["cluster"]["accessConfig"]["authenticationMode"] == "API_AND_CONFIG_MAP"
    for call, params in ((eks.update_cluster_config, {"accessConfig": {"authenticationMode": "CONFIG_MAP"}}),
                         (eks.update_cluster_version, {"version": "1.33"}),
                         (eks.update_cluster_version, {"version": "1.31"})):
        with pytest.raises(ClientError) as exc:
            call(name="a", **params)
        assert error_of(exc) == ("InvalidParameterException", 400), params
    upgrade = eks.update_cluster_version(name="a", version="1.32")["update"]
    assert upgrade["type"] == "VersionUpdate" and eks.describe_cluster(name="a")["cluster"]["version"] == "1.32"
    assert upgrade["id"] in eks.list_updates(name="a")["updateIds"]

    key = "arn:aws:kms:us-east-1:123456789012:key/x"
    config = [{"resources": ["secrets"], "provider": {"keyArn": key}}]
    eks.associate_encryption_config(clusterName="a", encryptionConfig=config)
    assert eks.describe_cluster(name="a")["cluster"]["encryptionConfig"][0]["provider"]["keyArn"] == key
    with pytest.raises(ClientError) as exc:
        eks.associate_encryption_config(clusterName="a", encryptionConfig=config)
    assert error_of(exc) == ("InvalidRequestException", 400)


def test_an_operation_no_endpoint_implements_is_one_line(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto answers an EKS operation that neither it nor the front implements with an HTML 404 page; the CLI
    says one line naming it (here kubeaws' EKS status is made to call ListInsights, which kubeaws never calls)."""
    from kubeaws.resources.eks_cluster import EksCluster

    monkeypatch.setattr(EksCluster, "list_owned", lambda self, ctx: ctx.call("eks", "list_insights",
                                                                              clusterName=ctx.cluster))
    result = invoke("status", "-f", str(EKS))
    out = both(result)
    assert result.exit_code != 0
    assert "<html" not in out.lower() and "<!doctype" not in out.lower()
    lines = [line for line in out.splitlines() if "ListInsights" in line]
    assert len(lines) == 1 and "eks ListInsights: not implemented by the endpoint (HTTP 404)" in lines[0], out


STAND_IN = """#!/usr/bin/env bash
# kubeaws for the demo test: `local ...` is the real command; cluster commands answer as after a clean run.
echo "$KUBEAWS_HOME|$KUBEAWS_LOCAL_PORT|$*" >> "$DEMO_CALLS"
case "$1" in
  local)
    if [ "$2" = stop ]; then cp "$KUBEAWS_HOME/local.json" "$DEMO_CALLS.emulator" || true; fi
    exec "$REAL_KUBEAWS" "$@" ;;
  plan) echo "No changes: the cluster matches the spec." ;;
  status) echo 'No resources found for cluster "x".' ;;
  *) echo "ok" ;;
esac
"""


def test_demo_runs_the_eks_example_and_leaves_the_users_emulator_alone(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The user runs an emulator (their KUBEAWS_HOME, their port); examples/demo.sh starts its own (its own home,
    a free port), stops only that one, and removes its home; the user's still runs, still holds what it held,
    and its state file is unchanged. Cluster commands are answered by a stand-in (the lifecycle itself is
    test_eks_example_end_to_end's): the real `kubeaws local` runs."""
    user_home = tmp_path / "user"
    monkeypatch.setenv("KUBEAWS_HOME", str(user_home))
    monkeypatch.setenv("KUBEAWS_LOCAL_PORT", "0")
    url = emulator.ensure_running()
    try:
        state_before = (user_home / "local.json").read_text()
        s3 = client(url, "s3")
        s3.create_bucket(Bucket="users-bucket")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubeaws").write_text(STAND_IN)
        (bin_dir / "kubeaws").chmod(0o755)
        calls = tmp_path / "calls"
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DEMO_CALLS": str(calls),
               "REAL_KUBEAWS": str(Path(sys.executable).parent / "kubeaws"), "AWS_ENDPOINT_URL": url,
               "TMPDIR": str(tmp_path)}
        proc = subprocess.run(["bash", str(REPO / "examples" / "demo.sh")], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = [line.split("|", 2) for line in calls.read_text().splitlines()]
        homes = {home for home, _, _ in lines}
        assert len(homes) == 1 and str(user_home) not in homes and not Path(homes.pop()).exists()
        assert {port for _, port, _ in lines} == {"0"}
        specs = [args.split("-f ", 1)[1].split()[0] for _, _, args in lines if args.startswith("apply ")]
        assert specs == ["examples/dev.yaml", "examples/ha.yaml", "examples/eks.yaml"]
        demo = json.loads((tmp_path / "calls.emulator").read_text())
        assert demo["url"] != url and not emulator._alive(int(demo["pid"]))

        assert (user_home / "local.json").read_text() == state_before
        assert emulator.running() is not None
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["users-bucket"]
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=5) as resp:
            assert resp.status == 200
    finally:
        emulator.stop()
