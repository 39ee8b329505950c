"""A plan that says why and what rolls (engine.why, engine.why_userdata, engine.rollout_preview).

On the moto server: a cluster applied, then a spec with a new Kubernetes minor, another instance type, an
added addon and a bigger size.desired; the plan names each reason in words under its launch template, notes
the ignored size.desired, and ends with the roll (control-plane member first, then the node groups with the
spec's surge), in text and JSON. An unchanged spec makes no extra read; a roll left undone shows as a note and
a rollout without any change. moto adaptation: moto's instances carry `aws:ec2launchtemplate:version` as AWS
does (the inventory reads it), and moto's DescribeLaunchTemplateVersions also returns the template's own tags
as a `launch-template` TagSpecification, which the comparison ignores.

The pure parts (user data and template data comparisons, EKS entries, the rollout section) run without AWS.
"""

from __future__ import annotations

import base64
import gzip
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine import why, why_userdata
from kubeaws.engine.plan import PlanError, make_plan
from kubeaws.engine.render import plan_text, rollout_lines
from kubeaws.engine.rollout_preview import _eks_entries
from kubeaws.engine.types import Change, Plan
from kubeaws.resources.base import Desired, Observed
from tests.conftest import make_ctx
from tests.helpers import CallRecorder, make_spec

GENERAL = {"name": "general", "instanceTypes": ["m5.large"], "size": {"min": 1, "desired": 2, "max": 4}}
BATCH = {"name": "batch", "instanceTypes": ["m5.large"], "size": {"min": 3, "desired": 3, "max": 6},
         "rollout": {"maxSurge": 2}}


def apply_ok(spec: Any, ctx: AwsContext) -> None:
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]


def notes_of(plan: Plan) -> list[str]:
    """The plan's notes but the emulator's (the addons' Kubernetes objects are left out on moto)."""
    return [n for n in plan.notes if not n.startswith("local emulator: ")]


def reasons_of(plan: Plan, key: str) -> list[str]:
    return next(c.reasons for c in plan.changes if c.key == key)


def test_changed_spec_says_why_notes_the_ignored_and_ends_with_the_roll(ctx: AwsContext) -> None:
    apply_ok(make_spec(nodeGroups=[GENERAL, BATCH]), ctx)
    changed = make_spec(kubernetesVersion="1.32", addons={"rookCeph": {}}, nodeGroups=[
        {**GENERAL, "instanceTypes": ["m6i.large"], "size": {"min": 1, "desired": 3, "max": 4}}, BATCH])
    plan = api.plan(changed, ctx)

    control_plane = reasons_of(plan, "LaunchTemplate/control-plane")
    assert any(r.startswith("kubernetesVersion v1.31.") and " -> v1.32." in r for r in control_plane)
    assert not any("rookCeph" in r for r in control_plane), "an addon is Kubernetes objects, not user data"
    assert any(r.startswith("user data: kubeadm init config init.yaml: kubernetesVersion") for r in control_plane)
    general = reasons_of(plan, "LaunchTemplate/ng-general")
    assert general[0] == "nodeGroups[general].instanceTypes m5.large -> m6i.large"
    assert any(r.startswith("kubernetesVersion v1.31.") for r in general)
    assert not any("instanceTypes" in r for r in reasons_of(plan, "LaunchTemplate/ng-batch"))

    text = plan_text(plan)
    assert "      why: nodeGroups[general].instanceTypes m5.large -> m6i.large\n" in text
    assert "rookCeph" not in text.split("Notes (apply leaves these alone):")[0]
    assert "local emulator: " in text and " for addons.rookCeph" in text
    assert "content_hash: " in text, "the hash stays as detail"
    note = ("nodeGroups[general] (dev-general): size.desired 2 -> 3 ignored on an existing group (the "
            "cluster-autoscaler and rollouts own its capacity)")
    assert len(notes_of(plan)) == 1 and notes_of(plan)[0].startswith(note)
    assert notes_of(plan)[0].endswith("or scale it now with `kubeaws scale -f SPEC general --desired 3`")
    assert f"Notes (apply leaves these alone):\n  - {note}" in text

    section = text.split("Rollout after apply (kubeaws rollout):\n", 1)[1].splitlines()
    assert [line.split(":")[0] for line in section] == ["  1. dev-control-plane-0", "  2. dev-general",
                                                        "  3. dev-batch"]
    assert "replace 1 instance(s) alone (etcd member: one at a time)" in section[0]
    assert "replace 2 instance(s) canary 1" in section[1] and "surge 1" in section[1]
    assert "replace 3 instance(s) canary 1, then batches of 2, surge 2" in section[2]

    doc = plan.to_dict()
    rollout = [{k: e[k] for k in ("group", "instances", "order", "by")} for e in doc["rollout"]]
    assert rollout == [{"group": "dev-control-plane-0", "instances": 1, "order": 1, "by": "kubeaws rollout"},
                       {"group": "dev-general", "instances": 2, "order": 2, "by": "kubeaws rollout"},
                       {"group": "dev-batch", "instances": 3, "order": 3, "by": "kubeaws rollout"}]
    assert all(e["reason"] == "its launch template changes in this plan: launch template version 1 -> 2"
               for e in doc["rollout"])
    assert [b["surge"] for b in doc["rollout"][2]["batches"]] == [1, 2], "the spec's maxSurge 2"
    assert doc["notes"] == plan.notes
    change = next(c for c in doc["changes"] if c["kind"] == "LaunchTemplate" and c["name"] == "ng-general")
    assert change["reasons"] == general


