"""kubeaws' Kubernetes API client, on the standard library: what kubeaws needs of a cluster's API, and
nothing else (docs/operations.md, "The Kubernetes client", says why it is not a library).

- TLS verified against the cluster CA (DescribeCluster's base64 PEM, or a PEM), hostname checked; a bearer
  token (EKS: `eks_auth.eks_token`; give a callable to have it renewed every `TOKEN_REFRESH_SECONDS` and
  after a 401) and/or a client certificate (kubeadm: the admin certificate signed by the cluster CA,
  `pki.client_certificate`), loaded from PEM bytes through a private temporary directory that is removed at
  once (the ssl module loads certificate chains from files only).
- Objects: `apply` = server-side apply (PATCH `application/apply-patch+yaml`, `fieldManager=kubeaws&force=true`;
  the body is JSON, which is YAML), `get` (404 -> None), `list_objects` (label selector), `patch` (JSON merge
  or strategic merge), `delete` (404 -> already gone), `get_text` (a pod's log).
- Nodes and pods, for rollouts (kubeaws.rollout): `list_nodes`, `get_node`, `cordon` / `uncordon`
  (`spec.unschedulable`), `delete_node`, `wait_node_ready` (polls on the RetryPolicy's clock and sleep),
  `pods_on_node` (field selector `spec.nodeName`, all namespaces), `list_pdbs`, `evict` (the policy/v1
  Eviction subresource: an `Eviction` that says whether it was accepted and, when a budget blocks it, names
  the PodDisruptionBudgets that match the pod), and the pure helpers `node_is_ready`, `is_mirror_pod`,
  `is_daemonset_pod`, `pod_is_finished`, `selector_matches`.
- Connection errors, 429 and 5xx answers are retried with the RetryPolicy's backoff (the API server of a
  new cluster may still be coming up), except for evictions, whose 429 is a budget's answer; any other error
  raises KubeApiError with the status and message.
- Connections are kept alive (HTTP/1.1) and reused: a client keeps up to `POOL_SIZE` idle connections, and
  each thread takes one of its own for a request, so one TLS handshake serves many requests (a rollout's
  polls and drains make hundreds). A kept connection the server closed meanwhile is replaced at once, without
  counting as a failed attempt. `close()` closes the idle ones.

Paths of whole objects are built from apiVersion/kind for the types in `TYPES` only (kubeaws.kube_types,
re-exported here): kubeaws does no API discovery. Called by resources/kubernetes_object.py (the addons'
and EKS objects), doctor/live_k8s.py (`kubeaws doctor --live`) and the rollout (cordon, drain, wait,
forget). Imported only by code that talks to a cluster.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeaws.aws.retry import RetryPolicy, wait_until
from kubeaws.errors import KubeawsError, WaitTimeout
from kubeaws.kube_types import TYPES as TYPES  # re-exported: the client's callers read them here
from kubeaws.kube_types import collection_path as collection_path
from kubeaws.kube_types import object_path as object_path
from kubeaws.kube_types import type_of as type_of

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: An eviction's 429 is a disruption budget saying no, and its 500 may be a pod with two budgets: the
#: caller decides when to try again.
EVICTION_RETRY_STATUSES = frozenset({502, 503, 504})
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES = {"merge": "application/merge-patch+json",
                       "strategic": "application/strategic-merge-patch+json"}
TIMEOUT = 30.0
#: Idle connections a client keeps for reuse (one per thread that called at the same time, up to this).
POOL_SIZE = 8
#: EKS accepts a token for 15 minutes; a token from a callable is renewed after this many seconds.
TOKEN_REFRESH_SECONDS = 600.0
NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
TokenSource = str | Callable[[], str] | None


class KubeApiError(KubeawsError):
    """The Kubernetes API answered with an error (after retries)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {method} {path}: HTTP {status}: {message}")
        self.status = status
        self.api_message = message


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
    bearer `token` (None: no Authorization header; a callable: asked for a fresh one every
    TOKEN_REFRESH_SECONDS on the policy's clock, and after a 401) and/or a `client_cert` ((cert PEM, key
    PEM)). Safe across threads: each request runs on a connection no other thread uses meanwhile, taken
    from the client's pool of kept-alive ones (or a new one). Retry pauses and waits go through `policy`
    (its clock and sleep; `sleep` overrides the retry pauses only).

    `tls_server_name`: connect to `server`'s address but verify the certificate for this name (TLS SNI and
    hostname check, and the Host header), like kubeconfig's `tls-server-name`: for an API reached through
    a local tunnel (https://127.0.0.1:PORT) whose certificate names the real endpoint (kubeaws.tunnel)."""

    def __init__(self, server: str, ca_pem: str, token: TokenSource, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None, timeout: float = TIMEOUT,
                 client_cert: tuple[str | bytes, str | bytes] | None = None,
                 tls_server_name: str | None = None) -> None:
        parts = urllib.parse.urlsplit(server if "://" in server else f"https://{server}")
        if parts.scheme != "https" or not parts.hostname:
            raise KubeawsError(f"Kubernetes API server must be an https URL, not {server!r}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.prefix = parts.path.rstrip("/")
        self._token_source = token if callable(token) else None
        self.token = None if callable(token) else token
        self._token_at = 0.0
        self._token_lock = threading.Lock()
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep or self.policy.sleep
        self._tls = ssl_context(ca_pem, client_cert)
        self.tls_server_name = tls_server_name
        self._idle: list[_Connection] = []
        self._pool_lock = threading.Lock()

    def _bearer(self, renew: bool = False) -> str | None:
        """The token to send: a callable's is asked for when missing, old, or after a 401 (`renew`)."""
        if self._token_source is None:
            return self.token
        with self._token_lock:
            now = self.policy.clock()
            if renew or self.token is None or now - self._token_at >= TOKEN_REFRESH_SECONDS:
                self.token, self._token_at = self._token_source(), now
            return self.token

    # -- requests ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: Mapping[str, str] | None = None,
                retry: frozenset[int] = RETRY_STATUSES, decode: bool = True) -> tuple[int, Any]:
        """(status, decoded JSON body or None; the raw bytes with `decode=False`), retrying connection errors
        and the `retry` statuses (429 and 5xx), and a 401 once with a renewed token when the token comes from a
        callable. TLS verification failures are not retried: they never heal."""
        url = self.prefix + path + (f"?{urllib.parse.urlencode(dict(query))}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            headers = {"Accept": "application/json"}
            token = self._bearer()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            if data is not None:
                headers["Content-Type"] = content_type
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
            if status == 401 and self._token_source is not None and not renewed:
                renewed = True
                self._bearer(renew=True)
                continue
            if status in retry and attempt < self.policy.max_attempts:
                self._sleep(self.policy.backoff(attempt))
                continue
            return status, (_decode(raw) if decode else raw)

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request on a kept connection (a new one when none is idle). A kept connection that fails
        before any answer came (the server closed it while idle) is dropped and the request sent once more on
        a new one; a new connection's failure is the caller's to retry."""
        while True:
            conn, reused = self._take()
            try:
                conn.request(method, url, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except OSError as exc:
                conn.close()
                if reused and not isinstance(exc, ssl.SSLCertVerificationError | TimeoutError):
                    continue  # closed by the server while idle (reset, broken pipe, EOF): not an attempt
                raise
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                self._give_back(conn)
            return response.status, raw

    def _take(self) -> tuple[_Connection, bool]:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop(), True
        return _Connection(self.host, self.port, self.timeout, self._tls, self.tls_server_name), False

    def _give_back(self, conn: _Connection) -> None:
        with self._pool_lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections (a later request opens a new one)."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
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

    def get_text(self, api_path: str, query: Mapping[str, str] | None = None) -> str | None:
        """The body of a GET as text (a pod's log: `.../pods/<name>/log?container=<c>`); None on 404."""
        status, raw = self.request("GET", api_path, query=query, decode=False)
        if status == 404:
            return None
        self._check("GET", api_path, status, _decode(raw))
        return bytes(raw or b"").decode(errors="replace")

    def list_objects(self, api_version: str, kind: str, label_selector: str) -> list[dict[str, Any]]:
        """Every object of a type (all namespaces) matching `label_selector`, with apiVersion and kind set
        (a list's items carry neither). A type the server does not serve (404) lists as empty."""
        return self._items(api_version, kind, collection_path(api_version, kind), {"labelSelector": label_selector})

    def _items(self, api_version: str, kind: str, path: str,
               query: Mapping[str, str | None] | None = None) -> list[dict[str, Any]]:
        found = self.get(path, {k: v for k, v in (query or {}).items() if v is not None})
        return [{**item, "apiVersion": api_version, "kind": kind} for item in (found or {}).get("items") or []]

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

    def patch(self, path: str, body: Mapping[str, Any], patch_type: str = "merge") -> dict[str, Any] | None:
        """PATCH the object at `path` with a JSON merge patch ("merge": null removes a field) or a strategic
        merge patch ("strategic", built-in types only); the object as it now is, None if it does not exist."""
        status, payload = self.request("PATCH", path, dict(body), PATCH_CONTENT_TYPES[patch_type])
        if status == 404:
            return None
        result: dict[str, Any] = self._check("PATCH", path, status, payload)
        return result

    # -- nodes and pods (rollouts) -------------------------------------------------------------------
    def list_nodes(self, label_selector: str | None = None) -> list[dict[str, Any]]:
        return self._items("v1", "Node", NODES, {"labelSelector": label_selector})

    def get_node(self, name: str) -> dict[str, Any] | None:
        return self.get(node_path(name))

    def cordon(self, name: str) -> dict[str, Any] | None:
        """Mark the node unschedulable (what `kubectl cordon` does); the node, None if it is gone."""
        return self.patch(node_path(name), {"spec": {"unschedulable": True}})

    def uncordon(self, name: str) -> dict[str, Any] | None:
        return self.patch(node_path(name), {"spec": {"unschedulable": None}})

    def delete_node(self, name: str) -> bool:
        """Remove the Node object (after its instance is gone); False if it was already gone."""
        return self.delete(node_path(name))

    def pods_on_node(self, name: str) -> list[dict[str, Any]]:
        """Every pod bound to the node, in all namespaces (DaemonSet, mirror and finished ones included)."""
        return self._items("v1", "Pod", PODS, {"fieldSelector": f"spec.nodeName={name}"})

    def list_pdbs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """PodDisruptionBudgets of one namespace, or of all namespaces."""
        return self._items("policy/v1", "PodDisruptionBudget",
                           collection_path("policy/v1", "PodDisruptionBudget", namespace))

    def pdbs_for(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The budgets that cover `pod`: those of its namespace whose selector matches its labels."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        return [b for b in self.list_pdbs(meta.get("namespace") or "default")
                if selector_matches((b.get("spec") or {}).get("selector"), labels)]

    def evict(self, pod: Mapping[str, Any], grace_period_seconds: int | None = None) -> Eviction:
        """Ask the API server to evict `pod` (POST .../pods/<name>/eviction, a policy/v1 Eviction), which
        honours its PodDisruptionBudgets. Accepted (201, or the pod is already gone): `accepted`. Refused by
        a budget (429; 500 when two budgets cover the pod): not accepted, and `budgets` names the matching
        budgets with what they allow. Other errors raise KubeApiError."""
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        quoted = urllib.parse.quote
        path = f"/api/v1/namespaces/{quoted(namespace, safe='')}/pods/{quoted(name, safe='')}/eviction"
        body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                                "metadata": {"name": name, "namespace": namespace}}
        if grace_period_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_period_seconds}
        status, payload = self.request("POST", path, body, retry=EVICTION_RETRY_STATUSES)
        if 200 <= status < 300 or status == 404:
            return Eviction(f"{namespace}/{name}", True)
        message = _message(payload)
        if status == 429 or (status == 500 and "PodDisruptionBudget" in message):
            budgets = tuple(describe_pdb(b) for b in self.pdbs_for(pod))
            return Eviction(f"{namespace}/{name}", False, budgets, message)
        raise KubeApiError("POST", path, status, message)

    def wait_node_ready(self, name: str, timeout: float) -> dict[str, Any]:
        """Poll the node until it is registered and Ready (every `policy.poll_interval` on the policy's clock
        and sleep); WaitTimeout naming the node and what it last looked like."""
        last = ["it has not registered"]

        def ready() -> dict[str, Any] | None:
            node = self.get_node(name)
            if node is None:
                last[0] = "it has not registered"
                return None
            if node_is_ready(node):
                return node
            condition = ready_condition(node)
            last[0] = (f"Ready is {condition.get('status')} ({condition.get('reason') or 'no reason'}"
                       f"{': ' + condition['message'] if condition.get('message') else ''})" if condition
                       else "it has no Ready condition yet")
            return None

        try:
            return wait_until(ready, timeout, f"node {name} to be Ready", self.policy)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}: {last[0]}") from exc


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection to `host`:`port` that, given `server_name`, verifies the certificate for that name
    instead (SNI, hostname check and the Host header): the API reached through a local tunnel. It opens
    itself again the same way when reused after the server closed it."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext,
                 server_name: str | None) -> None:
        super().__init__(server_name or host, port, timeout=timeout, context=context)
        self._address = (host, port)
        self._named = server_name is not None
        self._tls = context

    def connect(self) -> None:
        if not self._named:
            super().connect()
            return
        raw = socket.create_connection(self._address, timeout=self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client does: no Nagle delay
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


@dataclass(frozen=True)
class Eviction:
    """What an eviction came to: `pod` (namespace/name), `accepted`, and when refused the server's `reason`
    and the `budgets` that cover the pod (each "PodDisruptionBudget ns/name (...what it allows...)")."""

    pod: str
    accepted: bool
    budgets: tuple[str, ...] = ()
    reason: str = ""

    def __str__(self) -> str:
        if self.accepted:
            return f"pod {self.pod} evicted"
        blockers = "; ".join(self.budgets) or "no PodDisruptionBudget matches it now"
        return f"pod {self.pod} cannot be evicted: {blockers}: {self.reason}"


# -- pure helpers ------------------------------------------------------------------------------------------
def node_path(name: str) -> str:
    return f"{NODES}/{urllib.parse.quote(name, safe='')}"


def ready_condition(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node's Ready condition ({} when it has none yet)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == "Ready"), {})


def node_is_ready(node: Mapping[str, Any]) -> bool:
    return ready_condition(node).get("status") == "True"


def is_mirror_pod(pod: Mapping[str, Any]) -> bool:
    """A static pod's mirror (the kubelet runs it from a file; eviction cannot remove it)."""
    return MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


def is_daemonset_pod(pod: Mapping[str, Any]) -> bool:
    """Owned by a DaemonSet (its controller would put it back on the node at once)."""
    return any(o.get("kind") == "DaemonSet" for o in (pod.get("metadata") or {}).get("ownerReferences") or [])


def pod_is_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions: In, NotIn, Exists, DoesNotExist) matches
    `labels`. As for policy/v1 budgets: an empty selector matches everything, a missing one nothing."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        present, value = key in labels, labels.get(str(key))
        values = set(expression.get("values") or ())
        matched = {"In": present and value in values, "NotIn": not present or value not in values,
                   "Exists": present, "DoesNotExist": not present}.get(str(operator), False)
        if not matched:
            return False
    return True


def describe_pdb(budget: Mapping[str, Any]) -> str:
    """"PodDisruptionBudget ns/name (minAvailable 2: 2 of 3 pods healthy, 0 disruptions allowed)"."""
    meta, spec, status = budget.get("metadata") or {}, budget.get("spec") or {}, budget.get("status") or {}
    rule = (f"maxUnavailable {spec['maxUnavailable']}" if spec.get("maxUnavailable") is not None
            else f"minAvailable {spec.get('minAvailable', 1)}")
    state = (f"{status.get('currentHealthy', '?')} of {status.get('expectedPods', '?')} pods healthy, "
             f"{status.get('disruptionsAllowed', '?')} disruptions allowed")
    return f"PodDisruptionBudget {meta.get('namespace')}/{meta.get('name')} ({rule}: {state})"


def _message(payload: Any) -> str:
    """The message of an API Status, with its causes' messages."""
    if not isinstance(payload, dict):
        return str(payload or "no message")
    causes = [str(c.get("message")) for c in (payload.get("details") or {}).get("causes") or [] if c.get("message")]
    return " ".join([str(payload.get("message") or "no message"), *causes])


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:500]}
