"""KubeClient and the `KubernetesObject` kind against a FAKE Kubernetes API server (tests/kube_fake.py).

No real API server is available here (and the emulator's EKS is metadata only), so these tests check
kubeaws' side of the contract against a small HTTPS server in a thread (certificate signed by a test CA made
with `cryptography`) that refuses any bearer token not starting with `k8s-aws-v1.` unless a client
certificate authenticates the caller. DescribeCluster is answered by a botocore before-call hook on the
AwsContext (endpoint = the fake server, CA = the test CA).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from botocore.awsrequest import AWSResponse, HTTPHeaders
from cryptography.hazmat.primitives.asymmetric import ec

from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.bootstrap.eks import render_aws_auth
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import TYPES, KubeApiError, KubeClient
from kubeaws.resources.base import Desired, Observed
from kubeaws.resources.kubernetes_object import KubernetesObject, contains, object_name, owned_manifest
from tests.kube_fake import FakeApi, key_pem, make_cert, pem, serve, url

NODE_ROLE = "arn:aws:iam::123456789012:role/kubeaws/dev-nodes"


@pytest.fixture
def pki(kube_pki: dict[str, str]) -> dict[str, str]:
    return kube_pki  # tests/conftest.py


@pytest.fixture
def api(fake_api: FakeApi) -> FakeApi:
    return fake_api  # tests/conftest.py


def client(api: FakeApi, ca: str, token: str = "k8s-aws-v1.abc") -> KubeClient:
    return KubeClient(url(api), base64.b64encode(ca.encode()).decode(), token, FAST_POLICY)


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "kube-system"},
      "data": {"a": "1"}}
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}


def test_client_applies_gets_and_deletes(api: FakeApi, pki: dict[str, str]) -> None:
    kube = client(api, pki["ca"])
    applied = kube.apply(CM)
    assert applied["data"] == {"a": "1"} and applied["metadata"]["managedFields"] == [{"manager": "kubeaws"}]
    patch = api.requests[-1]
    assert patch["method"] == "PATCH" and patch["path"] == "/api/v1/namespaces/kube-system/configmaps/settings"
    assert patch["content_type"] == "application/apply-patch+yaml"
    assert patch["query"] == {"fieldManager": "kubeaws", "force": "true"} and patch["body"] == CM
    assert kube.get("/api/v1/namespaces/kube-system/configmaps/settings") == applied
    assert kube.get("/api/v1/namespaces/kube-system/configmaps/missing") is None
    assert kube.delete("/api/v1/namespaces/kube-system/configmaps/settings") is True
    assert kube.delete("/api/v1/namespaces/kube-system/configmaps/settings") is False
    assert kube.get("/api/v1/namespaces/kube-system/configmaps/settings") is None
    kube.apply(ROLE)  # cluster-scoped, API group
    kube.apply({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}, "spec": {}})
    assert set(api.objects) == {"/apis/rbac.authorization.k8s.io/v1/clusterroles/reader",
                                "/apis/policy/v1/namespaces/default/poddisruptionbudgets/p"}


def test_client_errors_are_clear(api: FakeApi, pki: dict[str, str]) -> None:
    with pytest.raises(KubeawsError, match="cannot manage v1 Secret"):
        client(api, pki["ca"]).apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    with pytest.raises(KubeApiError, match="HTTP 401: Unauthorized") as info:
        client(api, pki["ca"], token="not-eks").get("/api/v1/namespaces/default/configmaps/x")
    assert info.value.status == 401
    api.fail_next = [422]
    with pytest.raises(KubeApiError, match=r"PATCH .*HTTP 422: injected failure"):
        client(api, pki["ca"]).apply(CM)


def test_client_retries_unavailable_and_connection_errors(api: FakeApi, pki: dict[str, str]) -> None:
    api.fail_next = [503, 503]
    assert client(api, pki["ca"]).apply(CM)["data"] == {"a": "1"}
    sleeps: list[float] = []
    dead = KubeClient("https://127.0.0.1:1", pki["ca"], "k8s-aws-v1.x", FAST_POLICY, sleep=sleeps.append)
    with pytest.raises(KubeawsError, match=r"cannot connect .* after 8 attempts"):
        dead.get("/api/v1/namespaces/default/configmaps/x")
    assert len(sleeps) == FAST_POLICY.max_attempts - 1


def test_client_verifies_tls_against_the_cluster_ca(api: FakeApi, pki: dict[str, str]) -> None:
    sleeps: list[float] = []
    wrong = KubeClient(url(api), pki["other_ca"], "k8s-aws-v1.x", FAST_POLICY, sleep=sleeps.append)
    with pytest.raises(KubeawsError, match="TLS failed"):
        wrong.get("/api/v1/namespaces/default/configmaps/x")
    assert sleeps == [] and api.requests == []  # never retried, nothing reached the server


def test_client_authenticates_with_a_client_certificate(pki: dict[str, str]) -> None:
    """kubeadm clusters: no token, a client certificate signed by the cluster CA (here the test CA)."""
    ca_key, user_key, rogue_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = make_cert("cluster-ca", ca_key, None, True)
    admin = make_cert("kubeaws-admin", user_key, (ca.subject, ca_key), False)
    rogue = make_cert("kubeaws-admin", rogue_key, None, False)  # self-signed: the server must refuse it
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = make_cert("kube-apiserver", server_key, (ca.subject, ca_key), False)
    with serve(pem(server), key_pem(server_key), client_ca=pem(ca)) as fake:
        kube = KubeClient(url(fake), pem(ca), None, FAST_POLICY, client_cert=(pem(admin), key_pem(user_key)))
        assert kube.get("/api/v1/nodes") == {"kind": "List", "items": []}
        assert fake.requests[-1]["client_cn"] == "kubeaws-admin"
        with pytest.raises(KubeApiError, match="HTTP 401"):
            KubeClient(url(fake), pem(ca), None, FAST_POLICY).get("/api/v1/nodes")
        with pytest.raises(KubeawsError):  # the handshake fails: a certificate the cluster CA did not sign
            KubeClient(url(fake), pem(ca), None, FAST_POLICY, sleep=lambda _: None,
                       client_cert=(pem(rogue), key_pem(rogue_key))).get("/api/v1/nodes")
    with pytest.raises(KubeawsError, match="client certificate cannot be loaded"):
        KubeClient(url(fake), pem(ca), None, client_cert=(pem(admin), key_pem(rogue_key)))


# -- the kind ------------------------------------------------------------------------------------------
KIND = KubernetesObject()


def eks_ctx(api: FakeApi | None, ca: str = "", status: str = "ACTIVE") -> AwsContext:
    """A context on "real" AWS whose DescribeCluster is answered locally (the fake server, or not found)."""

    def describe_cluster(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if api is None or params["url_path"] != "/clusters/dev":  # the serialized request
            return AWSResponse("", 404, HTTPHeaders(), None), {"Error": {"Code": "ResourceNotFoundException",
                                                              "Message": "No cluster found"}}
        return AWSResponse("", 200, HTTPHeaders(), None), {"cluster": {
            "name": "dev", "status": status, "endpoint": url(api),
            "certificateAuthority": {"data": base64.b64encode(ca.encode()).decode()}}}

    return AwsContext(AwsSettings(region="us-east-1"), cluster="dev", policy=FAST_POLICY,
                      hooks=[("before-call.eks.DescribeCluster", describe_cluster)])


def desired(manifest: dict[str, Any], cluster: str = "dev") -> Desired:
    full = owned_manifest(cluster, manifest)
    return Desired("KubernetesObject", object_name(full), {"cluster_name": cluster, "manifest": full})


DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
              "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "nginx"}]}}}}


def test_kind_creates_lists_diffs_updates_and_deletes(api: FakeApi, pki: dict[str, str]) -> None:
    ctx = eks_ctx(api, pki["ca"])
    wants = [desired(CM), desired(DEPLOY), desired(ROLE)]
    assert [d.name for d in wants] == ["configmap/kube-system/settings", "deployment/apps/web", "clusterrole/reader"]
    api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})  # the server refuses it else
    for want in wants:
        made = KIND.create(ctx, want)
        assert made.id == want.name and KIND.diff(made, want) == {}
    client(api, pki["ca"]).apply({**CM, "metadata": {"name": "theirs", "namespace": "default"}})  # not ours
    found = {o.logical_key: o for o in KIND.list_owned(ctx)}
    assert set(found) == {f"KubernetesObject/{d.name}" for d in wants}
    assert all(o.tags["kubeaws.io/cluster"] == "dev" for o in found.values())
    lists = [r for r in api.requests if r["method"] == "GET"]
    assert len(lists) == len(TYPES)
    assert {r["query"]["labelSelector"] for r in lists} == {"kubeaws.io/cluster=dev"}
    for want in wants:  # clean although the server added defaults, uid, status...
        assert KIND.diff(found[f"KubernetesObject/{want.name}"], want) == {}, want.name

    changed = desired({**CM, "data": {"a": "2", "b": "3"}})
    actual = found["KubernetesObject/configmap/kube-system/settings"]
    change = KIND.diff(actual, changed)
    assert set(change) == {"manifest"}
    KIND.update(ctx, actual, changed, change)
    again = {o.id: o for o in KIND.list_owned(ctx)}
    assert KIND.diff(again["configmap/kube-system/settings"], changed) == {}

    for o in again.values():
        KIND.delete(ctx, o)
        KIND.delete(ctx, o)  # already gone: fine
    assert KIND.list_owned(ctx) == [] and set(api.objects) == {"/api/v1/namespaces/default/configmaps/theirs",
                                                                "/api/v1/namespaces/apps"}


def test_aws_auth_config_map_is_applied(api: FakeApi, pki: dict[str, str]) -> None:
    manifest = yaml.safe_load(render_aws_auth([NODE_ROLE]))
    want = desired(manifest)
    assert want.name == "configmap/kube-system/aws-auth"
    KIND.create(eks_ctx(api, pki["ca"]), want)
    stored = api.objects["/api/v1/namespaces/kube-system/configmaps/aws-auth"]
    roles = yaml.safe_load(stored["data"]["mapRoles"])
    assert roles[0]["rolearn"] == "arn:aws:iam::123456789012:role/dev-nodes"
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubeaws", "kubeaws.io/cluster": "dev"}
    (found,) = KIND.list_owned(eks_ctx(api, pki["ca"]))
    assert KIND.diff(found, want) == {}


def test_without_cluster_nothing_is_listed_or_deleted(api: FakeApi, pki: dict[str, str]) -> None:
    for ctx in (eks_ctx(None), eks_ctx(api, pki["ca"], status="CREATING")):
        with ctx.counting() as log:
            assert KIND.list_owned(ctx) == []
        assert log.reads() <= 1 and log.mutating() == 0
        KIND.delete(ctx, KIND.create(eks_ctx(api, pki["ca"]), desired(CM)))
    with pytest.raises(KubeawsError, match="cluster dev cannot be reached: it does not exist"):
        KIND.create(eks_ctx(None), desired(CM))
    with pytest.raises(KubeawsError, match="must be <kind>/<namespace>/<name>"):
        KIND.create(eks_ctx(api, pki["ca"]), Desired("KubernetesObject", "aws-auth", desired(CM).props))


def test_emulator_refuses_the_kubernetes_api(ctx: AwsContext) -> None:
    """On moto, EKS is metadata only: an apply is refused with the reason (never a made-up success), a delete has
    nothing to do and nothing is listed; the plan leaves the kind out there (tests/test_local_eks.py)."""
    want = desired(CM)
    with ctx.counting() as log:
        with pytest.raises(KubeawsError, match="serves no Kubernetes API"):
            KIND.create(ctx, want)
        KIND.delete(ctx, Observed(kind="KubernetesObject", id=want.name, fields=dict(want.props)))
        assert KIND.list_owned(ctx) == []
    assert log.mutating() == 0 and log.reads() == 0  # no API there: not even a DescribeCluster


def test_contains() -> None:
    assert contains({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}}, {"b": {"c": [1, {"d": 2}]}, "x": None})
    assert not contains({"a": 1}, {"a": 2}) and not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains(None, {"a": 1})
