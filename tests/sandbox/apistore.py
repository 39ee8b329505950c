"""The sandbox's stand-in for the Kubernetes API's storage: objects kept as JSON in the REAL etcd of the
sandbox's control-plane members, under `/registry/<resource>/[<namespace>/]<name>` like kube-apiserver keeps
them, read and written through etcd's gRPC gateway (`/v3/kv/range|put|deleterange`, JSON over HTTPS with the
`apiserver-etcd-client` certificate, as kube-apiserver connects). So the API is available exactly when etcd has
quorum, and a restored etcd carries the objects it had (nodes, bootstrap tokens, kubeadm-config).

Used by the kubeadm and kubectl stand-ins (tests/sandbox/kubeadm_effects.py, tests/sandbox/kubectl.py).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class Unavailable(Exception):
    """No quorum, no answer: what a client of kube-apiserver sees as a timeout or a 5xx."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range end for "every key with this prefix"."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


class Api:
    """Objects of one cluster through one member's etcd client URL."""

    def __init__(self, etcd_url: str, pki: Path, timeout: float = 5.0) -> None:
        self.url = etcd_url.rstrip("/")
        self.pki = pki  # the control plane's: its CA signs what the controller manager would sign
        self.timeout = timeout
        self.ssl = ssl.create_default_context(cafile=str(pki / "etcd" / "ca.crt"))
        self.ssl.load_cert_chain(str(pki / "apiserver-etcd-client.crt"), str(pki / "apiserver-etcd-client.key"))

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(f"{self.url}/v3/{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.ssl) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise Unavailable(f"etcd at {self.url}: {exc}") from exc
        if "error" in answer or "code" in answer:
            raise Unavailable(f"etcd at {self.url}: {answer}")
        return answer

    @staticmethod
    def key(resource: str, name: str, namespace: str | None = None) -> str:
        return f"/registry/{resource}/{namespace}/{name}" if namespace else f"/registry/{resource}/{name}"

    def healthy(self) -> bool:
        """A linearizable read: only a member of a cluster with quorum answers."""
        try:
            self._call("kv/range", {"key": _b64("/registry/health")})
        except Unavailable:
            return False
        return True

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = self._call("kv/range", {"key": _b64(self.key(resource, name, namespace))}).get("kvs") or []
        return json.loads(base64.b64decode(found[0]["value"])) if found else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        prefix = f"/registry/{resource}/" + (f"{namespace}/" if namespace else "")
        kvs = self._call("kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)}).get("kvs") or []
        return [json.loads(base64.b64decode(kv["value"])) for kv in kvs]

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._call("kv/put", {"key": _b64(self.key(resource, meta["name"], meta.get("namespace"))),
                              "value": _b64(json.dumps(obj, sort_keys=True))})

    def delete(self, resource: str, name: str, namespace: str | None = None) -> bool:
        answer = self._call("kv/deleterange", {"key": _b64(self.key(resource, name, namespace))})
        return int(answer.get("deleted", 0)) > 0
