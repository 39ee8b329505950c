"""Mode kubeadm end to end against the moto server: the HA shape (NLB, one Auto Scaling group and one etcd
volume per control-plane member, launch templates, node groups, IAM, the state bucket and what nodes read
from it), the single private member behind a stable ENI, the PKI never regenerated, brought IAM roles, and
delete leaving nothing behind.

What moto cannot show: nothing boots. The user data is never run, kubeadm never initialises a control plane,
instances launched by the Auto Scaling groups are inert records (no API server answers the /readyz health
check, no etcd volume gets attached, nobody writes `join/token`). moto adaptations: resources are ready at
once, the plan uses moto's stand-in image instead of the public Ubuntu AMI parameter (docs/kubeadm.md), and
the emulator's server judges only the bucket-policy statements it can (the bucket keeps the whole policy,
kubeaws.local.moto_server). These tests check what kubeaws asks AWS for.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Iterable
from typing import Any

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine.render import plan_text
from kubeaws.engine.types import ApplyResult
from kubeaws.model.state import state_bucket_name
from kubeaws.spec.models import ClusterSpec
from tests.conftest import REGION
from tests.helpers import make_spec

CLUSTER = "dev"
AZS = ["us-east-1a", "us-east-1b", "us-east-1c"]
SPOT_GROUP = {
    "name": "dsp", "instanceTypes": ["m5.large", "m5a.large"], "capacity": "spot",
    "labels": {"team": "dsp"}, "taints": [{"key": "team", "value": "dsp", "effect": "NoSchedule"}],
    "extraVolumes": [{"size": 100}], "tags": {"team": "dsp"},
}
GENERAL_GROUP = {"name": "general", "instanceTypes": ["m5.large"]}
TOKEN_PATTERN = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
MEMBER_TAG = "kubeaws.io/control-plane-member"
ETCD_TAG = "kubeaws.io/etcd-member"


def ha_spec() -> ClusterSpec:
    return make_spec(controlPlane={"count": 3}, network={"availabilityZones": AZS},
                     nodeGroups=[GENERAL_GROUP, SPOT_GROUP])


def apply_ok(spec: ClusterSpec, ctx: AwsContext) -> ApplyResult:
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    return result


def bucket(ctx: AwsContext) -> str:
    return state_bucket_name(CLUSTER, ctx.account_id(), REGION)


def read_object(ctx: AwsContext, key: str) -> bytes:
    return bytes(ctx.client("s3").get_object(Bucket=bucket(ctx), Key=key)["Body"].read())


def cluster_info(ctx: AwsContext) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(read_object(ctx, "cluster/cluster.json"))
    return info


def tag_map(tags: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def by_resource_tag(items: Iterable[dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    """Items keyed by their `kubeaws.io/resource` tag, those starting with `prefix`."""
    out = {}
    for item in items:
        key = tag_map(item.get("Tags", [])).get("kubeaws.io/resource", "")
        if key.startswith(prefix):
            out[key] = item
    return out


def cluster_asgs(ctx: AwsContext) -> dict[str, dict[str, Any]]:
    groups = ctx.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: g for g in groups if g["AutoScalingGroupName"].startswith(f"{CLUSTER}-")}


def live_volumes(ctx: AwsContext, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    volumes = ctx.client("ec2").describe_volumes(Filters=filters)["Volumes"]
    return [v for v in volumes if v["State"] not in ("deleting", "deleted")]


def cluster_roles(ctx: AwsContext) -> list[dict[str, Any]]:
    return list(ctx.client("iam").list_roles(PathPrefix=f"/kubeaws/{CLUSTER}/")["Roles"])


def test_ha_apply(ctx: AwsContext) -> None:
    """Three members across three AZs behind an internal NLB, a spot node group with a raw extra volume,
    IAM, the state bucket and cluster.json. Adapted to moto: the NLB never health-checks anything (no API
    server runs), the Auto Scaling groups' instances are records, and the etcd volumes stay `available`
    (attaching them is the boot script's job)."""
    spec = ha_spec()
    apply_ok(spec, ctx)
    ec2, elb = ctx.client("ec2"), ctx.client("elbv2")
    owned = [{"Name": "tag:kubeaws.io/cluster", "Values": [CLUSTER]}]

    # -- API endpoint: internal NLB with the lb security group, TCP 6443 target group, listener --
    lbs = elb.describe_load_balancers()["LoadBalancers"]
    assert len(lbs) == 1
    lb = lbs[0]
    assert lb["Type"] == "network" and lb["Scheme"] == "internal"
    groups = by_resource_tag(ec2.describe_security_groups(Filters=owned)["SecurityGroups"], "SecurityGroup/")
    assert lb["SecurityGroups"] == [groups["SecurityGroup/lb"]["GroupId"]]
    tgs = elb.describe_target_groups()["TargetGroups"]
    assert len(tgs) == 1
    tg = tgs[0]
    assert (tg["Protocol"], tg["Port"], tg["TargetType"]) == ("TCP", 6443, "instance")
    assert (tg["HealthCheckProtocol"], tg["HealthCheckPath"], str(tg["HealthCheckPort"])) == (
        "HTTPS", "/readyz", "6443")
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert len(listeners) == 1
    listener = listeners[0]
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 6443)
    assert [a["TargetGroupArn"] for a in listener["DefaultActions"] if a["Type"] == "forward"] == [
        tg["TargetGroupArn"]]

    # -- control plane: one ASG of size 1 per member, each in one private subnet of its own AZ --
    subnets = by_resource_tag(ec2.describe_subnets(Filters=owned)["Subnets"], "Subnet/")
    private = {s["SubnetId"]: s["AvailabilityZone"] for key, s in subnets.items() if key.startswith("Subnet/private")}
    assert sorted(private.values()) == AZS
    asgs = cluster_asgs(ctx)
    member_azs = []
    for i in range(3):
        group = asgs[f"{CLUSTER}-control-plane-{i}"]
        assert (group["MinSize"], group["MaxSize"]) == (1, 1)
        zones = group["VPCZoneIdentifier"].split(",")
        assert len(zones) == 1 and zones[0] in private
        member_azs.append(private[zones[0]])
        assert group["TargetGroupARNs"] == [tg["TargetGroupArn"]]
        member = [t for t in group["Tags"] if t["Key"] == MEMBER_TAG]
        assert [(t["Value"], t["PropagateAtLaunch"]) for t in member] == [(str(i), True)]
    assert sorted(member_azs) == AZS

    # -- etcd volumes: encrypted, one per AZ, tagged with their member --
    etcd = live_volumes(ctx, [*owned, {"Name": "tag-key", "Values": [ETCD_TAG]}])
    assert len(etcd) == 3
    assert all(v["Encrypted"] for v in etcd)
    assert {tag_map(v["Tags"])[ETCD_TAG]: v["AvailabilityZone"] for v in etcd} == {
        str(i): member_azs[i] for i in range(3)}

    # -- launch templates: IMDSv2, encrypted volumes, the raw extra volume, user data without secrets --
    templates = {t["LaunchTemplateName"]: t for t in ec2.describe_launch_templates()["LaunchTemplates"]}
    assert set(templates) == {f"{CLUSTER}-control-plane", f"{CLUSTER}-ng-general", f"{CLUSTER}-ng-dsp"}
    for name, template in templates.items():
        version = ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"])["LaunchTemplateVersions"][0]
        data = version["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required", name
        devices = data["BlockDeviceMappings"]
        assert devices and all(d["Ebs"]["Encrypted"] for d in devices), name
        if name == f"{CLUSTER}-ng-dsp":
            extra = [d for d in devices if d["DeviceName"] == "/dev/sdf"]
            assert [d["Ebs"]["VolumeSize"] for d in extra] == [100]
        raw = base64.b64decode(data["UserData"])
        assert len(raw) <= 16384, (name, len(raw))
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()  # cloud-init gunzips
        assert text.startswith("#cloud-config"), name
        assert "PRIVATE KEY" not in text, name
        assert not TOKEN_PATTERN.search(text), (name, TOKEN_PATTERN.search(text))

    # -- node group ASG tags: cluster-autoscaler discovery and node templates; team tag propagates --
    dsp = tag_map(asgs[f"{CLUSTER}-dsp"]["Tags"])
    assert dsp["k8s.io/cluster-autoscaler/enabled"] == "true"
    assert dsp[f"k8s.io/cluster-autoscaler/{CLUSTER}"] == "owned"
    assert dsp["k8s.io/cluster-autoscaler/node-template/label/team"] == "dsp"
    assert dsp["k8s.io/cluster-autoscaler/node-template/taint/team"] == "dsp:NoSchedule"
    team = [t for t in asgs[f"{CLUSTER}-dsp"]["Tags"] if t["Key"] == "team"]
    assert [(t["Value"], t["PropagateAtLaunch"]) for t in team] == [("dsp", True)]
    mixed = asgs[f"{CLUSTER}-dsp"]["MixedInstancesPolicy"]
    assert [o["InstanceType"] for o in mixed["LaunchTemplate"]["Overrides"]] == ["m5.large", "m5a.large"]

    # -- IAM: both roles under the cluster path; nodes cannot write to the bucket --
    iam = ctx.client("iam")
    roles = {r["RoleName"] for r in cluster_roles(ctx)}
    assert roles == {f"{CLUSTER}-control-plane", f"{CLUSTER}-node"}
    node_policies = iam.list_role_policies(RoleName=f"{CLUSTER}-node")["PolicyNames"]
    assert node_policies
    for policy_name in node_policies:
        document = iam.get_role_policy(RoleName=f"{CLUSTER}-node", PolicyName=policy_name)["PolicyDocument"]
        assert "s3:PutObject" not in json.dumps(document)

    # -- the state bucket --
    s3, name = ctx.client("s3"), bucket(ctx)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] == ["AES256"]
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert set(block) == {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"}
    assert all(block.values())
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert {"pki/ca.crt", "cluster/cluster.json"} <= keys
    info = cluster_info(ctx)
    assert info["endpoint"] == lb["DNSName"]
    assert info["caCertHash"].startswith("sha256:")
    assert info["members"] == 3 and info["port"] == 6443

    # -- idempotence --
    plan = api.plan(spec, ctx)
    assert plan.pending == 0, plan_text(plan)
    with ctx.counting() as log:
        again = api.apply(spec, ctx)
    assert again.ok and not again.events
    assert log.mutating() == 0, log.snapshot()


def test_single_private_member_uses_a_stable_interface(ctx: AwsContext) -> None:
    """One member with a private endpoint: no load balancer, the API address is a standalone ENI's private
    IP. Adapted to moto: nobody attaches the ENI (member 0's boot script would)."""
    apply_ok(make_spec(), ctx)
    enis = ctx.client("ec2").describe_network_interfaces(Filters=[
        {"Name": "tag:kubeaws.io/resource", "Values": ["NetworkInterface/api"]},
        {"Name": "tag:kubeaws.io/cluster", "Values": [CLUSTER]}])["NetworkInterfaces"]
    assert len(enis) == 1
    assert cluster_info(ctx)["endpoint"] == enis[0]["PrivateIpAddress"]
    assert cluster_info(ctx)["members"] == 1
    assert ctx.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert ctx.client("elbv2").describe_target_groups()["TargetGroups"] == []
    group = cluster_asgs(ctx)[f"{CLUSTER}-control-plane-0"]
    assert group["TargetGroupARNs"] == []


def test_public_endpoint_admits_the_clusters_own_nat_addresses(ctx: AwsContext) -> None:
    """A public endpoint's name resolves to public addresses: nodes and members reach it through the NAT
    gateways, from their Elastic IPs. The load balancer's group admits exactly those (and the admin networks),
    not the world."""
    spec = make_spec(access={"apiEndpoint": "public"}, network={"natGateway": "perAZ"})
    apply_ok(spec, ctx)
    ec2 = ctx.client("ec2")
    nat_ips = {a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]}
    assert len(nat_ips) == 2
    (lb_group,) = [g for g in ec2.describe_security_groups()["SecurityGroups"]
                   if tag_map(g.get("Tags", [])).get("kubeaws.io/resource") == "SecurityGroup/lb"]
    cidrs = {r["CidrIp"] for p in lb_group["IpPermissions"] if p.get("FromPort") == 6443 for r in p["IpRanges"]}
    assert cidrs == {f"{ip}/32" for ip in nat_ips} | {"203.0.113.0/24"}
    assert api.plan(spec, ctx).summary().get("create", 0) == 0  # the rules converge: nothing planned again


