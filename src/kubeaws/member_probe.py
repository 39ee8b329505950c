"""The control-plane probe: a kubeadm control-plane member read from the inside, through the Kubernetes API, by a
short-lived Job pinned to its node. Called by `kubeaws doctor --live` (doctor.live_etcd: etcd's health;
doctor.live_certs: the certificates) and by `kubeaws drill` (kubeaws.drill: etcd before and after).

The Job's one pod (kube-system, `nodeName` = the member's node, tolerating every taint, host network, no
service-account token) mounts the host's /etc/kubernetes READ-ONLY at the same path and runs, as separate
containers (each one's log read apart; none needs a shell):
- `etcd-status`, `etcd-health`: `etcdctl endpoint status -w json` and `endpoint health -w json` against every
  member's client URL (as the API shows the etcd static pods: kubeadm's
  `kubeadm.kubernetes.io/etcd.advertise-client-urls` annotation); `etcd-members`, `etcd-alarms`: `member
  list -w json` and `alarm list` of the node's own member (the cluster it belongs to); all with the node's
  etcd healthcheck client certificate, in the image of the node's own etcd static pod (already on the
  node: no pull, and its etcdctl is the cluster's etcd version);
- `certs`: a busybox `sh` printing every `pki/*.crt` and `pki/etcd/*.crt` and the `client-certificate-data`
  line of the kubeconfigs kubeadm writes (admin.conf, super-admin.conf, controller-manager.conf,
  scheduler.conf, kubelet.conf). Certificates are public; no key and no `client-key-data` line is read.

Why this channel (and not another one):
- no inbound port and no new secret: kubeaws already holds admin access to the API (directly or through the
  bastion tunnel, kubeaws.reach), and the Job uses what the node has (its etcd client certificate);
- etcd's own /health and /metrics are on 127.0.0.1:2381 of each member (kubeadm's listen-metrics-urls), out
  of reach of the API server's pod proxy, and its client port wants a client certificate the proxy does not
  present; kube-apiserver's /livez/etcd says only whether that API server reaches etcd, not which member is
  down, who leads, the DB size or alarms;
- `kubectl exec` into the etcd pod would give etcdctl but no way to read the other certificates (the etcd
  image has no shell or cat), and needs the exec streaming protocol; `kubeadm certs check-expiration -o json`
  needs kubeadm run in the host's namespaces (privileged, hostPID) where reading the files needs a read-only
  mount only, and kubeaws parses the certificates itself (`cryptography`);
- the cost: one pod per member for a few seconds (deleted once read, a TTL and a deadline otherwise), and
  busybox pulled once per member (from `mirrors.imageRepository` when set, as the snapshot Job's).

`run_probes` creates the Jobs, waits for their pods on the policy's clock, reads each container's log and
deletes the Jobs whatever happened. It never raises for a member: a member it could not read has `error`.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeaws.addons.versions import mirror_image
from kubeaws.aws.retry import RetryPolicy
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import APPLY_CONTENT_TYPE, KubeClient, node_is_ready
from kubeaws.spec.models import ClusterSpec

NAMESPACE = "kube-system"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
RUN_LABEL = "kubeaws.io/probe"
JOB_LABEL = "kubeaws.io/probe-job"
K8S_DIR = "/etc/kubernetes"
ETCD_PKI = f"{K8S_DIR}/pki/etcd"
#: kubeadm writes each member's client URL on its etcd static pod.
ADVERTISE_ANNOTATION = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
#: etcd's quota when `--quota-backend-bytes` is not set: 2 GiB (kubeaws' kubeadm config sets none).
DEFAULT_QUOTA = 2 * 1024**3
BUSYBOX = "docker.io/library/busybox:1.36.1"
POLL_SECONDS = 2.0
#: The etcd commands, by container name.
ETCD_COMMANDS: dict[str, tuple[str, ...]] = {
    "etcd-status": ("endpoint", "status", "-w", "json"),
    "etcd-health": ("endpoint", "health", "-w", "json"),
    "etcd-members": ("member", "list", "-w", "json"),
    "etcd-alarms": ("alarm", "list"),
}
#: The commands asked of the node's own member only (the others ask every member).
LOCAL_COMMANDS = frozenset({"etcd-members", "etcd-alarms"})
KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf")
#: Prints "== <path>" then the certificate (a PEM, or a kubeconfig's base64 client-certificate-data).
CERTS_SCRIPT = (
    f"cd {K8S_DIR} || exit 1\n"
    "for f in pki/*.crt pki/etcd/*.crt; do [ -f \"$f\" ] && { echo \"== $f\"; cat \"$f\"; }; done\n"
    f"for f in {' '.join(KUBECONFIGS)}; do\n"
    "  [ -f \"$f\" ] || continue\n"
    "  d=\"$(sed -n 's/^ *client-certificate-data: *//p' \"$f\" | head -n 1)\"\n"
    "  [ -n \"$d\" ] && { echo \"== $f\"; echo \"$d\"; }\n"
    "done\n"
    "exit 0\n")


@dataclass(frozen=True)
class EtcdTarget:
    """What the etcd containers need: the image of the node's etcd pod, every member's client URL and the
    node's own member's."""

    image: str
    endpoints: tuple[str, ...]
    local: str


@dataclass
class Reading:
    """What the probe read on one node: each container's log (stdout and stderr together, as the kubelet
    keeps them), or `error` when the pod did not run to its end."""

    node: str
    logs: dict[str, str] = field(default_factory=dict)
    error: str = ""


# -- what the API shows of the control plane ----------------------------------------------------------------
def etcd_pods(kube: KubeClient) -> dict[str, dict[str, Any]]:
    """Node name -> the etcd static pod (its mirror) on it."""
    pods = (kube.get(PODS, {"labelSelector": "component=etcd"}) or {}).get("items") or []
    return {str(p["spec"]["nodeName"]): p for p in pods if (p.get("spec") or {}).get("nodeName")}


def client_url(pod: dict[str, Any]) -> str | None:
    """The member's client URL: kubeadm's annotation, else the pod's (host network) address on port 2379."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ADVERTISE_ANNOTATION):
        return str(annotations[ADVERTISE_ANNOTATION]).split(",")[0]
    ip = (pod.get("status") or {}).get("podIP")
    return f"https://{ip}:2379" if ip else None


