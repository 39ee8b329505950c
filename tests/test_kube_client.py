"""The rollout's Kubernetes operations of kubeaws.kube_client (nodes, cordon, pods on a node, evictions and
their PodDisruptionBudgets, waits) against the FAKE API server of tests/kube_fake.py over TLS, and the fake's
own rules where a test relies on them (a budget's arithmetic, replacement pods, field selectors). Waits run on
a fake clock: no test measures or waits for wall-clock time. The object kind and TLS basics are in
tests/test_kubernetes_object.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kubeaws.aws.retry import FAST_POLICY, RetryPolicy
from kubeaws.errors import WaitTimeout
from kubeaws.kube_client import (
    TOKEN_REFRESH_SECONDS,
    KubeApiError,
    KubeClient,
    is_daemonset_pod,
    is_mirror_pod,
    node_is_ready,
    pod_is_finished,
    selector_matches,
)
from tests import kube_objects as ko
from tests.kube_fake import FakeApi, key_pem, make_cert, pem, serve, url

NODE = "ip-10-0-1-10.ec2.internal"
OTHER = "ip-10-0-2-20.ec2.internal"


@pytest.fixture
def pki(kube_pki: dict[str, str]) -> dict[str, str]:
    return kube_pki  # tests/conftest.py


@pytest.fixture
def api(fake_api: FakeApi) -> FakeApi:
    return fake_api  # tests/conftest.py


@pytest.fixture
def kube(api: FakeApi, pki: dict[str, str]) -> KubeClient:
    return KubeClient(url(api), pki["ca"], "k8s-aws-v1.abc", FAST_POLICY)


def web(api: FakeApi, count: int, node_name: str = NODE, namespace: str = "default") -> list[dict[str, Any]]:
    """`count` Running pods of a Deployment's ReplicaSet (label app=web) on `node_name`."""
    pods = [ko.pod(f"web-5d4f8-{i}", namespace, node_name, {"app": "web"}, "ReplicaSet/web-5d4f8")
            for i in range(count)]
    for p in pods:
        api.add(p)
    return pods


# -- nodes ------------------------------------------------------------------------------------------------
def test_lists_and_gets_nodes(api: FakeApi, kube: KubeClient) -> None:
    api.add(ko.node(NODE, labels={"kubeaws.io/role": "nodes"}))
    api.add(ko.node(OTHER, ready=False, labels={"kubeaws.io/role": "control-plane"}))
    assert [n["metadata"]["name"] for n in kube.list_nodes()] == [NODE, OTHER]
    [only] = kube.list_nodes("kubeaws.io/role=nodes")
    assert only["metadata"]["name"] == NODE and only["kind"] == "Node"
    assert api.requests[-1]["query"] == {"labelSelector": "kubeaws.io/role=nodes"}
    assert kube.list_nodes("kubeaws.io/role notin (nodes)")[0]["metadata"]["name"] == OTHER
    node = kube.get_node(OTHER)
    assert node is not None and not node_is_ready(node)
    assert kube.get_node("missing") is None


def test_cordon_and_uncordon_patch_spec_unschedulable(api: FakeApi, kube: KubeClient) -> None:
    api.add(ko.node(NODE))
    cordoned = kube.cordon(NODE)
    assert cordoned is not None and cordoned["spec"]["unschedulable"] is True
    patch = api.requests[-1]
    assert (patch["method"], patch["path"]) == ("PATCH", f"/api/v1/nodes/{NODE}")
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["body"] == {"spec": {"unschedulable": True}}
    assert api.objects[f"/api/v1/nodes/{NODE}"]["spec"]["unschedulable"] is True
    uncordoned = kube.uncordon(NODE)
    assert uncordoned is not None and "unschedulable" not in uncordoned["spec"]
    assert "unschedulable" not in api.objects[f"/api/v1/nodes/{NODE}"]["spec"]
    assert kube.cordon("gone") is None


