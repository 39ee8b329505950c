"""Kubernetes upgrades of a kubeadm cluster (issue #9, rollout/upgrade.py and the version guard of
resources/state_object.py):

- a skip (1.31 -> 1.33) or a downgrade is refused by `kubeaws plan` on the moto server, exit 2, naming
  `spec.kubernetesVersion`, the path and the fix; the next minor and a patch move are planned;
- the cluster-wide kubeadm state, computed by pure functions: kubeadm-config's ClusterConfiguration,
  kubelet-config, the kube-proxy and CoreDNS images;
- the hooks' order against the member replacements, on the rollout fakes (tests/rollout_fakes.py) with a
  KubeClient on the fake API server (tests/kube_fake.py): kubeadm-config before the first member is
  terminated, kube-proxy and CoreDNS after the last one is back, each written once across a crash and a
  resume; nothing is written to kube-proxy while an API server still runs the old version.

No kube-apiserver or kubeadm exists here: these tests hold our side of their contract (which objects and
fields, when); tests/test_upgrade_sandbox.py boots replaced members at the new version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.addons import versions
from kubeaws.aws.retry import FAST_POLICY, RetryPolicy
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.kube_client import KubeClient
from kubeaws.resources.state_object import KubernetesVersionError, check_version_move, upgrade_path
from kubeaws.rollout.planner import plan_rollout
from kubeaws.rollout.runner import Runner, Timeouts
from kubeaws.rollout.upgrade import (
    COREDNS,
    KUBE_PROXY,
    KUBEADM_CONFIG,
    KUBELET_CONFIG,
    cluster_configuration_update,
    cluster_version,
    container_image_patch,
    coredns_image,
    downtime_note,
    kube_proxy_image,
    kubelet_config_update,
    upgrade_hooks,
)
from tests.helpers import BASE, make_spec, merge
from tests.kube_fake import FakeApi, url
from tests.rollout_fakes import FakeClock, FakeCloud, FakeCluster

#: The upgrade the hook tests make: CoreDNS moves too (v1.11.3 -> v1.12.0); from 1.31 to 1.32 it does not.
FROM, TO = "1.32", "1.33"
OLD, NEW = "v" + versions.kubernetes_patch(FROM), "v" + versions.kubernetes_patch(TO)


# -- the version guard ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("have", "want", "refused"), [
    ("1.31", "1.32", None), ("1.31", "1.31", None), ("1.31.13", "1.31.14", None), ("v1.31.13", "1.32", None),
    ("1.31", "1.33", "one minor version at a time.*path: 1.31 -> 1.32 -> 1.33"),
    ("1.30", "1.33", "path: 1.30 -> 1.31 -> 1.32 -> 1.33"),
    ("1.32", "1.31", "cannot downgrade it to 1.31"), ("1.32.1", "1.31", "cannot downgrade"),
])
def test_version_moves(have: str, want: str, refused: str | None) -> None:
    if refused is None:
        check_version_move(have, want)
        return
    with pytest.raises(KubernetesVersionError, match=refused) as info:
        check_version_move(have, want)
    assert info.value.problems[0].path == "spec.kubernetesVersion" and info.value.problems[0].hint
    assert upgrade_path("1.31", "1.34") == "1.31 -> 1.32 -> 1.33 -> 1.34"


def write_spec(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"cluster-{version}.yaml"
    path.write_text(yaml.safe_dump(merge(BASE, {"spec": {"kubernetesVersion": version}})))
    return path


def test_plan_refuses_a_skip_or_a_downgrade_and_plans_the_next_minor_or_a_patch(
        ctx: AwsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the moto server: the cluster applied at 1.31, then `kubeaws plan` of other versions."""
    result = api.apply(make_spec(), ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    cli = CliRunner()

    def plan(version: str) -> Any:
        return cli.invoke(app, ["plan", "-f", str(write_spec(tmp_path, version)), "--output", "json"])

    skip = plan("1.33")
    assert skip.exit_code == 2, skip.output
    error = json.loads(skip.output)
    assert error["type"] == "KubernetesVersionError"
    assert "spec.kubernetesVersion: the cluster runs Kubernetes 1.31" in error["error"]
    assert "1.31 -> 1.32 -> 1.33" in error["error"] and 'fix: set kubernetesVersion to "1.32"' in error["error"]
    down = plan("1.30")
    assert down.exit_code == 2 and "cannot downgrade it to 1.30" in json.loads(down.output)["error"]

    def updates(result: Any) -> set[str]:
        assert result.exit_code == 0, result.output
        return {f"{c['kind']}/{c['name']}" for c in json.loads(result.output)["changes"] if c["action"] == "update"}

    upgrade = plan("1.32")
    assert "StateObject/cluster/cluster.json" in updates(upgrade)
    doc = json.loads(upgrade.output)
    assert [e["group"] for e in doc["rollout"]][:1] == ["dev-control-plane-0"]
    [downtime] = [n for n in doc["warnings"] if n.startswith("API downtime: ")]
    assert "the control plane has one member" in downtime and "controlPlane.count: 3" in downtime

    # a new patch release of 1.31 pinned by kubeaws: new launch templates, no refusal
    monkeypatch.setitem(versions.KUBERNETES_PATCH, "1.31", "1.31.99")
    assert "LaunchTemplate/control-plane" in updates(plan("1.31"))


# -- what the cluster should hold -------------------------------------------------------------------------
STORED = f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: dev
kubernetesVersion: {OLD}
controlPlaneEndpoint: dev-api.elb.amazonaws.com:6443
etcd:
  local:
    dataDir: /var/lib/etcd/data
"""


def test_cluster_configuration_takes_the_new_version_and_keeps_the_rest() -> None:
    spec = make_spec(kubernetesVersion=TO)
    new = cluster_configuration_update(STORED, spec)
    assert new is not None
    doc = yaml.safe_load(new)
    assert doc["kubernetesVersion"] == NEW and doc["kubernetesVersion"] != OLD
    assert doc["controlPlaneEndpoint"] == "dev-api.elb.amazonaws.com:6443"
    assert doc["etcd"] == {"local": {"dataDir": "/var/lib/etcd/data"}} and "imageRepository" not in doc
    assert cluster_configuration_update(new, spec) is None, "nothing left to change"
    mirrored = make_spec(kubernetesVersion=TO, mirrors={"imageRepository": "registry.example.cn/k8s"})
    assert yaml.safe_load(cluster_configuration_update(STORED, mirrored) or "")["imageRepository"] == \
        "registry.example.cn/k8s"


def test_kubelet_config_keeps_kubeadm_defaults_and_takes_ours() -> None:
    stored = yaml.safe_dump({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                             "cgroupDriver": "cgroupfs", "clusterDNS": ["10.96.0.10"]})
    new = kubelet_config_update(stored, make_spec(kubernetesVersion="1.32"))
    assert new is not None
    doc = yaml.safe_load(new)
    assert doc["cgroupDriver"] == "systemd" and doc["clusterDNS"] == ["10.96.0.10"]
    assert doc["protectKernelDefaults"] is True
    assert kubelet_config_update(new, make_spec(kubernetesVersion="1.32")) is None


def test_images_of_kube_proxy_and_coredns() -> None:
    spec = make_spec(kubernetesVersion="1.33")
    assert kube_proxy_image(spec) == f"registry.k8s.io/kube-proxy:v{versions.kubernetes_patch('1.33')}"
    assert coredns_image(spec) == "registry.k8s.io/coredns/coredns:v1.12.0"
    mirrored = make_spec(kubernetesVersion="1.31", mirrors={"imageRepository": "registry.example.cn/k8s"})
    assert coredns_image(mirrored) == "registry.example.cn/k8s/coredns:v1.11.3"
    ds = daemonset("kube-proxy", f"registry.k8s.io/kube-proxy:{OLD}")
    body = container_image_patch(ds, "kube-proxy", kube_proxy_image(spec))
    assert body == {"spec": {"template": {"spec": {"containers": [
        {"name": "kube-proxy", "image": kube_proxy_image(spec), "command": ["/usr/local/bin/kube-proxy"]}]}}}}
    assert container_image_patch(ds, "kube-proxy", f"registry.k8s.io/kube-proxy:{OLD}") is None


def test_downtime_note_only_for_one_member() -> None:
    note = downtime_note(make_spec(controlPlane={"count": 1}))
    assert note is not None and "stops the Kubernetes API" in note and "count: 3" in note
    assert downtime_note(make_spec(controlPlane={"count": 3})) is None


def test_upgrade_hooks_refuse_a_skip_and_stay_out_of_eks() -> None:
    with pytest.raises(KubernetesVersionError):
        upgrade_hooks(make_spec(kubernetesVersion="1.34"), OLD)
    assert upgrade_hooks(make_spec(kubernetesVersion=TO), OLD) is not None
    assert upgrade_hooks(make_spec(kubernetesVersion=TO), NEW) is not None, "resumes need them too"
    assert upgrade_hooks(make_spec(mode="eks", kubernetesVersion=TO), OLD) is None


# -- the hooks against the member replacements ------------------------------------------------------------
def daemonset(name: str, image: str, kind: str = "DaemonSet") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"template": {"spec": {"containers": [
                {"name": name, "image": image, "command": [f"/usr/local/bin/{name}"]}]}}}}


def api_server_pod(member: int, version: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"kube-apiserver-cp-{member}", "namespace": "kube-system",
                         "labels": {"component": "kube-apiserver", "tier": "control-plane"}},
            "spec": {"containers": [{"name": "kube-apiserver", "image": f"registry.k8s.io/kube-apiserver:{version}"}]}}


def seed(fake: FakeApi, members: int) -> None:
    fake.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config",
                                                                    "namespace": "kube-system"},
              "data": {"ClusterConfiguration": STORED}})
    fake.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubelet-config",
                                                                    "namespace": "kube-system"},
              "data": {"kubelet": yaml.safe_dump({"kind": "KubeletConfiguration", "cgroupDriver": "cgroupfs"})}})
    fake.add(daemonset("kube-proxy", f"registry.k8s.io/kube-proxy:{OLD}"))
    fake.add(daemonset("coredns", "registry.k8s.io/coredns/coredns:v1.11.3", "Deployment"))
    for member in range(members):
        fake.add(api_server_pod(member, OLD))


class LoggingKube(KubeClient):
    """A KubeClient that logs each write into the rollout fakes' log (one order for both sides), and can be
    killed at the first write of one path (a crash in the middle of a hook)."""

    log: list[str]
    crash_on: str | None = None

    def patch(self, path: str, body: Any, patch_type: str = "merge") -> dict[str, Any] | None:
        if path == self.crash_on:
            self.crash_on = None
            raise KeyboardInterrupt(f"crash at PATCH {path}")
        self.log.append(f"patch {path}")
        return super().patch(path, body, patch_type)


class UpgradingCluster(FakeCluster):
    """A replaced member's API server runs the new version once its replacement is Ready (the old Node is
    forgotten right after)."""

    def __init__(self, cloud: FakeCloud, log: list[str], fake: FakeApi) -> None:
        super().__init__(cloud, log)
        self.fake = fake

    def forget(self, node: str) -> None:
        group = self.cloud.origin[node.removeprefix("node-")]
        if group.startswith("cp-"):
            self.fake.add(api_server_pod(int(group.split("-")[1]), NEW))
        super().forget(node)


@pytest.fixture
def pki(kube_pki: dict[str, str]) -> dict[str, str]:
    return kube_pki  # tests/conftest.py


@pytest.fixture
def fake(fake_api: FakeApi) -> FakeApi:
    return fake_api  # tests/conftest.py


def kube_for(fake: FakeApi, pki: dict[str, str], log: list[str]) -> LoggingKube:
    kube = LoggingKube(url(fake), pki["ca"], "k8s-aws-v1.abc", FAST_POLICY)
    kube.log = log
    return kube


@pytest.mark.parametrize("crash", [None, ("terminate", 1), ("terminate", 2), ("terminate", 4), COREDNS])
def test_hooks_wrap_the_control_plane_and_write_each_change_once(
        fake: FakeApi, pki: dict[str, str], crash: tuple[str, int] | str | None) -> None:
    clock, log = FakeClock(), list[str]()
    cloud = FakeCloud(clock, log)
    for i in range(3):
        cloud.add_group(f"cp-{i}", "control-plane", 1, version=1, target=2, member=i)
    cloud.add_group("general", "nodes", 2, version=1, target=2)
    cluster = UpgradingCluster(cloud, log, fake)
    seed(fake, 3)
    kube = kube_for(fake, pki, log)
    spec = make_spec(kubernetesVersion=TO, controlPlane={"count": 3})
    policy = RetryPolicy(poll_interval=5.0, clock=clock.clock, sleep=clock.sleep)

    def run() -> None:
        hooks = upgrade_hooks(spec, cluster_version(kube))
        assert hooks is not None
        plan = plan_rollout([cloud.read(n) for n in cloud.groups])
        Runner(cloud, cluster, policy, Timeouts(drain=60, ready=300, validation=60),
               hooks=hooks.bind(kube)).run(plan)

    if isinstance(crash, tuple):
        cloud.crash_at = crash
    elif crash is not None:
        kube.crash_on = crash
    if crash is not None:
        with pytest.raises(KeyboardInterrupt):
            run()
        cloud.crash_at = None
    run()

    patches = [e for e in log if e.startswith("patch ")]
    assert sorted(patches) == sorted(f"patch {p}" for p in (KUBEADM_CONFIG, KUBELET_CONFIG, KUBE_PROXY, COREDNS))
    members = [e for e in log if e.startswith("terminate ") and cloud.origin[e.split()[1]].startswith("cp-")]
    nodes = [e for e in log if e.startswith("drain ") and cloud.origin[e.split()[1][5:]] == "general"]
    last_member_back = max(i for i, e in enumerate(log) if e.startswith("forget ")
                           and cloud.origin[e.split()[1][5:]].startswith("cp-"))
    assert log.index(f"patch {KUBEADM_CONFIG}") < log.index(members[0]), "kubeadm-config before any member"
    assert log.index(f"patch {KUBELET_CONFIG}") < log.index(members[0])
    for path in (KUBE_PROXY, COREDNS):
        assert last_member_back < log.index(f"patch {path}") < log.index(nodes[0]), path
    assert cluster_version(kube) == NEW
    proxy = kube.get(KUBE_PROXY) or {}
    assert proxy["spec"]["template"]["spec"]["containers"][0]["image"] == kube_proxy_image(spec)
    dns = kube.get(COREDNS) or {}
    assert dns["spec"]["template"]["spec"]["containers"][0]["image"] == coredns_image(spec)


def test_kube_proxy_waits_for_every_api_server(fake: FakeApi, pki: dict[str, str]) -> None:
    """A rollout that did not replace every member (limited to some groups, or a member still down) leaves
    kube-proxy and CoreDNS alone: kube-proxy must not be newer than any API server."""
    log: list[str] = []
    seed(fake, 3)
    fake.add(api_server_pod(0, NEW))
    kube = kube_for(fake, pki, log)
    hooks = upgrade_hooks(make_spec(kubernetesVersion=TO, controlPlane={"count": 3}), OLD)
    assert hooks is not None
    said = hooks.after_control_plane(kube)
    assert not log and "kube-apiserver-cp-1" in said[0] and OLD in said[0]
    for member in (1, 2):
        fake.add(api_server_pod(member, NEW))
    fake.objects.pop(next(p for p in fake.objects if p.endswith("kube-apiserver-cp-2")))
    assert "1 member(s) without an API server pod" in hooks.after_control_plane(kube)[0] and not log
    fake.add(api_server_pod(2, NEW))
    assert [line.split(":")[0] for line in hooks.after_control_plane(kube)] == ["kube-proxy", "coredns"]
    assert log == [f"patch {KUBE_PROXY}", f"patch {COREDNS}"]