def etcd_image(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    etcd = next((c for c in containers if c.get("name") == "etcd"), containers[0] if containers else {})
    return str(etcd.get("image") or "")


def quota_bytes(pod: dict[str, Any]) -> int:
    """The member's `--quota-backend-bytes` as its static pod runs it, else etcd's default (2 GiB)."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
            found = re.fullmatch(r"--quota-backend-bytes=(\d+)", str(arg))
            if found and int(found.group(1)) > 0:
                return int(found.group(1))
    return DEFAULT_QUOTA


def ready_control_plane(kube: KubeClient) -> list[str]:
    """Control-plane nodes whose Ready condition is True, by name (a probe pod can start there)."""
    return sorted(n["metadata"]["name"] for n in kube.list_nodes(CONTROL_PLANE_LABEL) if node_is_ready(n))


def etcd_target(pods: dict[str, dict[str, Any]], node: str) -> EtcdTarget | None:
    """The etcd containers' settings for a probe on `node` (None without an etcd pod there)."""
    local = client_url(pods[node]) if node in pods else None
    if local is None or not etcd_image(pods[node]):
        return None
    endpoints = tuple(sorted({u for p in pods.values() if (u := client_url(p))}))
    return EtcdTarget(etcd_image(pods[node]), endpoints, local)


# -- the Job ----------------------------------------------------------------------------------------------
def probe_job(spec: ClusterSpec, node: str, name: str, run_id: str, etcd: EtcdTarget | None, certs: bool,
              deadline_seconds: int) -> dict[str, Any]:
    """The probe Job for `node`: the etcd containers with `etcd`, the certificate reader with `certs`."""
    labels = {"app.kubernetes.io/managed-by": "kubeaws", RUN_LABEL: run_id, JOB_LABEL: name}
    mount = [{"name": "kubernetes", "mountPath": K8S_DIR, "readOnly": True}]
    small = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    containers: list[dict[str, Any]] = []
    if etcd is not None:
        tls = [f"--cacert={ETCD_PKI}/ca.crt", f"--cert={ETCD_PKI}/healthcheck-client.crt",
               f"--key={ETCD_PKI}/healthcheck-client.key"]
        for container, command in ETCD_COMMANDS.items():
            containers.append({
                "name": container, "image": etcd.image, "imagePullPolicy": "IfNotPresent",
                "command": ["etcdctl", "--endpoints=" + (etcd.local if container in LOCAL_COMMANDS
                                                         else ",".join(etcd.endpoints)), *tls, "--dial-timeout=3s",
                            "--command-timeout=5s", *command],
                "volumeMounts": mount, "resources": small})
    if certs:
        containers.append({"name": "certs", "image": mirror_image(BUSYBOX, spec.spec.mirrors.image_repository),
                           "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", CERTS_SCRIPT],
                           "volumeMounts": mount, "resources": small})
    pod = {"nodeName": node, "hostNetwork": True, "restartPolicy": "Never", "automountServiceAccountToken": False,
           "priorityClassName": "system-node-critical", "tolerations": [{"operator": "Exists"}],
           "volumes": [{"name": "kubernetes", "hostPath": {"path": K8S_DIR, "type": "Directory"}}],
           "containers": containers}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline_seconds, "ttlSecondsAfterFinished": 600,
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def _waiting(pod: dict[str, Any]) -> str:
    """Why the pod's containers are not running yet (ImagePullBackOff...), '' when nothing is said."""
    reasons = {str((c.get("state") or {}).get("waiting", {}).get("reason") or "")
               for c in (pod.get("status") or {}).get("containerStatuses") or []}
    return ", ".join(sorted(r for r in reasons if r))