def test_strategic_merge_patch_merges_maps(api: FakeApi, kube: KubeClient) -> None:
    api.add(ko.node(NODE, labels={"a": "1", "b": "2"}))
    patched = kube.patch(f"/api/v1/nodes/{NODE}", {"metadata": {"labels": {"b": None, "c": "3"}}}, "strategic")
    assert patched is not None and patched["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert api.requests[-1]["content_type"] == "application/strategic-merge-patch+json"


def test_delete_node(api: FakeApi, kube: KubeClient) -> None:
    api.add(ko.node(NODE))
    assert kube.delete_node(NODE) is True
    assert kube.delete_node(NODE) is False
    assert f"/api/v1/nodes/{NODE}" not in api.objects


# -- pods -------------------------------------------------------------------------------------------------
def test_pods_on_node_selects_by_node_across_namespaces(api: FakeApi, kube: KubeClient) -> None:
    web(api, 1)
    api.add(ko.pod("kube-proxy-x", "kube-system", NODE, owner="DaemonSet/kube-proxy"))
    api.add(ko.pod("elsewhere", "default", OTHER))
    api.add(ko.pod("unscheduled", "default", None, phase="Pending"))
    assert sorted(p["metadata"]["name"] for p in kube.pods_on_node(NODE)) == ["kube-proxy-x", "web-5d4f8-0"]
    request = api.requests[-1]
    assert (request["path"], request["query"]) == ("/api/v1/pods", {"fieldSelector": f"spec.nodeName={NODE}"})
    assert kube.pods_on_node("no-such-node") == []


def test_fake_refuses_a_field_it_does_not_index(kube: KubeClient) -> None:
    """As a real API server does: a client relying on an unsupported field selector must hear it."""
    with pytest.raises(KubeApiError, match=r"HTTP 400: field label not supported: spec\.hostname"):
        kube.get("/api/v1/pods", {"fieldSelector": "spec.hostname=x"})


def test_daemonset_mirror_and_finished_pods_are_recognised(api: FakeApi, kube: KubeClient) -> None:
    web(api, 1)
    api.add(ko.pod("kube-proxy-x", "kube-system", NODE, owner="DaemonSet/kube-proxy"))
    api.add(ko.pod(f"kube-apiserver-{NODE}", "kube-system", NODE, owner=f"Node/{NODE}", mirror=True))
    api.add(ko.pod("backup-1", "kube-system", NODE, owner="Job/backup", phase="Succeeded", ready=False))
    api.add(ko.pod("crashed", "default", NODE, phase="Failed", ready=False))
    pods = {p["metadata"]["name"]: p for p in kube.pods_on_node(NODE)}
    assert {n for n, p in pods.items() if is_daemonset_pod(p)} == {"kube-proxy-x"}
    assert {n for n, p in pods.items() if is_mirror_pod(p)} == {f"kube-apiserver-{NODE}"}
    assert {n for n, p in pods.items() if pod_is_finished(p)} == {"backup-1", "crashed"}


# -- evictions --------------------------------------------------------------------------------------------
def test_eviction_deletes_the_pod_and_its_replicaset_brings_one_back_pending(api: FakeApi,
                                                                             kube: KubeClient) -> None:
    [first, _] = web(api, 2)
    api.add(ko.pdb("web", min_available=1, match_labels={"app": "web"}))
    result = kube.evict(first)
    assert result.accepted and str(result) == "pod default/web-5d4f8-0 evicted"
    post = api.requests[-1]
    assert (post["method"], post["path"]) == ("POST", "/api/v1/namespaces/default/pods/web-5d4f8-0/eviction")
    assert post["body"] == {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": "web-5d4f8-0", "namespace": "default"}}
    assert "/api/v1/namespaces/default/pods/web-5d4f8-0" not in api.objects
    [again] = [p for p in api.pods() if p["status"]["phase"] == "Pending"]
    assert again["metadata"]["labels"] == {"app": "web"} and "nodeName" not in again["spec"]
    assert again["metadata"]["ownerReferences"][0]["name"] == "web-5d4f8"
    assert kube.evict(first).accepted  # already gone: nothing left to evict


def test_a_budget_that_blocks_is_named(api: FakeApi, kube: KubeClient) -> None:
    [first, _] = web(api, 2)
    api.add(ko.pdb("web", min_available=2, match_labels={"app": "web"}))
    api.add(ko.pdb("web", "other", min_available=2, match_labels={"app": "web"}))  # another namespace
    api.add(ko.pdb("db", min_available=1, match_labels={"app": "db"}))  # another selector
    api.requests.clear()
    result = kube.evict(first)
    assert not result.accepted
    assert result.budgets == ("PodDisruptionBudget default/web (minAvailable 2: 2 of 2 pods healthy, "
                              "0 disruptions allowed)",)
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.reason
    assert "The disruption budget web needs 2 healthy pods and has 2 currently" in result.reason
    assert str(result).startswith("pod default/web-5d4f8-0 cannot be evicted: PodDisruptionBudget default/web")
    assert "/api/v1/namespaces/default/pods/web-5d4f8-0" in api.objects
    assert api.calls("POST") == [("POST", "/api/v1/namespaces/default/pods/web-5d4f8-0/eviction")]  # no retry


def test_a_drain_waits_for_the_replacement_to_run(api: FakeApi, kube: KubeClient) -> None:
    """minAvailable 2 of 3: one eviction at a time, the next once the replacement runs elsewhere."""
    pods = web(api, 3)
    api.add(ko.pdb("web", min_available=2, match_labels={"app": "web"}))
    assert kube.evict(pods[0]).accepted
    blocked = kube.evict(pods[1])
    assert not blocked.accepted and "2 of 3 pods healthy, 0 disruptions allowed" in blocked.budgets[0]
    assert len(api.start_pending(OTHER)) == 1
    assert kube.evict(pods[1]).accepted


@pytest.mark.parametrize(("rule", "selector", "accepted"), [  # 4 pods expected, 3 of them healthy
    ({"min_available": 2}, {"match_labels": {"app": "web"}}, True),
    ({"min_available": 3}, {"match_labels": {"app": "web"}}, False),
    ({"min_available": "50%"}, {"match_labels": {"app": "web"}}, True),  # 2 of 4
    ({"min_available": "51%"}, {"match_labels": {"app": "web"}}, False),  # ceil(2.04) = 3 of 4
    ({"max_unavailable": 2}, {"match_labels": {"app": "web"}}, True),
    ({"max_unavailable": 1}, {"match_labels": {"app": "web"}}, False),  # the unready pod is that one
    ({"max_unavailable": "50%"}, {"match_labels": {"app": "web"}}, True),  # 2 of 4 may be down
    ({"max_unavailable": "25%"}, {"match_labels": {"app": "web"}}, False),
    ({"min_available": 3}, {"match_expressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]}, False),
    ({"min_available": 3}, {"match_expressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, True),
    ({"min_available": 3}, {"match_expressions": [{"key": "app", "operator": "Exists"}]}, False),
    ({"min_available": 3}, {}, True),  # no selector: matches no pod
])
def test_budget_rules(api: FakeApi, kube: KubeClient, rule: dict[str, Any], selector: dict[str, Any],
                      accepted: bool) -> None:
    pods = web(api, 3)
    api.add(ko.pod("web-unready", "default", NODE, {"app": "web"}, ready=False))  # expected, not healthy
    budget = ko.pdb("web", **rule, **selector)
    if not selector:
        del budget["spec"]["selector"]
    api.add(budget)
    assert kube.evict(pods[0]).accepted is accepted


def test_two_budgets_over_one_pod_are_both_named(api: FakeApi, kube: KubeClient) -> None:
    [first] = web(api, 1)
    api.add(ko.pdb("web", min_available=0, match_labels={"app": "web"}))
    api.add(ko.pdb("everything", max_unavailable=1))  # empty selector: every pod of the namespace
    result = kube.evict(first)
    assert not result.accepted and "more than one PodDisruptionBudget" in result.reason
    assert [b.split(" (")[0] for b in result.budgets] == ["PodDisruptionBudget default/everything",
                                                          "PodDisruptionBudget default/web"]
    assert len(api.calls("POST")) == 1  # a 500 that is a budget's answer is not retried either


def test_finished_and_pending_pods_are_evicted_whatever_the_budget(api: FakeApi, kube: KubeClient) -> None:
    [running] = web(api, 1)
    done = ko.pod("web-done", "default", NODE, {"app": "web"}, phase="Succeeded", ready=False)
    waiting = ko.pod("web-waiting", "default", NODE, {"app": "web"}, phase="Pending", ready=False)
    api.add(done)
    api.add(waiting)
    api.add(ko.pdb("web", min_available=1, match_labels={"app": "web"}))
    assert kube.evict(done).accepted and kube.evict(waiting).accepted
    assert not kube.evict(running).accepted  # the one healthy pod stays protected


def test_eviction_errors_other_than_a_budget_raise(api: FakeApi, kube: KubeClient) -> None:
    [first, second] = web(api, 2)
    api.fail_next = [403]
    with pytest.raises(KubeApiError, match=r"POST /api/v1/namespaces/default/pods/web-5d4f8-0/eviction: HTTP 403"):
        kube.evict(first)
    api.fail_next = [503, 503]  # the API server restarting: retried
    assert kube.evict(second).accepted


def test_lists_budgets_of_a_namespace_or_all(api: FakeApi, kube: KubeClient) -> None:
    api.add(ko.pdb("web", min_available=1, match_labels={"app": "web"}))
    api.add(ko.pdb("dns", "kube-system", max_unavailable=1, match_labels={"k8s-app": "kube-dns"}))
    assert [b["metadata"]["name"] for b in kube.list_pdbs()] == ["web", "dns"]
    [dns] = kube.list_pdbs("kube-system")
    assert dns["kind"] == "PodDisruptionBudget" and dns["status"]["expectedPods"] == 0
    assert api.requests[-1]["path"] == "/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets"


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {"app": "web"}, True),
    (None, {"app": "web"}, False),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "x"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}, {"app": "db"}, True),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, {}, False),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {}, True),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": ""}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"app": "web"},
     False),
])
def test_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


