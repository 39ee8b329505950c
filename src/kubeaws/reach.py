"""How kubeaws reaches a cluster's Kubernetes API: the admin credentials kubeaws.access builds (kubeadm: a
client certificate signed by the cluster CA; EKS: a token signed locally, renewed as it ages), through the
bastion tunnel (kubeaws.tunnel) when the endpoint is private and no direct route is known.

`api_client(spec, ctx, policy, ...)` is a context manager: the tunnel, when one is needed, lives as long as the
block. Called by the rollout (kubeaws.rollout.operation) and `doctor --live` (kubeaws.doctor.live_k8s).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from kubeaws.aws.retry import RetryPolicy
from kubeaws.aws.session import AwsContext
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
        yield client_from_kubeconfig(config.text, policy, token=token, timeout=timeout)
        return
    with open_tunnel(spec, ctx, config.server, key_file=ssh_key, notify=notify) as tunnel:
        yield client_from_kubeconfig(config.text, policy, server=tunnel.server, tls_server_name=tunnel.server_name,
                                     token=token, timeout=timeout)
