"""A FAKE Kubernetes API server over TLS for the tests (no real API server is available here, and the
emulator's EKS is metadata only): a small HTTPS server in a thread that stores objects per path and answers

- GET: one object, or a list filtered by `labelSelector` (`=`, `!=`, existence, `in`, `notin`) and
  `fieldSelector` (`spec.nodeName`, `metadata.name`, `metadata.namespace`, `status.phase`; another field is
  a 400, as on a real server), across namespaces when the path names none;
- PATCH: server-side apply (merging, recording the field manager and content type, adding defaults the way a
  real server does), JSON merge patch and strategic merge patch (maps and scalars; 404 for a missing object);
- PATCH server-side apply refuses (404, as a real server) a custom resource whose CustomResourceDefinition is
  not there and Established (a CRD applied here is Established at once), and an object in a namespace that
  does not exist (the four every cluster has excepted);
- GET /readyz, /livez, /healthz: 200, or 500 while `ready` is False;
- DELETE (404 when gone);
- GET .../pods/<name>/log (`container`: needed when the pod has several, a 400 otherwise, as on a real
  server): text/plain from `logs`, which the test fills;
- POST .../pods/<name>/eviction (a policy/v1 Eviction; like a real server, the endpoint's type is assumed
  when the body names none): the pod's PodDisruptionBudgets, with the status the
  disruption controller would give them (tests/kube_objects.py: `disruptionsAllowed` from the healthy pods
  each matches), decide. Allowed, or the pod is finished or Pending: 201, the pod is deleted and, when a
  ReplicaSet or Deployment owns it, an equivalent pod is created Pending on no node, as its controller
  would. Not allowed: 429 with the real server's message and cause. More than one budget: 500, as there.
  Budgets read through GET carry that computed status too.

Hooks for tests: `add` (any object, e.g. built with tests/kube_objects.py), `register_node` (call it when an
instance appears), `set_ready`, `start_pending` (the Pending pods scheduled and Running on a node), `scheduler` (True:
replacement pods scheduled at once on a Ready node that is not cordoned, `schedule_pending`),
`calls()` (the (method, path) of every request, in order), `fail_next` (statuses to answer next), `handshakes`
(TLS connections accepted: HTTP/1.1 keeps them alive, as a real API server does), `drop_after` (that many
answers each end their connection unannounced, as a server closing an idle one).

Authentication: a bearer token starting with `k8s-aws-v1.` (EKS), or a client certificate signed by the
`client_ca` given to `serve` (kubeadm admin certificates); anything else is 401, and so is a token in
`refuse_tokens` (an expired one). Certificates are made with `cryptography` (`make_cert`, `test_pki`). Used by
tests/test_kube_client.py, tests/test_kubernetes_object.py and tests/test_doctor_live.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import itertools
import json
import re
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests import kube_objects as ko

#: base, namespace, plural, name, subresource
PATH = re.compile(r"^(/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?(?:/([^/]+))?$")
PDBS = "poddisruptionbudgets"
#: The API groups a bare API server serves (anything else needs its CustomResourceDefinition).
BUILT_IN_GROUPS = frozenset({"apps", "batch", "policy", "rbac.authorization.k8s.io", "storage.k8s.io",
                             "networking.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
                             "admissionregistration.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
                             "autoscaling", "certificates.k8s.io", "scheduling.k8s.io", "node.k8s.io",
                             "flowcontrol.apiserver.k8s.io", "events.k8s.io", "authorization.k8s.io",
                             "authentication.k8s.io", "resource.k8s.io"})
#: The namespaces every cluster has.
BUILT_IN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
MERGE_TYPES = frozenset({"application/merge-patch+json", "application/strategic-merge-patch+json"})
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def make_cert(subject: str, key: SigningKey, issuer: tuple[x509.Name, SigningKey] | None, ca: bool) -> x509.Certificate:
    """A certificate for CN=`subject` (a server certificate for 127.0.0.1 unless `ca`), self-signed or
    signed by `issuer` (its subject name and key)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def merge(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: merge(old.get(k), v) for k, v in new.items()}}
    return new