def test_one_group_changed_rolls_that_group_only(ctx: AwsContext) -> None:
    apply_ok(make_spec(nodeGroups=[GENERAL, BATCH]), ctx)
    plan = api.plan(make_spec(nodeGroups=[GENERAL, {**BATCH, "labels": {"team": "a"}}]), ctx)
    assert [e["group"] for e in plan.rollout] == ["dev-batch"]
    batch = reasons_of(plan, "LaunchTemplate/ng-batch")
    flags = "user data: kubeadm join config join-batch.yaml: kubelet flags: --node-labels"
    assert any(r.startswith(flags) for r in batch)
    assert not notes_of(plan)


def calls_of(endpoint: str, plan: Callable[[AwsContext], Plan]) -> tuple[Plan, Counter[str]]:
    """A plan made on a fresh context, with the AWS operations it called."""
    ctx = make_ctx(endpoint)
    recorder = CallRecorder()
    ctx.add_hook("before-call", recorder)
    return plan(ctx), Counter(recorder.operations())


def test_unchanged_spec_rolls_nothing_and_reads_nothing_more(ctx: AwsContext, endpoint: str) -> None:
    """The same reads as a plan without explanation (engine.plan without the spec: what status makes), plus
    the one DescribeInstances of the certificate-expiry warning (the members' launch times, doctor.live_certs)."""
    spec = make_spec(nodeGroups=[GENERAL])
    apply_ok(spec, ctx)
    plan, calls = calls_of(endpoint, lambda c: api.plan(spec, c))
    _, bare = calls_of(endpoint, lambda c: make_plan(api.build(spec), c).plan)
    assert not plan.pending and plan.rollout == [] and notes_of(plan) == []
    certificates = Counter({"DescribeInstances": 1})
    assert calls == bare + certificates and "DescribeLaunchTemplateVersions" not in calls
    assert "Rollout after apply" not in plan_text(plan)

    changed = make_spec(nodeGroups=[{**GENERAL, "labels": {"team": "a"}}])
    _, explained = calls_of(endpoint, lambda c: api.plan(changed, c))
    assert explained["DescribeLaunchTemplateVersions"] == 1, "one read per changed template"


def test_a_roll_left_undone_shows_without_any_change(ctx: AwsContext) -> None:
    apply_ok(make_spec(nodeGroups=[GENERAL]), ctx)
    labelled = make_spec(nodeGroups=[{**GENERAL, "labels": {"team": "a"}}])
    apply_ok(labelled, ctx)  # a new template version; the group stays pinned to version 1 (no rollout here)
    plan = api.plan(labelled, ctx)
    assert not plan.pending
    assert notes_of(plan) == ["nodeGroups[general] (dev-general): launches launch template version 1, the template's "
                          "default is 2; apply leaves the group there, `kubeaws rollout` moves it"]
    assert [(e["group"], e["instances"], e["reason"]) for e in plan.rollout] == [
        ("dev-general", 2, "launch template version 1 -> 2")]
    text = plan_text(plan)
    assert "No changes" in text and "\n  1. dev-general: replace 2 instance(s)" in text


def test_a_new_group_rolls_nothing(ctx: AwsContext) -> None:
    apply_ok(make_spec(nodeGroups=[GENERAL]), ctx)
    plan = api.plan(make_spec(nodeGroups=[GENERAL, {**BATCH, "name": "extra"}]), ctx)
    assert any(c.key == "AutoScalingGroup/ng-extra" and c.action == "create" for c in plan.changes)
    assert "dev-extra" not in [e["group"] for e in plan.rollout]


