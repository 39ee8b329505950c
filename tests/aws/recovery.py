"""The control-plane drill of the three-member cluster (problem 9 of DESIGN.md): terminate one member's
instance with EC2 TerminateInstances and measure how the cluster heals: the member's Auto Scaling group
launches a replacement, which re-attaches the member's etcd volume (tag kubeaws.io/etcd-member=<i>), rejoins,
and etcd is back to three healthy members, while the API stays available through the two others.
"""

from __future__ import annotations

import time
from typing import Any

from tests.aws.api_probe import ApiProber
from tests.aws.cluster import TRANSIENT, ClusterRun
from tests.aws.kube import NodeInfo, PodInfo, etcdctl_args, parse_endpoint_health, parse_member_list, parse_pods
from tests.aws.poll import NotYet, wait_for

#: A probe that found no API address answering may happen once (a network blip between the runner and AWS);
#: two in a row (10 s or more without any member answering) fail the test.
OUTAGE_TOLERANCE_PROBES = 1


def etcd_view(run: ClusterRun, avoid: set[str]) -> tuple[PodInfo, list[tuple[str, bool, str]], list[tuple[str, str]]]:
    """(etcd pod asked, endpoint health of every member, member list), through the etcd static pod of a
    Ready control-plane node not in `avoid`."""
    pods = parse_pods(run.kubectl_json("-n", "kube-system", "get", "pods", "-l", "component=etcd"))
    candidates = [p for p in pods if p.ready and p.node not in avoid]
    if not candidates:
        raise NotYet(f"no Ready etcd pod outside {sorted(avoid)}: {[(p.name, p.phase) for p in pods]}")
    pod = candidates[0]
    health = run.kubectl("-n", "kube-system", "exec", pod.name, "--",
                         *etcdctl_args("endpoint", "health", "--cluster", "-w", "json"), timeout=90, check=False,
                         request_timeout=False)
    members = run.kubectl("-n", "kube-system", "exec", pod.name, "--", *etcdctl_args("member", "list", "-w", "json"),
                          timeout=90, check=False, request_timeout=False)
    try:
        return pod, parse_endpoint_health(health.stdout), parse_member_list(members.stdout)
    except ValueError as exc:
        raise NotYet(f"etcdctl in {pod.name}: {exc}; {health.tail(3)} {members.tail(3)}") from None


def etcd_healthy(run: ClusterRun, control_plane: list[NodeInfo], avoid: set[str]) -> dict[str, Any]:
    """Three members, all started, every endpoint healthy, and the endpoints are the control-plane nodes."""
    pod, health, members = etcd_view(run, avoid)
    hosts = {endpoint.split("//", 1)[-1].rsplit(":", 1)[0] for endpoint, _, _ in health}
    expected = {n.internal_ip for n in control_plane}
    problems = []
    if len(members) != 3 or any(not name for _, name in members):
        problems.append(f"members {members}")
    unhealthy = [(e, err) for e, ok, err in health if not ok]
    if len(health) != 3 or unhealthy:
        problems.append(f"endpoint health {health}")
    if hosts != expected:
        problems.append(f"etcd endpoints {sorted(hosts)} are not the control-plane nodes {sorted(expected)}")
    if problems:
        raise NotYet(f"etcd (asked through {pod.name}): " + "; ".join(problems))
    return {"members": [name for _, name in members], "endpoints": sorted(e for e, _, _ in health)}


def control_plane_nodes(run: ClusterRun) -> list[NodeInfo]:
    return [n for n in run.nodes() if n.control_plane]


