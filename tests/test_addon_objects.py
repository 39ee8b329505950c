"""Addons as Kubernetes objects (issue #12 item 1): every addon of a kubeadm cluster is a set of `KubernetesObject`s
kubeaws applies through the API, so adding, removing or upgrading one changes objects, never a launch template
or an instance; the boot addons (CNI, cloud provider) are also applied by the first member at boot.

No kube-apiserver is available here: the API side is the FAKE server of tests/kube_fake.py, which refuses (404,
as a real API server) an object in a namespace that does not exist and a custom resource whose CRD is not
Established; that is the part of the contract the declared order must hold. AWS is the moto server; the
context's `kube` is the fake server's client (`FakeReach`), since on moto no instance boots and the cluster's
real endpoint (a load balancer name) answers nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from kubeaws import api as kubeaws_api
from kubeaws.addons import enabled
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient
from kubeaws.model import build
from kubeaws.model.addon_objects import wave
from kubeaws.reach import KubeReach
from tests.helpers import FakeClock, make_spec
from tests.kube_fake import BUILT_IN_NAMESPACES, FakeApi, url

ALL_ADDONS = {"metricsServer": {}, "cloudProviderAWS": {}, "ebsCSI": {}, "clusterAutoscaler": {}, "rookCeph": {},
              "awsLoadBalancerController": {}}
CLUSTER_LABEL = "kubeaws.io/cluster"


class FakeReach:
    """`ctx.kube` on the fake API server (what kubeaws.reach.KubeReach gives on AWS)."""

    possible = True
    problem: str | None = None

    def __init__(self, server: FakeApi, ca: str) -> None:
        self.kube = KubeClient(url(server), base64.b64encode(ca.encode()).decode(), "k8s-aws-v1.test", FAST_POLICY)

    def client(self, *, wait: bool) -> KubeClient:
        return self.kube


def ours(server: FakeApi) -> dict[str, dict[str, Any]]:
    """The objects of cluster "dev" on the server, by path."""
    return {path: o for path, o in server.objects.items()
            if (o["metadata"].get("labels") or {}).get(CLUSTER_LABEL) == "dev"}


@pytest.mark.parametrize("cni", ["calico", "cilium", "flannel", "aws-vpc-cni"])
def test_each_object_waits_for_its_namespace_and_its_crd(cni: str) -> None:
    """Every addon with every CNI: an object in a namespace an addon makes depends on that Namespace, a custom
    resource on its CRD, and what acts on the rest (Jobs, webhooks, APIServices, custom resources) on every
    other object of its addon; every object waits for the control plane's groups."""
    spec = make_spec(network={"cni": cni}, addons=ALL_ADDONS)
    graph = build(spec)
    objects = graph.of_kind("KubernetesObject")
    assert {d.spec_path for d in objects} == {"network.cni", *(f"addons.{name}" for name in ALL_ADDONS)}
    by_path = {d.spec_path: [o for o in objects if o.spec_path == d.spec_path] for d in objects}
    namespaces = {d.props["manifest"]["metadata"]["name"]: d.key for d in objects
                  if d.props["manifest"]["kind"] == "Namespace"}
    crds = {d.props["manifest"]["metadata"]["name"]: d.key for d in objects
            if d.props["manifest"]["kind"] == "CustomResourceDefinition"}
    control_plane = {d.key for d in graph.of_kind("AutoScalingGroup") if d.name.startswith("control-plane-")}
    custom = 0
    for d in objects:
        manifest, needs = d.props["manifest"], set(d.depends_on)
        assert control_plane <= needs, d.key
        namespace = manifest["metadata"].get("namespace")
        if namespace and namespace not in BUILT_IN_NAMESPACES:
            assert namespaces[namespace] in needs, f"{d.key} does not wait for its namespace"
        group = manifest["apiVersion"].rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            custom += 1
            plural = manifest["kind"].lower() + ("es" if manifest["kind"].endswith("s") else "s")
            crd = next(k for name, k in crds.items() if name.startswith(plural) and name.endswith(group))
            assert crd in needs, f"{d.key} does not wait for its CRD"
        if wave(manifest) == 2:
            assert {o.key for o in by_path[d.spec_path] if wave(o.props["manifest"]) < 2} <= needs
    assert custom >= 2  # rook's CephCluster and CephBlockPool at least


