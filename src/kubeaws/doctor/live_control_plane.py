"""The control plane of a kubeadm cluster seen from the inside, for `kubeaws doctor --live`: one run of the
control-plane probe (kubeaws.member_probe: a short-lived Job per Ready control-plane node; etcdctl on the
first one, the certificate files on each), the API server's certificate read from the client side, and the
CAs in the state bucket; the findings are doctor.live_etcd's (`etcd_findings`) and doctor.live_certs'
(`cert_findings`). The Kubernetes API is reached as doctor.live_k8s does (the admin credentials, through the
bastion with `tunnel`). Called by doctor.live.check_live when the caller asks for the probe (the CLI does).
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.session import AwsContext
from kubeaws.doctor import live_certs, live_etcd
from kubeaws.doctor.findings import Finding
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient
from kubeaws.spec.models import ClusterSpec

#: How long the probe's pods may take (an image pull on a slow link included).
PROBE_TIMEOUT = 120.0


def check_control_plane(spec: ClusterSpec, ctx: AwsContext, *, kube: KubeClient | None = None,
                        now: float | None = None, tunnel: bool = False, ssh_key: Path | None = None,
                        timeout: float = PROBE_TIMEOUT) -> list[Finding]:
    """etcd's health and the certificates' expiry (kubeadm only; nothing when the API cannot be reached:
    doctor.live_k8s reports that)."""
    if spec.spec.mode != "kubeadm":
        return []
    when = dt.datetime.now(dt.UTC) if now is None else dt.datetime.fromtimestamp(now, dt.UTC)
    seen: list[live_certs.Seen] = []
    try:
        from kubeaws import etcd_ops

        seen += live_certs.bucket_cas(spec, ctx, etcd_ops.state_bucket(spec, ctx))
    except (KubeawsError, BotoCoreError, ClientError):
        pass  # the probe reads the CAs on the members too
    try:
        with ExitStack() as stack:
            from kubeaws.doctor.live_k8s import connect, short_policy

            if kube is None and tunnel:
                from kubeaws.reach import api_client

                kube = stack.enter_context(api_client(spec, ctx, short_policy(ctx), ssh_key=ssh_key, timeout=10.0,
                                                      lifetime_hours=1.0))
            elif kube is None:
                kube, _ = connect(spec, ctx)
            return _probe(spec, ctx, kube, when, seen, timeout)
    except (KubeawsError, BotoCoreError, ClientError, OSError) as exc:
        return [*live_certs.cert_findings(seen, when),
                Finding("warning", "etcd.unreadable", f"the control plane could not be probed: {exc}", "etcd",
                        "`kubeaws doctor --live` reports the API's reachability (live.api-unreachable)")]


def _probe(spec: ClusterSpec, ctx: AwsContext, kube: KubeClient, when: dt.datetime, seen: list[live_certs.Seen],
           timeout: float) -> list[Finding]:
    from kubeaws import member_probe as mp

    findings: list[Finding] = []
    try:
        cert = live_certs.served_certificate(kube.host, kube.port, kube.tls_server_name)
        seen.append(live_certs.Seen(cert, f"API endpoint {kube.tls_server_name or kube.host}:{kube.port}"))
    except (OSError, ValueError) as exc:
        findings.append(live_certs.unreadable(f"the API server's certificate at {kube.host}:{kube.port}: {exc}"))
    pods = mp.etcd_pods(kube)
    nodes = mp.ready_control_plane(kube)
    etcd_node = next((n for n in nodes if mp.etcd_target(pods, n) is not None), None)
    plan = {n: (mp.etcd_target(pods, n) if n == etcd_node else None, True) for n in nodes}
    readings = mp.run_probes(spec, kube, ctx.policy, plan, timeout=timeout) if plan else {}
    if etcd_node is None:
        findings += live_etcd.etcd_findings(live_etcd.EtcdHealth("", error="no Ready control-plane node with an "
                                                                 "etcd pod to run etcdctl on"))
    else:
        target = plan[etcd_node][0]
        assert target is not None
        health = live_etcd.from_reading(readings[etcd_node], target.endpoints, mp.quota_bytes(pods[etcd_node]))
        findings += live_etcd.etcd_findings(health)
    if not nodes:
        findings.append(live_certs.unreadable("no Ready control-plane node to read them on"))
    for node, reading in sorted(readings.items()):
        if reading.error:
            findings.append(live_certs.unreadable(f"{node}: {reading.error}"))
            continue
        found, bad = live_certs.parse_dump(node, reading.logs.get("certs", ""))
        seen += found
        if bad or not found:
            findings.append(live_certs.unreadable(f"{node}: {', '.join(bad) or 'no certificate in the output'}"))
    return findings + live_certs.cert_findings(seen, when)
