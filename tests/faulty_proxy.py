"""A fault-injecting HTTP proxy in front of the moto server: the flaky network of tests/test_flaky_network.py
and bench/flaky.py.

botocore is pointed at the proxy with `endpoint_url`; the proxy forwards each request to the moto server and,
following a seeded schedule, instead:

- `drop-before`: reads the request and closes the connection without forwarding it (AWS did nothing);
- `drop-after`: forwards it, then closes the connection without answering (AWS acted, the client never
  knows: the ambiguous case);
- `error-500`: answers 500 InternalError without forwarding;
- `forward-500`: forwards it, then answers 500 InternalError (AWS acted and said it failed);
- `throttle`: answers the service's throttling error (RequestLimitExceeded, Throttling, SlowDown...).

For the latency model of bench/scale.py it also can hold every request for a round trip (`latency`) and keep
AWS-like request-rate buckets (`limits`, `AwsLikeLimits`: EC2's published token buckets at their full
figures, refilled in real time): a request with no token left is answered RequestLimitExceeded, counted as
the fault `rate-limited`.

The schedule is deterministic: the fault of the n-th request the proxy receives depends only on (seed, n).
With one executor worker the requests come in the same order on every run, so a seed names one run.

moto adaptation: moto ignores the ClientToken of CreateVolume, CreateNatGateway and RunInstances (AWS returns
the first result for a repeated token). The proxy stands in for AWS there: the first successful answer to an
EC2 request carrying a ClientToken is kept, and a later request with the same action and token gets that
answer without reaching moto. And moto fails with an HTML 500 on RemoveRoleFromInstanceProfile of a role no
longer in the profile (a repeat after a lost answer), where AWS answers NoSuchEntity: the proxy answers
NoSuchEntity. Production code is unchanged; only the test's stand-in behaves as AWS does.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("drop-before", "drop-after", "error-500", "forward-500", "throttle")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer",
                        "upgrade", "content-length"})
#: Services answering in the JSON protocol, by their signing name (the Resource Groups Tagging API signs as "tagging").
JSON_SERVICES = frozenset({"kms", "ssm", "eks", "logs", "secretsmanager", "tagging"})
_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")


@dataclass(frozen=True)
class FaultRates:
    """Probability of each fault per request (the rest are forwarded untouched)."""

    drop_before: float = 0.0
    drop_after: float = 0.0
    error_500: float = 0.0
    forward_500: float = 0.0
    throttle: float = 0.0

    @classmethod
    def dropping(cls, total: float) -> FaultRates:
        """`total` of the answers lost, half before forwarding and half after (the ambiguous half)."""
        return cls(drop_before=total / 2, drop_after=total / 2)

    def pick(self, draw: float) -> str | None:
        edge = 0.0
        for name, rate in zip(FAULTS, (self.drop_before, self.drop_after, self.error_500, self.forward_500,
                                       self.throttle), strict=True):
            edge += rate
            if draw < edge:
                return name
        return None


@dataclass
class Request:
    """What the proxy knows of a request: the service (from the signature's scope) and the operation."""

    n: int
    service: str
    action: str
    token: str | None


@dataclass
class Stats:
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    replayed: int = 0
    #: (n, service, action, fault) of every injected fault, for failure messages.
    log: list[tuple[int, str, str, str]] = field(default_factory=list)


def _service(headers: Any) -> str:
    match = _SCOPE.search(headers.get("Authorization") or "")
    return match.group(1) if match else "unknown"


def _describe(n: int, method: str, path: str, headers: Any, body: bytes) -> Request:
    service = _service(headers)
    action, token = "", None
    target = headers.get("X-Amz-Target")
    if target:
        action = target.rsplit(".", 1)[-1]
    elif body and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = (form.get("Action") or [""])[0]
        token = next(iter(form.get("ClientToken") or []), None)
    if not action and service == "s3":
        action = _s3_action(method, path)
    if not action:
        action = f"{method} {urllib.parse.urlsplit(path).path}"
    return Request(n, service, action, token)


def _s3_action(method: str, path: str) -> str:
    """The S3 operations a targeted fault may name (path-style requests); '' for the others."""
    parts = urllib.parse.urlsplit(path)
    segments = [p for p in parts.path.split("/") if p]
    if parts.query:
        return ""
    bucket_ops = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}
    object_ops = {"PUT": "PutObject", "DELETE": "DeleteObject", "HEAD": "HeadObject", "GET": "GetObject"}
    return (bucket_ops if len(segments) == 1 else object_ops).get(method, "") if segments else ""


