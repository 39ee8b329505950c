"""EKS authentication for kubectl: the bearer token (what `aws eks get-token` / aws-iam-authenticator print)
and a kubeconfig whose user runs `kubeaws token`.

The token is `k8s-aws-v1.` + base64url (no padding) of a presigned STS GetCallerIdentity URL (GET, valid 60
seconds, on the regional endpoint `sts.<region>.<DNS suffix>`, `amazonaws.com.cn` in China) whose signature
covers the header `x-k8s-aws-id: <cluster>`. The EKS authenticator replays the URL to learn the caller's
identity. Making it is local signing only: no AWS call, so it works offline with any credentials (they are
checked when the API server replays it).

Called by `kubeaws token` (cli/eks.py, the kubeconfig's exec plugin) and by the EKS access code (kubeconfig).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import yaml

from kubeaws.partition import endpoint_host

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
URL_EXPIRES_SECONDS = 60
#: The authenticator accepts a token for 15 minutes; kubectl refreshes it after this.
TOKEN_LIFETIME = dt.timedelta(minutes=14)
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def _retrieve_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # provide-client-params: move the pseudo-parameter out of the API params into the request context.
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _inject_cluster_id(request: Any, **_: Any) -> None:
    # before-sign: add the header, so the signature covers it (it becomes one of X-Amz-SignedHeaders).
    if CLUSTER_ID_HEADER in request.context:
        request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]


def _sts_client(region: str, session: Any = None, profile: str | None = None) -> Any:
    import botocore.config
    import botocore.session

    if session is None:
        session = botocore.session.Session(profile=profile)
    elif hasattr(session, "_session"):  # a boto3 Session: use its botocore session
        session = session._session
    # Presigning needs no network; one attempt keeps a misconfigured credential provider from retrying.
    config = botocore.config.Config(retries={"max_attempts": 1})
    client = session.create_client("sts", region_name=region, endpoint_url=f"https://{endpoint_host('sts', region)}",
                                   config=config)
    client.meta.events.register("provide-client-params.sts.GetCallerIdentity", _retrieve_cluster_id)
    client.meta.events.register("before-sign.sts.GetCallerIdentity", _inject_cluster_id)
    return client


def presigned_url(cluster: str, region: str, session: Any = None, profile: str | None = None) -> str:
    """The presigned GetCallerIdentity URL a token wraps. `session`: a botocore or boto3 session (default:
    a new botocore session with `profile`)."""
    client = _sts_client(region, session, profile)
    url: str = client.generate_presigned_url("get_caller_identity", Params={CLUSTER_ID_HEADER: cluster},
                                             ExpiresIn=URL_EXPIRES_SECONDS, HttpMethod="GET")
    return url


def token_from_url(url: str) -> str:
    """`k8s-aws-v1.` + base64url(url) without padding."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def url_from_token(token: str) -> str:
    """The presigned URL inside a token (for tests and `doctor`)."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"not an EKS token (no {TOKEN_PREFIX} prefix)")
    data = token.removeprefix(TOKEN_PREFIX)
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()


def eks_token(cluster: str, region: str, session: Any = None, profile: str | None = None,
              now: dt.datetime | None = None) -> dict[str, Any]:
    """An ExecCredential (client.authentication.k8s.io/v1beta1) holding a fresh token for `cluster`, expiring
    14 minutes from `now` (RFC 3339, UTC, 'Z'). Raises botocore's NoCredentialsError without credentials."""
    token = token_from_url(presigned_url(cluster, region, session, profile))
    start = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    expires = (start + TOKEN_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"kind": "ExecCredential", "apiVersion": EXEC_API_VERSION, "spec": {},
            "status": {"expirationTimestamp": expires, "token": token}}


def eks_kubeconfig(cluster: str, region: str, endpoint: str, ca_data: str, profile: str | None = None) -> str:
    """A kubeconfig for an EKS cluster (`ca_data`: the base64 CA bundle from DescribeCluster) whose user runs
    `kubeaws token --cluster NAME --region R` (with AWS_PROFILE when `profile` is given)."""
    exec_spec: dict[str, Any] = {
        "apiVersion": EXEC_API_VERSION,
        "command": "kubeaws",
        "args": ["token", "--cluster", cluster, "--region", region],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
    if profile:
        exec_spec["env"] = [{"name": "AWS_PROFILE", "value": profile}]
    user = f"kubeaws-{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"exec": exec_spec}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False, width=100000)