def test_pki_is_never_regenerated(ctx: AwsContext) -> None:
    """The CA written by the first apply survives a later apply that changes the cluster (a new node group):
    regenerating it would orphan every node and kubeconfig. moto shows only the stored bytes."""
    apply_ok(make_spec(), ctx)
    ca, ca_key = read_object(ctx, "pki/ca.crt"), read_object(ctx, "pki/ca.key")
    info = cluster_info(ctx)
    wider = make_spec(nodeGroups=[GENERAL_GROUP, {"name": "extra", "instanceTypes": ["m5.large"]}])
    result = apply_ok(wider, ctx)
    assert any(e.key == "AutoScalingGroup/ng-extra" and e.action == "create" for e in result.done)
    assert read_object(ctx, "pki/ca.crt") == ca
    assert read_object(ctx, "pki/ca.key") == ca_key
    assert cluster_info(ctx)["caCertHash"] == info["caCertHash"]
    assert api.plan(wider, ctx).pending == 0


TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
OWN_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}]}


def test_brought_roles(ctx: AwsContext) -> None:
    """Roles created outside kubeaws (by name in `iam`): the instance profiles wrap them, the roles are only
    tagged `shared`, and delete leaves them as they were (policies intact) minus the tag. moto cannot show
    an instance actually assuming them."""
    iam = ctx.client("iam")
    brought = {"control-plane": "platform-cp", "node": "platform-node"}
    for role in brought.values():
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.put_role_policy(RoleName=role, PolicyName="own", PolicyDocument=json.dumps(OWN_POLICY))
    spec = make_spec(iam={"controlPlaneRole": brought["control-plane"], "nodeRole": brought["node"]})
    apply_ok(spec, ctx)

    profiles = {p["InstanceProfileName"]: p
                for p in iam.list_instance_profiles(PathPrefix=f"/kubeaws/{CLUSTER}/")["InstanceProfiles"]}
    assert {name: [r["RoleName"] for r in p["Roles"]] for name, p in profiles.items()} == {
        f"{CLUSTER}-control-plane": [brought["control-plane"]], f"{CLUSTER}-node": [brought["node"]]}
    assert cluster_roles(ctx) == []  # no owned role was created
    for role in brought.values():
        tags = tag_map(iam.list_role_tags(RoleName=role)["Tags"])
        assert tags.get(f"kubernetes.io/cluster/{CLUSTER}") == "shared", role
        assert "kubeaws.io/cluster" not in tags
    assert api.plan(spec, ctx).pending == 0

    result = api.delete(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert iam.list_instance_profiles(PathPrefix=f"/kubeaws/{CLUSTER}/")["InstanceProfiles"] == []
    for role in brought.values():
        assert iam.get_role(RoleName=role)["Role"]["RoleName"] == role
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["own"]
        assert iam.get_role_policy(RoleName=role, PolicyName="own")["PolicyDocument"] == OWN_POLICY
        assert f"kubernetes.io/cluster/{CLUSTER}" not in tag_map(iam.list_role_tags(RoleName=role)["Tags"])


def test_delete_leaves_nothing(ctx: AwsContext) -> None:
    """After an HA apply, delete removes every kubeadm resource, the versioned bucket included. Adapted to
    moto: the Auto Scaling groups' instances vanish with their group at once, and their root volumes (deleted
    on termination on AWS) are not counted: only volumes kubeaws created (tagged) are."""
    spec = ha_spec()
    apply_ok(spec, ctx)
    result = api.delete(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]

    assert cluster_asgs(ctx) == {}
    ec2 = ctx.client("ec2")
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    assert not [t for t in templates if t.startswith(f"{CLUSTER}-")]
    assert live_volumes(ctx, [{"Name": "tag:kubeaws.io/cluster", "Values": [CLUSTER]}]) == []
    assert ec2.describe_network_interfaces(Filters=[
        {"Name": "tag:kubeaws.io/cluster", "Values": [CLUSTER]}])["NetworkInterfaces"] == []
    elb = ctx.client("elbv2")
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    iam = ctx.client("iam")
    assert cluster_roles(ctx) == []
    assert iam.list_instance_profiles(PathPrefix=f"/kubeaws/{CLUSTER}/")["InstanceProfiles"] == []
    buckets = [b["Name"] for b in ctx.client("s3").list_buckets()["Buckets"]]
    assert not [b for b in buckets if b.startswith(f"kubeaws-{CLUSTER}-")]
    assert api.delete(spec, ctx).events == []
