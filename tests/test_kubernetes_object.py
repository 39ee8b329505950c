"""KubeClient and the `KubernetesObject` kind against a FAKE Kubernetes API server.

No real API server is available here (and the emulator's EKS is metadata only), so these tests check
kubeaws' side of the contract: a small HTTPS server in a thread (certificate signed by a test CA made with
`cryptography`) that stores objects per path, answers GET (one object, or a list filtered by labelSelector),
server-side apply PATCH (merging, recording the field manager and content type, adding defaults the way a
real server does) and DELETE, and refuses any bearer token not starting with `k8s-aws-v1.`. DescribeCluster
is answered by a botocore before-call hook on the AwsContext (endpoint = the fake server, CA = the test CA).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from botocore.awsrequest import AWSResponse, HTTPHeaders
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.bootstrap.eks import render_aws_auth
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeApiError, KubeClient
from kubeaws.resources.base import Desired
from kubeaws.resources.kubernetes_object import KubernetesObject, contains, object_name, owned_manifest

PATH = re.compile(r"^(/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?$")
NODE_ROLE = "arn:aws:iam::123456789012:role/kubeaws/dev-nodes"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
          ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, signer = issuer or (subject, key)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _merge(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _merge(old.get(k), v) for k, v in new.items()}}
    return new


class FakeApi(ThreadingHTTPServer):
    """The fake API server's state: objects by path, every request seen, statuses to answer next."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []
        self.lock = threading.Lock()
        self.version = 0


class Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, message: str) -> None:
        self._reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                           "code": code})

    def _handle(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else None
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                 "content_type": self.headers.get("Content-Type")})
            if not (self.headers.get("Authorization") or "").startswith("Bearer k8s-aws-v1."):
                return self._status(401, "Unauthorized")
            if srv.fail_next:
                return self._status(srv.fail_next.pop(0), "injected failure")
            match = PATH.match(parts.path)
            if match is None:
                return self._status(404, "the server could not find the requested resource")
            base, namespace, plural, name = match.groups()
            obj = srv.objects.get(parts.path)
            if method == "GET" and name is None:
                wanted = dict(p.split("=", 1) for p in query.get("labelSelector", "").split(",") if p)
                items = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")}
                         for path, o in sorted(srv.objects.items())
                         if PATH.match(path).groups()[0::2] == (base, plural)  # type: ignore[union-attr]
                         and namespace in (None, o["metadata"].get("namespace"))
                         and wanted.items() <= (o["metadata"].get("labels") or {}).items()]
                return self._reply(200, {"kind": "List", "items": items})
            if method == "GET":
                return self._reply(200, obj) if obj else self._status(404, f'{plural} "{name}" not found')
            if method == "DELETE":
                if obj is None:
                    return self._status(404, f'{plural} "{name}" not found')
                del srv.objects[parts.path]
                return self._reply(200, {"kind": "Status", "status": "Success"})
            if method != "PATCH" or self.headers.get("Content-Type") != "application/apply-patch+yaml":
                return self._status(415, "unsupported media type")
            if body["metadata"]["name"] != name or not query.get("fieldManager"):
                return self._status(400, "name mismatch or no fieldManager")
            srv.version += 1
            merged = _merge(copy.deepcopy(obj or {}), copy.deepcopy(body))
            merged["metadata"].update({"uid": f"uid-{name}", "resourceVersion": str(srv.version),
                                       "managedFields": [{"manager": query["fieldManager"]}]})
            if namespace:
                merged["metadata"]["namespace"] = namespace
            if body["kind"] == "Deployment":  # server-side defaults, as a real API server adds them
                merged["spec"] = {"revisionHistoryLimit": 10, "strategy": {"type": "RollingUpdate"},
                                  **merged["spec"]}
                merged["status"] = {"replicas": 0}
            srv.objects[parts.path] = merged
            return self._reply(201 if obj is None else 200, merged)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


@pytest.fixture(scope="module")
def pki() -> dict[str, str]:
    ca_key, other_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("test-ca", ca_key, None, True)
    leaf = _cert("kube-apiserver", leaf_key, ("test-ca", ca_key), False)
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
    return {"ca": _pem(ca), "other_ca": _pem(_cert("other-ca", other_key, None, True)), "cert": _pem(leaf),
            "key": key_pem}


@pytest.fixture
def api(pki: dict[str, str], tmp_path: Any) -> Iterator[FakeApi]:
    (tmp_path / "tls.crt").write_text(pki["cert"])
    (tmp_path / "tls.key").write_text(pki["key"])
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = FakeApi()
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(api: FakeApi) -> str:
    return f"https://127.0.0.1:{api.server_address[1]}"


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
    for want in wants:
        made = KIND.create(ctx, want)
        assert made.id == want.name and KIND.diff(made, want) == {}
    client(api, pki["ca"]).apply({**CM, "metadata": {"name": "theirs", "namespace": "default"}})  # not ours
    found = {o.logical_key: o for o in KIND.list_owned(ctx)}
    assert set(found) == {f"KubernetesObject/{d.name}" for d in wants}
    assert all(o.tags["kubeaws.io/cluster"] == "dev" for o in found.values())
    lists = [r for r in api.requests if r["method"] == "GET"]
    assert len(lists) == KIND.list_reads - 1
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
    assert KIND.list_owned(ctx) == [] and set(api.objects) == {"/api/v1/namespaces/default/configmaps/theirs"}


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
    with pytest.raises(KubeawsError, match="EKS cluster dev does not exist"):
        KIND.create(eks_ctx(None), desired(CM))
    with pytest.raises(KubeawsError, match="must be <kind>/<namespace>/<name>"):
        KIND.create(eks_ctx(api, pki["ca"]), Desired("KubernetesObject", "aws-auth", desired(CM).props))


def test_emulator_skips_the_kubernetes_api(ctx: AwsContext) -> None:
    """On moto, EKS is metadata only: nothing is applied, listed or deleted (a re-plan shows creates)."""
    want = desired(CM)
    with ctx.counting() as log:
        made = KIND.create(ctx, want)
        KIND.delete(ctx, made)
        assert KIND.list_owned(ctx) == []
    assert made.id == want.name and KIND.diff(made, want) == {}
    assert log.mutating() == 0 and log.reads() == 1  # list_owned's DescribeCluster


def test_contains() -> None:
    assert contains({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}}, {"b": {"c": [1, {"d": 2}]}, "x": None})
    assert not contains({"a": 1}, {"a": 2}) and not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains(None, {"a": 1})
