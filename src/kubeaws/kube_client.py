"""A minimal Kubernetes API client on the standard library: enough for kubeaws to apply, read and delete the
few in-cluster objects it manages on an EKS cluster (kind `KubernetesObject`, resources/kubernetes_object.py).

- TLS verified against the cluster CA (DescribeCluster's base64 PEM, or a PEM), hostname checked; a bearer
  token (EKS: `eks_auth.eks_token`) and/or a client certificate (kubeadm: the admin certificate signed by the
  cluster CA, `pki.client_certificate`), loaded from PEM bytes through a private temporary directory that is
  removed at once (the ssl module loads certificate chains from files only).
- `apply` = server-side apply: PATCH the object's path with `application/apply-patch+yaml` (the body is JSON,
  which is YAML), `fieldManager=kubeaws&force=true`.
- `get` (404 -> None), `list_objects` (with a label selector), `delete` (404 -> already gone).
- Connection errors, 429 and 5xx answers are retried with the RetryPolicy's backoff (the API server of a
  new cluster may still be coming up); any other error raises KubeawsError with the status and message.

Paths are built from apiVersion/kind for the types in `TYPES` only: kubeaws does not do API discovery.
Called by resources/kubernetes_object.py (EKS objects) and doctor/live_k8s.py (`kubeaws doctor --live`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from kubeaws.aws.retry import RetryPolicy
from kubeaws.errors import KubeawsError

#: (apiVersion, kind) -> (plural resource name, namespaced)
TYPES: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Service"): ("services", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
TIMEOUT = 30.0


class KubeApiError(KubeawsError):
    """The Kubernetes API answered with an error (after retries)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {method} {path}: HTTP {status}: {message}")
        self.status = status
        self.api_message = message


def type_of(api_version: str, kind: str) -> tuple[str, bool]:
    """(plural, namespaced) of a supported type; KubeawsError naming the supported ones otherwise."""
    try:
        return TYPES[(api_version, kind)]
    except KeyError:
        known = ", ".join(f"{v} {k}" for v, k in TYPES)
        raise KubeawsError(f"kubeaws cannot manage {api_version} {kind} objects (supported: {known})") from None


def collection_path(api_version: str, kind: str, namespace: str | None = None) -> str:
    """The collection of a type: in one namespace, or across all namespaces (and for cluster-scoped types)
    when `namespace` is None."""
    plural, namespaced = type_of(api_version, kind)
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        return f"{base}/namespaces/{urllib.parse.quote(namespace, safe='')}/{plural}"
    return f"{base}/{plural}"


