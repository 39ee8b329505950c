"""An IMDSv2 stand-in on loopback for the bootstrap sandbox: answers each sandbox host from its moto
instance's real data, as an instance launched with `HttpTokens: required` sees it.

Contract (AWS EC2 user guide, "Use the Instance Metadata Service to access instance metadata" and "How
Instance Metadata Service Version 2 works"):
- `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` between 1 and 21600 (else 400) and is
  refused with 403 when it carries `X-Forwarded-For`; it returns a session token.
- every `GET` needs a valid `X-aws-ec2-metadata-token` (else 401: IMDSv1 is off); unknown paths are 404.
- `meta-data/iam/security-credentials/` lists the role of the instance profile; `.../<role>` returns the
  role's temporary credentials (here from moto's STS AssumeRole).
Each host reaches it at `http://127.0.0.1:<port>/<instance-id>/` (the scripts' `KUBEAWS_IMDS_URL`, the AWS
CLI's `AWS_EC2_METADATA_SERVICE_ENDPOINT`). Requests refused for a missing token are counted: a script that
skips the token would work on no real instance.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_TTL = 21600

#: instance id -> what IMDS knows of it: "meta" (path -> text) and "credentials" (a callable returning the JSON
#: document, or None without an instance profile), "role" (the role name).
Lookup = Callable[[str], dict[str, Any] | None]


class Imds:
    """The server; `lookup(instance_id)` gives the answers (called per request: data can change)."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.tokens: set[str] = set()
        self.refused: list[str] = []
        self._lock = threading.Lock()
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _send(self, code: int, body: str = "", ctype: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _split(self) -> tuple[str, str]:
                parts = self.path.lstrip("/").split("/", 1)
                return parts[0], parts[1] if len(parts) > 1 else ""

            def do_PUT(self) -> None:
                iid, path = self._split()
                if path != "latest/api/token":
                    self._send(405)
                    return
                if self.headers.get("X-Forwarded-For"):
                    self._send(403)
                    return
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
                    self._send(400)
                    return
                token = f"{iid}:{secrets.token_hex(16)}"
                with imds._lock:
                    imds.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                iid, path = self._split()
                token = self.headers.get("X-aws-ec2-metadata-token", "")
                with imds._lock:
                    valid = token in imds.tokens and token.startswith(f"{iid}:")
                    if not valid:
                        imds.refused.append(f"{iid} GET /{path} without a valid token")
                if not valid:
                    self._send(401)
                    return
                answer = imds.answer(iid, path.removeprefix("latest/"))
                if answer is None:
                    self._send(404)
                else:
                    self._send(200, *answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, iid: str, path: str) -> tuple[str, str] | None:
        info = self.lookup(iid)
        if info is None or not path.startswith("meta-data/"):
            return None
        key = path.removeprefix("meta-data/").rstrip("/")
        role = info.get("role")
        if key == "iam/security-credentials":
            return (role, "text/plain") if role else None
        if role and key == f"iam/security-credentials/{role}":
            return json.dumps(info["credentials"]()), "application/json"
        meta = info["meta"]
        value = meta(key) if callable(meta) else meta.get(key)
        return None if value is None else (str(value), "text/plain")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