def replace_member(run: ClusterRun) -> None:
    member = run.settings.terminate_member
    ec2 = run.client("ec2")
    before = control_plane_nodes(run)
    assert len(before) == 3 and all(n.ready for n in before), f"not 3 Ready control-plane nodes before: {before}"
    etcd_before = wait_for("etcd healthy before the drill", lambda: etcd_healthy(run, before, set()), run.t(3), 15,
                           retry_on=TRANSIENT)
    group = run.auto_scaling_group({"kubeaws.io/control-plane-member": str(member)})
    asg = str(group["AutoScalingGroupName"])
    in_service = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
    assert len(in_service) == 1, f"{asg} should hold one InService instance: {group['Instances']}"
    old_id = in_service[0]
    old = ec2.describe_instances(InstanceIds=[old_id])["Reservations"][0]["Instances"][0]
    old_name = str(old.get("PrivateDnsName", ""))
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": [run.name]},
                                            {"Name": "tag:kubeaws.io/etcd-member", "Values": [str(member)]}])["Volumes"]
    assert len(volumes) == 1, f"expected one etcd volume tagged kubeaws.io/etcd-member={member}, found {volumes}"
    volume_id = str(volumes[0]["VolumeId"])
    holders = [a["InstanceId"] for a in volumes[0].get("Attachments") or [] if a.get("State") == "attached"]
    assert holders == [old_id], f"etcd volume {volume_id} is attached to {holders}, expected member {member}'s {old_id}"
    zone = old["Placement"]["AvailabilityZone"]
    run.log(f"terminating control-plane member {member}: {old_id} ({old_name}, {zone}), etcd volume {volume_id}",
            loud=True)
    prober = ApiProber(run.kubeconfig.read_text()).start()
    marks: dict[str, float] = {}
    started = time.monotonic()
    try:
        ec2.terminate_instances(InstanceIds=[old_id])

        def replacement() -> str:
            group_now = run.auto_scaling_group({"kubeaws.io/control-plane-member": str(member)})
            fresh = [i["InstanceId"] for i in group_now["Instances"] if i["InstanceId"] != old_id
                     and i["LifecycleState"] in ("Pending", "Pending:Wait", "Pending:Proceed", "InService")]
            if not fresh:
                raise NotYet(f"{asg}: {[(i['InstanceId'], i['LifecycleState']) for i in group_now['Instances']]}")
            return str(fresh[0])

        new_id = wait_for(f"{asg} to launch a replacement", replacement, run.t(15), 15, retry_on=TRANSIENT)
        marks["replacementLaunchedSeconds"] = time.monotonic() - started

        def attached() -> None:
            volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
            now = [(a["InstanceId"], a["State"]) for a in volume.get("Attachments") or []]
            if (new_id, "attached") not in now:
                raise NotYet(f"etcd volume {volume_id}: {volume['State']}, attachments {now}")

        wait_for(f"etcd volume {volume_id} to follow the member to {new_id}", attached, run.t(20), 15)
        marks["etcdVolumeAttachedSeconds"] = time.monotonic() - started
        new_name = str(ec2.describe_instances(InstanceIds=[new_id])["Reservations"][0]["Instances"][0]
                       .get("PrivateDnsName", ""))

        def rejoined() -> list[NodeInfo]:
            nodes = control_plane_nodes(run)
            names = {n.name for n in nodes}
            stale = old_name in names and old_name != new_name
            if len(nodes) != 3 or new_name not in names or stale or not all(n.ready for n in nodes):
                raise NotYet(f"control-plane nodes {[(n.name, n.ready) for n in nodes]} (want 3 Ready with "
                             f"{new_name}{'' if old_name == new_name else f', without {old_name}'})")
            return nodes

        after = wait_for("3 Ready control-plane nodes with the replacement", rejoined, run.t(30), 20,
                         retry_on=TRANSIENT)
        marks["nodeReadySeconds"] = time.monotonic() - started
        etcd_after = wait_for("etcd back to 3 healthy members", lambda: etcd_healthy(run, after, {old_name}),
                              run.t(15), 20, retry_on=TRANSIENT)
        marks["etcdHealthySeconds"] = time.monotonic() - started
    finally:
        summary = prober.stop()
        run.timings.fact("cpRecovery", {
            "member": member, "terminated": old_id, "etcdVolume": volume_id,
            **{k: round(v, 1) for k, v in marks.items()}, "api": summary.to_dict(),
        })
    run.timings.fact("cpRecoveryEtcd", {"before": etcd_before, "after": etcd_after})
    assert summary.probes > 0, "the API prober recorded nothing"
    assert summary.max_consecutive_failed <= OUTAGE_TOLERANCE_PROBES, (
        f"the API was unavailable through every load-balancer address for {summary.max_consecutive_failed} "
        f"consecutive probes ({summary.longest_outage_seconds:.0f}s) while member {member} was replaced: "
        f"{summary.to_dict()}")