# -- waiting on a fake clock ------------------------------------------------------------------------------
@dataclass
class FakeClock:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)
    at: dict[float, Callable[[], object]] = field(default_factory=dict)  # time -> what happens then

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for when in sorted(t for t in self.at if t <= self.now):
            self.at.pop(when)()

    def policy(self) -> RetryPolicy:
        return RetryPolicy(poll_interval=5.0, clock=lambda: self.now, sleep=self.sleep)


def test_wait_node_ready_polls_until_the_node_registers_and_is_ready(api: FakeApi, pki: dict[str, str]) -> None:
    clock = FakeClock()
    clock.at = {30.0: lambda: api.register_node(NODE), 60.0: lambda: api.set_ready(NODE)}
    kube = KubeClient(url(api), pki["ca"], "k8s-aws-v1.abc", clock.policy())
    node = kube.wait_node_ready(NODE, timeout=600)
    assert node["metadata"]["name"] == NODE and node_is_ready(node)
    assert clock.now == 60.0 and set(clock.slept) == {5.0}
    assert api.calls() == [("GET", f"/api/v1/nodes/{NODE}")] * 13


def test_wait_node_ready_gives_up_naming_the_node_and_its_state(api: FakeApi, pki: dict[str, str]) -> None:
    clock = FakeClock()
    kube = KubeClient(url(api), pki["ca"], "k8s-aws-v1.abc", clock.policy())
    with pytest.raises(WaitTimeout, match=f"after 120s waiting for node {NODE} to be Ready: it has not registered"):
        kube.wait_node_ready(NODE, timeout=120)
    assert clock.now == 120.0
    api.register_node(NODE)
    with pytest.raises(WaitTimeout, match=r"node .* to be Ready: Ready is False \(KubeletNotReady\)"):
        kube.wait_node_ready(NODE, timeout=60)
    api.set_ready(NODE)
    api.set_ready(NODE, False)  # and back: a node that flaps is not Ready
    with pytest.raises(WaitTimeout):
        kube.wait_node_ready(NODE, timeout=10)