def error_answer(service: str, code: str, status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    """An error answer in the service's own protocol."""
    if service in JSON_SERVICES:
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, body
    if service == "ec2":
        text = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>faulty-proxy</RequestID></Response>")
    elif service == "s3":
        text = f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    else:  # the query protocol: IAM, STS, ELBv2, Auto Scaling
        text = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>faulty-proxy</RequestId></ErrorResponse>")
    return status, {"Content-Type": "text/xml"}, text.encode()


def throttle_answer(service: str) -> tuple[int, dict[str, str], bytes]:
    if service == "ec2":
        return error_answer(service, "RequestLimitExceeded", 503, "Request limit exceeded.")
    if service == "s3":
        return error_answer(service, "SlowDown", 503, "Please reduce your request rate.")
    code = "ThrottlingException" if service in JSON_SERVICES else "Throttling"
    return error_answer(service, code, 400, "Rate exceeded")


class AwsLikeLimits:
    """Server-side request-rate buckets as EC2 keeps them (kubeaws.aws.ratelimit's figures, at 1.0: what AWS
    allows, not kubeaws' share of it), per (service, bucket); a request without a token is refused, never
    queued. Other services are not limited (AWS publishes no per-action buckets for them). Thread-safe."""

    def __init__(self) -> None:
        from kubeaws.aws.ratelimit import Rate, aws_draws

        self._draws = aws_draws
        self._buckets: dict[tuple[str, str], list[float]] = {}  # key -> [tokens, stamp]
        self._rates: dict[tuple[str, str], Rate] = {}
        self._lock = threading.Lock()

    def admit(self, service: str, action: str, body: bytes) -> bool:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))) if service == "ec2" else {}
        draws = self._draws(service, action, form)
        now = time.monotonic()
        with self._lock:
            state = []
            for name, rate, tokens in draws:
                key = (service, name)
                bucket = self._buckets.setdefault(key, [rate.capacity, now])
                bucket[0] = min(rate.capacity, bucket[0] + (now - bucket[1]) * rate.refill)
                bucket[1] = now
                state.append((bucket, tokens))
            if any(bucket[0] < tokens for bucket, tokens in state):
                return False
            for bucket, tokens in state:
                bucket[0] -= tokens
            return True


class FaultyProxy:
    """The proxy: `start()` it, point botocore at `url`, `stop()` it. `pause()` turns faults off (e.g.
    while a test reads what exists); `stats` says what was injected."""

    def __init__(self, upstream: str, rates: FaultRates = FaultRates(), seed: int = 0,
                 targeted: dict[str, list[str | None]] | None = None, latency: float = 0.0,
                 limits: AwsLikeLimits | None = None) -> None:
        """`targeted`: faults for the first requests of an action, in order, e.g. {"CreateVpc": ["drop-after"]}
        (drawn before the schedule; None in the list lets that request through)."""
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rates = rates
        self.seed = seed
        self.latency = latency
        self.limits = limits
        self.stats = Stats()
        self.active = True
        self._lock = threading.Lock()
        self._targeted = {action: list(faults) for action, faults in (targeted or {}).items()}
        self._tokens: dict[tuple[str, str], tuple[int, list[tuple[str, str]], bytes]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def fault_for(self, method: str, path: str, headers: Any, body: bytes) -> tuple[Request, str | None]:
        """Number the request and draw its fault from the schedule: (seed, n) → fault."""
        with self._lock:
            n = self.stats.requests
            self.stats.requests += 1
            request = _describe(n, method, path, headers, body)
            fault = self.rates.pick(random.Random(self.seed * 1_000_003 + n).random()) if self.active else None
            queue = self._targeted.get(request.action)
            if queue and self.active:
                fault = queue.pop(0)
            if fault:
                self.stats.faults[fault] += 1
                self.stats.log.append((n, request.service, request.action, fault))
            return request, fault

    def replay(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if request.service != "ec2" or not request.token:
            return None
        with self._lock:
            hit = self._tokens.get((request.action, request.token))
            if hit is not None:
                self.stats.replayed += 1
            return hit

    def remember(self, request: Request, answer: tuple[int, list[tuple[str, str]], bytes]) -> None:
        if request.service == "ec2" and request.token and 200 <= answer[0] < 300:
            with self._lock:
                self._tokens.setdefault((request.action, request.token), answer)

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            sent["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            data = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            if method == "HEAD":  # no body, but the size of the object it describes
                kept += [(k, v) for k, v in resp.getheaders() if k.lower() == "content-length"]
            return resp.status, kept, data
        finally:
            conn.close()


def _as_list(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, list[tuple[str, str]], bytes]:
    return answer[0], list(answer[1].items()), answer[2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy: FaultyProxy = self.server.proxy
        body = self._body()
        request, fault = proxy.fault_for(self.command, self.path, self.headers, body)
        if proxy.latency:
            time.sleep(proxy.latency)  # the round trip
        if proxy.limits is not None and not proxy.limits.admit(request.service, request.action, body):
            with proxy._lock:
                proxy.stats.faults["rate-limited"] += 1
                proxy.stats.log.append((request.n, request.service, request.action, "rate-limited"))
            return self._answer(*throttle_answer(request.service))
        if fault == "drop-before":
            return self._drop()
        if fault == "throttle":
            return self._answer(*throttle_answer(request.service))
        if fault == "error-500":
            return self._answer(*error_answer(request.service, "InternalError", 500, "injected before forwarding"))
        answer = proxy.replay(request)
        if answer is None:
            answer = proxy.forward(self.command, self.path, self.headers, body)
            proxy.remember(request, answer)
            if request.action == "RemoveRoleFromInstanceProfile" and answer[0] == 500:
                answer = _as_list(error_answer(request.service, "NoSuchEntity", 404, "role not in the profile"))
        if fault == "drop-after":
            return self._drop()
        if fault == "forward-500":
            return self._answer(*error_answer(request.service, "InternalError", 500, "injected after forwarding"))
        status, headers, data = answer
        self._send(status, headers, data)

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self._send(status, list(headers.items()), data)

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if self.command != "HEAD" or not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle
