"""Reading what kubectl and the tools inside the test pods answer: nodes and pods (`-o json`), CPU quantities,
the per-pod probe scripts (TCP + HTTP to every other pod, DNS of the API service and of a headless Service)
and their output, etcdctl's JSON, and a classic load balancer's name from its DNS name.

Pure (unit-tested in test_helpers.py); the commands themselves run in cluster.py / smoke.py.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
ZONE_LABEL = "topology.kubernetes.io/zone"
GROUP_LABEL = "kubeaws.io/node-group"
ETCD_PKI = "/etc/kubernetes/pki/etcd"


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    control_plane: bool
    zone: str
    group: str
    provider_id: str
    allocatable_cpu: str
    internal_ip: str = ""
    unschedulable: bool = False

    @property
    def instance_id(self) -> str:
        """`aws:///us-east-1a/i-0abc` -> `i-0abc` ('' before the cloud-controller-manager set it)."""
        return self.provider_id.rstrip("/").rsplit("/", 1)[-1] if self.provider_id.startswith("aws://") else ""


def parse_nodes(doc: Mapping[str, Any]) -> list[NodeInfo]:
    nodes = []
    for item in doc.get("items") or []:
        meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        labels = meta.get("labels") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        nodes.append(NodeInfo(
            name=str(meta.get("name")), ready=ready, control_plane=CONTROL_PLANE_LABEL in labels,
            zone=str(labels.get(ZONE_LABEL, "")), group=str(labels.get(GROUP_LABEL, "")),
            provider_id=str(spec.get("providerID", "")),
            allocatable_cpu=str((status.get("allocatable") or {}).get("cpu", "0")),
            internal_ip=next((str(a.get("address")) for a in status.get("addresses") or []
                              if a.get("type") == "InternalIP"), ""),
            unschedulable=bool(spec.get("unschedulable", False))))
    return sorted(nodes, key=lambda n: n.name)


def nodes_status(nodes: Sequence[NodeInfo]) -> str:
    """One line for wait messages: `3/5 Ready; not Ready: a, b`."""
    ready = [n for n in nodes if n.ready]
    missing = [n.name for n in nodes if not n.ready]
    return f"{len(ready)}/{len(nodes)} Ready" + (f"; not Ready: {', '.join(missing)}" if missing else "")


@dataclass(frozen=True)
class PodInfo:
    name: str
    node: str
    ip: str
    phase: str
    ready: bool


def parse_pods(doc: Mapping[str, Any]) -> list[PodInfo]:
    pods = []
    for item in doc.get("items") or []:
        meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        pods.append(PodInfo(str(meta.get("name")), str(spec.get("nodeName", "")), str(status.get("podIP", "")),
                            str(status.get("phase", "")), ready))
    return sorted(pods, key=lambda p: p.name)


def cpu_millis(quantity: str) -> int:
    """A Kubernetes CPU quantity in millicores: "1930m" -> 1930, "2" -> 2000, "1.5" -> 1500."""
    text = quantity.strip()
    if text.endswith("m"):
        return int(text[:-1])
    if text.endswith("n"):
        return int(text[:-1]) // 1_000_000
    return int(float(text) * 1000)


# -- pod-to-pod probe ----------------------------------------------------------------------------------------
def probe_script(targets: Iterable[str], port: int) -> str:
    """Shell run in one pod: for each target address, a TCP connect (agnhost connect: TIMEOUT / REFUSED / DNS /
    OTHER on failure) then HTTP GET /hostname (netexec answers with its pod's name). One line per target:
    `OK <ip> <name>` or `FAIL <ip> <why>`."""
    addresses = " ".join(shlex.quote(t) for t in targets)
    return (f"for t in {addresses}; do "
            f'if r=$(/agnhost connect "$t:{port}" --timeout=5s 2>&1); then '
            f'if h=$(curl -sS --max-time 5 "http://$t:{port}/hostname" 2>&1); then echo "OK $t $h"; '
            'else echo "FAIL $t http: $(echo "$h" | tr "\\n" " ")"; fi; '
            'else echo "FAIL $t tcp: $(echo "$r" | tr "\\n" " ")"; fi; done')


def parse_probe_output(text: str, targets: Iterable[str]) -> dict[str, tuple[bool, str]]:
    """target -> (ok, name answered or why it failed); a target without a line failed with 'no result'."""
    results: dict[str, tuple[bool, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split(" ", 2)
        if len(parts) >= 2 and parts[0] in ("OK", "FAIL"):
            results[parts[1]] = (parts[0] == "OK", parts[2].strip() if len(parts) > 2 else "")
    return {t: results.get(t, (False, "no result (the probe did not report this target)")) for t in targets}


# -- DNS probe -----------------------------------------------------------------------------------------------
def dns_script(api_name: str, headless_name: str) -> str:
    """Shell run in one pod: the A records of the API service and of the headless Service (dig, through the
    pod's resolv.conf: the cluster DNS), then a TCP connect to the API service by name (Go's resolver)."""
    api, headless = shlex.quote(api_name), shlex.quote(headless_name)
    return (f'echo "A $(dig +short +time=3 +tries=2 {api} A | tr "\\n" " ")"; '
            f'echo "H $(dig +short +time=3 +tries=2 {headless} A | tr "\\n" " ")"; '
            f'if r=$(/agnhost connect {api}:443 --timeout=5s 2>&1); then echo "C OK"; '
            'else echo "C FAIL $(echo "$r" | tr "\\n" " ")"; fi')


@dataclass(frozen=True)
class DnsAnswer:
    api: frozenset[str]
    headless: frozenset[str]
    connect_ok: bool
    connect_detail: str


def _addresses(text: str) -> frozenset[str]:
    return frozenset(w for w in text.split() if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", w))


def parse_dns_output(text: str) -> DnsAnswer:
    api: frozenset[str] = frozenset()
    headless: frozenset[str] = frozenset()
    ok, detail = False, "no connect result"
    for line in text.splitlines():
        tag, _, rest = line.strip().partition(" ")
        if tag == "A":
            api = _addresses(rest)
        elif tag == "H":
            headless = _addresses(rest)
        elif tag == "C":
            ok = rest.strip() == "OK"
            detail = rest.strip().removeprefix("FAIL").strip()
    return DnsAnswer(api, headless, ok, detail)


# -- etcd ----------------------------------------------------------------------------------------------------
def etcdctl_args(*args: str) -> list[str]:
    """etcdctl inside a kubeadm etcd pod, with the certificates kubeadm writes to /etc/kubernetes/pki/etcd."""
    return ["etcdctl", "--endpoints=https://127.0.0.1:2379", f"--cacert={ETCD_PKI}/ca.crt",
            f"--cert={ETCD_PKI}/healthcheck-client.crt", f"--key={ETCD_PKI}/healthcheck-client.key",
            "--command-timeout=10s", *args]


def parse_endpoint_health(text: str) -> list[tuple[str, bool, str]]:
    """`endpoint health --cluster -w json` -> [(endpoint, healthy, error)]."""
    start = text.find("[")
    if start < 0:
        raise ValueError(f"no JSON list in etcdctl's answer: {text[:300]!r}")
    items = json.loads(text[start:text.rfind("]") + 1])
    return sorted((str(i.get("endpoint")), bool(i.get("health")), str(i.get("error", ""))) for i in items)


def parse_member_list(text: str) -> list[tuple[str, str]]:
    """`member list -w json` -> [(hex member ID, name)]; an empty name is a member that never started."""
    doc = json.loads(text[text.find("{"):])
    return sorted((f"{int(m['ID']):x}", str(m.get("name", ""))) for m in doc.get("members") or [])


def classic_elb_name(hostname: str) -> str:
    """`a1b2...-1234567890.us-east-1.elb.amazonaws.com` -> `a1b2...` (internal ones start with `internal-`)."""
    first = hostname.split(".", 1)[0]
    first = first.removeprefix("internal-")
    return first.rsplit("-", 1)[0] if "-" in first else first