def object_path(obj: Mapping[str, Any]) -> str:
    """The API path of one object, from its apiVersion, kind, metadata.namespace (default "default" for a
    namespaced type) and metadata.name."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise KubeawsError(f"{api_version} {kind} object has no metadata.name")
    _, namespaced = type_of(api_version, kind)
    namespace = (meta.get("namespace") or "default") if namespaced else None
    return f"{collection_path(api_version, kind, namespace)}/{urllib.parse.quote(str(name), safe='')}"


def ssl_context(ca_pem: str, client_cert: tuple[str | bytes, str | bytes] | None = None) -> ssl.SSLContext:
    """A client TLS context trusting only `ca_pem` (a PEM, or base64 of a PEM as EKS returns it), presenting
    `client_cert` ((certificate PEM, private key PEM)) when given."""
    text = ca_pem.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = base64.b64decode(text, validate=False).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise KubeawsError("cluster CA is neither a PEM nor base64 of a PEM") from exc
    try:
        context = ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        raise KubeawsError(f"cluster CA cannot be loaded: {exc}") from exc
    if client_cert is not None:
        load_client_cert(context, *client_cert)
    return context


def load_client_cert(context: ssl.SSLContext, cert_pem: str | bytes, key_pem: str | bytes) -> None:
    """Load a client certificate and key given as PEM into `context`: written to files of a private
    (0700) temporary directory that is deleted as soon as they are loaded."""
    with tempfile.TemporaryDirectory(prefix="kubeaws-") as tmp:
        paths = []
        for name, pem in (("client.crt", cert_pem), ("client.key", key_pem)):
            path = os.path.join(tmp, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem.encode() if isinstance(pem, str) else pem)
            paths.append(path)
        try:
            context.load_cert_chain(paths[0], paths[1])
        except ssl.SSLError as exc:
            raise KubeawsError(f"client certificate cannot be loaded: {exc}") from exc


class KubeClient:
    """One Kubernetes API server (`server`: https://host[:port]), trusted through `ca_pem`, called with a
    bearer `token` (None: no Authorization header) and/or a `client_cert` ((cert PEM, key PEM)). Stateless
    between requests (one connection per request), so safe across threads."""

    def __init__(self, server: str, ca_pem: str, token: str | None, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = TIMEOUT,
                 client_cert: tuple[str | bytes, str | bytes] | None = None) -> None:
        parts = urllib.parse.urlsplit(server if "://" in server else f"https://{server}")
        if parts.scheme != "https" or not parts.hostname:
            raise KubeawsError(f"Kubernetes API server must be an https URL, not {server!r}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        self._tls = ssl_context(ca_pem, client_cert)

    # -- requests ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None), retrying connection errors, 429 and 5xx. TLS verification
        failures are not retried: they never heal."""
        url = self.prefix + path + (f"?{urllib.parse.urlencode(dict(query))}" if query else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            attempt += 1
            try:
                status, raw = self._send(method, url, data, headers)
            except ssl.SSLError as exc:
                raise KubeawsError(f"Kubernetes API {self.host}:{self.port}: TLS failed (is the cluster CA "
                                   f"right?): {exc}") from exc
            except OSError as exc:  # refused, reset, timed out, DNS not there yet
                if attempt >= self.policy.max_attempts:
                    raise KubeawsError(f"Kubernetes API {method} {path}: cannot connect to {self.host}:"
                                       f"{self.port} after {attempt} attempts: {exc}") from exc
                self._sleep(self.policy.backoff(attempt))
                continue
            if status in RETRY_STATUSES and attempt < self.policy.max_attempts:
                self._sleep(self.policy.backoff(attempt))
                continue
            return status, _decode(raw)

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._tls)
        try:
            conn.request(method, url, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _check(self, method: str, path: str, status: int, payload: Any) -> Any:
        if 200 <= status < 300:
            return payload
        message = payload.get("message") if isinstance(payload, dict) else None
        raise KubeApiError(method, path, status, str(message or payload or "no message"))

    # -- operations ----------------------------------------------------------------------------------
    def get(self, api_path: str, query: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The object (or list) at `api_path`; None on 404."""
        status, payload = self.request("GET", api_path, query=query)
        if status == 404:
            return None
        result: dict[str, Any] = self._check("GET", api_path, status, payload)
        return result

    def list_objects(self, api_version: str, kind: str, label_selector: str) -> list[dict[str, Any]]:
        """Every object of a type (all namespaces) matching `label_selector`, with apiVersion and kind set
        (a list's items carry neither). A type the server does not serve (404) lists as empty."""
        path = collection_path(api_version, kind)
        found = self.get(path, {"labelSelector": label_selector})
        items = (found or {}).get("items") or []
        return [{**item, "apiVersion": api_version, "kind": kind} for item in items]

    def apply(self, obj: Mapping[str, Any], field_manager: str = "kubeaws") -> dict[str, Any]:
        """Server-side apply `obj` (force: kubeaws takes over fields another manager set); the object as
        the server now has it."""
        path = object_path(obj)
        status, payload = self.request("PATCH", path, dict(obj), APPLY_CONTENT_TYPE,
                                       {"fieldManager": field_manager, "force": "true"})
        result: dict[str, Any] = self._check("PATCH", path, status, payload)
        return result

    def delete(self, path: str) -> bool:
        """Delete the object at `path` (background propagation); False if it was already gone."""
        status, payload = self.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1",
                                                        "propagationPolicy": "Background"})
        if status == 404:
            return False
        self._check("DELETE", path, status, payload)
        return True


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:500]}