# -- pure parts ------------------------------------------------------------------------------------------
def cloud_config(files: dict[str, str]) -> str:
    body = "".join(f"- path: {path}\n  content: |\n" + "".join(f"    {line}\n" for line in text.splitlines())
                   for path, text in files.items())
    return f"#cloud-config\nwrite_files:\n{body}runcmd:\n- [/bin/bash, /x.sh]\n"


SCRIPT = 'K8S_PATCH="{v}"\nIMAGE_MIRROR="{m}"\nlocal name names=({a})\n'
JOIN = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n"
        "  - name: node-labels\n    value: {labels}\n")


def test_user_data_reasons_name_version_addons_flags_and_files() -> None:
    old = cloud_config({"/usr/local/lib/kubeaws/bootstrap-control-plane.sh": SCRIPT.format(
        v="1.31.13", m="", a="cni-calico.yaml metrics-server.yaml"),
        "/etc/kubeaws/kubeadm/join-a.yaml": JOIN.format(labels="x=1")})
    new = cloud_config({"/usr/local/lib/kubeaws/bootstrap-control-plane.sh": SCRIPT.format(
        v="1.32.9", m="mirror.example", a="cni-flannel.yaml rook-ceph.yaml"),
        "/etc/kubeaws/kubeadm/join-a.yaml": JOIN.format(labels="x=2"),
        "/etc/systemd/system/kubeaws-etcd-backup.timer": "[Timer]\n"})
    assert why_userdata.user_data_reasons(old, new) == [
        "kubernetesVersion v1.31.13 -> v1.32.9",
        "network.cni calico -> flannel",
        "addons.rookCeph added",
        "addons.metricsServer removed",
        "user data: kubeadm join config join-a.yaml: kubelet flags: --node-labels x=1 -> x=2",
        "user data: systemd unit kubeaws-etcd-backup.timer added",
        "user data: control-plane boot script bootstrap-control-plane.sh: kubernetesVersion; IMAGE_MIRROR (none) "
        "-> mirror.example; addon list",
    ]
    assert why_userdata.user_data_reasons(old, old) == []
    assert why_userdata.user_data_reasons("#!/bin/bash\necho a\n", "#!/bin/bash\necho b\n") == [
        "user data: 2 line(s) changed"]


def test_decode_reads_plain_and_gzip_user_data() -> None:
    text = "#cloud-config\nwrite_files: []\n"
    plain = base64.b64encode(text.encode()).decode()
    packed = base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()
    assert why_userdata.decode(plain) == why_userdata.decode(packed) == text
    assert why_userdata.decode(None) == ""


def test_compare_names_template_fields() -> None:
    def data(**over: Any) -> dict[str, Any]:
        base = {"InstanceType": "m5.large", "ImageId": "ami-1", "SecurityGroupIds": ["sg-1"],
                "IamInstanceProfile": {"Name": "p"}, "MetadataOptions": {"HttpPutResponseHopLimit": 1},
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 50}}],
                "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "a"}]},
                                      {"ResourceType": "launch-template", "Tags": [{"Key": "moto", "Value": "x"}]}]}
        return {**base, **over}

    new = data(InstanceType="m6i.large", ImageId="ami-2", SecurityGroupIds=["sg-1", "sg-2"],
               MetadataOptions={"HttpPutResponseHopLimit": 2},
               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 100}},
                                    {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 200, "VolumeType": "gp3"}}],
               TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "b"}]}])
    assert why.compare(data(), new, "nodeGroups[a]", {"sg-2": "SecurityGroup/extra"}) == [
        "nodeGroups[a].instanceTypes m5.large -> m6i.large",
        "image ami-1 -> ami-2 (nodeGroups[a].ami, its os, or a newer release of the OS image)",
        "security groups: + SecurityGroup/extra",
        "instance metadata options: HttpPutResponseHopLimit 1 -> 2",
        "nodeGroups[a].extraVolumes: volume /dev/sdf added (200 GiB gp3)",
        "nodeGroups[a].rootVolume: volume /dev/xvda VolumeSize 50 -> 100",
        "tags of new instances (spec.tags, the group's tags and labels): team a -> b",
    ]
    assert why.compare(data(), data(), "controlPlane") == []
    assert why.compare(data(), data(InstanceType="m5.xlarge"), "controlPlane") == [
        "controlPlane.instanceType m5.large -> m5.xlarge"]


