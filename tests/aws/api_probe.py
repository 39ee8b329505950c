"""Is the Kubernetes API available while a control-plane member is replaced? A background thread asks
`GET /readyz` every few seconds with the admin client certificate, trying EVERY address the API load
balancer's DNS name resolves to (one per AZ): the API counts as available when at least one answers 200,
i.e. when a client that retries another address gets through the remaining members. Every attempt is kept,
so the report also shows how long the dead member's AZ address kept failing (NLB health checks, DNS TTL).

`summarize` is pure (unit-tested in test_helpers.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml


@dataclass(frozen=True)
class Probe:
    at: float  # seconds since the prober started
    ok: bool
    answered_by: str = ""
    failures: tuple[tuple[str, str], ...] = ()  # (address, error) of the addresses that did not answer 200


@dataclass
class ProbeSummary:
    probes: int = 0
    failed: int = 0
    max_consecutive_failed: int = 0
    longest_outage_seconds: float = 0.0
    address_failures: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"probes": self.probes, "failed": self.failed, "maxConsecutiveFailed": self.max_consecutive_failed,
                "longestOutageSeconds": round(self.longest_outage_seconds, 1),
                "addressFailures": dict(sorted(self.address_failures.items()))}


def summarize(probes: Sequence[Probe]) -> ProbeSummary:
    """Counts, the longest run of failed probes (count and seconds from its first failure to the next success
    or the last probe), and failures per address."""
    out = ProbeSummary(probes=len(probes))
    run_start: float | None = None
    run = 0
    for probe in probes:
        for address, _ in probe.failures:
            out.address_failures[address] = out.address_failures.get(address, 0) + 1
        if probe.ok:
            if run_start is not None:
                out.longest_outage_seconds = max(out.longest_outage_seconds, probe.at - run_start)
            run_start, run = None, 0
            continue
        out.failed += 1
        run += 1
        out.max_consecutive_failed = max(out.max_consecutive_failed, run)
        if run_start is None:
            run_start = probe.at
    if run_start is not None and probes:
        out.longest_outage_seconds = max(out.longest_outage_seconds, probes[-1].at - run_start)
    return out


def tls_context(kubeconfig_text: str) -> tuple[str, int, ssl.SSLContext]:
    """(host, port, TLS context with the cluster CA and the admin client certificate) from a kubeconfig."""
    doc = yaml.safe_load(kubeconfig_text)
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    url = urlsplit(cluster["server"])
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    private = tempfile.mkdtemp(prefix="kubeaws-e2e-probe-")
    try:
        os.chmod(private, 0o700)
        cert, key = os.path.join(private, "client.crt"), os.path.join(private, "client.key")
        for path, data in ((cert, user["client-certificate-data"]), (key, user["client-key-data"])):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64decode(data))
        context.load_cert_chain(cert, key)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return str(url.hostname), int(url.port or 443), context


def readyz(address: str, host: str, port: int, context: ssl.SSLContext, timeout: float) -> int:
    """HTTP status of GET /readyz on one address (TLS checked against `host`)."""
    with socket.create_connection((address, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.settimeout(timeout)
        tls.sendall(f"GET /readyz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        head = tls.recv(64).decode(errors="replace")
    parts = head.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


class ApiProber:
    """Probes in a daemon thread until `stop()`; `probes` holds every result."""

    def __init__(self, kubeconfig_text: str, interval: float = 5.0, timeout: float = 5.0) -> None:
        self.host, self.port, self.context = tls_context(kubeconfig_text)
        self.interval = interval
        self.timeout = timeout
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubeaws-e2e-api-probe", daemon=True)
        self._start = time.monotonic()

    def addresses(self) -> list[str]:
        infos = socket.getaddrinfo(self.host, self.port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        return sorted({str(info[4][0]) for info in infos})

    def probe_once(self) -> Probe:
        at = time.monotonic() - self._start
        try:
            addresses = self.addresses()
        except OSError as exc:
            return Probe(at, False, failures=(("dns", str(exc)),))
        failures: list[tuple[str, str]] = []
        for address in addresses:
            try:
                status = readyz(address, self.host, self.port, self.context, self.timeout)
            except (OSError, ssl.SSLError) as exc:
                failures.append((address, f"{type(exc).__name__}: {exc}"))
                continue
            if status == 200:
                return Probe(at, True, address, tuple(failures))
            failures.append((address, f"HTTP {status}"))
        return Probe(at, False, failures=tuple(failures) or (("dns", "no address"),))

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a probe must never kill the thread
                self.probes.append(self.probe_once())
            self._stop.wait(self.interval)

    def start(self) -> ApiProber:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> ProbeSummary:
        self._stop.set()
        self._thread.join(timeout=self.timeout * 10 + 30)
        return summarize(list(self.probes))
