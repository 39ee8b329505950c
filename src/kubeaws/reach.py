"""How kubeaws reaches a cluster's Kubernetes API: the admin credentials kubeaws.access builds (kubeadm: a
client certificate signed by the cluster CA; EKS: a token signed locally, renewed as it ages), through the
bastion tunnel (kubeaws.tunnel) when the endpoint is private and no direct route is known.

`api_client(spec, ctx, policy, ...)` is a context manager: the tunnel, when one is needed, lives as long as the
block. Called by the rollout (kubeaws.rollout.operation) and `doctor --live` (kubeaws.doctor.live_k8s).

`KubeReach(spec, ctx)` is the same reach kept for a whole command and opened on first use: what `plan` and
`apply` give the `KubernetesObject` kind (`AwsContext.kube`, set by kubeaws.api) to read and apply the addons'
objects. `client(wait=False)` (plan, status): the client if the API answers now, else None with the reason in
`problem` (no cluster yet, its API not up, no route); `client(wait=True)` (apply): waits for the API to be
ready (a new cluster's first member boots and runs kubeadm init: minutes), up to `API_WAIT_SECONDS`.
"""

from __future__ import annotations

import base64
import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import yaml

from kubeaws.aws.retry import RetryPolicy, wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient
from kubeaws.spec.models import ClusterSpec


def client_from_kubeconfig(text: str, policy: RetryPolicy, *, server: str | None = None,
                           tls_server_name: str | None = None, token: Callable[[], str] | None = None,
                           timeout: float = 30.0) -> KubeClient:
    """A KubeClient from an admin kubeconfig (kubeaws.access): its client certificate (kubeadm) or `token`
    (EKS: the kubeconfig runs `kubeaws token`, the caller gives the function instead). `server` and
    `tls_server_name`: the local end of a tunnel and the name the certificate is checked for."""
    doc = yaml.safe_load(text)
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    cert = None
    if "client-certificate-data" in user:
        cert = (base64.b64decode(user["client-certificate-data"]), base64.b64decode(user["client-key-data"]))
    return KubeClient(server or cluster["server"], cluster["certificate-authority-data"], token, policy,
                      client_cert=cert, tls_server_name=tls_server_name, timeout=timeout)


@contextmanager
def api_client(spec: ClusterSpec, ctx: AwsContext, policy: RetryPolicy, *, ssh_key: Path | None = None,
               direct: bool | None = False, notify: Callable[[str], None] | None = None, timeout: float = 30.0,
               lifetime_hours: float = 12.0) -> Iterator[KubeClient]:
    """A client for the cluster's API for the length of the block: through the bastion tunnel when the
    endpoint is private (`direct=True`: never; None: only when the endpoint does not answer)."""
    from kubeaws.access import admin_kubeconfig
    from kubeaws.tunnel import open_tunnel, tunnel_needed

    config = admin_kubeconfig(spec, ctx, lifetime_hours=lifetime_hours)
    token = None
    if spec.spec.mode == "eks":
        from kubeaws.eks_auth import eks_token

        def token() -> str:
            return str(eks_token(spec.metadata.name, ctx.region, profile=ctx.settings.profile)["status"]["token"])

    if not tunnel_needed(config.private, config.server, direct):
        client = client_from_kubeconfig(config.text, policy, token=token, timeout=timeout)
        try:
            yield client
        finally:
            client.close()  # its kept-alive connections
        return
    with open_tunnel(spec, ctx, config.server, key_file=ssh_key, notify=notify) as tunnel:
        client = client_from_kubeconfig(config.text, policy, server=tunnel.server,
                                        tls_server_name=tunnel.server_name, token=token, timeout=timeout)
        try:
            yield client
        finally:
            client.close()


#: How long `apply` waits for a new cluster's API to be ready before it applies objects: the first member's
#: instance launches, boots, installs and runs kubeadm init (5-10 minutes on AWS), plus the load balancer.
API_WAIT_SECONDS = 1200.0
#: How long `plan` and `status` give the API to answer before they say it did not.
PROBE_SECONDS = 10.0
#: What reading the cluster's record answers when the cluster does not exist (yet): no state bucket or
#: cluster.json (kubeadm), no EKS cluster.
ABSENT = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound", "ResourceNotFoundException"})


class KubeReach:
    """The cluster's Kubernetes API for the length of one command, opened on first use and shared by the
    executor's threads (module docstring). `possible`: whether this endpoint can have a Kubernetes API at all
    (not on the local emulator, where nothing boots and EKS is metadata only). `close()` ends the tunnel."""

    def __init__(self, spec: ClusterSpec, ctx: AwsContext, *, ssh_key: Path | None = None,
                 direct: bool | None = None, notify: Callable[[str], None] | None = None,
                 wait_seconds: float = API_WAIT_SECONDS) -> None:
        self.spec, self.ctx, self.ssh_key, self.direct, self.notify = spec, ctx, ssh_key, direct, notify
        caps = ctx.capabilities
        self.possible = caps.kubernetes_api_behind_eks if spec.spec.mode == "eks" else caps.boots_instances
        self.wait_seconds = wait_seconds
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._client: KubeClient | None = None
        self._ready = False

    def client(self, *, wait: bool) -> KubeClient | None:
        """A client once the API is ready; None when the cluster does not exist yet (`problem` None: nothing
        to read), or (`problem` says why) when its API is not there (`wait` False) or not possible here. With
        `wait`, a cluster that exists but is still booting is waited for; one that never answers raises
        KubeawsError naming the endpoint and what to check."""
        if not self.possible:
            self.problem = "no Kubernetes API behind this endpoint (local emulator)"
            return None
        with self._lock:
            if self._ready:
                return self._client
            if self._client is None and not self._open():
                return None
            assert self._client is not None
            client = self._client
            if self._answers(client):
                self._ready = True
                return client
            if not wait:
                self.problem = f"the Kubernetes API at {client.host}:{client.port} is not ready"
                return None
            try:
                wait_until(lambda: True if self._answers(client) else None, self.wait_seconds,
                           f"the Kubernetes API at {client.host}:{client.port} to be ready", self.ctx.policy)
            except KubeawsError as exc:
                raise KubeawsError(f"{exc}: the cluster's instances may still be booting (see `kubeaws doctor "
                                   f"--live -f SPEC`); run apply again once the API answers") from exc
            self._ready = True
            return client

    def _open(self) -> bool:
        from botocore.exceptions import ClientError

        from kubeaws.aws.retry import error_code

        stack = ExitStack()
        try:
            self._client = stack.enter_context(api_client(
                self.spec, self.ctx, self.ctx.policy, ssh_key=self.ssh_key, direct=self.direct,
                notify=self.notify, timeout=PROBE_SECONDS))
        except (ClientError, KubeawsError) as exc:
            stack.close()
            cause = exc if isinstance(exc, ClientError) else exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) in ABSENT:
                self.problem = None  # nothing to read: every object is to be created, nothing was missed
                return False
            if isinstance(exc, ClientError):
                raise
            self.problem = str(exc)
            return False
        self._stack = stack
        return True

    @staticmethod
    def _answers(client: KubeClient) -> bool:
        """/readyz answers 200 (one attempt: the caller decides how long to wait)."""
        probe = copy.copy(client)
        probe.policy = replace(client.policy, max_attempts=1)
        try:
            status, _ = probe.request("GET", "/readyz", retry=frozenset(), decode=False)
        except KubeawsError:
            return False
        return status == 200

    def close(self) -> None:
        with self._lock:
            if self._stack is not None:
                self._stack.close()
            self._stack, self._client, self._ready = None, None, False