class FakeApi(ThreadingHTTPServer):
    """The fake API server's state: objects by path, every request seen, statuses to answer next."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []
        self.refuse_tokens: set[str] = set()
        #: (namespace, pod, container) -> what GET .../pods/<pod>/log?container=<container> answers
        self.logs: dict[tuple[str, str, str], str] = {}
        self.lock = threading.RLock()
        self.version = 0
        self.suffixes = itertools.count(1)
        #: True: a replacement pod is scheduled at once on a Ready, schedulable node, as the scheduler would.
        self.scheduler = False
        #: TLS connections accepted (each one a handshake); requests on a kept-alive connection add none.
        self.handshakes = 0
        #: Answers after which the connection is closed without a word (as a server ends an idle keep-alive).
        self.drop_after = 0
        #: What /readyz, /livez and /healthz answer: 200 when True, 500 while the API server is starting.
        self.ready = True

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()  # the listening socket is TLS: accepting is the handshake
        with self.lock:
            self.handshakes += 1
        return accepted

    def refusal(self, base: str, namespace: str | None, plural: str) -> str | None:
        """Why a real API server refuses to store an object there (404), or None: a custom resource whose
        CustomResourceDefinition is not there and Established ("the server could not find the requested
        resource"), an object in a namespace that does not exist (the NamespaceLifecycle admission plugin)."""
        group = base.removeprefix("/apis/").rpartition("/")[0] if base.startswith("/apis/") else ""
        if group and group not in BUILT_IN_GROUPS:
            crd = self.objects.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")
            conditions = ((crd or {}).get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return "the server could not find the requested resource"
        if namespace and namespace not in BUILT_IN_NAMESPACES and \
                f"/api/v1/namespaces/{namespace}" not in self.objects:
            return f'namespaces "{namespace}" not found'
        return None

    # -- hooks for tests ------------------------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> str:
        """Store `obj` (apiVersion, kind, metadata.name, metadata.namespace for a namespaced one) as the
        server would (uid, resourceVersion); its path."""
        meta = obj["metadata"]
        group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        where = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
        path = f"{group}{where}/{obj['kind'].lower()}s/{meta['name']}"
        with self.lock:
            self.version += 1
            stored = copy.deepcopy(obj)
            stored["metadata"].setdefault("uid", f"uid-{meta['name']}")
            stored["metadata"]["resourceVersion"] = str(self.version)
            self.objects[path] = stored
        return path

    def register_node(self, name: str, ready: bool = False, **kw: Any) -> dict[str, Any]:
        """A kubelet registering its Node (NotReady at first unless `ready`): call it when an instance
        appears. Keyword arguments as `kube_objects.node`."""
        obj = ko.node(name, ready=ready, **kw)
        self.add(obj)
        return obj

    def set_ready(self, name: str, ready: bool = True) -> None:
        """The Node's Ready condition becomes True (or False); KeyError if no such node."""
        with self.lock:
            conditions = self.objects[f"/api/v1/nodes/{name}"].setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "Ready"] + [ko.ready_condition(ready)]

    def start_pending(self, node_name: str) -> list[str]:
        """Every Pending pod that is on no node is scheduled on `node_name` and Running and Ready (a
        controller's replacement pods coming up); their paths."""
        with self.lock:
            started = []
            for path, obj in self.objects.items():
                if "/pods/" in path and obj["status"].get("phase") == "Pending" and not obj["spec"].get("nodeName"):
                    obj["spec"]["nodeName"] = node_name
                    obj["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
                    started.append(path)
            return started

    def schedule_pending(self) -> list[str]:
        """The scheduler's part: Pending pods on no node run on the first Ready node that is not cordoned
        (by name); their paths (none when no node can take them)."""
        with self.lock:
            nodes = sorted(n["metadata"]["name"] for p, n in self.objects.items() if _kind_of(p)[1] == "nodes"
                           and not (n.get("spec") or {}).get("unschedulable")
                           and any(c.get("type") == "Ready" and c.get("status") == "True"
                                   for c in (n.get("status") or {}).get("conditions") or []))
            return self.start_pending(nodes[0]) if nodes else []

    def calls(self, *methods: str) -> list[tuple[str, str]]:
        """(method, path) of every request so far, in order; only these methods when given."""
        with self.lock:
            return [(r["method"], r["path"]) for r in self.requests if not methods or r["method"] in methods]

    def pods(self) -> list[dict[str, Any]]:
        with self.lock:
            return [o for p, o in sorted(self.objects.items()) if _kind_of(p) == ("/api/v1", "pods")]

    def view(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """An object as GET returns it: a budget with the disruption controller's status."""
        if _kind_of(path)[1] == PDBS:
            return {**obj, "status": ko.pdb_status(obj, self.pods())}
        return obj


def _kind_of(path: str) -> tuple[str, str]:
    """(base, plural) of an object's path ("", "") for anything else."""
    found = PATH.match(path)
    if found is None or found.group(4) is None or found.group(5) is not None:
        return "", ""
    return found.group(1), found.group(3)


class Handler(BaseHTTPRequestHandler):
    server: FakeApi
    protocol_version = "HTTP/1.1"  # connections kept alive, as a real API server's (every answer has a length)
    disable_nagle_algorithm = True  # as Go's servers: the body, written after the headers, goes out at once

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            if self.server.drop_after > 0:
                self.server.drop_after -= 1
                self.close_connection = True

    def _status(self, code: int, message: str, **extra: Any) -> None:
        self._reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                           "code": code, **extra})

    def _handle(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else None
        srv = self.server
        with srv.lock:
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            client_cn = next((v for rdn in (peer or {}).get("subject", ()) for k, v in rdn if k == "commonName"),
                             None)
            authorization = self.headers.get("Authorization") or ""
            srv.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                 "content_type": self.headers.get("Content-Type"), "client_cn": client_cn,
                                 "authorization": authorization})
            token = authorization.removeprefix("Bearer ")
            bearer = token.startswith("k8s-aws-v1.") and token not in srv.refuse_tokens
            if not bearer and client_cn is None:
                return self._status(401, "Unauthorized")
            if srv.fail_next:
                return self._status(srv.fail_next.pop(0), "injected failure")
            if parts.path in ("/readyz", "/livez", "/healthz") and method == "GET":
                return self._reply(200 if srv.ready else 500, "ok" if srv.ready else "not ready")
            match = PATH.match(parts.path)
            if match is None:
                return self._status(404, "the server could not find the requested resource")
            base, namespace, plural, name, sub = match.groups()
            name = urllib.parse.unquote(name) if name is not None else None  # as the API server decodes it
            if sub is not None:
                if (method, plural, sub) == ("POST", "pods", "eviction"):
                    return self._evict(parts.path.rsplit("/", 1)[0], namespace, name, body)
                if (method, plural, sub) == ("GET", "pods", "log"):
                    return self._log(parts.path.rsplit("/", 1)[0], namespace, name, query)
                return self._status(404, "the server could not find the requested resource")
            obj = srv.objects.get(parts.path)
            if method == "GET" and name is None:
                return self._list(base, namespace, plural, query)
            if method == "GET":
                return self._reply(200, srv.view(parts.path, obj)) if obj else self._not_found(plural, name)
            if method == "DELETE":
                if obj is None:
                    return self._not_found(plural, name)
                del srv.objects[parts.path]
                return self._reply(200, {"kind": "Status", "status": "Success"})
            content_type = self.headers.get("Content-Type")
            if method == "PATCH" and content_type in MERGE_TYPES:
                if obj is None:
                    return self._not_found(plural, name)
                srv.version += 1
                patched = ko.merge_patch(obj, body)
                patched["metadata"]["resourceVersion"] = str(srv.version)
                srv.objects[parts.path] = patched
                return self._reply(200, patched)
            if method != "PATCH" or content_type != "application/apply-patch+yaml":
                return self._status(415, "unsupported media type")
            if body["metadata"]["name"] != name or not query.get("fieldManager"):
                return self._status(400, "name mismatch or no fieldManager")
            refused = srv.refusal(base, namespace, plural)
            if refused:
                return self._status(404, refused, reason="NotFound")
            srv.version += 1
            merged = merge(copy.deepcopy(obj or {}), copy.deepcopy(body))
            merged["metadata"].update({"uid": f"uid-{name}", "resourceVersion": str(srv.version),
                                       "managedFields": [{"manager": query["fieldManager"]}]})
            if namespace:
                merged["metadata"]["namespace"] = namespace
            if body["kind"] == "Deployment":  # server-side defaults, as a real API server adds them
                merged["spec"] = {"revisionHistoryLimit": 10, "strategy": {"type": "RollingUpdate"},
                                  **merged["spec"]}
                merged["status"] = {"replicas": 0}
            if body["kind"] == "CustomResourceDefinition":  # the API server's controller establishes it
                merged["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
            srv.objects[parts.path] = merged
            return self._reply(201 if obj is None else 200, merged)

    def _not_found(self, plural: str, name: str) -> None:
        self._status(404, f'{plural} "{name}" not found', reason="NotFound")

    def _list(self, base: str, namespace: str | None, plural: str, query: dict[str, str]) -> None:
        srv = self.server
        try:
            ko.label_selector_matches(query.get("labelSelector", ""), {})  # a bad selector is a 400, always
            ko.field_selector_matches(query.get("fieldSelector", ""), {})
            items = [srv.view(path, {k: v for k, v in o.items() if k not in ("apiVersion", "kind")})
                     for path, o in sorted(srv.objects.items())
                     if _kind_of(path) == (base, plural) and namespace in (None, o["metadata"].get("namespace"))
                     and ko.label_selector_matches(query.get("labelSelector", ""), o["metadata"].get("labels") or {})
                     and ko.field_selector_matches(query.get("fieldSelector", ""), o)]
        except ValueError as exc:
            return self._status(400, str(exc), reason="BadRequest")
        return self._reply(200, {"kind": "List", "items": items})

    def _log(self, pod_path: str, namespace: str, name: str, query: dict[str, str]) -> None:
        """A container's log as text/plain; as a real server, a pod of several containers needs `container`."""
        pod = self.server.objects.get(pod_path)
        if pod is None:
            return self._not_found("pods", name)
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        container = query.get("container") or (names[0] if len(names) == 1 else "")
        if container not in names:
            return self._status(400, f"a container name must be specified for pod {name}, choose one of: {names}",
                                reason="BadRequest")
        data = self.server.logs.get((namespace, name, container), "").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _evict(self, pod_path: str, namespace: str, name: str, body: Any) -> None:
        srv = self.server
        pod = srv.objects.get(pod_path)
        if pod is None:
            return self._not_found("pods", name)
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction" \
                or body.get("apiVersion", "policy/v1") != "policy/v1" \
                or (body.get("metadata") or {}).get("name") != name:
            return self._status(400, "the body is not a policy/v1 Eviction of this pod", reason="BadRequest")
        budgets = [o for p, o in sorted(srv.objects.items()) if _kind_of(p)[1] == PDBS
                   and o["metadata"].get("namespace") == namespace
                   and ko.selector_matches((o.get("spec") or {}).get("selector"), pod["metadata"].get("labels") or {})]
        if pod["status"].get("phase") not in ("Succeeded", "Failed", "Pending"):  # those ignore budgets
            if len(budgets) > 1:
                return self._status(500, ko.MANY_PDBS, reason="InternalError")
            for budget in budgets:
                status = ko.pdb_status(budget, srv.pods())
                if status["disruptionsAllowed"] < 1:
                    cause = (f"The disruption budget {budget['metadata']['name']} needs {status['desiredHealthy']} "
                             f"healthy pods and has {status['currentHealthy']} currently")
                    return self._status(429, ko.PDB_VIOLATION, reason="TooManyRequests",
                                        details={"causes": [{"reason": "DisruptionBudget", "message": cause}]})
        del srv.objects[pod_path]
        owners = pod["metadata"].get("ownerReferences") or []
        if any(o.get("kind") in ("ReplicaSet", "Deployment") for o in owners):
            meta = pod["metadata"]
            again = ko.pod(f"{meta.get('generateName') or name + '-'}r{next(srv.suffixes)}", namespace,
                           labels=meta.get("labels"), phase="Pending", ready=False)
            again["metadata"].update(ownerReferences=copy.deepcopy(owners),
                                     generateName=meta.get("generateName", ""))
            srv.add(again)
            if srv.scheduler:
                srv.schedule_pending()
        return self._reply(201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")


def key_pem(key: SigningKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_pki() -> dict[str, str]:
    """A test CA ("ca"), an unrelated CA ("other_ca") and a server certificate + key for 127.0.0.1 signed by
    the test CA ("cert", "key"), as PEM."""
    ca_key, other_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = make_cert("test-ca", ca_key, None, True)
    leaf = make_cert("kube-apiserver", leaf_key, (ca.subject, ca_key), False)
    return {"ca": pem(ca), "other_ca": pem(make_cert("other-ca", other_key, None, True)), "cert": pem(leaf),
            "key": key_pem(leaf_key)}


test_pki.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@contextmanager
def serve(cert_pem: str, key_pem_text: str, client_ca: str | None = None) -> Iterator[FakeApi]:
    """Run a FakeApi on 127.0.0.1 (a free port) with this server certificate; with `client_ca`, client
    certificates signed by it are asked for and accepted as authentication."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tls.crt").write_text(cert_pem)
        (Path(tmp) / "tls.key").write_text(key_pem_text)
        tls.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
    if client_ca:
        tls.verify_mode = ssl.CERT_OPTIONAL
        tls.load_verify_locations(cadata=client_ca)
    server = FakeApi()
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(api: FakeApi) -> str:
    return f"https://127.0.0.1:{api.server_address[1]}"