# -- authentication -----------------------------------------------------------------------------------------
def test_a_token_from_a_callable_is_renewed_when_old_and_after_a_401(api: FakeApi, pki: dict[str, str]) -> None:
    clock = FakeClock()
    issued: list[str] = []

    def token() -> str:
        issued.append(f"k8s-aws-v1.t{len(issued) + 1}")
        return issued[-1]

    kube = KubeClient(url(api), pki["ca"], token, clock.policy())
    kube.list_nodes()
    kube.list_nodes()
    clock.now = TOKEN_REFRESH_SECONDS  # old: the next request asks for a new one
    kube.list_nodes()
    api.refuse_tokens.add("k8s-aws-v1.t2")  # revoked early: a 401, renewed once, and it goes through
    assert kube.list_nodes() == []
    assert issued == ["k8s-aws-v1.t1", "k8s-aws-v1.t2", "k8s-aws-v1.t3"]
    assert [r["authorization"] for r in api.requests] == [
        "Bearer k8s-aws-v1.t1", "Bearer k8s-aws-v1.t1", "Bearer k8s-aws-v1.t2", "Bearer k8s-aws-v1.t2",
        "Bearer k8s-aws-v1.t3"]
    static = KubeClient(url(api), pki["ca"], "k8s-aws-v1.t2", FAST_POLICY)
    with pytest.raises(KubeApiError, match="HTTP 401"):  # a fixed token cannot be renewed: said at once
        static.list_nodes()