def test_group_reasons_name_the_size_fields() -> None:
    """The reasons name the spec path the model gave the resource (`Desired.spec_path`), not a parse of its key."""
    desired = Desired("AutoScalingGroup", "ng-a", {}, spec_path="nodeGroups[a]")
    change = Change("update", "AutoScalingGroup", "ng-a", "dev-a", {"min_size": (1, 2), "max_size": (3, 5)}, desired)
    assert why.group_reasons(change) == ["nodeGroups[a].size.max 3 -> 5", "nodeGroups[a].size.min 1 -> 2"]


def test_every_resource_of_a_group_or_the_control_plane_carries_its_spec_path() -> None:
    graph = api.build(make_spec(nodeGroups=[{"name": "general", "instanceTypes": ["m5.large"]}],
                                access={"adminCIDRs": ["203.0.113.0/24"], "bastion": {"instanceType": "t3.micro"}}))
    paths = {d.key: d.spec_path for d in graph}
    assert paths["AutoScalingGroup/ng-general"] == paths["LaunchTemplate/ng-general"] == "nodeGroups[general]"
    assert paths["AutoScalingGroup/control-plane-0"] == paths["LaunchTemplate/control-plane"] == "controlPlane"
    assert paths["Instance/bastion"] == "access.bastion" and paths["Vpc/main"] == "network"
    eks = api.build(make_spec(mode="eks", network={"availabilityZones": ["us-east-1a", "us-east-1b"],
                                                   "cni": "aws-vpc-cni"},
                              nodeGroups=[{"name": "m", "type": "managed", "instanceTypes": ["t3.large"]}]))
    assert eks["EksNodegroup/m"].spec_path == eks["LaunchTemplate/mng-m"].spec_path == "nodeGroups[m]"


def test_managed_groups_are_rolled_by_eks() -> None:
    actual = Observed("EksNodegroup", "c/dev-m", {"nodegroup_name": "dev-m", "scaling": {"desired": 4}})
    other = Observed("EksNodegroup", "c/dev-p", {"nodegroup_name": "dev-p", "scaling": {"desired": 2}})
    half = Desired("EksNodegroup", "p", {"update_config": {"maxUnavailablePercentage": 50}})
    changes = [Change("update", "EksNodegroup", "m", actual.id, {"launch_template": ({}, {})}, None, actual),
               Change("update", "EksNodegroup", "n", "c/dev-n", {"labels": ({}, {"a": "b"})}, None, actual),
               Change("update", "EksNodegroup", "p", other.id, {"launch_template": ({}, {})}, half, other)]
    entries = _eks_entries(changes)
    assert [(e["group"], e["instances"], e["by"], e["order"]) for e in entries] == [("dev-m", 4, "EKS", None),
                                                                                    ("dev-p", 2, "EKS", None)]
    assert entries[1]["summary"].endswith("2 instance(s), maxUnavailable 50%)"), "the spec's rollout setting"
    entries = entries[:1]
    assert rollout_lines(entries) == [
        "", "Rollout after apply (kubeaws rollout):", "  nothing for kubeaws to replace",
        "  - dev-m: rolled by EKS during apply (UpdateNodegroupVersion: 4 instance(s), maxUnavailable 1, EKS' "
        "default)"]
    assert rollout_lines([]) == []


def test_plan_errors_name_the_spec_path(ctx: AwsContext) -> None:
    """A brought resource that is not there: the error starts with the spec field it comes from."""
    spec = make_spec(network={"vpc": {"cidr": None, "id": "vpc-0abc"}, "availabilityZones": [],
                              "subnets": {"public": ["subnet-1"], "private": ["subnet-2", "subnet-3"]}})
    try:
        api.plan(spec, ctx)
    except PlanError as exc:
        assert "network: Vpc vpc-0abc (brought as Vpc/main) does not exist" in str(exc)
    else:
        raise AssertionError("a missing brought VPC was planned")


def test_a_rule_set_is_shown_as_its_security_group() -> None:
    """`Kind.parent`: the plan names a rule set's ID (its group's) by the group, whatever the order."""
    from kubeaws.resources import registry

    kinds = registry.kinds()
    assert kinds["SecurityGroupRules"].parent == "SecurityGroup"
    assert all(k.parent is None or k.parent in kinds for k in kinds.values())
    from kubeaws.engine.plan import _shown

    assert _shown(kinds["SecurityGroupRules"], "SecurityGroupRules/nodes") == "SecurityGroup/nodes"
    assert _shown(kinds["Subnet"], "Subnet/private-a") == "Subnet/private-a"