def test_addons_change_as_objects_and_never_roll_an_instance(ctx: AwsContext, fake_api: FakeApi,
                                                             kube_pki: dict[str, str]) -> None:
    """Apply, add rookCeph (only object creates), re-plan (nothing), remove it (only object deletes: pruned)."""
    ctx.kube = FakeReach(fake_api, kube_pki["ca"])
    spec = make_spec(addons={"metricsServer": {}})
    assert kubeaws_api.apply(spec, ctx).ok
    applied = ours(fake_api)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in applied.values()}
    assert ("Deployment", "metrics-server") in kinds and ("Installation", "default") in kinds  # calico's CR
    assert all(o["metadata"]["managedFields"] == [{"manager": "kubeaws"}] for o in applied.values())
    assert kubeaws_api.plan(spec, ctx).pending == 0

    with_rook = make_spec(addons={"metricsServer": {}, "rookCeph": {}})
    plan = kubeaws_api.plan(with_rook, ctx)
    pending = [c for c in plan.changes if c.action != "noop"]
    assert pending and {(c.kind, c.action) for c in pending} == {("KubernetesObject", "create")}
    assert plan.rollout == []
    assert kubeaws_api.apply(with_rook, ctx).ok
    rook = set(ours(fake_api)) - set(applied)
    assert "/apis/ceph.rook.io/v1/namespaces/rook-ceph/cephclusters/rook-ceph" in rook
    assert kubeaws_api.plan(with_rook, ctx).pending == 0

    plan = kubeaws_api.plan(spec, ctx)
    pending = [c for c in plan.changes if c.action != "noop"]
    assert {(c.kind, c.action) for c in pending} == {("KubernetesObject", "delete")} and len(pending) == len(rook)
    assert kubeaws_api.apply(spec, ctx).ok
    assert set(ours(fake_api)) == set(applied)  # rook's objects pruned, the rest as they were
    assert kubeaws_api.plan(spec, ctx).pending == 0


def test_an_addon_upgrade_updates_its_objects_in_place(ctx: AwsContext, fake_api: FakeApi,
                                                       kube_pki: dict[str, str]) -> None:
    """A changed manifest (here the cluster-autoscaler's image, pinned per Kubernetes minor) is an object update
    shown field by field; the object is applied again, not re-created."""
    ctx.kube = FakeReach(fake_api, kube_pki["ca"])
    spec = make_spec(addons={"clusterAutoscaler": {}})
    assert kubeaws_api.apply(spec, ctx).ok
    path = "/apis/apps/v1/namespaces/kube-system/deployments/cluster-autoscaler"
    uid = fake_api.objects[path]["metadata"]["uid"]
    container = fake_api.objects[path]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].rsplit(":", 1)[0] + ":v0.0.1"  # as if an older kubeaws applied it
    plan = kubeaws_api.plan(spec, ctx)
    [change] = [c for c in plan.changes if c.action != "noop"]
    assert (change.kind, change.action, change.name) == ("KubernetesObject", "update",
                                                         "deployment/kube-system/cluster-autoscaler")
    from kubeaws.engine.render import plan_text

    assert "manifest: spec.template.spec.containers[0].image: " in plan_text(plan)
    assert kubeaws_api.apply(spec, ctx).ok
    assert fake_api.objects[path]["metadata"]["uid"] == uid and not fake_api.objects[path]["spec"]["template"][
        "spec"]["containers"][0]["image"].endswith(":v0.0.1")


def test_the_boot_applies_only_the_boot_addons() -> None:
    """The control plane's user data and state bucket carry the CNI and the cloud provider only; adding an addon
    changes neither (so no member is replaced for it)."""
    from kubeaws import bootstrap

    base = make_spec(addons={"cloudProviderAWS": {}})
    more = make_spec(addons={"cloudProviderAWS": {}, **{k: v for k, v in ALL_ADDONS.items()
                                                       if k != "cloudProviderAWS"}})
    assert bootstrap.bucket_objects(base) == bootstrap.bucket_objects(more)
    assert {key.rsplit("/", 1)[-1] for key in bootstrap.bucket_objects(base) if "/addons/" in key} == {
        "tigera-operator.yaml", "cni-calico.yaml", "cloud-provider-aws.yaml"}
    assert bootstrap.render_user_data(base, "control-plane", "b") == bootstrap.render_user_data(
        more, "control-plane", "b")
    assert {a.name for a in enabled(more) if a.boot} == {"cni-calico", "cloud-provider-aws"}


# -- kubeaws.reach.KubeReach ----------------------------------------------------------------------------------
@contextmanager
def _fake_api_client(server: FakeApi, ca: str, policy: Any) -> Iterator[KubeClient]:
    yield KubeClient(url(server), base64.b64encode(ca.encode()).decode(), "k8s-aws-v1.test", policy)


