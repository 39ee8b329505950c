"""A Kubernetes upgrade of a kubeadm cluster, with the real boot scripts in the bootstrap sandbox
(tests/sandbox/, see tests/test_bootstrap_sandbox.py for what is real and what stands in): the cluster boots
at 1.31; the spec moves to 1.32 and is applied (a new launch-template version, cluster.json at 1.32); the
member's group is moved to the new version (what the rollout's `pin` does) and, for several members,
kubeadm-config gets the new version first (what `rollout.upgrade`'s `before_control_plane` writes, computed
by the same function); the member's instance is replaced and its successor, re-attaching the etcd volume,
restores the member: kubeadm 1.32 installed, its phases rendering the static pods at v1.32 (the kubeadm
stand-in writes the image of the config's kubernetesVersion), the etcd data kept (same member ID, a
ConfigMap written before still there).

No kubeadm, kubelet or kube-apiserver binary exists here: the stand-in holds kubeadm's contract (join phases
take the ClusterConfiguration from the cluster's kubeadm-config, init phases from --config), which is what
decides the version a restored member comes up at.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from kubeaws.addons import versions
from kubeaws.rollout.aws_ops import AwsCloud
from kubeaws.rollout.upgrade import cluster_configuration_update
from tests.sandbox.host import Host
from tests.sandbox.kubeadm_effects import ETCD_VERSIONS
from tests.sandbox.world import World
from tests.test_bootstrap_sandbox import GROUP, api_of, assert_booted, etcd_members, s3_text

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs bash, loopback addresses and e2fsprogs")
NEW = "v" + versions.kubernetes_patch("1.32")


def bump(world: World, version: str) -> None:
    """spec.kubernetesVersion moved and applied; the control-plane groups moved to the new template version."""
    body = world.spec.spec.model_copy(update={"kubernetes_version": version})
    world.spec = world.spec.model_copy(update={"spec": body})
    assert world.apply_again()
    assert json.loads(s3_text(world, "cluster/cluster.json"))["kubernetesVersion"] == version
    cloud = AwsCloud(world.ctx)
    for index in range(world.spec.spec.control_plane.count):
        group = cloud.read(f"{world.spec.name}-control-plane-{index}")
        assert group.pinned != str(group.target), "apply never moves a group"
        cloud.pin(group, group.target)


def replace_member(world: World, index: int) -> tuple[Host, Host]:
    old = world.member(index)
    world.terminate(old)
    (new,) = world.discover()
    assert_booted(world, world.boot([new]))
    return old, new


def assert_upgraded(world: World, host: Host) -> None:
    assert host.state()["packages"]["kubeadm"].startswith(NEW[1:]), host.state()["packages"]
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        manifest = host.manifest(component)
        assert manifest is not None, component
        assert manifest["spec"]["containers"][0]["image"].endswith(f"/{component}:{NEW}"), manifest
    etcd = host.manifest("etcd")
    assert etcd is not None and etcd["spec"]["containers"][0]["image"].endswith(f":{ETCD_VERSIONS['1.32']}")
    assert f"restoring member {host.state()['member']}" in world.log(host)


def put_marker(world: World, host: Host) -> None:
    api_of(host).put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "before-upgrade", "namespace": "default"}})


def test_single_member_restored_at_the_new_version(world_factory: Any) -> None:
    world: World = world_factory(controlPlane={"count": 1}, nodeGroups=[GROUP])
    (cp,) = world.hosts("control-plane")
    assert_booted(world, world.boot([cp]))
    assert cp.manifest("kube-apiserver")["spec"]["containers"][0]["image"].endswith(  # type: ignore[index]
        "v" + versions.kubernetes_patch("1.31"))
    (member,) = etcd_members(cp)
    put_marker(world, cp)

    bump(world, "1.32")
    _, new = replace_member(world, 0)
    assert_upgraded(world, new)
    calls = world.calls(new)
    assert "kubeadm init --config" not in "\n".join(calls)
    assert any(c.startswith("kubeadm init phase control-plane all") for c in calls)
    (after,) = etcd_members(new)
    assert after["ID"] == member["ID"], "the same etcd member, from the volume"
    api = api_of(new)
    assert api.get("configmaps", "before-upgrade", "default") is not None
    stored = api.get("configmaps", "kubeadm-config", "kube-system")
    assert stored is not None and f"kubernetesVersion: {NEW}" in stored["data"]["ClusterConfiguration"], \
        "upload-config wrote the new version"


def test_three_members_one_replaced_at_the_new_version(world_factory: Any) -> None:
    world: World = world_factory(controlPlane={"count": 3}, nodeGroups=[GROUP])
    members = world.hosts("control-plane")
    assert_booted(world, world.boot(members, timeout=420))
    m0 = world.member(0)
    before = {m["ID"] for m in etcd_members(m0)}
    put_marker(world, m0)

    bump(world, "1.32")
    # rollout.upgrade's before_control_plane: the join phases of the replacement read kubeadm-config
    api = api_of(m0)
    config = api.get("configmaps", "kubeadm-config", "kube-system")
    assert config is not None
    updated = cluster_configuration_update(config["data"]["ClusterConfiguration"], world.spec)
    assert updated is not None
    api.put("configmaps", {**config, "data": {**config["data"], "ClusterConfiguration": updated}})

    _, new1 = replace_member(world, 1)
    assert_upgraded(world, new1)
    assert not [c for c in world.calls(new1) if c.startswith("kubeadm join --config")], "no new etcd member"
    assert any(c.startswith("kubeadm join phase control-plane-prepare") for c in world.calls(new1))
    after = etcd_members(m0)
    assert {m["ID"] for m in after} == before and not any(m.get("isLearner") for m in after)
    assert api_of(world.member(0)).get("configmaps", "before-upgrade", "default") is not None
