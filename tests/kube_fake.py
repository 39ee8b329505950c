"""A FAKE Kubernetes API server over TLS for the tests (no real API server is available here, and the
emulator's EKS is metadata only): a small HTTPS server in a thread that stores objects per path, answers GET
(one object, or a list filtered by labelSelector), server-side apply PATCH (merging, recording the field
manager and content type, adding defaults the way a real server does) and DELETE.

Authentication: a bearer token starting with `k8s-aws-v1.` (EKS), or a client certificate signed by the
`client_ca` given to `serve` (kubeadm admin certificates); anything else is 401. Certificates are made with
`cryptography` (`make_cert`, `test_pki`). Used by tests/test_kubernetes_object.py and tests/test_doctor_live.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
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

PATH = re.compile(r"^(/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?$")
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
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            client_cn = next((v for rdn in (peer or {}).get("subject", ()) for k, v in rdn if k == "commonName"),
                             None)
            srv.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                 "content_type": self.headers.get("Content-Type"), "client_cn": client_cn})
            bearer = (self.headers.get("Authorization") or "").startswith("Bearer k8s-aws-v1.")
            if not bearer and client_cn is None:
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
            merged = merge(copy.deepcopy(obj or {}), copy.deepcopy(body))
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