def test_node_operations_with_a_client_certificate() -> None:
    """kubeadm: the admin certificate, from PEM in memory, authenticates the cordon and the eviction."""
    ca_key, user_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = make_cert("cluster-ca", ca_key, None, True)
    admin = make_cert("kubeaws-admin", user_key, (ca.subject, ca_key), False)
    server = make_cert("kube-apiserver", server_key, (ca.subject, ca_key), False)
    with serve(pem(server), key_pem(server_key), client_ca=pem(ca)) as fake:
        fake.add(ko.node(NODE))
        [first] = web(fake, 1)
        kube = KubeClient(url(fake), pem(ca), None, FAST_POLICY,
                          client_cert=(pem(admin).encode(), key_pem(user_key).encode()))
        assert kube.cordon(NODE) is not None and kube.evict(first).accepted and kube.delete_node(NODE)
        assert fake.calls("PATCH", "POST", "DELETE") == [
            ("PATCH", f"/api/v1/nodes/{NODE}"), ("POST", "/api/v1/namespaces/default/pods/web-5d4f8-0/eviction"),
            ("DELETE", f"/api/v1/nodes/{NODE}")]
        assert {r["client_cn"] for r in fake.requests} == {"kubeaws-admin"}


# -- connections --------------------------------------------------------------------------------------------
def test_requests_reuse_one_kept_alive_connection(api: FakeApi, kube: KubeClient) -> None:
    """One TLS handshake for many requests (a rollout's polls): the connection is kept and reused."""
    api.add(ko.node(NODE))
    for _ in range(20):
        assert kube.get_node(NODE) is not None
    assert kube.cordon(NODE) is not None and kube.delete_node(NODE) and kube.get_node(NODE) is None
    assert len(api.requests) == 23 and api.handshakes == 1
    kube.close()  # the idle connection closed: the next request opens a new one
    assert kube.list_nodes() == [] and api.handshakes == 2


def test_threads_each_take_their_own_connection(api: FakeApi, kube: KubeClient) -> None:
    """Threads calling at once never share a connection (each answer is its own request's), and the kept
    connections are reused by the next calls: no more handshakes than threads."""
    for i in range(4):
        api.add(ko.node(f"node-{i}"))
    barrier = threading.Barrier(4)
    seen: dict[int, list[str]] = {}

    def work(i: int) -> None:
        barrier.wait()
        seen[i] = [str((kube.get_node(f"node-{i}") or {})["metadata"]["name"]) for _ in range(15)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {i: [f"node-{i}"] * 15 for i in range(4)}
    assert len(api.requests) == 60 and 1 <= api.handshakes <= 4


def test_a_connection_the_server_closed_is_replaced_without_an_attempt(api: FakeApi, pki: dict[str, str]) -> None:
    """The server ends a kept connection (idle timeout): the next request goes out on a new one, even with
    a policy that allows a single attempt, and nothing is sent twice."""
    one_attempt = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, poll_interval=0.0)
    kube = KubeClient(url(api), pki["ca"], "k8s-aws-v1.abc", one_attempt)
    api.add(ko.node(NODE))
    api.drop_after = 1
    assert kube.get_node(NODE) is not None  # answered, then its connection closed by the server
    assert kube.cordon(NODE) is not None  # the kept connection is dead: sent again on a new one
    assert api.calls() == [("GET", f"/api/v1/nodes/{NODE}"), ("PATCH", f"/api/v1/nodes/{NODE}")]
    assert api.handshakes == 2