def test_reach_waits_for_a_booting_api_then_gives_up_with_the_reason(
        ctx: AwsContext, fake_api: FakeApi, kube_pki: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A new cluster's API answers /readyz 500 while it comes up: plan gets None and the reason, apply waits for
    it (on the policy's clock), and one that never comes up fails naming the endpoint and what to check."""
    clock = FakeClock()
    ctx.policy = clock.policy(FAST_POLICY)
    monkeypatch.setattr("kubeaws.reach.api_client", lambda *a, **k: _fake_api_client(fake_api, kube_pki["ca"],
                                                                                      ctx.policy))
    reach = KubeReach(make_spec(), ctx, wait_seconds=600)
    reach.possible = True  # the emulator has no API; the fake server stands in for the cluster's
    fake_api.ready = False
    assert reach.client(wait=False) is None and reach.problem is not None and "not ready" in reach.problem
    polls = 0

    def sleep(seconds: float) -> None:
        nonlocal polls
        polls += 1
        clock.sleep(seconds)
        fake_api.ready = polls >= 3

    ctx.policy = replace(clock.policy(FAST_POLICY), sleep=sleep)
    assert reach.client(wait=True) is not None and polls >= 3
    reach.close()
    fake_api.ready = False
    late = KubeReach(make_spec(), ctx, wait_seconds=60)
    late.possible = True
    ctx.policy = clock.policy(FAST_POLICY)
    with pytest.raises(KubeawsError, match=r"timed out after 60s waiting for the Kubernetes API at 127\.0\.0\.1.*"
                                           r"doctor --live"):
        late.client(wait=True)
    late.close()


def test_reach_before_the_cluster_exists(ctx: AwsContext, fake_api: FakeApi) -> None:
    """No state bucket yet: no client and nothing missed (no warning: every object is a create); an API that
    does not answer is a warning naming why (the objects show as creates, apply applies them)."""
    reach = KubeReach(make_spec(), ctx)
    reach.possible = True
    assert reach.client(wait=False) is None and reach.problem is None
    ctx.kube = reach
    assert kubeaws_api.unread_objects_warning(ctx, build(make_spec())) == []
    reach.problem = "the Kubernetes API at 10.0.0.1:6443 is not ready"
    [warning] = kubeaws_api.unread_objects_warning(ctx, build(make_spec()))
    assert "objects were not read (the Kubernetes API at 10.0.0.1:6443 is not ready)" in warning
    assert "show as creates" in warning


def test_on_the_emulator_the_objects_are_left_out_with_a_note(ctx: AwsContext) -> None:
    plan = kubeaws_api.plan(make_spec(addons={"metricsServer": {}}), ctx)
    assert not [c for c in plan.changes if c.kind == "KubernetesObject"]
    [note] = [n for n in plan.notes if "KubernetesObject" in n]
    assert "for addons.metricsServer" in note and "for network.cni" in note


def api_servers(server: FakeApi, version: str, members: int = 1) -> None:
    """kubeadm's kube-apiserver static pods (their mirror pods), at `version`."""
    for i in range(members):
        server.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"kube-apiserver-ip-10-0-0-{i}", "namespace": "kube-system",
            "labels": {"component": "kube-apiserver", "tier": "control-plane"}},
            "spec": {"containers": [{"name": "kube-apiserver", "image": f"registry.k8s.io/kube-apiserver:{version}"}]}})


def test_an_upgrade_moves_the_minor_pinned_addons_after_the_api_servers(ctx: AwsContext, fake_api: FakeApi,
                                                                        kube_pki: dict[str, str]) -> None:
    """1.31 -> 1.32: while an API server runs 1.31, plan and apply keep cluster-autoscaler and
    cloud-provider-aws at 1.31's images (a controller newer than its API server breaks the skew policy) and say
    so; the rollout's after-control-plane hook moves them once every API server runs 1.32; then nothing is
    pending."""
    from kubeaws.rollout.upgrade import KubeadmUpgrade

    ctx.kube = FakeReach(fake_api, kube_pki["ca"])
    addons = {"clusterAutoscaler": {}, "cloudProviderAWS": {}}
    old, new = make_spec(addons=addons), make_spec(kubernetesVersion="1.32", addons=addons)
    assert kubeaws_api.apply(old, ctx).ok
    api_servers(fake_api, "v1.31.13")
    deployment = "/apis/apps/v1/namespaces/kube-system/deployments/cluster-autoscaler"

    def image() -> str:
        return str(fake_api.objects[deployment]["spec"]["template"]["spec"]["containers"][0]["image"])

    at_old = image()
    plan = kubeaws_api.plan(new, ctx)
    assert not [c for c in plan.changes if c.kind == "KubernetesObject" and c.action != "noop"]
    assert any(n.startswith("cloud-provider-aws, cluster-autoscaler: kept at Kubernetes 1.31's images")
               for n in plan.notes)
    assert any(c.kind == "LaunchTemplate" and c.action == "update" for c in plan.changes)
    assert kubeaws_api.apply(new, ctx, plan=kubeaws_api.plan_state(new, ctx)).ok
    assert image() == at_old

    upgrade = KubeadmUpgrade(new)
    [line] = upgrade.after_control_plane(ctx.kube.kube)  # an API server still at 1.31: nothing moves
    assert "not every API server runs" in line and image() == at_old
    api_servers(fake_api, "v1.32.9")
    done = upgrade.after_control_plane(ctx.kube.kube)
    assert any(d.startswith("cluster-autoscaler: ") for d in done) and any(
        d.startswith("cloud-provider-aws: ") for d in done)
    assert image() != at_old and image().rsplit(":", 1)[1].startswith("v1.32.")
    assert upgrade.after_control_plane(ctx.kube.kube) == []  # written once
    plan = kubeaws_api.plan(new, ctx)
    assert plan.pending == 0 and not any("kept at Kubernetes" in n for n in plan.notes)