def run_probes(spec: ClusterSpec, kube: KubeClient, policy: RetryPolicy, plan: dict[str, tuple[EtcdTarget | None,
               bool]], *, timeout: float = 120.0, say: Callable[[str], None] = lambda _: None) -> dict[str, Reading]:
    """One probe Job per node of `plan` (node -> (etcd target or None, read the certificates)), run at once;
    each node's Reading. Waits at most `timeout` seconds on the policy's clock; the Jobs are deleted after."""
    run_id = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    jobs: dict[str, str] = {}
    readings = {node: Reading(node) for node in plan}
    try:
        for i, (node, (etcd, certs)) in enumerate(sorted(plan.items())):
            name = f"kubeaws-probe-{run_id}-{i}"
            job = probe_job(spec, node, name, run_id, etcd, certs, int(timeout) + 60)
            status, payload = kube.request("PATCH", f"{JOBS}/{name}", job, APPLY_CONTENT_TYPE,
                                           {"fieldManager": "kubeaws", "force": "true"})
            if not 200 <= status < 300:
                readings[node].error = f"the probe Job could not be created: HTTP {status} {payload}"
                continue
            jobs[node] = name
        say(f"probe Jobs {NAMESPACE}/kubeaws-probe-{run_id}-* on {', '.join(sorted(jobs)) or 'no node'}")
        _wait(kube, policy, run_id, jobs, readings, timeout)
    finally:
        for name in jobs.values():
            with contextlib.suppress(KubeawsError):  # else its TTL removes it
                kube.delete(f"{JOBS}/{name}")
    return readings


def _wait(kube: KubeClient, policy: RetryPolicy, run_id: str, jobs: dict[str, str], readings: dict[str, Reading],
          timeout: float) -> None:
    deadline = policy.clock() + timeout
    pending = dict(jobs)
    pods: dict[str, dict[str, Any]] = {}
    while pending:
        found = (kube.get(PODS, {"labelSelector": f"{RUN_LABEL}={run_id}"}) or {}).get("items") or []
        pods = {str((p["metadata"].get("labels") or {}).get(JOB_LABEL)): p for p in found}
        for node, name in list(pending.items()):
            pod = pods.get(name)
            if pod is not None and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                readings[node].logs = _logs(kube, pod)
                del pending[node]
        if not pending:
            return
        if policy.clock() >= deadline:
            break
        policy.sleep(POLL_SECONDS)
    for node, name in pending.items():
        pod = pods.get(name)
        state = "no pod" if pod is None else f"pod {(pod.get('status') or {}).get('phase') or 'Pending'}"
        why = _waiting(pod) if pod is not None else ""
        readings[node].error = (f"the probe Job {NAMESPACE}/{name} did not finish in {timeout:.0f}s ({state}"
                                + (f": {why}" if why else "") + ")")


def _logs(kube: KubeClient, pod: dict[str, Any]) -> dict[str, str]:
    name = pod["metadata"]["name"]
    out = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        try:
            out[container["name"]] = kube.get_text(f"{PODS}/{name}/log", {"container": container["name"]}) or ""
        except KubeawsError as exc:
            out[container["name"]] = f"(log not readable: {exc})"
    return out
